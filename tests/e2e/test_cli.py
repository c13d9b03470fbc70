"""The CLI contract, run as processes: subcommands listed, usage errors (bad flags, a bad
`METALLB_LOG_FORMAT`, `python -m bfd` arguments) are one line with status 2, stubs say so."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from metallb_py import cli

SUBCOMMANDS = ["controller", "speaker", "webhook", "operator", "apiserver", "config", "demo"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metallb_py", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_help_lists_every_subcommand() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    for name in SUBCOMMANDS:
        assert name in out.stdout
    assert "validate" in run_cli("config", "--help").stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["nonsense"],
        ["controller", "--no-such-flag"],
        ["speaker", "--node-name"],
        ["controller", "--log-level", "loud"],
        ["config"],
    ],
)
def test_usage_errors_are_one_line_and_exit_2(argv: list[str]) -> None:
    out = run_cli(*argv)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1, out.stderr
    assert "Traceback" not in out.stderr


def test_speaker_requires_a_node_name() -> None:
    out = run_cli("speaker", env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 2
    assert "--node-name" in out.stderr


def test_unimplemented_component_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(cli.COMPONENTS, "operator", cli.Component("metallb_py.no_such_module", 99))
    rc = cli.main(["operator"])
    assert rc == 2


def test_unimplemented_message(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(cli.COMPONENTS, "operator", cli.Component("metallb_py.no_such_module", 99))
    cli.main(["operator"])
    err = capsys.readouterr().err
    assert "not implemented yet" in err and "#99" in err


def test_metallb_flag_and_env_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METALLB_NODE_NAME", "worker-1")
    monkeypatch.setenv("METALLB_ML_BIND_ADDR", "192.0.2.10")
    monkeypatch.setenv("METALLB_ML_SECRET_KEY_PATH", "/etc/ml_secret_key")
    parser = cli.build_parser()
    args = parser.parse_args(
        ["speaker", "--port=7473", "--ml-bindport", "7947", "--log-level=warn"]
    )
    assert args.node_name == "worker-1"
    assert args.ml_bind_addr == "192.0.2.10"
    assert args.ml_bind_port == 7947
    assert args.ml_secret_key_path == "/etc/ml_secret_key"
    assert args.metrics_port == 7473
    assert args.log_level == "warn"
    args = parser.parse_args(["controller"])
    assert (args.metrics_port, args.namespace, args.lb_class) == (7472, "metallb-system", "")
    assert parser.parse_args(["operator"]).metrics_port == 7474
    assert parser.parse_args(["webhook"]).port == 9443
    assert parser.parse_args(["speaker", "--node-name", "n"]).ml_bind_port == 7946


def test_default_ports_are_distinct() -> None:
    parser = cli.build_parser()
    ports = [
        parser.parse_args([c, "--node-name", "n"] if c == "speaker" else [c]).metrics_port
        for c in ("controller", "speaker", "operator", "webhook", "apiserver")
    ]
    assert len(set(ports)) == len(ports)
    assert 9443 not in ports and 7946 not in ports


def test_demo_reports_each_component_honestly() -> None:
    out = run_cli("demo", "--status")
    assert out.returncode == 0, out.stderr
    for name in ("controller", "speaker", "webhook", "apiserver", "config validate"):
        line = next(x for x in out.stdout.splitlines() if f"metallb-py {name} " in x)
        assert line.endswith(("ready", "not implemented yet"))


def test_bad_log_format_environment_value_is_one_line_exit_2() -> None:
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


def test_bfd_session_unparseable_address_exits_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bfd", "session", "--local", "x", "--peer", "198.51.100.1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "not an IP address" in proc.stderr
    assert "Traceback" not in proc.stderr
