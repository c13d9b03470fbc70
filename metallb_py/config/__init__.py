"""metallb.io resources parsed into one immutable Config, with every validation rule.

config, problems = parse(resources)      # pure, deterministic
holder = ConfigHolder(); config, problems, stale = holder.update(resources)
"""

from metallb_py.config.holder import ConfigHolder
from metallb_py.config.model import (
    BFDProfile,
    BGPAdvertisement,
    Config,
    L2Advertisement,
    Peer,
    Pool,
    PreferredNodeSelector,
    ServiceAllocation,
)
from metallb_py.config.objects import DEFAULT_NAMESPACE
from metallb_py.config.parser import parse
from metallb_py.config.problems import ObjectRef, Problem
from metallb_py.config.rules import RULES

__all__ = [
    "DEFAULT_NAMESPACE",
    "RULES",
    "BFDProfile",
    "BGPAdvertisement",
    "Config",
    "ConfigHolder",
    "L2Advertisement",
    "ObjectRef",
    "Peer",
    "Pool",
    "PreferredNodeSelector",
    "Problem",
    "ServiceAllocation",
    "parse",
]
