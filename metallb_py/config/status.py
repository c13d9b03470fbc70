"""Status objects built from parse results, so every component reports problems the same way:
ConfigurationState (MetalLB's shape) and our BGPSessionState."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from metallb_py.config.problems import Problem, bounded_lines
from metallb_py.config.schemas import BFD_STATES, GROUP, SESSION_STATES
from metallb_py.objects import rfc3339

CONTROLLER_CONDITION = "poolReconcilerValid"
SPEAKER_CONDITION = "configReconcilerValid"


STALE_NOTE = "running the last good configuration: the new one could not be used"


def configuration_state_status(
    problems: Iterable[Problem], condition_type: str, stale: bool = False, now: str | None = None
) -> dict[str, Any]:
    """`status` of a ConfigurationState: Valid with no errors, else Invalid with one line per
    error in errorSummary (warnings are not errors). `stale` (the new configuration could not be
    used, the last good one runs) is Invalid too, and says so in the condition's message."""
    errors = bounded_lines(p for p in problems if p.is_error)
    summary = "\n".join(errors)
    invalid = bool(errors) or stale
    message = "\n".join([STALE_NOTE, summary] if stale else [summary]).strip()
    condition = {
        "type": condition_type,
        "status": "False" if invalid else "True",
        "reason": "ConfigurationError" if invalid else "Reconciled",
        "message": message[:32768] or "configuration is valid",
        "lastTransitionTime": now or rfc3339(),
    }
    return {
        "result": "Invalid" if invalid else "Valid",
        "errorSummary": summary,
        "conditions": [condition],
    }


def same_configuration_state(stored: dict[str, Any], status: dict[str, Any]) -> bool:
    """Whether writing `status` would change nothing a reader sees but timestamps, so an
    unchanged state keeps its lastTransitionTime and costs no write."""

    def seen(s: dict[str, Any]) -> tuple[Any, ...]:
        conditions = [
            {k: v for k, v in c.items() if k != "lastTransitionTime"}
            for c in s.get("conditions") or []
            if isinstance(c, dict)
        ]
        return s.get("result"), s.get("errorSummary"), conditions

    return seen(stored) == seen(status)


def session_state_object(
    namespace: str,
    node: str,
    peer: str,
    *,
    state: str,
    peer_address: str = "",
    established_since: str | None = None,
    last_error: str = "",
    prefixes_sent: int = 0,
    prefixes_received: int = 0,
    bfd_state: str = "Disabled",
    vrf: str = "",
) -> dict[str, Any]:
    """A BGPSessionState named `<node>-<peer>` with its labels, ready to create or replace."""
    if state not in SESSION_STATES:
        raise ValueError(f"unknown BGP state {state!r}")
    if bfd_state not in BFD_STATES:
        raise ValueError(f"unknown BFD state {bfd_state!r}")
    status: dict[str, Any] = {
        "node": node,
        "peer": peer,
        "peerAddress": peer_address,
        "state": state,
        "prefixesSent": prefixes_sent,
        "prefixesReceived": prefixes_received,
        "bfdState": bfd_state,
    }
    if vrf:
        status["vrf"] = vrf
    if established_since and state == "Established":
        status["establishedSince"] = established_since
    if last_error:
        status["lastError"] = last_error
        status["lastErrorTime"] = rfc3339()
    return {
        "apiVersion": f"{GROUP}/v1beta1",
        "kind": "BGPSessionState",
        "metadata": {
            "name": f"{node}-{peer}",
            "namespace": namespace,
            "labels": {"metallb.io/node": node, "metallb.io/peer": peer},
        },
        "status": status,
    }
