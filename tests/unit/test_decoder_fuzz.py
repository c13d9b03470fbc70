"""Every wire decoder against hostile bytes: only its declared error, never another exception.

Decoders: BGP messages and streams, BFD control packets, Ethernet/ARP/IPv6/NDP/router-discovery
frames, memberlist packets and streams, and the pcap reader behind `python -m bgp decode`.

Three layers, all property-based (Hypothesis):
- the corpus in tests/corpus/ (known-bad inputs, see its README) is replayed as is;
- each corpus entry is mutated (bit flips, truncation, splices, length-field rewrites,
  duplication), which reaches deep into the decoders from a valid-looking start;
- random bytes behind a plausible header.
`make test` runs a short pass (a few hundred examples per property); `make fuzz`
(METALLB_FUZZ=long) runs 20 000 per property. The BGP codec has more specific properties in
tests/unit/test_bgp_fuzz.py; the membership codec round-trips in test_membership_wire.py.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bfd import packet as bfd_packet
from bgp import messages as M
from bgp import pcap
from bgp.context import CodecContext
from bgp.errors import BGPError
from l2 import packets as l2p
from metallb_py.membership import wire
from metallb_py.membership.crypto import Keyring

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
LONG = os.environ.get("METALLB_FUZZ") == "long"
EXAMPLES = 20000 if LONG else 250
if LONG:  # the long run outlasts the suite's 300 s per-test timeout
    pytestmark = pytest.mark.timeout(3600)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLOW = 1.0  # seconds: one input that takes longer is a denial of service, whatever it raises


def load(decoder: str) -> dict[str, bytes]:
    out = {}
    for path in sorted((CORPUS / decoder).glob("*.hex")):
        text = "".join(
            line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")
        )
        out[path.stem] = bytes.fromhex("".join(text.split()))
    return out


# -- one harness per decoder: run everything the input reaches, allow the declared error ---------

CONTEXTS = (
    M.DEFAULT_CONTEXT,
    CodecContext(four_octet_as=False),
    CodecContext(add_path=frozenset({(1, 1), (2, 1)}), extended_message=True),
)


def feed_bgp(data: bytes) -> None:
    for ctx in CONTEXTS:
        try:  # as one message (the inner decoder: no last-resort conversion of stray errors)
            msg = M._decode(data, ctx, None)
        except BGPError as err:
            assert 1 <= err.code <= 7
        else:
            repr(msg)
    buf = bytearray(data)
    try:  # as a stream, as a session reads it
        for raw in M.iter_messages(buf, 65535):
            try:
                repr(M._decode(raw, CONTEXTS[2], M.AttributeCache()))
            except BGPError:
                pass
    except BGPError as err:
        assert err.code == 1


def feed_bfd(data: bytes) -> None:
    try:
        pkt = bfd_packet.decode(data)
    except bfd_packet.PacketError as err:
        assert isinstance(err.reason, bfd_packet.DropReason)
    else:
        assert pkt.my_discriminator != 0 and pkt.detect_mult != 0
        assert bfd_packet.decode(pkt.encode()) == pkt


def feed_l2(data: bytes) -> None:
    try:
        eth = l2p.parse_ethernet(data)
    except l2p.MalformedFrame:
        return
    payload = eth.payload
    for parse in (l2p.parse_arp, l2p.parse_ipv6):
        try:
            parse(payload)
        except l2p.MalformedFrame:
            pass
    for body in (payload, payload[4:]):  # with and without one 802.1Q tag
        try:
            ip = l2p.parse_ipv6(body)
        except l2p.MalformedFrame:
            continue
        for parse6 in (l2p.parse_ndp, l2p.parse_router_discovery):
            try:
                repr(parse6(ip))
            except l2p.MalformedFrame:
                pass
        l2p.icmpv6_checksum_ok(ip.src, ip.dst, ip.payload)


KEYRING = Keyring(bytes(range(16)))


def feed_membership(data: bytes) -> None:
    for label, keyring, required in (("", None, False), ("metallb", KEYRING, False),
                                     ("", KEYRING, True)):  # fmt: skip
        try:
            for msg in wire.decode_packet(
                data, keyring=keyring, label=label, require_encryption=required
            ):
                repr(msg)
        except wire.WireError:
            pass
    for expect_label, keyring in ((True, None), (False, KEYRING)):
        dec = wire.StreamDecoder(expect_label_header=expect_label, keyring=keyring)
        try:
            got = dec.feed(data)
            while got is not None:
                got = dec.feed(b"")
        except wire.WireError:
            pass


def feed_pcap(data: bytes) -> None:
    try:
        for flow, stream in pcap.bgp_streams(data):
            assert isinstance(flow, str) and isinstance(stream, bytes)
    except pcap.PcapError:
        pass


HARNESSES: dict[str, Callable[[bytes], None]] = {
    "bgp": feed_bgp,
    "bfd": feed_bfd,
    "l2": feed_l2,
    "membership": feed_membership,
    "pcap": feed_pcap,
}
CORPORA = {name: load(name) for name in HARNESSES}


def run(decoder: str, data: bytes) -> None:
    started = time.perf_counter()
    HARNESSES[decoder](data)
    took = time.perf_counter() - started
    assert took < SLOW, f"{decoder}: {len(data)} octets took {took:.2f} s"


# -- the corpus as is ---------------------------------------------------------------------------


def test_fuzz_corpus_covers_every_decoder() -> None:
    for name, entries in CORPORA.items():
        assert len(entries) >= 10, f"tests/corpus/{name} holds {len(entries)} inputs"


@pytest.mark.parametrize(
    ("decoder", "name"),
    [(d, n) for d, entries in CORPORA.items() for n in entries],
)
def test_fuzz_corpus_replay(decoder: str, name: str) -> None:
    run(decoder, CORPORA[decoder][name])


def test_fuzz_corpus_inputs_are_refused_where_they_must_be() -> None:
    """The known-bad inputs are not merely survived: the decoder says they are bad. UPDATE
    errors are reported as the message's problems (RFC 7606: treat-as-withdraw, not a reset)."""
    tolerated = {
        "notification-shutdown-lie",  # RFC 9003 §2: a bad shutdown message is just ignored
        "stream-stall-partial",  # a valid KEEPALIVE; the stall is the session's business
    }
    for name, data in CORPORA["bgp"].items():
        if name in tolerated:
            continue
        try:
            msg = M.decode(data)
        except BGPError:
            continue
        assert isinstance(msg, M.Update) and msg.problems, name
    for name, data in CORPORA["bfd"].items():
        if name == "length-below-data":  # RFC 5880 §6.8.6: only a length beyond the data is bad
            continue
        with pytest.raises(bfd_packet.PacketError):
            bfd_packet.decode(data)
    for data in CORPORA["membership"].values():
        with pytest.raises(wire.WireError):
            wire.decode_packet(data)


# -- mutations of the corpus --------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, decoder: str) -> bytes:
    """A corpus entry (sometimes spliced with another) after a few random edits."""
    entries = list(CORPORA[decoder].values())
    data = bytearray(draw(st.sampled_from(entries)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "splice", "dup", "u16"]))
        pos = draw(st.integers(0, max(0, len(data))))
        if op == "flip" and data:
            i = pos % len(data)
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos % len(data)] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]))
        elif op == "cut":
            data = data[:pos]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "splice":
            other = draw(st.sampled_from(entries))
            data = data[:pos] + other[draw(st.integers(0, len(other))) :]
        elif op == "dup" and data:
            end = draw(st.integers(pos, len(data)))
            data[pos:pos] = data[pos:end]
        elif op == "u16" and len(data) >= 2:  # lie in a length field
            i = pos % (len(data) - 1)
            value = draw(st.sampled_from([0, 1, 18, 19, 24, 0x7FFF, 0xFFFF]))
            data[i : i + 2] = struct.pack("!H", value)
    return bytes(data)


@FUZZ
@given(mutated("bgp"))
def test_fuzz_bgp_mutations(data: bytes) -> None:
    run("bgp", data)


@FUZZ
@given(mutated("bfd"))
def test_fuzz_bfd_mutations(data: bytes) -> None:
    run("bfd", data)


@FUZZ
@given(mutated("l2"))
def test_fuzz_l2_mutations(data: bytes) -> None:
    run("l2", data)


@FUZZ
@given(mutated("membership"))
def test_fuzz_membership_mutations(data: bytes) -> None:
    run("membership", data)


@FUZZ
@given(mutated("pcap"))
def test_fuzz_pcap_mutations(data: bytes) -> None:
    run("pcap", data)


# -- random bytes behind a plausible header -----------------------------------------------------


@FUZZ
@given(st.sampled_from([0x0806, 0x86DD, 0x8100]), st.binary(max_size=200))
def test_fuzz_l2_random_payloads(ethertype: int, payload: bytes) -> None:
    run("l2", bytes(12) + struct.pack("!H", ethertype) + payload)


@FUZZ
@given(st.binary(min_size=40, max_size=120), st.integers(0, 255))
def test_fuzz_l2_random_icmpv6(body: bytes, icmp_type: int) -> None:
    ip6 = struct.pack("!IHBB", 0x60000000, len(body) - 40 + 1, 58, 255)
    run("l2", bytes(12) + b"\x86\xdd" + ip6 + body[:32] + bytes([icmp_type]) + body[32:])


@FUZZ
@given(st.binary(min_size=24, max_size=64))
def test_fuzz_bfd_random_version_1(data: bytes) -> None:
    run("bfd", bytes([0x20 | (data[0] & 0x1F)]) + data[1:3] + bytes([24]) + data[4:])


@FUZZ
@given(st.sampled_from([0, 1, 101, 113, 276]), st.lists(st.binary(max_size=120), max_size=6))
def test_fuzz_pcap_random_records(linktype: int, frames: list[bytes]) -> None:
    data = b"\xd4\xc3\xb2\xa1" + struct.pack("<HHiIII", 2, 4, 0, 0, 65535, linktype)
    for frame in frames:
        data += struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame
    run("pcap", data)


@FUZZ
@given(st.integers(0, 13), st.binary(max_size=300))
def test_fuzz_membership_random_bodies(mtype: int, body: bytes) -> None:
    run("membership", bytes([mtype]) + body)
