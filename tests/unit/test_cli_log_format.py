"""`--log-format json|text` is the same flag on every component: JSON by default for log
pipelines, text for a person at a terminal; a bad value is a one-line usage error."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from metallb_py import cli

COMMANDS = [
    ["controller"],
    ["speaker", "--node-name", "n"],
    ["webhook"],
    ["operator"],
    ["apiserver"],
    ["demo"],
    ["config", "validate", "-"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_every_component_takes_log_format(argv: list[str]) -> None:
    parser = cli.build_parser()
    assert parser.parse_args(argv).log_format == "json"
    assert parser.parse_args([*argv, "--log-format", "text"]).log_format == "text"
    with pytest.raises(cli.UsageError, match="--log-format"):
        parser.parse_args([*argv, "--log-format", "xml"])


def test_environment_sets_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METALLB_LOG_FORMAT", "text")
    assert cli.build_parser().parse_args(["controller"]).log_format == "text"


def test_bad_environment_value_is_one_line_exit_2() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "metallb_py", "config", "validate", "-"],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "METALLB_LOG_FORMAT": "xml"},
        check=False,
    )
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "metallb-py config validate: unknown log format 'xml'; expected one of json, text"
    )
