"""The dependency direction of docs/architecture.md, checked on every import statement.

The protocol libraries (bgp, bfd, l2) are usable by a network engineer without Kubernetes and are
tested against real daemons on their own, so they must never pull in the product: they import the
standard library, their third-party packages, `netkit`, themselves and (bgp and bfd) l2's link-layer
helpers. bgp and bfd never import each other (the speaker ties BFD to BGP); l2 imports neither.
`netkit` imports none of ours.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = {"metallb_py", "webhooks", "bgp", "bfd", "l2", "netkit"}
ALLOWED = {
    "bgp": {"bgp", "netkit", "l2"},
    "bfd": {"bfd", "netkit", "l2"},
    "l2": {"l2", "netkit"},
    "netkit": {"netkit"},
}


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in a file, nested ones included."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_library_imports_point_one_way(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources found for {package}"
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: imports {name}"
        for path in files
        for line, name in imported_packages(path)
        if name in OURS and name not in ALLOWED[package]
    ]
    assert not wrong, "\n".join(wrong)


def test_the_scan_sees_nested_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from metallb_py import log\n    import bfd.session\n")
    assert imported_packages(probe) == [(2, "metallb_py"), (3, "bfd")]
