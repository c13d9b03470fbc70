"""Demultiplexing and drop counting: every malformed or stray packet is dropped and counted."""

from __future__ import annotations

import pytest

from bfd.dispatch import Binding, Dispatcher, SessionKey
from bfd.packet import ControlPacket, DropReason, State
from bfd.profile import Profile, ProfileError
from bfd.session import Session
from tests.unit.test_bfd_packet import MALFORMED

LOCAL, PEER = "198.51.100.11", "198.51.100.1"


def dispatcher() -> tuple[Dispatcher[None], Session, Session]:
    d: Dispatcher[None] = Dispatcher()
    single, multi = Session(10), Session(20)
    d.add(Binding(SessionKey(PEER, LOCAL), single, 255, None))
    d.add(Binding(SessionKey("192.0.2.1", LOCAL, multihop=True), multi, 254, None))
    return d, single, multi


def packet(your: int = 0, state: State = State.DOWN) -> bytes:
    return ControlPacket(state=state, my_discriminator=77, your_discriminator=your).encode()


@pytest.mark.parametrize(
    ("data", "reason"), [(d, r) for _, d, r in MALFORMED], ids=[n for n, _, _ in MALFORMED]
)
def test_malformed_packets_are_dropped_and_counted(data: bytes, reason: DropReason) -> None:
    d, single, _ = dispatcher()
    assert d.datagram_received(data, LOCAL, PEER, False, 255, 1.0) is None
    assert d.drops == {reason.value: 1}
    assert single.counters.control_packet_input == 0


def test_first_packet_is_matched_by_addresses_then_by_discriminator() -> None:
    d, single, _ = dispatcher()
    bound = d.datagram_received(packet(), LOCAL, PEER, False, 255, 1.0)
    assert bound is not None and bound.session is single and single.state is State.INIT
    bound = d.datagram_received(packet(10, State.UP), LOCAL, PEER, False, 255, 1.1)
    assert bound is not None and single.state is State.UP
    assert not d.drops


@pytest.mark.parametrize(
    ("data", "peer", "multihop", "ttl", "reason"),
    [
        (packet(), PEER, False, 254, DropReason.BAD_TTL),
        (packet(), PEER, False, 1, DropReason.BAD_TTL),
        (packet(), "192.0.2.1", True, 253, DropReason.BAD_TTL),
        (packet(), "198.51.100.99", False, 255, DropReason.NO_SESSION),
        (packet(), PEER, True, 255, DropReason.NO_SESSION),
        (packet(12345, State.UP), PEER, False, 255, DropReason.UNKNOWN_DISCRIMINATOR),
        (packet(10, State.UP), "198.51.100.99", False, 255, DropReason.UNKNOWN_DISCRIMINATOR),
        (packet(20, State.UP), "192.0.2.1", False, 255, DropReason.UNKNOWN_DISCRIMINATOR),
    ],
)
def test_stray_packets_are_dropped_and_counted(
    data: bytes, peer: str, multihop: bool, ttl: int, reason: DropReason
) -> None:
    d, single, multi = dispatcher()
    assert d.datagram_received(data, LOCAL, peer, multihop, ttl, 1.0) is None
    assert d.drops == {reason.value: 1}
    assert single.state is State.DOWN and multi.state is State.DOWN


def test_multihop_accepts_any_ttl_down_to_the_minimum() -> None:
    d, _, multi = dispatcher()
    assert d.datagram_received(packet(), LOCAL, "192.0.2.1", True, 254, 1.0) is not None
    assert multi.state is State.INIT


def test_removed_session_no_longer_receives() -> None:
    d, _, _ = dispatcher()
    d.remove(SessionKey(PEER, LOCAL))
    assert d.datagram_received(packet(10, State.UP), LOCAL, PEER, False, 255, 1.0) is None
    assert d.drops == {"unknown_discriminator": 1}


def test_profile_defaults_are_metallbs() -> None:
    p = Profile.from_metallb({})
    assert (p.receive_interval_ms, p.transmit_interval_ms, p.detect_multiplier) == (300, 300, 3)
    assert (p.echo_interval_ms, p.echo_mode, p.passive_mode, p.minimum_ttl) == (
        50,
        False,
        False,
        254,
    )
    params, raised = p.session_params()
    assert params.desired_min_tx_us == params.required_min_rx_us == 300_000 and not raised
    assert params.required_min_echo_rx_us == 0


def test_profile_floor_raises_short_intervals_and_says_which() -> None:
    p = Profile.from_metallb(
        {"receiveInterval": 10, "transmitInterval": 10, "echoMode": True, "echoInterval": 10}
    )
    params, raised = p.session_params(floor_ms=50)
    assert raised == ["transmitInterval", "receiveInterval", "echoInterval"]
    assert params.desired_min_tx_us == params.required_min_rx_us == 50_000
    assert params.required_min_echo_rx_us == 50_000


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"receiveInterval": 9}, "receiveInterval: invalid value 9, must be in 10-60000 range"),
        ({"transmitInterval": 60001}, "transmitInterval: invalid value 60001"),
        ({"detectMultiplier": 1}, "detectMultiplier: invalid value 1, must be in 2-255 range"),
        ({"minimumTtl": 255}, "minimumTtl: invalid value 255, must be in 1-254 range"),
        ({"echoMode": "yes"}, "echoMode: must be true or false"),
        ({"receiveIntervall": 300}, "unknown field(s) receiveIntervall"),
    ],
)
def test_profile_rejects_out_of_range_fields_naming_the_rule(
    spec: dict[str, object], message: str
) -> None:
    with pytest.raises(ProfileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Profile.from_metallb(spec, name="fast")
