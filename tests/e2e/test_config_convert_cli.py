"""`metallb-py config convert` as a user runs it: a process reading a file, its output checked
by `metallb-py config validate`, also run as a process."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_cli import run_cli
from tests.unit.test_config_convert import MANUAL


def test_command_line_end_to_end(tmp_path: Path) -> None:
    """As a user runs it: convert a file, then validate the result with the CLI."""
    source = tmp_path / "configmap.yaml"
    source.write_text(MANUAL)
    run = run_cli("config", "convert", str(source))
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("# Converted from MetalLB's legacy ConfigMap")
    converted_file = tmp_path / "crs.yaml"
    converted_file.write_text(run.stdout)
    check = run_cli("config", "validate", str(converted_file))
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout == ""
