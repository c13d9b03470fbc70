"""Kubernetes label selectors: validation, a canonical form for duplicate checks, matching, and a
static test of whether two selectors can ever select the same object (used for "peers that can
meet on one node" without depending on which nodes exist right now)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def label_key_error(key: str) -> str | None:
    """Why `key` is not a valid qualified label key, or None."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return f"invalid label key {key!r}: prefix must be a DNS subdomain"
    if not name or len(name) > 63 or not _NAME.match(name):
        return (
            f"invalid label key {key!r}: name must be 1-63 characters of alphanumerics, '-', '_' "
            "or '.', starting and ending with an alphanumeric"
        )
    return None


def label_value_error(value: str) -> str | None:
    if value == "":
        return None
    if len(value) > 63 or not _NAME.match(value):
        return (
            f"invalid label value {value!r}: at most 63 characters of alphanumerics, '-', '_' or "
            "'.', starting and ending with an alphanumeric"
        )
    return None


@dataclass(frozen=True, order=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        return self.key not in labels or labels[self.key] not in self.values

    def __str__(self) -> str:
        if self.operator == "Exists":
            return self.key
        if self.operator == "DoesNotExist":
            return f"!{self.key}"
        if self.operator == "In" and len(self.values) == 1:
            return f"{self.key}={self.values[0]}"
        op = "in" if self.operator == "In" else "notin"
        return f"{self.key} {op} ({','.join(self.values)})"


@dataclass(frozen=True)
class LabelSelector:
    """A parsed selector; `requirements` is canonical (sorted), so equal selectors compare equal.
    An empty selector selects everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def can_overlap(self, other: LabelSelector) -> bool:
        """True when some label set satisfies both selectors."""
        return _satisfiable(self.requirements + other.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements) or "<all>"


def _satisfiable(reqs: Iterable[Requirement]) -> bool:
    by_key: dict[str, list[Requirement]] = {}
    for r in reqs:
        by_key.setdefault(r.key, []).append(r)
    for items in by_key.values():
        must_exist = any(r.operator in ("In", "Exists") for r in items)
        if must_exist and any(r.operator == "DoesNotExist" for r in items):
            return False
        allowed: set[str] | None = None
        for r in items:
            if r.operator == "In":
                allowed = set(r.values) if allowed is None else allowed & set(r.values)
        if allowed is not None:
            for r in items:
                if r.operator == "NotIn":
                    allowed -= set(r.values)
            if not allowed:
                return False
    return True


def any_can_meet(a: tuple[LabelSelector, ...], b: tuple[LabelSelector, ...]) -> bool:
    """Two selector lists (OR of selectors; empty list = everything) can select one object."""
    left = a or (LabelSelector(),)
    right = b or (LabelSelector(),)
    return any(x.can_overlap(y) for x in left for y in right)


def any_matches(selectors: tuple[LabelSelector, ...], labels: Mapping[str, str]) -> bool:
    """OR of selectors; an empty list matches everything."""
    return not selectors or any(s.matches(labels) for s in selectors)


def parse_selector(raw: Any, path: str) -> tuple[LabelSelector | None, list[tuple[str, str]]]:
    """Parse a LabelSelector dict; returns (selector or None, [(field path, message)])."""
    errors: list[tuple[str, str]] = []
    if raw is None:
        return LabelSelector(), errors
    if not isinstance(raw, dict):
        return None, [(path, "a label selector must be an object")]
    reqs: list[Requirement] = []
    labels = raw.get("matchLabels") or {}
    if not isinstance(labels, dict):
        errors.append((f"{path}.matchLabels", "must be a map of strings"))
        labels = {}
    for key, value in labels.items():
        kpath = f"{path}.matchLabels[{key}]"
        for err in (label_key_error(str(key)), label_value_error(str(value))):
            if err:
                errors.append((kpath, err))
        reqs.append(Requirement(str(key), "In", (str(value),)))
    exprs = raw.get("matchExpressions") or []
    if not isinstance(exprs, list):
        errors.append((f"{path}.matchExpressions", "must be a list"))
        exprs = []
    seen: set[Requirement] = set()
    for i, expr in enumerate(exprs):
        epath = f"{path}.matchExpressions[{i}]"
        if not isinstance(expr, dict):
            errors.append((epath, "must be an object with key, operator and values"))
            continue
        key = str(expr.get("key") or "")
        op = str(expr.get("operator") or "")
        values = [str(v) for v in (expr.get("values") or [])]
        if not key:
            errors.append((f"{epath}.key", "key is required"))
        elif err := label_key_error(key):
            errors.append((f"{epath}.key", err))
        if op not in OPERATORS:
            errors.append(
                (
                    f"{epath}.operator",
                    f"invalid operator {op!r}: must be one of {', '.join(OPERATORS)}",
                )
            )
            continue
        if op in ("In", "NotIn") and not values:
            errors.append((f"{epath}.values", f"operator {op} needs at least one value"))
        if op in ("Exists", "DoesNotExist") and values:
            errors.append((f"{epath}.values", f"operator {op} takes no values"))
        if len(set(values)) != len(values):
            errors.append((f"{epath}.values", "duplicate values in one expression"))
        for v in values:
            if err := label_value_error(v):
                errors.append((f"{epath}.values", err))
        req = Requirement(key, op, tuple(sorted(set(values))))
        if req in seen:
            errors.append((epath, f"duplicate match expression {req}"))
        seen.add(req)
        reqs.append(req)
    if errors:
        return None, errors
    return LabelSelector(tuple(sorted(set(reqs)))), errors


def parse_selector_list(
    raw: Any, path: str
) -> tuple[tuple[LabelSelector, ...], list[tuple[str, str]]]:
    """A list of selectors: each valid and none a duplicate of an earlier one."""
    out: list[LabelSelector] = []
    errors: list[tuple[str, str]] = []
    for i, item in enumerate(raw or []):
        sel, errs = parse_selector(item, f"{path}[{i}]")
        errors.extend(errs)
        if sel is None:
            continue
        if sel in out:
            errors.append((f"{path}[{i}]", f"duplicate definition of selector {sel}"))
            continue
        out.append(sel)
    return tuple(out), errors
