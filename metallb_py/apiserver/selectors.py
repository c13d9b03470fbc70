"""The API server's selectors: label selectors (both forms, parsed by `metallb_py.selectors`)
answered as 400s, and field selectors."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from metallb_py import selectors as label_selectors
from metallb_py.apiserver.errors import bad_request

Labels = dict[str, str]
Matcher = Callable[[Labels], bool]


def parse_label_selector(text: str) -> Matcher | None:
    """The `labelSelector` query parameter as a predicate; None means "everything"; a malformed
    selector is a 400 with the parser's reason."""
    try:
        sel = label_selectors.parse_string(text)
    except label_selectors.SelectorError as exc:
        raise bad_request(str(exc)) from None
    if not sel.requirements:
        return None
    return sel.matches


def match_label_selector(selector: dict[str, Any] | None, labels: Labels) -> bool:
    """A metav1.LabelSelector (matchLabels + matchExpressions); an empty one matches all. An
    invalid one (a webhook configuration stored before it was checked) matches too: calling the
    webhook is the safe side."""
    if not selector:
        return True
    try:
        return label_selectors.LabelSelector.from_dict(selector).matches(labels)
    except label_selectors.SelectorError:
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
