"""AdmissionReview v1 decisions: pure functions of (request, current objects).

The candidate is applied to the current objects and the parser is run; the request is refused
when a problem involves the candidate (as the broken object or as the other side of a conflict).
Deletes are checked where they break something. Warnings travel back in `warnings`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from metallb_py.config import bgppeer_conversion
from metallb_py.config.deletion import deletion_problems
from metallb_py.config.objects import too_deep
from metallb_py.config.parser import parse
from metallb_py.config.problems import ObjectRef, Problem, bounded_lines
from metallb_py.config.schema_check import MAX_DEPTH
from metallb_py.objects import JSON
from webhooks.paths import Hook

NEWEST = "9999-12-31T23:59:59Z"
POOL_KINDS = ("IPAddressPool", "AddressPool")


def response(
    uid: str, allowed: bool, message: str = "", code: int = 200, warnings: Iterable[str] = ()
) -> JSON:
    body: JSON = {"uid": uid, "allowed": allowed}
    if allowed:
        body["status"] = {"code": 200}
    else:
        reason = "Forbidden" if code == 403 else "BadRequest"
        body["status"] = {"code": code, "reason": reason, "message": message}
    warns = list(dict.fromkeys(warnings))
    if warns:
        body["warnings"] = warns
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": body}


def bad_request(review: Any, message: str) -> JSON:
    uid = ""
    if isinstance(review, dict) and isinstance(review.get("request"), dict):
        uid = str(review["request"].get("uid") or "")
    return response(uid, False, message, code=400)


def _same_object(a: JSON, kind: str, name: str) -> bool:
    if a.get("kind") != kind:
        return False
    return str((a.get("metadata") or {}).get("name")) == name


def _as_submitted(obj: JSON, request: JSON) -> JSON:
    """A BGPPeer submitted as v1beta1 is judged by the v1beta1 rules even when the API server
    already converted it to v1beta2 for us."""
    request_kind = request.get("requestKind") or request.get("kind") or {}
    if (
        obj.get("kind") == "BGPPeer"
        and request_kind.get("version") == "v1beta1"
        and obj.get("apiVersion") == bgppeer_conversion.V1BETA2
    ):
        return bgppeer_conversion.to_v1beta1(obj)
    return obj


def _conflict_key(p: Problem) -> tuple[object, ...]:
    return (p.ref, p.rule, p.related)


def _problem_text(problems: list[Problem]) -> str:
    return "; ".join(bounded_lines(problems))


def review(
    hook: Hook,
    admission_review: Any,
    current: list[JSON],
    namespace: str,
) -> JSON:
    """Decide one AdmissionReview. `current` holds the metallb.io objects of the namespace (plus
    Secrets, and Services for pool deletes), as read from the API server."""
    if not isinstance(admission_review, dict) or not isinstance(
        admission_review.get("request"), dict
    ):
        return bad_request(
            admission_review, "expected an admission.k8s.io/v1 AdmissionReview with a request"
        )
    request: JSON = admission_review["request"]
    uid = str(request.get("uid") or "")
    operation = request.get("operation")
    if operation == "DELETE":
        victim = request.get("oldObject")
        if not isinstance(victim, dict):
            return response(uid, True)  # nothing to judge (the API server always sends it)
        problems = deletion_problems(victim, current, namespace)
        errors = [p for p in problems if p.is_error]
        warnings = bounded_lines(p for p in problems if not p.is_error)
        if errors:
            return response(uid, False, _problem_text(errors), code=403, warnings=warnings)
        return response(uid, True, warnings=warnings)
    if operation not in ("CREATE", "UPDATE"):
        return response(uid, True)
    obj = request.get("object")
    if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
        return bad_request(admission_review, "the request has no object to validate")
    deep = too_deep(obj, MAX_DEPTH)
    if deep is not None:  # refused before anything walks it recursively
        ref = ObjectRef(hook.kind, str(request.get("namespace") or ""), str(request.get("name")))
        msg = f"{ref}: {deep}: nested deeper than {MAX_DEPTH} levels (rule object-shape)"
        return response(uid, False, msg, code=400)
    candidate = _as_submitted(copy.deepcopy(obj), request)
    meta = candidate["metadata"]
    name = str(meta.get("name") or request.get("name") or "")
    meta["name"] = name
    obj_ns = str(meta.get("namespace") or request.get("namespace") or "")
    if obj_ns != namespace:
        msg = f"resource must be created in {namespace} namespace"
        ref = ObjectRef(hook.kind, obj_ns, name)
        return response(uid, False, f"{ref}: metadata.namespace: {msg} (rule namespace)", code=403)
    meta["namespace"] = namespace
    if operation == "CREATE" and not meta.get("creationTimestamp"):
        meta["creationTimestamp"] = NEWEST  # the newcomer loses every run-time conflict
    kind = str(candidate.get("kind") or hook.kind)
    errors_extra: list[str] = []
    old = request.get("oldObject")
    if operation == "UPDATE" and kind == "BGPPeer" and isinstance(old, dict):
        before = bool((old.get("spec") or {}).get("enableGracefulRestart", False))
        after = bool((candidate.get("spec") or {}).get("enableGracefulRestart", False))
        if before != after:
            errors_extra.append(
                f"{ObjectRef(kind, namespace, name)}: spec.enableGracefulRestart: "
                "EnableGracefulRestart cannot be changed after creation (rule schema)"
            )
    others = [o for o in current if not _same_object(o, kind, name)]
    config_problems = parse([*others, candidate], namespace=namespace, lenient_references=True)[1]
    ref = ObjectRef(kind, namespace, name)
    mine = [p for p in config_problems if p.involves(ref)]
    errors = [p for p in mine if p.is_error]
    if errors and operation == "UPDATE" and isinstance(old, dict):
        # An update is refused only for what it breaks: a conflict that already existed (two
        # objects that raced past admission) must not block editing either of them.
        previous = _as_submitted(copy.deepcopy(old), request)
        previous.setdefault("metadata", {})["namespace"] = namespace
        old_problems = parse([*others, previous], namespace=namespace, lenient_references=True)[1]
        known = {_conflict_key(p) for p in old_problems if p.is_error and p.involves(ref)}
        errors = [p for p in errors if not p.related or _conflict_key(p) not in known]
    warnings = bounded_lines(p for p in mine if not p.is_error)
    if errors or errors_extra:
        text = "; ".join(errors_extra + bounded_lines(errors))
        return response(uid, False, text, code=403, warnings=warnings)
    return response(uid, True, warnings=warnings)
