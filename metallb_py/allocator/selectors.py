"""Kubernetes LabelSelector matching (matchLabels + matchExpressions), as metav1 defines it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


class Selector(Protocol):
    """Anything that matches a label set: ours below, or the config parser's selectors."""

    def matches(self, labels: Mapping[str, str]) -> bool: ...


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """An empty selector matches everything, as in Kubernetes."""

    match_labels: tuple[tuple[str, str], ...] = ()
    requirements: tuple[Requirement, ...] = field(default=())

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, value in self.match_labels:
            if labels.get(key) != value:
                return False
        return all(r.matches(labels) for r in self.requirements)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> LabelSelector:
        """Build from the JSON form (`matchLabels`, `matchExpressions`); ValueError if malformed."""
        raw = raw or {}
        labels = raw.get("matchLabels") or raw.get("match_labels") or {}
        if not isinstance(labels, Mapping):
            raise ValueError("matchLabels must be a map")
        reqs: list[Requirement] = []
        for expr in raw.get("matchExpressions") or raw.get("match_expressions") or []:
            op = expr.get("operator")
            if op not in _OPERATORS:
                raise ValueError(f"invalid label selector operator {op!r}")
            values = frozenset(str(v) for v in (expr.get("values") or []))
            if op in ("In", "NotIn") and not values:
                raise ValueError(f"operator {op} needs at least one value")
            if op in ("Exists", "DoesNotExist") and values:
                raise ValueError(f"operator {op} takes no values")
            reqs.append(Requirement(str(expr.get("key", "")), op, values))
        return cls(tuple(sorted((str(k), str(v)) for k, v in labels.items())), tuple(reqs))


def any_matches(selectors: Iterable[Selector], labels: Mapping[str, str]) -> bool:
    return any(s.matches(labels) for s in selectors)
