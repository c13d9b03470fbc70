"""Problems found while parsing: each names the object, the field path and the rule it breaks.

The same Problem surfaces in the CLI (one line), in a webhook denial and in ConfigurationState, so
an error reads the same wherever a user meets it.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning"]

# A user's value quoted in a message is cut to this many characters: a message must never grow
# with the input (a 600-byte alias bomb once printed 162 MB).
MAX_QUOTED = 120
# Lines printed for one object, and in all: past them, one line says how many were left out.
MAX_LINES_PER_OBJECT = 20
MAX_LINES_TOTAL = 200
# Fields whose value is never quoted, whatever the message: they hold secrets.
SECRET_FIELDS = frozenset({"password"})


class _Short(reprlib.Repr):
    """reprlib with room for a few items at each level, and integers too long for repr()."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = 4
        self.maxstring = MAX_QUOTED
        self.maxother = MAX_QUOTED

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 256:
            return f"<integer of {x.bit_length()} bits>"
        return super().repr_int(x, level)


_SHORT = _Short()


def quote(value: Any, limit: int = MAX_QUOTED) -> str:
    """`repr(value)` for a message, in bounded time and at most `limit` characters."""
    try:
        text = _SHORT.repr(value)
    except (RecursionError, ValueError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_secret_path(path: str) -> bool:
    """A field path whose last name is a secret one (`spec.password`)."""
    last = path.rsplit(".", 1)[-1].split("[", 1)[0]
    return last in SECRET_FIELDS


@dataclass(frozen=True, order=True)
class ObjectRef:
    """kind/namespace/name of a resource (namespace may be empty for cluster-scoped ones)."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        # Names are at most 253 characters in Kubernetes; a longer one is cut, never echoed whole.
        parts = [x if len(x) <= 253 else x[:250] + "..." for x in (self.kind, self.namespace)]
        name = self.name if len(self.name) <= 253 else self.name[:250] + "..."
        return f"{parts[0]}/{parts[1]}/{name}"


@dataclass(frozen=True)
class Problem:
    """One broken rule. `related` lists the other objects of a conflict (the winners)."""

    ref: ObjectRef
    path: str
    message: str
    rule: str
    severity: Severity = "error"
    related: tuple[ObjectRef, ...] = field(default=())

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def involves(self, ref: ObjectRef) -> bool:
        return self.ref == ref or ref in self.related

    def line(self) -> str:
        """`kind/namespace/name: field: message (rule ...)` — the CLI and webhook format."""
        where = self.path or "-"
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.ref}: {where}: {prefix}{self.message} (rule {self.rule})"

    def __str__(self) -> str:
        return self.line()


def sort_problems(problems: list[Problem]) -> list[Problem]:
    """A stable, deterministic order: by object, then field, then message."""
    return sorted(problems, key=lambda p: (p.ref, p.path, p.rule, p.message))


def bounded_lines(
    problems: Iterable[Problem],
    render: Callable[[Problem], str] = Problem.line,
    per_object: int = MAX_LINES_PER_OBJECT,
    total: int = MAX_LINES_TOTAL,
) -> list[str]:
    """One line per problem in the given order, at most `per_object` per object and `total` in
    all, errors chosen before warnings; what is left out is counted in one line after the
    object's last shown line, and in one line at the end for objects not shown at all."""
    items = list(problems)
    picked: set[int] = set()
    per_ref: dict[ObjectRef, int] = {}
    for errors in (True, False):
        for i, p in enumerate(items):
            if p.is_error != errors or len(picked) >= total:
                continue
            if per_ref.get(p.ref, 0) < per_object:
                per_ref[p.ref] = per_ref.get(p.ref, 0) + 1
                picked.add(i)
    left: dict[ObjectRef, int] = {}
    last: dict[ObjectRef, int] = {}
    for i, p in enumerate(items):
        if i in picked:
            last[p.ref] = i
        else:
            left[p.ref] = left.get(p.ref, 0) + 1
    lines: list[str] = []
    for i, p in enumerate(items):
        if i not in picked:
            continue
        lines.append(render(p))
        if last[p.ref] == i and left.get(p.ref):
            lines.append(f"{p.ref}: -: ... and {left.pop(p.ref)} more problem(s) of this object")
    unseen = sum(left.values())
    if unseen:
        lines.append(f"... and {unseen} more problem(s) of {len(left)} other object(s)")
    return lines
