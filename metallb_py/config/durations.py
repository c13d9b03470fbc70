"""Go `time.Duration` strings (`90s`, `1m30s`, `1.5h`, `300ms`), as metav1.Duration carries them."""

from __future__ import annotations

import re

from metallb_py.config.problems import quote

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class DurationError(ValueError):
    pass


def parse_duration(text: str) -> float:
    """Seconds for a Go duration string; raises DurationError with a readable reason."""
    raw = text.strip()
    if raw in ("0", "+0", "-0"):
        return 0.0
    sign = 1.0
    body = raw
    if body[:1] in "+-" and body:
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    if not body:
        raise DurationError(f"invalid duration {quote(text)}")
    pos = 0
    total = 0.0
    while pos < len(body):
        m = _PART.match(body, pos)
        if m is None:
            raise DurationError(
                f"invalid duration {quote(text)}: expected a number and a unit "
                "(ns, us, ms, s, m, h)"
            )
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def format_duration(seconds: float) -> str:
    """The shortest Go-style spelling of a whole-second duration (90 -> `1m30s`)."""
    if seconds != int(seconds):
        return f"{round(seconds * 1000)}ms"
    s = int(seconds)
    if s == 0:
        return "0s"
    out = ""
    hours, rest = divmod(s, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        out += f"{hours}h"
    if minutes or hours:
        out += f"{minutes}m"
    return out + f"{secs}s"
