"""The one exception the BGP codec raises, and the NOTIFICATION it maps to.

Every problem found in a received message is a `BGPError` carrying exactly the
(code, subcode, data) of the NOTIFICATION that RFC 4271 §6 says to send, plus the
RFC 7606 action: problems in received UPDATEs that 7606 softens (treat-as-withdraw,
attribute-discard) do not reset the session.  The decoder never raises anything else on
arbitrary input, so callers can `except BGPError` and build the NOTIFICATION from it.
"""

from __future__ import annotations

import enum

# Error codes (RFC 4271 §4.5, RFC 7313 for 7).
MESSAGE_HEADER_ERROR = 1
OPEN_MESSAGE_ERROR = 2
UPDATE_MESSAGE_ERROR = 3
HOLD_TIMER_EXPIRED = 4
FSM_ERROR = 5
CEASE = 6
ROUTE_REFRESH_MESSAGE_ERROR = 7

# Message Header Error subcodes.
CONNECTION_NOT_SYNCHRONIZED = 1
BAD_MESSAGE_LENGTH = 2
BAD_MESSAGE_TYPE = 3

# OPEN Message Error subcodes.
UNSUPPORTED_VERSION_NUMBER = 1
BAD_PEER_AS = 2
BAD_BGP_IDENTIFIER = 3
UNSUPPORTED_OPTIONAL_PARAMETER = 4
UNACCEPTABLE_HOLD_TIME = 6
UNSUPPORTED_CAPABILITY = 7
ROLE_MISMATCH = 11

# UPDATE Message Error subcodes.
MALFORMED_ATTRIBUTE_LIST = 1
UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE = 2
MISSING_WELL_KNOWN_ATTRIBUTE = 3
ATTRIBUTE_FLAGS_ERROR = 4
ATTRIBUTE_LENGTH_ERROR = 5
INVALID_ORIGIN_ATTRIBUTE = 6
INVALID_NEXT_HOP_ATTRIBUTE = 8
OPTIONAL_ATTRIBUTE_ERROR = 9
INVALID_NETWORK_FIELD = 10
MALFORMED_AS_PATH = 11

# FSM Error subcodes (RFC 6608).
FSM_UNEXPECTED_IN_OPENSENT = 1
FSM_UNEXPECTED_IN_OPENCONFIRM = 2
FSM_UNEXPECTED_IN_ESTABLISHED = 3

# Cease subcodes (RFC 4486, RFC 8538, RFC 9384).
CEASE_MAX_PREFIXES = 1
CEASE_ADMIN_SHUTDOWN = 2
CEASE_PEER_DECONFIGURED = 3
CEASE_ADMIN_RESET = 4
CEASE_CONNECTION_REJECTED = 5
CEASE_OTHER_CONFIG_CHANGE = 6
CEASE_CONNECTION_COLLISION = 7
CEASE_OUT_OF_RESOURCES = 8
CEASE_HARD_RESET = 9
CEASE_BFD_DOWN = 10

# ROUTE-REFRESH Message Error subcodes (RFC 7313).
INVALID_ROUTE_REFRESH_LENGTH = 1

ERROR_CODE_NAMES: dict[int, str] = {
    MESSAGE_HEADER_ERROR: "Message Header Error",
    OPEN_MESSAGE_ERROR: "OPEN Message Error",
    UPDATE_MESSAGE_ERROR: "UPDATE Message Error",
    HOLD_TIMER_EXPIRED: "Hold Timer Expired",
    FSM_ERROR: "Finite State Machine Error",
    CEASE: "Cease",
    ROUTE_REFRESH_MESSAGE_ERROR: "ROUTE-REFRESH Message Error",
}

ERROR_SUBCODE_NAMES: dict[tuple[int, int], str] = {
    (1, 1): "Connection Not Synchronized",
    (1, 2): "Bad Message Length",
    (1, 3): "Bad Message Type",
    (2, 0): "Unspecific",
    (2, 1): "Unsupported Version Number",
    (2, 2): "Bad Peer AS",
    (2, 3): "Bad BGP Identifier",
    (2, 4): "Unsupported Optional Parameter",
    (2, 6): "Unacceptable Hold Time",
    (2, 7): "Unsupported Capability",
    (2, 11): "Role Mismatch",
    (3, 0): "Unspecific",
    (3, 1): "Malformed Attribute List",
    (3, 2): "Unrecognized Well-known Attribute",
    (3, 3): "Missing Well-known Attribute",
    (3, 4): "Attribute Flags Error",
    (3, 5): "Attribute Length Error",
    (3, 6): "Invalid ORIGIN Attribute",
    (3, 8): "Invalid NEXT_HOP Attribute",
    (3, 9): "Optional Attribute Error",
    (3, 10): "Invalid Network Field",
    (3, 11): "Malformed AS_PATH",
    (4, 0): "Unspecific",
    (5, 0): "Unspecified Error",
    (5, 1): "Receive Unexpected Message in OpenSent State",
    (5, 2): "Receive Unexpected Message in OpenConfirm State",
    (5, 3): "Receive Unexpected Message in Established State",
    (6, 0): "Unspecific",
    (6, 1): "Maximum Number of Prefixes Reached",
    (6, 2): "Administrative Shutdown",
    (6, 3): "Peer De-configured",
    (6, 4): "Administrative Reset",
    (6, 5): "Connection Rejected",
    (6, 6): "Other Configuration Change",
    (6, 7): "Connection Collision Resolution",
    (6, 8): "Out of Resources",
    (6, 9): "Hard Reset",
    (6, 10): "BFD Down",
    (7, 1): "Invalid Message Length",
}


def error_name(code: int, subcode: int) -> str:
    """'UPDATE Message Error / Malformed AS_PATH' style text for logs and the decode tool."""
    major = ERROR_CODE_NAMES.get(code, f"Unknown error code {code}")
    minor = ERROR_SUBCODE_NAMES.get((code, subcode))
    if minor is None:
        minor = "Unspecific" if subcode == 0 else f"subcode {subcode}"
    return f"{major} / {minor}"


class ErrorAction(enum.IntEnum):
    """RFC 7606 §2 approaches, ordered by severity so `max()` picks the one to apply."""

    ATTRIBUTE_DISCARD = 1
    TREAT_AS_WITHDRAW = 2
    AFISAFI_DISABLE = 3
    SESSION_RESET = 4


class BGPError(Exception):
    """A protocol error: the NOTIFICATION (code, subcode, data) to send and the 7606 action."""

    def __init__(
        self,
        code: int,
        subcode: int,
        data: bytes = b"",
        reason: str = "",
        action: ErrorAction = ErrorAction.SESSION_RESET,
    ) -> None:
        self.code = code
        self.subcode = subcode
        self.data = bytes(data)
        self.reason = reason or error_name(code, subcode)
        self.action = action
        super().__init__(f"{error_name(code, subcode)}: {self.reason}")

    @property
    def name(self) -> str:
        return error_name(self.code, self.subcode)

    def with_action(self, action: ErrorAction) -> BGPError:
        return BGPError(self.code, self.subcode, self.data, self.reason, action)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BGPError):
            return NotImplemented
        return (self.code, self.subcode, self.data, self.action) == (
            other.code,
            other.subcode,
            other.data,
            other.action,
        )

    def __hash__(self) -> int:
        return hash((self.code, self.subcode, self.data, self.action))

    def __repr__(self) -> str:
        return (
            f"BGPError({self.code}, {self.subcode}, data={self.data.hex()!r}, "
            f"action={self.action.name}, reason={self.reason!r})"
        )
