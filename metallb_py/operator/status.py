"""The MetalLB resource's status: four conditions, readiness of what was deployed, and the
single-instance rule.

Pure functions, so the rules are tested without an API server. Unlike MetalLB's operator, a
condition's lastTransitionTime moves only when its status flips, so an unchanged state produces
an identical status and the reconciler can skip the write altogether.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from metallb_py.objects import JSON, rfc3339

INSTANCE_NAME = "metallb"

AVAILABLE = "Available"
UPGRADEABLE = "Upgradeable"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
CONDITION_TYPES = (AVAILABLE, UPGRADEABLE, PROGRESSING, DEGRADED)

# Degraded reasons (metav1.Condition reasons: CamelCase, no spaces).
REASON_WRONG_NAME = "IncorrectMetalLBResourceName"
REASON_INVALID = "InvalidConfiguration"
REASON_UNSUPPORTED_BACKEND = "UnsupportedBGPBackend"
REASON_INTERNAL = "InternalError"
REASON_PROGRESSING = "Progressing"


@dataclass(frozen=True)
class State:
    """What the reconciler concluded: `kind` is one of the condition types Available,
    Progressing or Degraded; reason and message go on that condition."""

    kind: str
    reason: str = ""
    message: str = ""

    @classmethod
    def available(cls) -> State:
        return cls(AVAILABLE)

    @classmethod
    def progressing(cls, message: str) -> State:
        return cls(PROGRESSING, REASON_PROGRESSING, message)

    @classmethod
    def degraded(cls, reason: str, message: str) -> State:
        return cls(DEGRADED, reason, message)


def name_problem(name: str) -> State | None:
    """Only the instance named `metallb` is reconciled; any other is Degraded, as in MetalLB."""
    if name == INSTANCE_NAME:
        return None
    return State.degraded(REASON_WRONG_NAME, f"Incorrect MetalLB resource name: {name}")


def build_conditions(
    state: State,
    generation: int,
    previous: Sequence[Mapping[str, Any]] = (),
    now: str | None = None,
) -> list[JSON]:
    """The four conditions in MetalLB's order. A condition whose status is unchanged keeps its
    lastTransitionTime; otherwise it gets `now`."""
    stamp = now or rfc3339()
    before = {str(c.get("type")): c for c in previous if isinstance(c, Mapping)}
    true = {state.kind}
    if state.kind == AVAILABLE:
        true.add(UPGRADEABLE)
    out: list[JSON] = []
    for ctype in CONDITION_TYPES:
        status = "True" if ctype in true else "False"
        reason, message = ctype, ""
        if ctype == state.kind and state.kind != AVAILABLE:
            reason, message = state.reason or ctype, state.message
        old = before.get(ctype)
        transition = stamp
        if old is not None and old.get("status") == status and old.get("lastTransitionTime"):
            transition = str(old["lastTransitionTime"])
        out.append(
            {
                "type": ctype,
                "status": status,
                "reason": reason,
                "message": message,
                "lastTransitionTime": transition,
                "observedGeneration": generation,
            }
        )
    return out


def status_changed(current: Mapping[str, Any] | None, conditions: list[JSON]) -> bool:
    """Whether writing `conditions` would change the object's status (the no-op check)."""
    existing = ((current or {}).get("status") or {}).get("conditions") or []
    return list(existing) != conditions


# ---- readiness ---------------------------------------------------------------------------------


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def _observed_status(obj: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The status of a workload whose controller has seen its latest spec, else None (absent,
    or the status still describes an older generation)."""
    if not obj:
        return None
    meta = obj.get("metadata") or {}
    st = obj.get("status") or {}
    if _int(meta.get("generation"), 1) != _int(st.get("observedGeneration"), -1):
        return None
    return st


def daemonset_ready(ds: Mapping[str, Any] | None) -> bool:
    """Rolled out: the controller saw the latest spec and every scheduled pod is current and
    ready. Zero desired pods (no matching node) counts as ready, as in MetalLB."""
    st = _observed_status(ds)
    if st is None:
        return False
    desired = _int(st.get("desiredNumberScheduled"))
    return (
        desired == _int(st.get("currentNumberScheduled"))
        and desired == _int(st.get("numberReady"))
        and desired == _int(st.get("updatedNumberScheduled"))
    )


def deployment_ready(dep: Mapping[str, Any] | None) -> bool:
    """Rolled out: latest spec observed and every wanted replica updated and ready
    (spec.replicas unset means 1, the API default)."""
    st = _observed_status(dep)
    if dep is None or st is None:
        return False
    replicas = _int((dep.get("spec") or {}).get("replicas"), 1)
    return _int(st.get("readyReplicas")) == replicas and _int(st.get("updatedReplicas")) == replicas


def readiness(controller: Mapping[str, Any] | None, speaker: Mapping[str, Any] | None) -> State:
    """Available when both are rolled out, else Progressing naming what is not ready."""
    if not deployment_ready(controller):
        return State.progressing("MetalLB controller deployment not ready")
    if not daemonset_ready(speaker):
        return State.progressing("MetalLB speaker daemonset not ready")
    return State.available()
