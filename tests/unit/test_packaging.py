"""Packaging a newcomer installs without deprecation warnings: the licence is an SPDX expression
(PEP 639), which setuptools understands from 77 on, so the build requires at least that."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_license_is_an_spdx_string() -> None:
    doc = tomllib.loads(PYPROJECT.read_text())
    assert doc["project"]["license"] == "Apache-2.0"
    assert not any("License ::" in c for c in doc["project"].get("classifiers", []))


def test_build_requires_a_setuptools_that_reads_it() -> None:
    doc = tomllib.loads(PYPROJECT.read_text())
    (req,) = [r for r in doc["build-system"]["requires"] if r.startswith("setuptools")]
    match = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", req)
    assert match and int(match.group(1)) >= 77
