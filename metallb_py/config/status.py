"""Status objects built from parse results, so every component reports problems the same way:
ConfigurationState (MetalLB's shape) and our BGPSessionState."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from metallb_py.config.problems import Problem, bounded_lines
from metallb_py.config.schemas import BFD_STATES, GROUP, SESSION_STATES

CONTROLLER_CONDITION = "poolReconcilerValid"
SPEAKER_CONDITION = "configReconcilerValid"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def configuration_state_status(
    problems: Iterable[Problem], condition_type: str, stale: bool = False, now: str | None = None
) -> dict[str, Any]:
    """`status` of a ConfigurationState: Valid with no errors, else Invalid with one line per
    error in errorSummary (warnings are not errors). `stale` notes the last good config is kept."""
    errors = bounded_lines(p for p in problems if p.is_error)
    message = "\n".join(errors)
    if stale:
        message = "running the last good configuration: the new one could not be used\n" + message
    condition = {
        "type": condition_type,
        "status": "False" if errors else "True",
        "reason": "ConfigurationError" if errors else "Reconciled",
        "message": message.strip()[:32768],
        "lastTransitionTime": now or _now(),
    }
    return {
        "result": "Invalid" if errors else "Valid",
        "errorSummary": message.strip(),
        "conditions": [condition],
    }


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
        status["lastErrorTime"] = _now()
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
