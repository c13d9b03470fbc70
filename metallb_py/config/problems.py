"""Problems found while parsing: each names the object, the field path and the rule it breaks.

The same Problem surfaces in the CLI (one line), in a webhook denial and in ConfigurationState, so
an error reads the same wherever a user meets it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class ObjectRef:
    """kind/namespace/name of a resource (namespace may be empty for cluster-scoped ones)."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


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
