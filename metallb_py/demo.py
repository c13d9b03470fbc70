"""`metallb-py demo`: the main job on the embedded defaults.

Until every component exists the demo reports which ones do and which do not, honestly, and exits
0; it never pretends that a missing component ran.
"""

from __future__ import annotations

import importlib
import importlib.util

from metallb_py.cli import COMPONENTS, RunContext


def implemented(module: str) -> bool:
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        return False
    if spec is None:
        return False
    return hasattr(importlib.import_module(module), "run")


def status_lines() -> list[str]:
    lines = []
    for name, component in COMPONENTS.items():
        if name == "demo":
            continue
        state = "ready" if implemented(component.module) else "not implemented yet"
        lines.append(f"  metallb-py {name:<16} {state}")
    return lines


async def run(ctx: RunContext) -> int:
    print("metallb-py demo: the full demo needs every component; what exists so far:")
    print("\n".join(status_lines()))
    print(
        "The protocol tools can be tried on their own: python -m bgp, python -m bfd, python -m l2."
    )
    return 0
