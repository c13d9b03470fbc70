"""BFD Control packet codec: every field round-trips, every malformed packet names its reason."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bfd.packet import (
    HEADER_LEN,
    ControlPacket,
    Diag,
    DropReason,
    PacketError,
    State,
    decode,
)

u32 = st.integers(min_value=0, max_value=2**32 - 1)


@st.composite
def valid_packets(draw: st.DrawFn) -> ControlPacket:
    state = draw(st.sampled_from(State))
    your = draw(u32 if state in (State.DOWN, State.ADMIN_DOWN) else u32.filter(lambda v: v > 0))
    poll = draw(st.booleans())
    return ControlPacket(
        state=state,
        my_discriminator=draw(st.integers(min_value=1, max_value=2**32 - 1)),
        your_discriminator=your,
        diag=draw(st.sampled_from(Diag)),
        detect_mult=draw(st.integers(min_value=1, max_value=255)),
        desired_min_tx_us=draw(u32),
        required_min_rx_us=draw(u32),
        required_min_echo_rx_us=draw(u32),
        poll=poll,
        final=False if poll else draw(st.booleans()),
        control_plane_independent=draw(st.booleans()),
        demand=draw(st.booleans()),
    )


@given(valid_packets())
def test_every_field_round_trips(packet: ControlPacket) -> None:
    wire = packet.encode()
    assert len(wire) == HEADER_LEN
    assert decode(wire) == packet


def test_wire_layout_matches_rfc5880_figure() -> None:
    packet = ControlPacket(
        state=State.UP,
        my_discriminator=0x01020304,
        your_discriminator=0x05060708,
        diag=Diag.NEIGHBOR_DOWN,
        detect_mult=3,
        desired_min_tx_us=300_000,
        required_min_rx_us=200_000,
        required_min_echo_rx_us=50_000,
        poll=True,
        demand=True,
    )
    wire = packet.encode()
    # Vers 1 (001) + Diag 3 (00011); Sta 3 (11) + P (1) F (0) C (0) A (0) D (1) M (0).
    assert wire[0] == 0b001_00011
    assert wire[1] == 0b11_1_0_0_0_1_0
    assert wire[2] == 3 and wire[3] == 24
    assert struct.unpack("!IIIII", wire[4:]) == (0x01020304, 0x05060708, 300_000, 200_000, 50_000)


def test_trailing_bytes_beyond_length_are_ignored() -> None:
    packet = ControlPacket(state=State.DOWN, my_discriminator=7)
    assert decode(packet.encode() + b"\x00" * 8) == packet


def _raw(
    *,
    version: int = 1,
    state: int = State.UP,
    flags: int = 0,
    mult: int = 3,
    length: int = 24,
    my: int = 1,
    your: int = 2,
    tail: bytes = b"",
) -> bytes:
    head = struct.pack(
        "!BBBBIIIII", version << 5, (state << 6) | flags, mult, length, my, your, 1, 1, 0
    )
    return head + tail


MALFORMED = [
    ("empty", b"", DropReason.TOO_SHORT),
    ("23 bytes", _raw()[:23], DropReason.TOO_SHORT),
    ("version 0", _raw(version=0), DropReason.BAD_VERSION),
    ("version 2", _raw(version=2), DropReason.BAD_VERSION),
    ("length 23", _raw(length=23), DropReason.BAD_LENGTH),
    ("length 0", _raw(length=0), DropReason.BAD_LENGTH),
    ("A bit, length 25", _raw(flags=0x04, length=25, tail=b"\x01"), DropReason.BAD_LENGTH),
    ("length beyond datagram", _raw(length=48), DropReason.LENGTH_EXCEEDS_PAYLOAD),
    ("detect mult 0", _raw(mult=0), DropReason.ZERO_DETECT_MULT),
    ("multipoint", _raw(flags=0x01), DropReason.MULTIPOINT),
    ("my discriminator 0", _raw(my=0), DropReason.ZERO_MY_DISCRIMINATOR),
    ("your disc 0 in Up", _raw(your=0, state=State.UP), DropReason.ZERO_YOUR_DISCRIMINATOR),
    ("your disc 0 in Init", _raw(your=0, state=State.INIT), DropReason.ZERO_YOUR_DISCRIMINATOR),
    ("poll and final", _raw(flags=0x30), DropReason.POLL_AND_FINAL),
    (
        "authenticated (simple password)",
        _raw(flags=0x04, length=28, tail=b"\x01\x04\x01x"),
        DropReason.AUTHENTICATION,
    ),
]


@pytest.mark.parametrize(
    ("data", "reason"), [(d, r) for _, d, r in MALFORMED], ids=[n for n, _, _ in MALFORMED]
)
def test_malformed_packet_is_rejected_with_its_reason(data: bytes, reason: DropReason) -> None:
    with pytest.raises(PacketError) as info:
        decode(data)
    assert info.value.reason is reason


@pytest.mark.parametrize("state", [State.DOWN, State.ADMIN_DOWN])
def test_your_discriminator_zero_is_fine_while_down(state: State) -> None:
    assert decode(_raw(your=0, state=state)).your_discriminator == 0


@given(st.binary(max_size=64))
def test_arbitrary_bytes_either_decode_or_raise_packet_error(data: bytes) -> None:
    try:
        packet = decode(data)
    except PacketError as exc:
        assert isinstance(exc.reason, DropReason)
    else:
        assert packet.my_discriminator != 0 and packet.detect_mult != 0
