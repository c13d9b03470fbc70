"""The membership protocol's messages, as plain values.

They mirror hashicorp/memberlist's wire structs field for field (MetalLB's speakers run that
library), so `wire.py` can encode them to the same msgpack maps a Go member sends and decode what
it receives. The SWIM core (`core.py`) reads and writes only these values, never bytes.

Addresses are `bytes` on the wire (4 or 16 bytes); names are `str`. Field names and annotations
are the codec's schema (a Go name is the field name in CamelCase), so renaming one changes the wire.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class MessageType(enum.IntEnum):
    """The first byte of every memberlist message."""

    PING = 0
    INDIRECT_PING = 1
    ACK = 2
    SUSPECT = 3
    ALIVE = 4
    DEAD = 5
    PUSH_PULL = 6
    COMPOUND = 7
    USER = 8
    COMPRESS = 9
    ENCRYPT = 10
    NACK = 11
    HAS_CRC = 12
    ERROR = 13
    HAS_LABEL = 244


class NodeState(enum.IntEnum):
    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3


# memberlist's protocol versions: 1..5, and the version a default (LAN) member speaks.
PROTOCOL_MIN = 1
PROTOCOL_MAX = 5
PROTOCOL_CURRENT = 2
# [protocol min, max, current, delegate min, max, current], as an alive message carries it.
DEFAULT_VSN: tuple[int, ...] = (PROTOCOL_MIN, PROTOCOL_MAX, PROTOCOL_CURRENT, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class Ping:
    seq_no: int
    node: str  # the name of the member this ping is for ("" for any)
    source_addr: bytes = b""
    source_port: int = 0
    source_node: str = ""


@dataclass(frozen=True, slots=True)
class IndirectPing:
    seq_no: int
    target: bytes
    port: int
    node: str
    nack: bool = False
    source_addr: bytes = b""
    source_port: int = 0
    source_node: str = ""


@dataclass(frozen=True, slots=True)
class Ack:
    seq_no: int
    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class Nack:
    seq_no: int


@dataclass(frozen=True, slots=True)
class ErrorResp:
    error: str


@dataclass(frozen=True, slots=True)
class Suspect:
    incarnation: int
    node: str
    from_: str  # "From" on the wire


@dataclass(frozen=True, slots=True)
class Alive:
    incarnation: int
    node: str
    addr: bytes
    port: int
    meta: bytes = b""
    vsn: tuple[int, ...] = DEFAULT_VSN


@dataclass(frozen=True, slots=True)
class Dead:
    incarnation: int
    node: str
    from_: str  # "From" on the wire; equal to node for a graceful leave


@dataclass(frozen=True, slots=True)
class PushNodeState:
    name: str
    addr: bytes
    port: int
    incarnation: int
    state: NodeState
    meta: bytes = b""
    vsn: tuple[int, ...] = DEFAULT_VSN


@dataclass(frozen=True, slots=True)
class PushPull:
    """A TCP state exchange: every member this side knows, and opaque delegate state."""

    nodes: tuple[PushNodeState, ...]
    join: bool = False
    user_state: bytes = b""


@dataclass(frozen=True, slots=True)
class UserMsg:
    """A delegate's message: carried and counted, never interpreted (MetalLB sends none)."""

    payload: bytes = field(default=b"")


Message = Ping | IndirectPing | Ack | Nack | ErrorResp | Suspect | Alive | Dead | PushPull | UserMsg
