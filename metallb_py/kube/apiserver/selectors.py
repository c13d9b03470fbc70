"""Label selectors (equality- and set-based, string and LabelSelector forms) and field selectors."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from metallb_py.kube.apiserver.errors import bad_request

Labels = dict[str, str]
Matcher = Callable[[Labels], bool]

_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|[^\s!=(),]+)")


def _requirement(key: str, op: str, values: list[str]) -> Matcher:
    if op in ("=", "=="):
        v = values[0]
        return lambda labels: labels.get(key) == v
    if op == "!=":
        v = values[0]
        return lambda labels: labels.get(key) != v
    if op == "in":
        vs = set(values)
        return lambda labels: key in labels and labels[key] in vs
    if op == "notin":
        vs = set(values)
        return lambda labels: labels.get(key) not in vs
    if op == "exists":
        return lambda labels: key in labels
    if op == "!":
        return lambda labels: key not in labels
    if op in ("gt", "lt"):
        bound = int(values[0])

        def cmp(labels: Labels) -> bool:
            try:
                n = int(labels[key])
            except (KeyError, ValueError):
                return False
            return n > bound if op == "gt" else n < bound

        return cmp
    raise bad_request(f"unable to parse requirement: unknown operator {op!r}")


def parse_label_selector(text: str) -> Matcher | None:
    """Parse `a=b,c!=d,e in (f,g),!h,i` into a predicate; None means "everything"."""
    text = text.strip()
    if not text:
        return None
    tokens = [t for t in _TOKEN.findall(text)]
    reqs: list[Matcher] = []
    i = 0

    def err() -> Exception:
        return bad_request(f"unable to parse requirement: invalid label selector {text!r}")

    while i < len(tokens):
        tok = tokens[i]
        if tok == "!":
            if i + 1 >= len(tokens):
                raise err()
            reqs.append(_requirement(tokens[i + 1], "!", []))
            i += 2
        else:
            key = tok
            i += 1
            if i >= len(tokens) or tokens[i] == ",":
                reqs.append(_requirement(key, "exists", []))
            elif tokens[i] in ("=", "==", "!="):
                op = tokens[i]
                value = ""
                if i + 1 < len(tokens) and tokens[i + 1] not in (",",):
                    value = tokens[i + 1]
                    i += 2
                else:
                    i += 1
                reqs.append(_requirement(key, op, [value]))
            elif tokens[i] in ("in", "notin"):
                op = tokens[i]
                if i + 1 >= len(tokens) or tokens[i + 1] != "(":
                    raise err()
                i += 2
                values: list[str] = []
                while i < len(tokens) and tokens[i] != ")":
                    if tokens[i] != ",":
                        values.append(tokens[i])
                    i += 1
                if i >= len(tokens):
                    raise err()
                i += 1
                reqs.append(_requirement(key, op, values))
            elif tokens[i] in ("gt", "lt"):
                reqs.append(_requirement(key, tokens[i], [tokens[i + 1]]))
                i += 2
            else:
                raise err()
        if i < len(tokens):
            if tokens[i] != ",":
                raise err()
            i += 1
    return lambda labels: all(r(labels) for r in reqs)


def match_label_selector(selector: dict[str, Any] | None, labels: Labels) -> bool:
    """A metav1.LabelSelector (matchLabels + matchExpressions); an empty one matches all."""
    if not selector:
        return True
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


# -- field selectors -----------------------------------------------------------------------------

FieldGetter = Callable[[dict[str, Any]], str]


def _path_getter(path: str) -> FieldGetter:
    parts = path.split(".")

    def get(obj: dict[str, Any]) -> str:
        cur: Any = obj
        for p in parts:
            if not isinstance(cur, dict):
                return ""
            cur = cur.get(p)
        if cur is None:
            return ""
        if isinstance(cur, bool):
            return "true" if cur else "false"
        return str(cur)

    return get


# Fields each resource may be selected on, beyond metadata.name and metadata.namespace.
EXTRA_FIELDS: dict[str, tuple[str, ...]] = {
    "pods": (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "events": (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    "secrets": ("type",),
    "nodes": ("spec.unschedulable",),
    "namespaces": ("status.phase",),
    "services": ("spec.clusterIP", "spec.type"),
}


def _field_check(getter: FieldGetter, value: str, negate: bool) -> Callable[[dict[str, Any]], bool]:
    def check(obj: dict[str, Any]) -> bool:
        return (getter(obj) == value) != negate

    return check


def parse_field_selector(
    text: str, plural: str, group: str
) -> Callable[[dict[str, Any]], bool] | None:
    text = text.strip()
    if not text:
        return None
    allowed = {"metadata.name", "metadata.namespace", *EXTRA_FIELDS.get(plural, ())}
    if plural == "events" and group == "events.k8s.io":
        allowed |= {f.replace("involvedObject.", "regarding.") for f in EXTRA_FIELDS["events"]}
    checks: list[Callable[[dict[str, Any]], bool]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        m = re.match(r"^([^!=]+)(!=|==|=)(.*)$", part)
        if not m:
            raise bad_request(f"invalid selector: {text!r}; can't understand {part!r}")
        field, op, value = m.group(1).strip(), m.group(2), m.group(3).strip()
        if field not in allowed:
            raise bad_request(f"field label not supported: {field}")
        stored_field = (
            field.replace("regarding.", "involvedObject.") if plural == "events" else field
        )
        if stored_field == "source":
            stored_field = "source.component"
        getter = _path_getter(stored_field)
        checks.append(_field_check(getter, value, op == "!="))
    return lambda obj: all(c(obj) for c in checks)
