"""The demo's decisions that need no network: what it says when a prerequisite is missing, how it
names kubectl, which flags it passes, and the BIRD configuration it writes."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from metallb_py import demo
from metallb_py.demo import Steps
from metallb_py.demo_net import Bird, Demo, Halted, until


def test_not_root_says_so_and_how_to_run_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo.os, "geteuid", lambda: 1000)
    why = demo.network_unavailable(no_network=False)
    assert why is not None and "needs root" in why and "sudo make demo" in why


def test_missing_tools_are_named_with_their_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo.os, "geteuid", lambda: 0)
    monkeypatch.setattr(
        demo.shutil, "which", lambda tool: None if tool in ("bird", "birdc", "arping") else tool
    )
    why = demo.network_unavailable(no_network=False)
    assert why == (
        "arping, bird, birdc not found (Debian packages: arping, bird2; "
        "`make setup` as root installs them)"
    )


def test_no_network_flag_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo.os, "geteuid", lambda: 0)
    assert demo.network_unavailable(no_network=True) == "--no-network was given"


def test_kubectl_is_named_so_that_a_shell_finds_the_projects_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "kubectl").write_text("")
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    other = tmp_path / "usr-bin-kubectl"
    monkeypatch.setattr(demo.shutil, "which", lambda _: str(other))
    assert demo.kubectl_word() == str(venv_bin / "kubectl"), "another kubectl on the PATH"
    monkeypatch.setattr(demo.shutil, "which", lambda _: str(venv_bin / "kubectl"))
    assert demo.kubectl_word() == "kubectl", "the PATH finds the project's own"


def test_steps_are_numbered_against_the_total(capsys: pytest.CaptureFixture[str]) -> None:
    steps = Steps(3)
    steps.say("one")
    steps.say("two")
    assert capsys.readouterr().out == "[1/3] one\n[2/3] two\n"


def test_bird_config_peers_every_node_and_merges_paths(tmp_path: Path) -> None:
    config = Bird(Demo(tmp_path), {"node1": "198.51.100.11", "node2": "198.51.100.12"}).config()
    assert "merge paths on" in config
    assert config.count("protocol bgp") == 2
    assert "neighbor 198.51.100.12 as 64512;" in config
    assert "local 198.51.100.1 as 64500;" in config


def test_the_demo_uses_documentation_addresses_only() -> None:
    import ipaddress

    documentation = [
        ipaddress.ip_network(n)
        for n in ("198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24", "2001:db8::/32")
    ]
    for entry in [*demo.POOL_L2, *demo.POOL_BGP, *demo.BAD_POOL]:
        for end in entry.split("-"):
            ip = ipaddress.ip_address(end)
            assert any(ip in net for net in documentation), ip


async def test_waits_name_what_they_waited_for(tmp_path: Path) -> None:
    with pytest.raises(TimeoutError, match=r"timed out after 0 s waiting for the moon"):
        await until(Demo(tmp_path), lambda: False, 0.05, "the moon", interval=0.01)


async def test_waits_end_at_once_when_the_demo_is_stopped(tmp_path: Path) -> None:
    d = Demo(tmp_path)
    d.halt.set()
    started = time.monotonic()
    with pytest.raises(Halted):
        await until(d, lambda: False, demo.WAIT, "anything")
    assert time.monotonic() - started < 1


async def test_waits_accept_async_predicates(tmp_path: Path) -> None:
    async def ready() -> str:
        return "yes"

    assert await until(Demo(tmp_path), ready, 1, "an async answer") == "yes"


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    d = Demo(tmp_path)
    ignore = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('up', flush=True); time.sleep(60)"
    )
    proc = d.spawn("stubborn", [sys.executable, "-c", ignore])
    deadline = time.monotonic() + 10
    while not d.logged("stubborn", "up") and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    d.stop_all(["stubborn"], grace=0.5)
    assert proc.returncode == -signal.SIGKILL
    assert 0.4 < time.monotonic() - started < 5
