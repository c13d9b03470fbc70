"""BGP communities: standard `A:B` (RFC 1997, 16-bit halves) and large `large:A:B:C` (RFC 8092)."""

from __future__ import annotations

from dataclasses import dataclass

from metallb_py.config.problems import quote


class CommunityError(ValueError):
    pass


@dataclass(frozen=True, order=True)
class Community:
    """`large` False: values are (asn16, value16); True: (global, local1, local2) of 32 bits."""

    large: bool
    values: tuple[int, ...]

    def __str__(self) -> str:
        body = ":".join(str(v) for v in self.values)
        return f"large:{body}" if self.large else body

    @property
    def as_int(self) -> int:
        """Standard community as the 32-bit integer sent on the wire."""
        return (self.values[0] << 16) | self.values[1]


def _number(part: str, bits: int, what: str, text: str) -> int:
    if not part.isdigit():
        raise CommunityError(
            f"invalid {what} section {quote(part)} of community {quote(text)}: not a number"
        )
    value = int(part)
    if value >= 1 << bits:
        raise CommunityError(
            f"invalid {what} section {quote(part)} of community {quote(text)}: "
            f"must fit in {bits} bits"
        )
    return value


def parse_community(text: str) -> Community:
    parts = text.strip().split(":")
    if len(parts) == 2:
        return Community(
            False, (_number(parts[0], 16, "first", text), _number(parts[1], 16, "second", text))
        )
    if len(parts) == 4:
        if parts[0].lower() != "large":
            raise CommunityError(
                f"invalid marker {quote(parts[0])} for large community {quote(text)}: "
                "expected 'large'"
            )
        names = ("global administrator", "first local data", "second local data")
        return Community(
            True, tuple(_number(p, 32, n, text) for p, n in zip(parts[1:], names, strict=True))
        )
    raise CommunityError(
        f"invalid community {quote(text)}: expected A:B (16-bit numbers) or large:A:B:C "
        "(32-bit numbers)"
    )


def is_literal(text: str) -> bool:
    """Written as a value rather than an alias name (aliases contain no colon)."""
    return ":" in text
