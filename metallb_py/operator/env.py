"""The operator's environment: what MetalLB's operator reads from its own Deployment's env.

Parsed once at start-up into a frozen value so that `render` is a pure function of (spec, env)
and bad values stop the operator with one clear line instead of a half-rendered deployment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from metallb_py.log import get_logger

log = get_logger("operator")

DEFAULT_IMAGE = "metallb-py:0.1.0"
DEFAULT_MEMBERLIST_PORT = 7946
DEFAULT_CONTROLLER_METRICS_PORT = 7472
DEFAULT_SPEAKER_METRICS_PORT = 7473


def _flag(environ: Mapping[str, str], name: str) -> bool:
    """MetalLB's operator tests these with `== "true"`: anything else is off."""
    return environ.get(name, "") == "true"


def _port(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "")
    if raw == "":
        return default
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"{name}={port} is not a port (1-65535)")
    return port


@dataclass(frozen=True)
class OperatorEnv:
    """Operator settings from the environment. Defaults are those of the plain manifests."""

    namespace: str
    controller_image: str = DEFAULT_IMAGE
    speaker_image: str = DEFAULT_IMAGE
    memberlist_port: int = DEFAULT_MEMBERLIST_PORT
    # MetalLB has one METRICS_PORT for both; we keep the speaker on its own port by default so a
    # controller and a (host-network) speaker on one node never collide.
    controller_metrics_port: int = DEFAULT_CONTROLLER_METRICS_PORT
    speaker_metrics_port: int = DEFAULT_SPEAKER_METRICS_PORT
    deploy_service_monitors: bool = False
    deploy_pod_monitors: bool = False
    network_policies: bool = True

    def __post_init__(self) -> None:
        if not self.namespace:
            raise ValueError("OPERATOR_NAMESPACE is required")
        if self.deploy_service_monitors and self.deploy_pod_monitors:
            raise ValueError(
                "DEPLOY_SERVICEMONITORS and DEPLOY_PODMONITORS are mutually exclusive; set one"
            )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> OperatorEnv:
        """Read MetalLB's operator variables; FRR-only ones are ignored (no FRR here)."""
        namespace = environ.get("OPERATOR_NAMESPACE", "")
        if not namespace:
            raise ValueError("OPERATOR_NAMESPACE is required")
        images = {}
        for name in ("CONTROLLER_IMAGE", "SPEAKER_IMAGE"):
            images[name] = environ.get(name, "") or DEFAULT_IMAGE
            if not environ.get(name):
                log.info("imageDefaulted", variable=name, image=DEFAULT_IMAGE)
        metrics = environ.get("METRICS_PORT", "")
        controller_metrics = _port(environ, "METRICS_PORT", DEFAULT_CONTROLLER_METRICS_PORT)
        speaker_metrics = controller_metrics if metrics else DEFAULT_SPEAKER_METRICS_PORT
        return cls(
            namespace=namespace,
            controller_image=images["CONTROLLER_IMAGE"],
            speaker_image=images["SPEAKER_IMAGE"],
            memberlist_port=_port(environ, "MEMBER_LIST_BIND_PORT", DEFAULT_MEMBERLIST_PORT),
            controller_metrics_port=controller_metrics,
            speaker_metrics_port=speaker_metrics,
            deploy_service_monitors=_flag(environ, "DEPLOY_SERVICEMONITORS"),
            deploy_pod_monitors=_flag(environ, "DEPLOY_PODMONITORS"),
            network_policies=not _flag(environ, "DISABLE_NETWORK_POLICIES"),
        )
