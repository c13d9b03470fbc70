"""hashicorp/memberlist's wire format: messages, UDP packets and TCP streams, as pure functions.

A message is one type byte and a msgpack map keyed by the Go struct's field names, encoded the
way go-msgpack's MsgpackHandle does (strings and []byte both as msgpack "raw", no str8/bin; nil
for a nil slice; `omitempty` fields left out), so our bytes equal a Go member's for the same
values. Packets nest: [label header] → encryption → [hasCrc] → [compress] → [compound] →
messages. Streams carry one message each way: [label header] → [encryptMsg frame] → [compress] →
message (push-pull, ping/ack, user, error).

Everything here is sans-I/O: no sockets, no clock. Every failure raises `WireError` with a short
`reason` so the caller can count dropped input by cause.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Final

import msgpack

from . import lzw
from .crypto import CryptoError, Keyring, encrypted_length, encryption_overhead
from .messages import (
    Ack,
    Alive,
    Dead,
    ErrorResp,
    IndirectPing,
    Message,
    MessageType,
    Nack,
    NodeState,
    Ping,
    PushNodeState,
    PushPull,
    Suspect,
    UserMsg,
)

# --- Limits --------------------------------------------------------------------------------

UDP_BUFFER_SIZE: Final = 1400
"""memberlist's default send budget for one UDP packet (Config.UDPBufferSize)."""
MAX_PACKET_SIZE: Final = 65535
"""Largest UDP packet accepted or produced: the biggest datagram that can exist."""
MAX_PACKET_DECOMPRESSED: Final = 1 << 20
"""Largest decompressed packet payload: caps an LZW bomb hidden in one datagram."""
MAX_STREAM_SIZE: Final = 10 << 20
"""Largest stream message (framed, decrypted or decompressed): caps push-pull memory use."""
MAX_PUSH_PULL_NODES: Final = 100_000
"""Most member states one push-pull may announce (Go has none and allocates blindly)."""
MAX_NESTING: Final = 4
"""Deepest compound/compress wrapping accepted (Go sends at most compress(compound(...)))."""
MAX_LABEL_LEN: Final = 255
"""Longest label: its length travels in one byte."""
MAX_MSGPACK_DEPTH: Final = 16
"""Deepest msgpack nesting accepted inside a message (ours are flat maps)."""
MAX_MSGPACK_ITEMS: Final = 4096
"""Most entries in one msgpack map or array inside a message."""
MAX_COMPOUND_PARTS: Final = 255
"""A compound message counts its parts in one byte."""

# memberlist's send-size bookkeeping (net.go), for callers packing gossip into a packet.
COMPOUND_HEADER_OVERHEAD: Final = 2
COMPOUND_OVERHEAD: Final = 2
CRC_OVERHEAD: Final = 5
LZW_ALGO: Final = 0

REASONS: Final = frozenset(
    {
        "malformed",
        "crc",
        "decrypt",
        "label",
        "unencrypted",
        "too_large",
        "unknown_type",
        "nesting",
    }
)


class WireError(ValueError):
    """Undecodable or unacceptable input (or unencodable values); `reason` names the cause."""

    def __init__(self, reason: str, detail: str = "") -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class _Incomplete(Exception):
    """More bytes are needed (streams wait; packets treat it as malformed)."""


# --- msgpack, go-msgpack style -------------------------------------------------------------


def _pack(obj: dict[str, Any]) -> bytes:
    # use_bin_type=False: str and bytes as raw (fixraw/raw16/raw32), like MsgpackHandle.
    return msgpack.packb(obj, use_bin_type=False)


_FIXED_SKIP = {
    0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8,  # uint
    0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8,  # int
    0xCA: 4, 0xCB: 8,  # float
    0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17,  # fixext: type byte + data
}  # fmt: skip
# Length-prefixed raw data: (size of the length field, extra bytes after it, e.g. an ext type).
_SIZED_SKIP = {
    0xC4: (1, 0), 0xC5: (2, 0), 0xC6: (4, 0),  # bin
    0xD9: (1, 0), 0xDA: (2, 0), 0xDB: (4, 0),  # str
    0xC7: (1, 1), 0xC8: (2, 1), 0xC9: (4, 1),  # ext
}  # fmt: skip
# Container headers: (size of the count field, items per count).
_CONTAINERS = {0xDC: (2, 1), 0xDD: (4, 1), 0xDE: (2, 2), 0xDF: (4, 2)}


def _length_field(buf: bytes | bytearray, pos: int, width: int) -> int:
    """The big-endian size or count of `width` bytes at `pos`; _Incomplete if cut short."""
    if pos + width > len(buf):
        raise _Incomplete
    return int.from_bytes(buf[pos : pos + width], "big")


def _object_end(buf: bytes | bytearray, pos: int, max_raw: int) -> int:
    """Where the msgpack object at `pos` ends; _Incomplete if `buf` stops first.

    Scans without building anything, so a stream can tell whether a whole object has arrived,
    and nesting depth and sizes are checked before msgpack allocates.
    """
    n = len(buf)
    stack = [1]
    while stack:
        if stack[-1] == 0:
            stack.pop()
            continue
        stack[-1] -= 1
        if pos >= n:
            raise _Incomplete
        b = buf[pos]
        pos += 1
        count = 0
        if b <= 0x7F or b >= 0xE0 or b in (0xC0, 0xC2, 0xC3):
            continue
        if 0xA0 <= b <= 0xBF:
            pos += b & 0x1F
        elif 0x80 <= b <= 0x8F:
            count = (b & 0x0F) * 2
        elif 0x90 <= b <= 0x9F:
            count = b & 0x0F
        elif b in _FIXED_SKIP:
            pos += _FIXED_SKIP[b]
        elif b in _SIZED_SKIP:
            width, extra = _SIZED_SKIP[b]
            size = _length_field(buf, pos, width)
            if size > max_raw:
                raise WireError("too_large", f"msgpack raw of {size} bytes")
            pos += width + extra + size
        elif b in _CONTAINERS:
            width, per = _CONTAINERS[b]
            items = _length_field(buf, pos, width)
            if items > MAX_MSGPACK_ITEMS:
                raise WireError("too_large", f"msgpack container of {items} items")
            count = items * per
            pos += width
        else:  # 0xC1 is never used
            raise WireError("malformed", f"msgpack byte {b:#x}")
        if count:
            if len(stack) > MAX_MSGPACK_DEPTH:
                raise WireError("nesting", "msgpack nested too deep")
            stack.append(count)
    if pos > n:
        raise _Incomplete
    return pos


def _read_map(buf: bytes | bytearray, pos: int, max_raw: int) -> tuple[dict[str, Any], int]:
    """Decode the msgpack map at `pos` (keys as str, strings as bytes); return it and its end."""
    end = _object_end(buf, pos, max_raw)
    try:
        obj = msgpack.unpackb(
            bytes(buf[pos:end]),
            raw=True,
            strict_map_key=False,
        )
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise WireError("malformed", f"msgpack: {exc}") from None
    if not isinstance(obj, dict):
        raise WireError("malformed", f"expected a map, got {type(obj).__name__}")
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if not isinstance(key, bytes):
            raise WireError("malformed", "map key is not a string")
        try:
            out[key.decode()] = value
        except UnicodeDecodeError:
            continue  # cannot name one of our fields; Go skips unknown fields too
    return out, end


def _uint(bits: int) -> Callable[[Any, str], int]:
    top = (1 << bits) - 1

    def conv(value: Any, name: str) -> int:
        if value is None:
            return 0
        if type(value) is not int or not 0 <= value <= top:
            raise WireError("malformed", f"{name}: not a uint{bits}")
        return value

    return conv


def _int(value: Any, name: str) -> int:
    if value is None:
        return 0
    if type(value) is not int or not -(1 << 63) <= value < (1 << 63):
        raise WireError("malformed", f"{name}: not an int")
    return value


def _bool(value: Any, name: str) -> bool:
    if value is None:
        return False
    if type(value) is not bool:
        raise WireError("malformed", f"{name}: not a bool")
    return value


def _str(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, bytes):
        raise WireError("malformed", f"{name}: not a string")
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise WireError("malformed", f"{name}: not UTF-8") from None


def _bytes(value: Any, name: str) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, bytes):
        raise WireError("malformed", f"{name}: not bytes")
    return value


def _vsn(value: Any, name: str) -> tuple[int, ...]:
    return tuple(_bytes(value, name))


def _state(value: Any, name: str) -> NodeState:
    raw = _int(value, name)
    try:
        return NodeState(raw)
    except ValueError:
        raise WireError("malformed", f"{name}: unknown node state {raw}") from None


_u32 = _uint(32)
_u16 = _uint(16)
_u8 = _uint(8)

# Go field name, Python attribute, decoder, omitempty.
_Field = tuple[str, str, Callable[[Any, str], Any], bool]
# The message dataclasses mirror memberlist's structs field for field, so they are the schema: a
# Go name is the attribute in CamelCase ("from_" is "From"), the decoder follows the annotation.
# What a Python type does not say is listed here: Go's uint16 fields (other ints are uint32),
# and the `omitempty` ones.
_CONVERTERS: dict[str, Callable[[Any, str], Any]] = {
    "int": _u32,
    "str": _str,
    "bytes": _bytes,
    "bool": _bool,
    "tuple[int, ...]": _vsn,
    "NodeState": _state,
}
_UINT16 = frozenset({"port", "source_port"})
_OMITEMPTY = frozenset({"source_addr", "source_port", "source_node"})


def _schema(cls: type) -> list[_Field]:
    """`cls`'s fields for the codec; an annotation not in _CONVERTERS fails at import."""
    return [
        (
            "".join(word.title() for word in f.name.split("_")),
            f.name,
            _u16 if f.name in _UINT16 else _CONVERTERS[str(f.type)],
            f.name in _OMITEMPTY,
        )
        for f in dataclasses.fields(cls)
    ]


_SCHEMAS: dict[type, tuple[MessageType, list[_Field]]] = {
    cls: (mtype, _schema(cls))
    for cls, mtype in (
        (Ping, MessageType.PING),
        (IndirectPing, MessageType.INDIRECT_PING),
        (Ack, MessageType.ACK),
        (Nack, MessageType.NACK),
        (ErrorResp, MessageType.ERROR),
        (Suspect, MessageType.SUSPECT),
        (Alive, MessageType.ALIVE),
        (Dead, MessageType.DEAD),
        (PushNodeState, MessageType.PUSH_PULL),
    )
}
_BY_TYPE: dict[int, type] = {
    int(mtype): cls for cls, (mtype, _) in _SCHEMAS.items() if cls is not PushNodeState
}
_PUSH_PULL_HEADER: list[_Field] = [
    ("Nodes", "nodes", _int, False),
    ("UserStateLen", "user_state_len", _int, False),
    ("Join", "join", _bool, False),
]
_USER_HEADER: list[_Field] = [("UserMsgLen", "user_msg_len", _int, False)]
_COMPRESS: list[_Field] = [("Algo", "algo", _u8, False), ("Buf", "buf", _bytes, False)]


def _encode_value(value: Any, conv: Callable[[Any, str], Any], name: str) -> Any:
    """The msgpack value for one field, checked so a Go member can decode it."""
    if conv is _str:
        if not isinstance(value, str):
            raise WireError("malformed", f"{name}: not a string")
        return value
    if conv is _vsn or conv is _bytes:
        try:
            value = bytes(value)
        except (ValueError, TypeError):
            raise WireError("malformed", f"{name}: not bytes") from None
        return value or None  # an empty slice goes out as Go's nil
    if conv is _state:
        value = int(value)
    return conv(value, name)


def _to_map(values: dict[str, Any], fields: list[_Field]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # go-msgpack writes a struct's fields sorted by name (its lookup table's order), not in
    # declaration order.
    for go_name, attr, conv, omitempty in sorted(fields, key=lambda f: f[0]):
        value = values[attr]
        if omitempty and not value:
            continue
        out[go_name] = _encode_value(value, conv, go_name)
    return out


def _from_map(obj: dict[str, Any], fields: list[_Field]) -> dict[str, Any]:
    return {attr: conv(obj.get(go_name), go_name) for go_name, attr, conv, _ in fields}


def _struct_map(msg: Any) -> dict[str, Any]:
    _, fields = _SCHEMAS[type(msg)]
    return _to_map({attr: getattr(msg, attr) for _, attr, _, _ in fields}, fields)


# --- Messages ------------------------------------------------------------------------------


def _push_pull_body(msg: PushPull) -> bytes:
    header = {"nodes": len(msg.nodes), "user_state_len": len(msg.user_state), "join": msg.join}
    parts = [bytes([MessageType.PUSH_PULL]), _pack(_to_map(header, _PUSH_PULL_HEADER))]
    parts.extend(_pack(_struct_map(node)) for node in msg.nodes)
    parts.append(msg.user_state)
    return b"".join(parts)


def encode_message(msg: Message) -> bytes:
    """One message as it goes into a packet: type byte + msgpack map (user: raw payload).

    A PushPull (stream-only) encodes to its whole stream body; compose packets of the others.
    """
    if isinstance(msg, UserMsg):
        return bytes([MessageType.USER]) + msg.payload
    if isinstance(msg, PushPull):
        return _push_pull_body(msg)
    schema = _SCHEMAS.get(type(msg))
    if schema is None:
        raise WireError("unknown_type", f"cannot encode {type(msg).__name__}")
    return bytes([schema[0]]) + _pack(_struct_map(msg))


def _decode_struct(
    mtype: int, buf: bytes | bytearray, pos: int, max_raw: int
) -> tuple[Message, int]:
    """The map-bodied message of type `mtype` whose map starts at `pos`, and where it ends."""
    cls = _BY_TYPE[mtype]
    obj, end = _read_map(buf, pos, max_raw)
    msg: Message = cls(**_from_map(obj, _SCHEMAS[cls][1]))
    return msg, end


# Every message with a map body may travel in a packet but the error reply (streams only).
_PACKET_TYPES = frozenset(_BY_TYPE) - {MessageType.ERROR}


def decode_message(data: bytes) -> Message:
    """Decode one message as `encode_message` writes it (trailing bytes ignored, as Go does)."""
    if not data:
        raise WireError("malformed", "empty message")
    mtype = data[0]
    try:
        if mtype == MessageType.USER:
            return UserMsg(bytes(data[1:]))
        if mtype in _BY_TYPE:
            return _decode_struct(mtype, data, 1, len(data))[0]
        if mtype == MessageType.PUSH_PULL:
            return _parse_complete(data, MAX_STREAM_SIZE)
    except _Incomplete:
        raise WireError("malformed", "truncated message") from None
    raise WireError("unknown_type", f"message type {mtype}")


# --- Labels --------------------------------------------------------------------------------


def _label_bytes(label: str) -> bytes:
    raw = label.encode()
    if len(raw) > MAX_LABEL_LEN:
        raise WireError("label", f"label longer than {MAX_LABEL_LEN} bytes")
    return raw


def label_header(label: str) -> bytes:
    """The [hasLabel][len][label] prefix newer memberlist puts on packets and streams ("" none)."""
    raw = _label_bytes(label)
    return bytes([MessageType.HAS_LABEL, len(raw)]) + raw if raw else b""


def _split_label(data: bytes | bytearray) -> tuple[bytes, int]:
    """The label in front of `data` and where the rest starts; _Incomplete if cut short."""
    if not data or data[0] != MessageType.HAS_LABEL:
        return b"", 0
    if len(data) < 2:
        raise _Incomplete
    size = data[1]
    if size == 0:
        raise WireError("label", "empty label header")
    if len(data) < 2 + size:
        raise _Incomplete
    return bytes(data[2 : 2 + size]), 2 + size


# --- Compression ---------------------------------------------------------------------------


def _compress(body: bytes) -> bytes:
    wrapper = {"algo": LZW_ALGO, "buf": lzw.compress(body)}
    return bytes([MessageType.COMPRESS]) + _pack(_to_map(wrapper, _COMPRESS))


def _decompress_whole(buf: bytes, max_raw: int, max_size: int) -> bytes:
    """The payload of the compress message that is all of `buf` (a packet part, a stream body)."""
    try:
        obj, _ = _read_map(buf, 1, max_raw)
    except _Incomplete:
        raise WireError("malformed", "truncated compress message") from None
    return _decompress_map(obj, max_size)


def _decompress_map(obj: dict[str, Any], max_size: int) -> bytes:
    wrapper = _from_map(obj, _COMPRESS)
    if wrapper["algo"] != LZW_ALGO:
        raise WireError("malformed", f"unknown compression algorithm {wrapper['algo']}")
    try:
        return lzw.decompress(wrapper["buf"], max_size)
    except lzw.LZWError as exc:
        reason = "too_large" if "over" in str(exc) else "malformed"
        raise WireError(reason, f"lzw: {exc}") from None


# --- Packets -------------------------------------------------------------------------------


def packet_overhead(
    *,
    keyring: Keyring | None = None,
    label: str = "",
    crc: bool = False,
    encryption_version: int = 1,
) -> int:
    """Bytes the packet wrappers add to a payload (to budget gossip within UDP_BUFFER_SIZE)."""
    raw = _label_bytes(label)
    total = (2 + len(raw)) if raw else 0
    if crc:
        total += CRC_OVERHEAD
    if keyring is not None:
        total += encryption_overhead(encryption_version)
    return total


def encode_packet(
    msgs: Sequence[Message | bytes],
    *,
    keyring: Keyring | None = None,
    label: str = "",
    compress: bool = False,
    crc: bool = False,
    encryption_version: int = 1,
    nonce: bytes | None = None,
) -> bytes:
    """One UDP packet carrying `msgs` (messages, or bytes already from `encode_message`).

    Wraps as memberlist's sendMsg/rawSendMsgPacket: compound when more than one message; LZW
    only when it shrinks the payload; a CRC32 header when the peer speaks protocol >= 5;
    encryption with the label as additional data; the label header outermost.
    """
    parts = [m if isinstance(m, bytes | bytearray) else encode_message(m) for m in msgs]
    if not parts:
        raise WireError("malformed", "no messages")
    for part in parts:
        if not part:
            raise WireError("malformed", "empty message")
        if part[0] in (MessageType.PUSH_PULL, MessageType.ERROR):
            raise WireError("unknown_type", "push-pull and error travel only on streams")
    if len(parts) == 1:
        body = bytes(parts[0])
    else:
        if len(parts) > MAX_COMPOUND_PARTS:
            raise WireError("too_large", f"{len(parts)} messages in one compound")
        if any(len(p) > 0xFFFF for p in parts):
            raise WireError("too_large", "compound part over 65535 bytes")
        body = b"".join(
            [
                bytes([MessageType.COMPOUND, len(parts)]),
                b"".join(struct.pack(">H", len(p)) for p in parts),
                *parts,
            ]
        )
    if compress:
        squeezed = _compress(body)
        if len(squeezed) < len(body):
            body = squeezed
    if crc:
        body = struct.pack(">BI", MessageType.HAS_CRC, zlib.crc32(body)) + body
    raw_label = _label_bytes(label)
    if keyring is not None:
        try:
            body = keyring.encrypt(body, raw_label, version=encryption_version, nonce=nonce)
        except CryptoError as exc:
            raise WireError("decrypt", str(exc)) from None
    out = label_header(label) + body
    if len(out) > MAX_PACKET_SIZE:
        raise WireError("too_large", f"packet of {len(out)} bytes")
    return out


def decode_packet(
    data: bytes,
    *,
    keyring: Keyring | None = None,
    label: str = "",
    require_encryption: bool = False,
) -> list[Message]:
    """All messages in one UDP packet, unwrapped as memberlist's ingestPacket/handleCommand.

    With a keyring and `require_encryption` False (Go's GossipVerifyIncoming off) a packet that
    does not decrypt is read as plaintext, which lets a cluster switch encryption on gradually.
    A truncated compound is refused whole (Go keeps the leading complete parts).
    """
    if len(data) > MAX_PACKET_SIZE:
        raise WireError("too_large", f"packet of {len(data)} bytes")
    if not data:
        raise WireError("malformed", "empty packet")
    try:
        got_label, start = _split_label(data)
    except _Incomplete:
        raise WireError("malformed", "truncated label header") from None
    if got_label != _label_bytes(label):
        raise WireError("label", "packet label does not match")
    buf = bytes(data[start:])
    if keyring is not None:
        try:
            buf = keyring.decrypt(buf, got_label)
        except CryptoError as exc:
            if require_encryption:
                plain_looking = bool(buf) and buf[0] > 1
                raise WireError("unencrypted" if plain_looking else "decrypt", str(exc)) from None
    elif require_encryption:
        raise ValueError("require_encryption needs a keyring")
    if len(buf) >= CRC_OVERHEAD and buf[0] == MessageType.HAS_CRC:
        (expected,) = struct.unpack_from(">I", buf, 1)
        buf = buf[CRC_OVERHEAD:]
        if zlib.crc32(buf) != expected:
            raise WireError("crc", "checksum mismatch")
    out: list[Message] = []
    _handle_command(buf, 0, out)
    return out


def _handle_command(buf: bytes, depth: int, out: list[Message]) -> None:
    if not buf:
        raise WireError("malformed", "empty message")
    mtype = buf[0]
    if mtype == MessageType.COMPOUND:
        if depth >= MAX_NESTING:
            raise WireError("nesting", "compound nested too deep")
        for part in _split_compound(buf):
            _handle_command(part, depth + 1, out)
    elif mtype == MessageType.COMPRESS:
        if depth >= MAX_NESTING:
            raise WireError("nesting", "compression nested too deep")
        _handle_command(_decompress_whole(buf, len(buf), MAX_PACKET_DECOMPRESSED), depth + 1, out)
    elif mtype in _PACKET_TYPES or mtype == MessageType.USER:
        out.append(decode_message(buf))
    else:
        raise WireError("unknown_type", f"message type {mtype} in a packet")


def _split_compound(buf: bytes) -> list[bytes]:
    if len(buf) < 2:
        raise WireError("malformed", "missing compound length byte")
    count = buf[1]
    pos = 2 + 2 * count
    if len(buf) < pos:
        raise WireError("malformed", "truncated compound lengths")
    lengths = struct.unpack_from(f">{count}H", buf, 2)
    parts = []
    for size in lengths:
        if len(buf) < pos + size:
            raise WireError("malformed", "truncated compound part")
        parts.append(buf[pos : pos + size])
        pos += size
    return parts


# --- Streams -------------------------------------------------------------------------------

_STREAM_TYPES = frozenset(
    int(t)
    for t in (
        MessageType.PING,
        MessageType.ACK,
        MessageType.PUSH_PULL,
        MessageType.USER,
        MessageType.ERROR,
    )
)


def _stream_body(msg: Message) -> bytes:
    if isinstance(msg, UserMsg):
        header = _pack(_to_map({"user_msg_len": len(msg.payload)}, _USER_HEADER))
        return bytes([MessageType.USER]) + header + msg.payload
    if isinstance(msg, PushPull):
        return _push_pull_body(msg)
    if isinstance(msg, Ping | Ack | ErrorResp):
        return encode_message(msg)
    raise WireError("unknown_type", f"{type(msg).__name__} does not travel on streams")


def encode_stream(
    msg: Message,
    *,
    keyring: Keyring | None = None,
    label: str = "",
    compress: bool = False,
    encryption_version: int = 1,
    label_header_first: bool = False,
    nonce: bytes | None = None,
) -> bytes:
    """One stream message as memberlist's rawSendMsgStream writes it.

    The dialing side alone starts its connection with the label header: pass
    `label_header_first=True` for the first message it sends. The label is the encryption's
    additional data (after the 5 frame bytes) in both directions.
    """
    body = _stream_body(msg)
    if compress:
        body = _compress(body)
    raw_label = _label_bytes(label)
    if keyring is not None:
        frame = struct.pack(
            ">BI", MessageType.ENCRYPT, encrypted_length(encryption_version, len(body))
        )
        try:
            sealed = keyring.encrypt(
                body, frame + raw_label, version=encryption_version, nonce=nonce
            )
        except CryptoError as exc:
            raise WireError("decrypt", str(exc)) from None
        body = frame + sealed
    if len(body) > MAX_STREAM_SIZE:
        raise WireError("too_large", f"stream message of {len(body)} bytes")
    return (label_header(label) if label_header_first else b"") + body


class _BodyParser:
    """Parses one plain stream message (type byte first) in resumable, atomic steps."""

    __slots__ = ("header", "max_size", "mtype", "nodes", "pos")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.mtype = -1
        self.pos = 0
        self.header: dict[str, Any] | None = None
        self.nodes: list[PushNodeState] = []

    def advance(self, buf: bytes | bytearray) -> Message:
        """Parse on from `self.pos`; _Incomplete (progress kept) if `buf` ends first."""
        if self.mtype < 0:
            if len(buf) <= self.pos:
                raise _Incomplete
            self.mtype = buf[self.pos]
            if self.mtype not in _STREAM_TYPES:
                raise WireError("unknown_type", f"message type {self.mtype} on a stream")
            self.pos += 1
        if self.mtype == MessageType.PUSH_PULL:
            return self._push_pull(buf)
        if self.mtype == MessageType.USER:
            if self.header is None:
                obj, self.pos = _read_map(buf, self.pos, self.max_size)
                self.header = _from_map(obj, _USER_HEADER)
                if not 0 <= self.header["user_msg_len"] <= self.max_size:
                    raise WireError("too_large", "user message length")
            payload = self._raw(buf, self.header["user_msg_len"])
            return UserMsg(payload)
        msg, self.pos = _decode_struct(self.mtype, buf, self.pos, self.max_size)
        return msg

    def _raw(self, buf: bytes | bytearray, size: int) -> bytes:
        if len(buf) < self.pos + size:
            raise _Incomplete
        self.pos += size
        return bytes(buf[self.pos - size : self.pos])

    def _push_pull(self, buf: bytes | bytearray) -> PushPull:
        if self.header is None:
            obj, self.pos = _read_map(buf, self.pos, self.max_size)
            header = _from_map(obj, _PUSH_PULL_HEADER)
            if not 0 <= header["nodes"] <= MAX_PUSH_PULL_NODES:
                raise WireError("too_large", f"push-pull of {header['nodes']} nodes")
            if not 0 <= header["user_state_len"] <= self.max_size:
                raise WireError("too_large", "push-pull user state length")
            self.header = header
        fields = _SCHEMAS[PushNodeState][1]
        while len(self.nodes) < self.header["nodes"]:
            obj, end = _read_map(buf, self.pos, self.max_size)
            self.nodes.append(PushNodeState(**_from_map(obj, fields)))
            self.pos = end
        user_state = self._raw(buf, self.header["user_state_len"])
        return PushPull(tuple(self.nodes), join=self.header["join"], user_state=user_state)


def _parse_complete(data: bytes, max_size: int) -> Message:
    """A whole plain stream message held in `data` (decrypted or decompressed already)."""
    try:
        return _BodyParser(max_size).advance(data)
    except _Incomplete:
        raise WireError("malformed", "truncated stream message") from None


class StreamDecoder:
    """Incremental, sans-I/O reader of the messages on one memberlist TCP connection.

    `feed(bytes)` returns the next complete message, or None until enough bytes have arrived;
    call `feed(b"")` again to get a further message already buffered. The accepting side sets
    `expect_label_header` (the dialer sends the header, the reply has none). Errors are final.
    """

    def __init__(
        self,
        *,
        keyring: Keyring | None = None,
        label: str = "",
        require_encryption: bool = False,
        expect_label_header: bool = True,
        max_size: int = MAX_STREAM_SIZE,
    ) -> None:
        if require_encryption and keyring is None:
            raise ValueError("require_encryption needs a keyring")
        self._keyring = keyring
        self._label = _label_bytes(label)
        self._require_encryption = require_encryption
        self._label_pending = expect_label_header
        self._max_size = max_size
        self._buf = bytearray()
        self._body: _BodyParser | None = None
        self._failed: WireError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a returned message."""
        return len(self._buf)

    def feed(self, data: bytes) -> Message | None:
        if self._failed is not None:
            raise self._failed
        self._buf += data
        try:
            return self._next()
        except _Incomplete:
            if len(self._buf) > self._max_size + 5 + 2 + MAX_LABEL_LEN:
                self._failed = WireError("too_large", "stream message too long")
                raise self._failed from None
            return None
        except WireError as exc:
            self._failed = exc
            raise

    def _consume(self, size: int) -> None:
        del self._buf[:size]

    def _next(self) -> Message | None:
        if self._label_pending:
            got, start = _split_label(self._buf)
            if not self._buf:
                raise _Incomplete
            if got != self._label:
                raise WireError("label", "stream label does not match")
            self._consume(start)
            self._label_pending = False
        if self._body is not None:
            return self._finish_plain()
        if not self._buf:
            return None
        mtype = self._buf[0]
        if mtype == MessageType.ENCRYPT:
            return self._encrypted()
        if self._require_encryption:
            raise WireError("unencrypted", "encryption is configured but the stream is plain")
        if mtype == MessageType.COMPRESS:
            obj, end = _read_map(self._buf, 1, self._max_size)
            msg = _parse_complete(_decompress_map(obj, self._max_size), self._max_size)
            self._consume(end)
            return msg
        self._body = _BodyParser(self._max_size)
        return self._finish_plain()

    def _finish_plain(self) -> Message:
        assert self._body is not None
        msg = self._body.advance(self._buf)
        self._consume(self._body.pos)
        self._body = None
        return msg

    def _encrypted(self) -> Message:
        if self._keyring is None:
            raise WireError("decrypt", "stream is encrypted and no key is configured")
        if len(self._buf) < 5:
            raise _Incomplete
        (size,) = struct.unpack_from(">I", self._buf, 1)
        if size > self._max_size:
            raise WireError("too_large", f"encrypted stream message of {size} bytes")
        if len(self._buf) < 5 + size:
            raise _Incomplete
        frame = bytes(self._buf[:5])
        try:
            plain = self._keyring.decrypt(bytes(self._buf[5 : 5 + size]), frame + self._label)
        except CryptoError as exc:
            raise WireError("decrypt", str(exc)) from None
        self._consume(5 + size)
        if plain and plain[0] == MessageType.COMPRESS:
            plain = _decompress_whole(plain, self._max_size, self._max_size)
        return _parse_complete(plain, self._max_size)


def decode_stream(data: bytes, **options: Any) -> list[Message]:
    """Every message in a complete stream capture (a convenience over StreamDecoder)."""
    dec = StreamDecoder(**options)
    out: list[Message] = []
    msg = dec.feed(data)
    while msg is not None:
        out.append(msg)
        msg = dec.feed(b"")
    if dec.buffered:
        raise WireError("malformed", "stream ends inside a message")
    return out
