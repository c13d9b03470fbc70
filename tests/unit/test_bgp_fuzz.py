"""The decoder raises nothing but BGPError on arbitrary bytes.

A short run in the normal suite; METALLB_FUZZ=long runs many more examples.
"""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bgp import messages as M
from bgp.errors import BGPError
from bgp.fsm import State
from tests.lab.bgp_codec_strategies import contexts
from tests.unit.test_bgp_fsm import establish

LONG = os.environ.get("METALLB_FUZZ") == "long"
EXAMPLES = 20000 if LONG else 300
if LONG:  # the long run outlasts the suite's 300 s per-test timeout
    pytestmark = pytest.mark.timeout(3600)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MARKER = b"\xff" * 16


def check(wire: bytes, ctx: object) -> None:
    # The inner decoder, without decode()'s last-resort conversion of stray exceptions:
    # a bug that raises IndexError or struct.error fails here instead of hiding as 1/2.
    try:
        msg = M._decode(wire, ctx, None)  # type: ignore[arg-type]
    except BGPError as err:
        assert 1 <= err.code <= 7
        return
    # Whatever decodes must be describable and re-encodable without surprises.
    repr(msg)


@FUZZ
@given(st.binary(max_size=200), contexts())
def test_random_bytes(data: bytes, ctx: object) -> None:
    check(data, ctx)


@st.composite
def framed(draw: st.DrawFn) -> bytes:
    """Valid header around a random body, so the fuzzing reaches the body parsers."""
    msg_type = draw(st.sampled_from([1, 2, 3, 4, 5]))
    body = draw(st.binary(max_size=400))
    if msg_type == 2 and draw(st.booleans()):
        # A plausible UPDATE skeleton: lengths that fit, random attributes and NLRI.
        attrs = draw(st.binary(max_size=300))
        nlri = draw(st.binary(max_size=40))
        body = b"\x00\x00" + struct.pack("!H", len(attrs)) + attrs + nlri
    return MARKER + struct.pack("!HB", 19 + len(body), msg_type) + body


@st.composite
def attribute_soup(draw: st.DrawFn) -> bytes:
    """Well-framed attribute TLVs with random flags, codes and values."""
    parts = []
    for _ in range(draw(st.integers(0, 6))):
        code = draw(
            st.one_of(
                st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 32]),
                st.integers(0, 255),
            )
        )
        flags = draw(st.integers(0, 255)) & 0xEF
        value = draw(st.binary(max_size=60))
        parts.append(struct.pack("!BBB", flags, code, len(value)) + value)
    if draw(st.booleans()):  # a well-formed MP attribute among the noise
        nlri6 = draw(st.sampled_from([b"", b"\x20\x20\x01\x0d\xb8", b"\x40" + bytes(8)]))
        mp = b"\x00\x02\x01\x10" + bytes(15) + b"\x01\x00" + nlri6
        if draw(st.booleans()):
            mp = b"\x00\x02\x01" + nlri6  # MP_UNREACH
            parts.insert(
                draw(st.integers(0, len(parts))), struct.pack("!BBB", 0x80, 15, len(mp)) + mp
            )
        else:
            parts.insert(
                draw(st.integers(0, len(parts))), struct.pack("!BBB", 0x80, 14, len(mp)) + mp
            )
    attrs = b"".join(parts)
    nlri = draw(st.binary(max_size=20))
    body = b"\x00\x00" + struct.pack("!H", len(attrs)) + attrs + nlri
    return MARKER + struct.pack("!HB", 19 + len(body), 2) + body


@FUZZ
@given(framed(), contexts())
def test_framed_bodies(wire: bytes, ctx: object) -> None:
    check(wire, ctx)


@FUZZ
@given(attribute_soup(), contexts())
def test_attribute_soup(wire: bytes, ctx: object) -> None:
    check(wire, ctx)


@FUZZ
@given(st.binary(max_size=600))
def test_stream_splitter(data: bytes) -> None:
    buf = bytearray(MARKER + data)
    try:
        for raw in M.iter_messages(buf, 4096):
            check(raw, M.DEFAULT_CONTEXT)
    except BGPError as err:
        assert err.code == 1


@FUZZ
@given(st.lists(st.binary(min_size=1, max_size=120), max_size=8), st.booleans())
def test_session_survives_garbage(chunks: list[bytes], framed_first: bool) -> None:
    """An established session fed arbitrary bytes only ever answers with a NOTIFICATION."""
    s, conn = establish()
    for chunk in chunks:
        data = MARKER + chunk if framed_first else chunk
        s.data_received(conn, data, 1.0)
        if s.state != State.ESTABLISHED:
            break
    out = s.data_to_send(conn)
    if s.state != State.ESTABLISHED:
        (raw,) = list(M.iter_messages(bytearray(out), 65535))
        assert isinstance(M.decode(raw), M.Notification)


def _outcome(wire: bytes, ctx: object, cache: M.AttributeCache | None) -> object:
    try:
        msg = M.decode(wire, ctx, cache)  # type: ignore[arg-type]
    except BGPError as err:
        return ("error", err.code, err.subcode, err.action)
    if not isinstance(msg, M.Update):
        return msg
    return (
        sorted(map(repr, msg.attributes)),
        sorted((p.code, p.subcode, p.action) for p in msg.problems),
        msg.nlri,
        msg.withdrawn,
    )


@FUZZ
@given(st.lists(attribute_soup(), min_size=1, max_size=4), contexts())
def test_attribute_cache_agrees_with_the_plain_decoder(wires: list[bytes], ctx: object) -> None:
    cache = M.AttributeCache()
    for wire in wires + wires:  # the second pass hits the cache
        assert _outcome(wire, ctx, cache) == _outcome(wire, ctx, None)
