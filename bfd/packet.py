"""BFD Control packet codec (RFC 5880 §4.1) and the receive-side checks of §6.8.6.

Only the checks that need nothing but the packet itself live here; the ones that need a session
(unknown Your Discriminator, TTL) belong to the engine. Every rejected packet raises `PacketError`
with a `DropReason`, which callers count: a bad packet is dropped and counted, never fatal.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

VERSION = 1
HEADER_LEN = 24
_HEADER = struct.Struct("!BBBBIIIII")


class State(enum.IntEnum):
    ADMIN_DOWN = 0
    DOWN = 1
    INIT = 2
    UP = 3

    @property
    def label(self) -> str:
        """Lower-case name as logged (`admin_down`, `down`, `init`, `up`)."""
        return self.name.lower()


class Diag(enum.IntEnum):
    """Diagnostic codes (RFC 5880 §4.1): why the local system last left Up."""

    NONE = 0
    CONTROL_DETECTION_EXPIRED = 1
    ECHO_FAILED = 2
    NEIGHBOR_DOWN = 3
    FORWARDING_RESET = 4
    PATH_DOWN = 5
    CONCATENATED_PATH_DOWN = 6
    ADMIN_DOWN = 7
    REVERSE_CONCATENATED_PATH_DOWN = 8


_DIAGS = tuple(Diag)


_STATES = tuple(State)  # indexed by wire value: faster than State(value) on the hot path


class DropReason(enum.Enum):
    """Why a received packet was discarded; the value is the counter's label."""

    TOO_SHORT = "too_short"
    BAD_VERSION = "bad_version"
    BAD_LENGTH = "bad_length"
    LENGTH_EXCEEDS_PAYLOAD = "length_exceeds_payload"
    ZERO_DETECT_MULT = "zero_detect_mult"
    MULTIPOINT = "multipoint"
    ZERO_MY_DISCRIMINATOR = "zero_my_discriminator"
    ZERO_YOUR_DISCRIMINATOR = "zero_your_discriminator"
    POLL_AND_FINAL = "poll_and_final"
    AUTHENTICATION = "authentication"
    # Decided by the engine, listed here so every counter shares one vocabulary.
    BAD_TTL = "bad_ttl"
    UNKNOWN_DISCRIMINATOR = "unknown_discriminator"
    NO_SESSION = "no_session"


class PacketError(ValueError):
    def __init__(self, reason: DropReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason


@dataclass(slots=True)
class ControlPacket:
    """One BFD Control packet. Intervals are in microseconds, as on the wire.

    Treat it as immutable: sessions reuse the same object (and the engine its encoding) while
    nothing in it changes. Not frozen only because frozen dataclasses build slower, and one is
    built per packet on the hot path.
    """

    state: State
    my_discriminator: int
    your_discriminator: int = 0
    diag: Diag = Diag.NONE
    detect_mult: int = 3
    desired_min_tx_us: int = 1_000_000
    required_min_rx_us: int = 1_000_000
    required_min_echo_rx_us: int = 0
    poll: bool = False
    final: bool = False
    control_plane_independent: bool = False
    authenticated: bool = False
    demand: bool = False
    multipoint: bool = False
    version: int = VERSION
    auth_section: bytes = b""

    def encode(self) -> bytes:
        flags = (
            (self.poll << 5)
            | (self.final << 4)
            | (self.control_plane_independent << 3)
            | (self.authenticated << 2)
            | (self.demand << 1)
            | int(self.multipoint)
        )
        return (
            _HEADER.pack(
                ((self.version & 0x7) << 5) | (self.diag & 0x1F),
                (self.state << 6) | flags,
                self.detect_mult,
                HEADER_LEN + len(self.auth_section),
                self.my_discriminator,
                self.your_discriminator,
                self.desired_min_tx_us,
                self.required_min_rx_us,
                self.required_min_echo_rx_us,
            )
            + self.auth_section
        )


def decode(data: bytes) -> ControlPacket:
    """Parse and validate one packet (RFC 5880 §6.8.6, the checks that need no session).

    Authentication is not supported (neither MetalLB's BFDProfile nor FRR offers it), so a packet
    with the A bit is dropped like one that fails authentication.
    """
    if len(data) < HEADER_LEN:
        raise PacketError(DropReason.TOO_SHORT, f"{len(data)} bytes")
    vers_diag, state_flags, mult, length, my_d, your_d, tx, rx, echo = _HEADER.unpack_from(data)
    version = vers_diag >> 5
    if version != VERSION:
        raise PacketError(DropReason.BAD_VERSION, f"version {version}")
    authenticated = bool(state_flags & 0x04)
    if length < HEADER_LEN or (authenticated and length < HEADER_LEN + 2):
        raise PacketError(DropReason.BAD_LENGTH, f"length field {length}")
    if length > len(data):
        raise PacketError(
            DropReason.LENGTH_EXCEEDS_PAYLOAD, f"length field {length} > {len(data)} bytes"
        )
    if mult == 0:
        raise PacketError(DropReason.ZERO_DETECT_MULT)
    if state_flags & 0x01:
        raise PacketError(DropReason.MULTIPOINT)
    if my_d == 0:
        raise PacketError(DropReason.ZERO_MY_DISCRIMINATOR)
    state = _STATES[state_flags >> 6]
    if your_d == 0 and state not in (State.DOWN, State.ADMIN_DOWN):
        raise PacketError(DropReason.ZERO_YOUR_DISCRIMINATOR, f"in state {state.label}")
    poll = bool(state_flags & 0x20)
    final = bool(state_flags & 0x10)
    if poll and final:
        raise PacketError(DropReason.POLL_AND_FINAL)
    if authenticated:
        raise PacketError(DropReason.AUTHENTICATION, "authentication is not supported")
    diag_code = vers_diag & 0x1F
    # Reserved codes carry no meaning we can act on: read as NONE.
    diag = _DIAGS[diag_code] if diag_code < len(_DIAGS) else Diag.NONE
    return ControlPacket(
        state=state,
        my_discriminator=my_d,
        your_discriminator=your_d,
        diag=diag,
        detect_mult=mult,
        desired_min_tx_us=tx,
        required_min_rx_us=rx,
        required_min_echo_rx_us=echo,
        poll=poll,
        final=final,
        control_plane_independent=bool(state_flags & 0x08),
        authenticated=False,
        demand=bool(state_flags & 0x02),
        multipoint=False,
        version=version,
        auth_section=bytes(data[HEADER_LEN:length]),
    )
