"""Every malformed-message case maps to the NOTIFICATION RFC 4271 §6 names (and RFC 7606
decides whether the session survives).  Messages are built byte by byte here, not with the
encoder under test."""

from __future__ import annotations

import struct

import pytest

from bgp import messages as M
from bgp.context import CodecContext
from bgp.errors import BGPError, ErrorAction

MARKER = b"\xff" * 16
SESSION_RESET = ErrorAction.SESSION_RESET
WITHDRAW = ErrorAction.TREAT_AS_WITHDRAW
DISCARD = ErrorAction.ATTRIBUTE_DISCARD
AFISAFI = ErrorAction.AFISAFI_DISABLE


def msg(msg_type: int, body: bytes, length: int | None = None, marker: bytes = MARKER) -> bytes:
    return (
        marker + struct.pack("!HB", 19 + len(body) if length is None else length, msg_type) + body
    )


def open_body(
    version: int = 4,
    my_as: int = 64500,
    hold: int = 90,
    rid: bytes = bytes([198, 51, 100, 1]),
    params: bytes = b"",
) -> bytes:
    return struct.pack("!BHH4sB", version, my_as, hold, rid, len(params)) + params


def attr(flags: int, code: int, value: bytes) -> bytes:
    if flags & 0x10:
        return struct.pack("!BBH", flags, code, len(value)) + value
    return struct.pack("!BBB", flags, code, len(value)) + value


AS64500 = struct.pack("!I", 64500)
ORIGIN = attr(0x40, 1, b"\x00")
AS_PATH = attr(0x40, 2, bytes([2, 1]) + struct.pack("!I", 64500))
NEXT_HOP = attr(0x40, 3, bytes([198, 51, 100, 1]))
NLRI = bytes([24, 203, 0, 113])


def update(attrs: bytes, nlri: bytes = NLRI, withdrawn: bytes = b"") -> bytes:
    body = struct.pack("!H", len(withdrawn)) + withdrawn + struct.pack("!H", len(attrs)) + attrs
    return msg(2, body + nlri)


def mandatory(*, origin: bytes = ORIGIN, as_path: bytes = AS_PATH, nh: bytes = NEXT_HOP) -> bytes:
    return origin + as_path + nh


# (case, wire bytes, expected code, subcode, data or None (not checked))
FATAL = [
    ("bad marker", msg(4, b"", marker=b"\xff" * 15 + b"\xfe"), 1, 1, None),
    ("length below 19", msg(4, b"", length=18), 1, 2, b"\x00\x12"),
    ("length above 4096", msg(2, b"\x00" * 4, length=5000), 1, 2, struct.pack("!H", 5000)),
    ("keepalive with a body", msg(4, b"\x00"), 1, 2, b"\x00\x14"),
    ("open too short", msg(1, b"\x04\x00"), 1, 2, b"\x00\x15"),
    ("update too short", msg(2, b"\x00"), 1, 2, b"\x00\x14"),
    ("notification too short", msg(3, b"\x06"), 1, 2, b"\x00\x14"),
    ("bad type", msg(9, b""), 1, 3, b"\x09"),
    ("type zero", msg(0, b""), 1, 3, b"\x00"),
    ("unsupported version", msg(1, open_body(version=3)), 2, 1, b"\x00\x04"),
    ("hold time 1", msg(1, open_body(hold=1)), 2, 6, None),
    ("hold time 2", msg(1, open_body(hold=2)), 2, 6, None),
    ("BGP identifier zero", msg(1, open_body(rid=bytes(4))), 2, 3, None),
    (
        "unsupported optional parameter (authentication)",
        msg(1, open_body(params=b"\x01\x02\xab\xcd")),
        2,
        4,
        None,
    ),
    ("optional parameters overrun", msg(1, open_body(params=b"\x02\x09\x41\x04")), 2, 0, None),
    (
        "malformed capability",
        msg(1, open_body(params=b"\x02\x04\x41\x02\x00\x01")),
        2,
        0,
        None,
    ),
    (
        "route refresh with 5-octet body",
        msg(5, b"\x00\x01\x00\x01\x00"),
        7,
        1,
        msg(5, b"\x00\x01\x00\x01\x00"),
    ),
    ("route refresh with 2-octet body", msg(5, b"\x00\x01"), 7, 1, None),
    ("OPEN from AS 0", msg(1, open_body(my_as=0)), 2, 2, None),
    (
        "withdrawn length overruns",
        msg(2, b"\x00\x30\x00\x00"),
        3,
        1,
        None,
    ),
    (
        "attribute length overruns",
        msg(2, b"\x00\x00\x00\x40" + ORIGIN),
        3,
        1,
        None,
    ),
    ("NLRI prefix length 33", update(mandatory(), nlri=b"\x21" + bytes(5)), 3, 10, None),
    ("NLRI overruns", update(mandatory(), nlri=b"\x18\xcb\x00"), 3, 10, None),
    ("withdrawn prefix invalid", update(b"", nlri=b"", withdrawn=b"\x40\x01"), 3, 10, None),
    (
        "unrecognized well-known attribute",
        update(mandatory() + attr(0x40, 99, b"x")),
        3,
        2,
        attr(0x40, 99, b"x"),
    ),
    (
        "MP_REACH twice",
        update(
            mandatory()
            + attr(0x80, 14, b"\x00\x02\x01\x10" + bytes(16) + b"\x00")
            + attr(0x80, 14, b"\x00\x02\x01\x10" + bytes(16) + b"\x00")
        ),
        3,
        1,
        None,
    ),
    (
        "MP_REACH too short to name a family",
        update(mandatory() + attr(0x80, 14, b"\x00\x02")),
        3,
        9,
        None,
    ),
]


@pytest.mark.parametrize(
    ("case", "wire", "code", "subcode", "data"), FATAL, ids=[c[0] for c in FATAL]
)
def test_fatal_errors_map_to_notification(
    case: str, wire: bytes, code: int, subcode: int, data: bytes | None
) -> None:
    with pytest.raises(BGPError) as info:
        M.decode(wire)
    err = info.value
    assert (err.code, err.subcode) == (code, subcode), err
    assert err.action == SESSION_RESET
    if data is not None:
        assert err.data == data
    note = M.Notification.from_error(err)
    assert M.decode(M.encode(note)) == M.Notification(code, subcode, err.data)


# RFC 7606: problems in a received UPDATE that do not reset the session.
SOFT = [
    ("missing ORIGIN", update(AS_PATH + NEXT_HOP), 3, 3, b"\x01", WITHDRAW),
    ("missing AS_PATH", update(ORIGIN + NEXT_HOP), 3, 3, b"\x02", WITHDRAW),
    ("missing NEXT_HOP", update(ORIGIN + AS_PATH), 3, 3, b"\x03", WITHDRAW),
    ("NLRI without any attribute", update(b""), 3, 3, b"\x01", WITHDRAW),
    (
        "ORIGIN flags optional",
        update(mandatory(origin=attr(0xC0, 1, b"\x00"))),
        3,
        4,
        attr(0xC0, 1, b"\x00"),
        WITHDRAW,
    ),
    (
        "ORIGIN length 2",
        update(mandatory(origin=attr(0x40, 1, b"\x00\x00"))),
        3,
        5,
        attr(0x40, 1, b"\x00\x00"),
        WITHDRAW,
    ),
    (
        "invalid ORIGIN value",
        update(mandatory(origin=attr(0x40, 1, b"\x03"))),
        3,
        6,
        attr(0x40, 1, b"\x03"),
        WITHDRAW,
    ),
    (
        "NEXT_HOP length 5",
        update(mandatory(nh=attr(0x40, 3, bytes(5)))),
        3,
        5,
        None,
        WITHDRAW,
    ),
    (
        "NEXT_HOP 0.0.0.0",
        update(mandatory(nh=attr(0x40, 3, bytes(4)))),
        3,
        8,
        attr(0x40, 3, bytes(4)),
        WITHDRAW,
    ),
    (
        "NEXT_HOP multicast",
        update(mandatory(nh=attr(0x40, 3, bytes([224, 0, 0, 5])))),
        3,
        8,
        None,
        WITHDRAW,
    ),
    (
        "AS_PATH unknown segment type",
        update(mandatory(as_path=attr(0x40, 2, bytes([7, 1]) + AS64500))),
        3,
        11,
        None,
        WITHDRAW,
    ),
    (
        "AS_PATH segment overrun",
        update(mandatory(as_path=attr(0x40, 2, bytes([2, 3]) + AS64500))),
        3,
        11,
        None,
        WITHDRAW,
    ),
    (
        "AS_PATH zero-length segment",
        update(mandatory(as_path=attr(0x40, 2, bytes([2, 0])))),
        3,
        11,
        None,
        WITHDRAW,
    ),
    (
        "AS_PATH single trailing octet",
        update(mandatory(as_path=attr(0x40, 2, bytes([2, 1]) + AS64500 + b"\x02"))),
        3,
        11,
        None,
        WITHDRAW,
    ),
    ("MED length 3", update(mandatory() + attr(0x80, 4, bytes(3))), 3, 5, None, WITHDRAW),
    ("LOCAL_PREF length 2", update(mandatory() + attr(0x40, 5, bytes(2))), 3, 5, None, WITHDRAW),
    (
        "LOCAL_PREF marked optional",
        update(mandatory() + attr(0xC0, 5, bytes(4))),
        3,
        4,
        None,
        WITHDRAW,
    ),
    (
        "COMMUNITIES length 5",
        update(mandatory() + attr(0xC0, 8, bytes(5))),
        3,
        5,
        None,
        WITHDRAW,
    ),
    (
        "LARGE_COMMUNITY length 8",
        update(mandatory() + attr(0xC0, 32, bytes(8))),
        3,
        5,
        None,
        WITHDRAW,
    ),
    (
        "EXTENDED_COMMUNITIES length 4",
        update(mandatory() + attr(0xC0, 16, bytes(4))),
        3,
        5,
        None,
        WITHDRAW,
    ),
    (
        "attribute header truncated",
        update(mandatory() + b"\xc0\x08"),
        3,
        1,
        None,
        WITHDRAW,
    ),
    (
        "last attribute overruns the block",
        update(mandatory() + b"\xc0\x08\x09\x00\x00"),
        3,
        5,
        None,
        WITHDRAW,
    ),
    (
        "AS 0 in AS_PATH",
        update(mandatory(as_path=attr(0x40, 2, bytes([2, 1]) + bytes(4)))),
        3,
        11,
        None,
        WITHDRAW,
    ),
    (
        "AGGREGATOR from AS 0",
        update(mandatory() + attr(0xC0, 7, bytes(4) + bytes([192, 0, 2, 1]))),
        3,
        9,
        None,
        DISCARD,
    ),
    (
        "ATOMIC_AGGREGATE with a value",
        update(mandatory() + attr(0x40, 6, b"\x01")),
        3,
        5,
        None,
        DISCARD,
    ),
    (
        "AGGREGATOR length 7",
        update(mandatory() + attr(0xC0, 7, bytes(7))),
        3,
        5,
        None,
        DISCARD,
    ),
    (
        "AS4_PATH with confederation segment",
        update(mandatory() + attr(0xC0, 17, bytes([3, 1]) + AS64500)),
        3,
        9,
        None,
        DISCARD,
    ),
    (
        "AS4_AGGREGATOR length 6",
        update(mandatory() + attr(0xC0, 18, bytes(6))),
        3,
        5,
        None,
        DISCARD,
    ),
    (
        "duplicate COMMUNITIES",
        update(mandatory() + attr(0xC0, 8, bytes(4)) + attr(0xC0, 8, bytes(4))),
        3,
        1,
        None,
        DISCARD,
    ),
    (
        "MP_REACH IPv6 next hop length 5",
        update(
            ORIGIN + AS_PATH + attr(0x80, 14, b"\x00\x02\x01\x05" + bytes(5) + b"\x00"), nlri=b""
        ),
        3,
        9,
        None,
        AFISAFI,
    ),
    (
        "MP_REACH IPv6 prefix length 129",
        update(
            ORIGIN
            + AS_PATH
            + attr(0x80, 14, b"\x00\x02\x01\x10" + bytes(16) + b"\x00\x81" + bytes(17)),
            nlri=b"",
        ),
        3,
        9,
        None,
        AFISAFI,
    ),
]


@pytest.mark.parametrize(
    ("case", "wire", "code", "subcode", "data", "action"), SOFT, ids=[c[0] for c in SOFT]
)
def test_rfc7606_soft_errors(
    case: str, wire: bytes, code: int, subcode: int, data: bytes | None, action: ErrorAction
) -> None:
    got = M.decode(wire)
    assert isinstance(got, M.Update)
    assert [(p.code, p.subcode, p.action) for p in got.problems] == [(code, subcode, action)]
    if data is not None:
        assert got.problems[0].data == data
    assert got.treat_as_withdraw == (action == WITHDRAW)


def test_bad_next_hop_is_ignored_when_only_mp_reach_carries_routes() -> None:
    mp = attr(
        0x80,
        14,
        b"\x00\x02\x01\x10"
        + bytes.fromhex("20010db8" + "00" * 11 + "01")
        + b"\x00\x20\x20\x01\x0d\xb8",
    )
    got = M.decode(update(ORIGIN + AS_PATH + attr(0x40, 3, bytes(4)) + mp, nlri=b""))
    assert isinstance(got, M.Update)
    assert [(p.subcode, p.action) for p in got.problems] == [(8, DISCARD)]
    assert not got.treat_as_withdraw
    assert got.mp_reach is not None and len(got.mp_reach.nlri) == 1


def test_withdraw_only_update_needs_no_attributes() -> None:
    got = M.decode(update(b"", nlri=b"", withdrawn=NLRI))
    assert isinstance(got, M.Update) and got.problems == () and len(got.withdrawn) == 1


def test_two_octet_as_path_decodes_with_context() -> None:
    as_path2 = attr(0x40, 2, bytes([2, 2]) + struct.pack("!HH", 64500, 23456))
    got = M.decode(update(mandatory(as_path=as_path2)), CodecContext(four_octet_as=False))
    assert isinstance(got, M.Update) and got.problems == ()
    seg = got.attributes[1]
    assert seg.segments[0].asns == (64500, 23456)  # type: ignore[union-attr]


def test_extended_message_context_allows_large_updates() -> None:
    big = update(mandatory(), nlri=bytes([32, 198, 18, 0, 1]) * 1000)
    with pytest.raises(BGPError) as info:
        M.decode(big)
    assert (info.value.code, info.value.subcode) == (1, 2)
    got = M.decode(big, CodecContext(extended_message=True))
    assert isinstance(got, M.Update) and len(got.nlri) == 1000


def test_open_is_limited_to_4096_even_with_extended_messages() -> None:
    body = struct.pack("!BHH4sB", 4, 64500, 90, bytes([198, 51, 100, 1]), 255) + bytes(4100)
    with pytest.raises(BGPError) as info:
        M.decode(msg(1, body), CodecContext(extended_message=True))
    assert (info.value.code, info.value.subcode) == (1, 2)
