"""The docs and docstrings stand alone: nothing points at files outside the repository.

A reader of a clone has only the clone. A citation of a design document one folder up, or of a
numbered section of a reference kept beside the checkout, sends them to text they cannot open, so
every such citation is written out in words instead (MetalLB's behaviour, an RFC and its section).
This is the Python form of a `grep -rn` for those patterns (see FORBIDDEN) over README.md, docs/
and the source trees, and it names every file and line that breaks the rule.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# What the rule covers: everything a user or a contributor reads, code included.
PATHS = (
    "README.md",
    "docs",
    "metallb_py",
    "bgp",
    "bfd",
    "l2",
    "webhooks",
    "netkit",
    "tests",
    "manifests",
    "bundle",
    "scripts",
    "docker",
    "Makefile",
    "pyproject.toml",
    ".ci",
)
TEXT_SUFFIXES = {".py", ".md", ".txt", ".yaml", ".yml", ".toml", ".sh", ".cfg", ".ini", ".go", ""}
SKIP_DIRS = {"__pycache__", ".venv", ".git", ".mypy_cache", ".ruff_cache", ".pytest_cache"}

# Written in pieces so that this file does not match itself.
FORBIDDEN = re.compile(
    "|".join(
        (
            re.escape("shared" + "/"),
            re.escape("reference" + " §"),
            re.escape("DESIGN" + ".md"),
        )
    )
)


def _files() -> list[Path]:
    found: list[Path] = []
    for name in PATHS:
        top = ROOT / name
        if top.is_file():
            found.append(top)
            continue
        if not top.is_dir():
            continue
        for path in sorted(top.rglob("*")):
            if not path.is_file() or SKIP_DIRS.intersection(path.relative_to(ROOT).parts):
                continue
            if path.suffix in TEXT_SUFFIXES or path.name in {"Dockerfile", "run"}:
                found.append(path)
    return found


def outside_pointers(paths: list[Path], base: Path = ROOT) -> list[str]:
    """Every `file:line: text` (relative to `base`) whose text points outside the repository."""
    hits: list[str] = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if FORBIDDEN.search(line):
                hits.append(f"{path.relative_to(base)}:{number}: {line.strip()}")
    return hits


def test_the_rule_sees_a_pointer(tmp_path: Path) -> None:
    """The scan finds what it must, so a pass below means something."""
    probe = tmp_path / "docs" / "probe.md"
    probe.parent.mkdir()
    probe.write_text("fine\nsee " + "reference" + " §4 for the rule\n", encoding="utf-8")
    assert outside_pointers([probe], base=tmp_path) == [
        "docs/probe.md:2: see " + "reference" + " §4 for the rule"
    ]


def test_docs_and_docstrings_point_only_inside_the_repository() -> None:
    files = _files()
    assert len(files) > 100, "the scan found too few files to be looking in the right place"
    hits = outside_pointers(files)
    assert not hits, "pointers outside the repository (cite in words instead):\n" + "\n".join(hits)


def test_the_architecture_document_exists() -> None:
    """The README's link to the architecture resolves inside the repository."""
    assert (ROOT / "docs" / "architecture.md").is_file()
    assert "docs/architecture.md" in (ROOT / "README.md").read_text(encoding="utf-8")
