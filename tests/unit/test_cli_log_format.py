"""`--log-format json|text` is the same flag on every component: JSON by default for log
pipelines, text for a person at a terminal; a bad value is a one-line usage error (the
environment variable as a process: tests/e2e/test_cli.py)."""

from __future__ import annotations

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
