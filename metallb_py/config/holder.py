"""Keep the last good configuration when a new one cannot be used at all.

Per-object problems never make a configuration stale: the bad objects are left out and the rest
applies. Only when nothing of a non-empty input could be used (every configuration object was
rejected) or the parser itself failed does the holder keep serving the previous Config, and
`stale` says so (the `metallb_k8s_client_config_stale_bool` metric).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from metallb_py.config.model import Config
from metallb_py.config.objects import DEFAULT_NAMESPACE
from metallb_py.config.parser import parse
from metallb_py.config.problems import ObjectRef, Problem
from metallb_py.log import get_logger

log = get_logger("config")

_CONFIG_KINDS = {
    "IPAddressPool",
    "AddressPool",
    "L2Advertisement",
    "BGPAdvertisement",
    "BGPPeer",
    "BFDProfile",
    "Community",
}


class ConfigHolder:
    def __init__(self, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.namespace = namespace
        self.config: Config | None = None
        self.problems: list[Problem] = []
        self.stale = False

    def update(self, resources: Iterable[Any]) -> tuple[Config | None, list[Problem], bool]:
        """Parse `resources`; returns (config in effect, problems, stale)."""
        items = list(resources)
        try:
            config, problems = parse(items, namespace=self.namespace)
        except Exception as exc:  # a parser bug must not take the component down
            log.exception("configParserFailed")
            problem = Problem(
                ObjectRef("Configuration", self.namespace, "*"),
                "-",
                f"the parser failed: {exc}",
                "object-shape",
            )
            self.problems, self.stale = [problem], self.config is not None
            return self.config, self.problems, self.stale
        submitted = sum(1 for r in items if isinstance(r, dict) and r.get("kind") in _CONFIG_KINDS)
        unusable = (
            submitted > 0 and config.is_empty and not config.bfd_profiles and not config.communities
        )
        if unusable and any(p.is_error for p in problems) and self.config is not None:
            self.problems, self.stale = problems, True
            return self.config, problems, True
        self.config, self.problems, self.stale = config, problems, False
        return config, problems, False
