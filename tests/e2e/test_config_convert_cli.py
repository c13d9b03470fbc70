"""`metallb-py config convert` as a user runs it: a process reading a file, its output checked
by `metallb-py config validate`, also run as a process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.unit.test_config_convert import MANUAL


def test_command_line_end_to_end(tmp_path: Path) -> None:
    """As a user runs it: convert a file, then validate the result with the CLI."""
    source = tmp_path / "configmap.yaml"
    source.write_text(MANUAL)
    run = subprocess.run(
        [sys.executable, "-m", "metallb_py", "config", "convert", str(source)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("# Converted from MetalLB's legacy ConfigMap")
    converted_file = tmp_path / "crs.yaml"
    converted_file.write_text(run.stdout)
    check = subprocess.run(
        [sys.executable, "-m", "metallb_py", "config", "validate", str(converted_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout == ""
