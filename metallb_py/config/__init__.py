"""metallb.io resources parsed into one immutable Config, with every validation rule.

config, problems = parse(resources)      # pure, deterministic
holder = ConfigHolder(); config, problems, stale = holder.update(resources)
"""

from metallb_py.config import model
from metallb_py.config.holder import ConfigHolder
from metallb_py.config.model import *  # noqa: F403 - every name in model.__all__
from metallb_py.config.objects import DEFAULT_NAMESPACE
from metallb_py.config.parser import parse
from metallb_py.config.problems import ObjectRef, Problem
from metallb_py.config.rules import RULES

__all__ = [
    "DEFAULT_NAMESPACE",
    "RULES",
    "ConfigHolder",
    "ObjectRef",
    "Problem",
    "parse",
    *model.__all__,
]
