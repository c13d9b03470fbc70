"""Kubernetes label selectors, the one implementation every component uses.

Two spellings produce the same `LabelSelector`: the structured form of the API objects
(`matchLabels` + `matchExpressions`: `parse_selector`, `LabelSelector.from_dict`) and the string
form of the `labelSelector` query parameter (`a=b,c!=d,e in (f,g),!h,i,n>3`: `parse_string`).
Both validate keys and values as the API server does (a key's prefix is a DNS subdomain of at most
253 characters, its name and every value at most 63), so a selector that could never match a
valid label is an error, not a silent "matches nothing".

`can_overlap` decides statically whether two selectors can ever select the same object (used for
"peers that can meet on one node" without depending on which nodes exist right now).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

# The operators of metav1.LabelSelector; the string form adds Gt and Lt (`n>3`, `n<3`).
OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
MAX_PREFIX = 253
MAX_NAME = 63
_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_INTEGER = re.compile(r"^-?[0-9]{1,18}$")


class SelectorError(ValueError):
    """A selector that is malformed or names an invalid key or value."""


class Selector(Protocol):
    """Anything that matches a label set."""

    def matches(self, labels: Mapping[str, str]) -> bool: ...


def label_key_error(key: str) -> str | None:
    """Why `key` is not a valid qualified label key, or None."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > MAX_PREFIX or not _DNS_SUBDOMAIN.match(prefix)):
        return (
            f"invalid label key {key!r}: prefix must be a DNS subdomain of at most "
            f"{MAX_PREFIX} characters"
        )
    if not name or len(name) > MAX_NAME or not _NAME.match(name):
        return (
            f"invalid label key {key!r}: name must be 1-63 characters of alphanumerics, '-', '_' "
            "or '.', starting and ending with an alphanumeric"
        )
    return None


def label_value_error(value: str) -> str | None:
    """Why `value` is not a valid label value, or None ("" is valid)."""
    if value == "":
        return None
    if len(value) > MAX_NAME or not _NAME.match(value):
        return (
            f"invalid label value {value!r}: at most 63 characters of alphanumerics, '-', '_' or "
            "'.', starting and ending with an alphanumeric"
        )
    return None


@dataclass(frozen=True, order=True)
class Requirement:
    key: str
    operator: str  # one of OPERATORS, or "Gt"/"Lt" from the string form
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        # Gt/Lt: the label must hold an integer; anything else does not match.
        have = labels.get(self.key, "")
        if not _INTEGER.match(have):
            return False
        bound = int(self.values[0])
        return int(have) > bound if self.operator == "Gt" else int(have) < bound

    def __str__(self) -> str:
        if self.operator == "Exists":
            return self.key
        if self.operator == "DoesNotExist":
            return f"!{self.key}"
        if self.operator in ("Gt", "Lt"):
            return f"{self.key}{'>' if self.operator == 'Gt' else '<'}{self.values[0]}"
        if self.operator == "In" and len(self.values) == 1:
            return f"{self.key}={self.values[0]}"
        op = "in" if self.operator == "In" else "notin"
        return f"{self.key} {op} ({','.join(self.values)})"


@dataclass(frozen=True)
class LabelSelector:
    """A parsed selector; `requirements` is canonical (sorted, no duplicates), so equal selectors
    compare equal whichever form they were written in. An empty selector selects everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def can_overlap(self, other: LabelSelector) -> bool:
        """True when some label set satisfies both selectors."""
        return _satisfiable(self.requirements + other.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements) or "<all>"

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> LabelSelector:
        """The structured form; SelectorError naming every problem when it is invalid."""
        sel, errors = parse_selector(dict(raw) if raw is not None else None, "selector")
        if sel is None:
            raise SelectorError("; ".join(f"{path}: {msg}" for path, msg in errors))
        return sel


def _satisfiable(reqs: Iterable[Requirement]) -> bool:
    by_key: dict[str, list[Requirement]] = {}
    for r in reqs:
        by_key.setdefault(r.key, []).append(r)
    for items in by_key.values():
        must_exist = any(r.operator in ("In", "Exists", "Gt", "Lt") for r in items)
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
            # Gt/Lt (string form only) are not refined further: assume some integer fits.
            if not allowed:
                return False
    return True


def any_can_meet(a: tuple[LabelSelector, ...], b: tuple[LabelSelector, ...]) -> bool:
    """Two selector lists (OR of selectors; empty list = everything) can select one object."""
    left = a or (LabelSelector(),)
    right = b or (LabelSelector(),)
    return any(x.can_overlap(y) for x in left for y in right)


def any_matches(selectors: Iterable[Selector], labels: Mapping[str, str]) -> bool:
    """OR of selectors; an empty list matches everything."""
    items = tuple(selectors)
    return not items or any(s.matches(labels) for s in items)


# -- the structured form (matchLabels + matchExpressions) -----------------------------------------


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
        raw_values = expr.get("values") or []
        if not isinstance(raw_values, list):
            errors.append((f"{epath}.values", "must be a list of strings"))
            raw_values = []
        values = [str(v) for v in raw_values]
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


# -- the string form (the labelSelector query parameter) -------------------------------------------

# Tokens as the API server's lexer splits them: operators and punctuation, or a run of anything
# else up to whitespace or one of those symbols.
_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|>|<|[^\s!=(),<>]+)")
_SYMBOLS = frozenset({"!=", "==", "=", "!", "(", ")", ",", ">", "<"})


def _describe(tok: str | None) -> str:
    return "'end of string'" if tok is None else f"'{tok}'"


def parse_string(text: str) -> LabelSelector:
    """Parse the string form; SelectorError (with the offending token) when it is malformed.

    Grammar: requirement (',' requirement)*, each `!key`, `key`, `key(=|==|!=)value`,
    `key (in|notin) (v1,v2,...)` or `key(>|<)integer`; an empty string selects everything.
    """
    tokens = _TOKEN.findall(text)
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str | None:
        nonlocal pos
        tok = peek()
        pos += 1
        return tok

    def key_token(tok: str | None) -> str:
        if tok is None or tok in _SYMBOLS:
            raise SelectorError(
                f"unable to parse requirement: found {_describe(tok)}, expected: !, identifier, "
                "or 'end of string'"
            )
        if err := label_key_error(tok):
            raise SelectorError(f"unable to parse requirement: {err}")
        return tok

    def value_token(tok: str) -> str:
        if err := label_value_error(tok):
            raise SelectorError(f"unable to parse requirement: {err}")
        return tok

    reqs: list[Requirement] = []
    while peek() is not None:
        if peek() == "!":
            take()
            reqs.append(Requirement(key_token(take()), "DoesNotExist"))
        else:
            key = key_token(take())
            op = peek()
            if op is None or op == ",":
                reqs.append(Requirement(key, "Exists"))
            elif op in ("=", "==", "!="):
                take()
                value = "" if peek() in (None, ",") else take()
                if value in _SYMBOLS:
                    raise SelectorError(
                        f"unable to parse requirement: found '{value}', expected: identifier"
                    )
                reqs.append(
                    Requirement(key, "NotIn" if op == "!=" else "In", (value_token(str(value)),))
                )
            elif op in (">", "<"):
                take()
                value = take()
                if value is None or not _INTEGER.match(value):
                    raise SelectorError(
                        f"unable to parse requirement: invalid value {value or ''!r} for "
                        "'>' and '<' operators: the value must be an integer"
                    )
                reqs.append(Requirement(key, "Gt" if op == ">" else "Lt", (str(int(value)),)))
            elif op in ("in", "notin"):
                take()
                paren = take()
                if paren != "(":
                    raise SelectorError(
                        f"unable to parse requirement: found {_describe(paren)}, expected: '('"
                    )
                values: list[str] = []
                while True:
                    tok = take()
                    if tok is None:
                        raise SelectorError(
                            "unable to parse requirement: found 'end of string', expected: ')'"
                        )
                    if tok == ")":
                        break
                    if tok == ",":
                        continue
                    if tok in _SYMBOLS:
                        raise SelectorError(
                            f"unable to parse requirement: found '{tok}', expected: identifier"
                        )
                    values.append(value_token(tok))
                if not values:
                    raise SelectorError(
                        f"unable to parse requirement: for 'in', 'notin' operators, the values "
                        f"set of {key!r} can't be empty"
                    )
                reqs.append(
                    Requirement(key, "In" if op == "in" else "NotIn", tuple(sorted(set(values))))
                )
            else:
                raise SelectorError(
                    f"unable to parse requirement: found {_describe(op)}, expected: in, notin, "
                    "=, ==, !=, >, <"
                )
        sep = take()
        if sep is not None and sep != ",":
            raise SelectorError(f"unable to parse requirement: found '{sep}', expected: ','")
        if sep == "," and peek() is None:
            raise SelectorError(
                "unable to parse requirement: found 'end of string', expected: !, identifier"
            )
    return LabelSelector(tuple(sorted(set(reqs))))
