"""The dependency direction of docs/architecture.md, checked on every import statement.

The protocol libraries (bgp, bfd, l2) are usable by a network engineer without Kubernetes and are
tested against real daemons on their own, so they must never pull in the product: they import the
standard library, their third-party packages, `netkit`, themselves and (bgp and bfd) l2's link-layer
helpers. bgp and bfd never import each other (the speaker ties BFD to BGP); l2 imports neither.
`netkit` imports none of ours.

The embedded API server (`metallb_py.apiserver`) is a separate product beside the client layer:
only the CLI, the demo and the tests may import it, so no component comes to depend on a feature
only it has.
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


SERVER = "metallb_py.apiserver"
# Files under metallb_py/ that may import the server besides the server itself.
SERVER_USERS = ("cli.py", "demo*.py")


def imported_modules(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in a file, relative ones resolved against package.

    `from a import b` yields both `a` and `a.b`, so `from metallb_py import apiserver` is seen.
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = parts[: len(parts) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def _package_of(path: Path) -> str:
    """The package a file's relative imports start from (its directory, for __init__ too)."""
    return ".".join(path.relative_to(ROOT).parts[:-1])


def test_only_the_cli_demo_and_tests_import_the_api_server() -> None:
    server_dir = ROOT / "metallb_py" / "apiserver"
    allowed = {p for pattern in SERVER_USERS for p in (ROOT / "metallb_py").glob(pattern)}
    files = [
        path
        for package in sorted(OURS)
        for path in sorted((ROOT / package).rglob("*.py"))
        if server_dir not in path.parents and path not in allowed
    ]
    assert server_dir.is_dir() and not (ROOT / "metallb_py" / "kube" / "apiserver").exists()
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: imports {name}"
        for path in files
        for line, name in imported_modules(path, _package_of(path))
        if name == SERVER or name.startswith(SERVER + ".")
    ]
    assert not wrong, "\n".join(wrong)


def test_the_server_scan_sees_every_import_form(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from metallb_py import apiserver\n"
        "def f():\n    import metallb_py.apiserver.store\n"
        "from .. import apiserver as s\n"
    )
    names = {name for _, name in imported_modules(probe, "metallb_py.kube")}
    assert {"metallb_py.apiserver", "metallb_py.apiserver.store"} <= names


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
