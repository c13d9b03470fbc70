"""`make demo` is the first thing a new user runs: `metallb-py demo --once` must show the whole
system end to end on this machine — the HTTPS API server, the webhook refusing a bad pool, IPs from
a layer-2 and a BGP pool, BIRD's three ECMP paths, HTTP answered through both service IPs, a
SIGKILL failover — every command it prints must work while it runs, and it must leave nothing
behind, after --once as after Ctrl-C."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import require_lab
from tests.lab.netns import sh

VENV_BIN = str(Path(sys.executable).parent)
# The demo's own budget: the whole walkthrough, teardown included.
DEMO_SECONDS = 90


def demo_env() -> dict[str, str]:
    """The project's kubectl first on the PATH, as with an activated venv."""
    return {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}


def start_demo(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "metallb_py", "demo", "--controller-metrics-port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env or demo_env(),
    )


def run_demo(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str, int]:
    """(exit status, stdout, stderr, pid: the namespaces are mlbdemo<pid>-*)."""
    proc = start_demo(*args, env=env)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err, proc.pid


def namespaces_of(pid: int) -> list[str]:
    """This demo's namespaces (other tests, demos among them, may run beside it)."""
    return [n for n in sh(["ip", "netns", "list"]).split() if n.startswith(f"mlbdemo{pid}-")]


def run_printed(command: str) -> subprocess.CompletedProcess[str]:
    """Run a command exactly as the demo printed it, with the test's PATH (the real kubectl)."""
    return subprocess.run(
        shlex.split(command), capture_output=True, text=True, timeout=30, env=demo_env()
    )


def workdir_of(text: str) -> str:
    found = re.search(r"work directory (\S+)\)", text)
    assert found, text
    return found.group(1)


def assert_nothing_left(pid: int, workdir: str) -> None:
    assert not namespaces_of(pid)
    assert_nothing_left_running(workdir)
    assert not Path(workdir).exists(), "the work directory is removed"


def assert_nothing_left_running(workdir: str) -> None:
    """No process carries the demo's marker (every process it starts inherits it)."""
    needle = f"METALLB_PY_DEMO={workdir}".encode()
    left = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                env = (entry / "environ").read_bytes()
            except OSError:
                continue
            if needle in env.split(b"\0"):
                left.append(entry.name)
    assert not left, f"processes left behind: {left}"


def section(text: str, start: str, end: str) -> str:
    return text[text.index(start) : text.index(end, text.index(start))]


def test_demo_once_shows_the_whole_system_and_leaves_nothing() -> None:
    require_lab()
    started = time.monotonic()
    proc = start_demo("--once")
    assert proc.stdout is not None
    lines: list[str] = []
    live_kubectl: subprocess.CompletedProcess[str] | None = None
    for line in proc.stdout:
        lines.append(line)
        printed = re.search(r"try it while the demo runs: (.+)$", line)
        if printed:
            # The system is up and stays up for the network steps that follow: the command must
            # work now, as printed.
            live_kubectl = run_printed(printed.group(1))
    stderr = proc.stderr.read() if proc.stderr else ""
    code = proc.wait(timeout=30)
    took = time.monotonic() - started
    text = "".join(lines)
    assert code == 0, text + stderr
    assert "Traceback" not in stderr, stderr
    assert took < DEMO_SECONDS, f"the demo took {took:.0f} s"

    # A progress line per step, in order.
    steps = re.findall(r"^\[(\d+)/(\d+)\]", text, re.M)
    assert [int(n) for n, _ in steps] == list(range(1, 13)), steps
    assert {total for _, total in steps} == {"12"}

    # 1: HTTPS with the CA in the kubeconfig, so kubectl sends its credentials.
    assert re.search(r"^\[1/12\] embedded API server at https://127\.0\.0\.1:\d+", text, re.M)

    # 4: the webhook refuses the bad pool and names the rule.
    refused = section(text, "[4/12]", "[5/12]")
    assert 'admission webhook "ipaddresspoolvalidationwebhook.metallb.io" denied' in refused
    assert "(rule pool-overlap)" in refused

    # 6: IPs from both pools.
    ips = dict(
        re.findall(r"^\s+(\S+)\s+(\d+\.\d+\.\d+\.\d+)", section(text, "[6/12]", "[7/12]"), re.M)
    )
    assert ips["pinned"] == "198.51.100.220"
    assert ips["dns-tcp"] == ips["dns-udp"], "services sharing a key share the IP"
    assert len({ips["web"], ips["dual"], ips["pinned"], ips["dns-tcp"]}) == 4
    assert re.search(r"dual\s+198\.51\.100\.\d+, 2001:db8:100::", text)
    assert ips["web"].startswith("198.51.100.2")
    web, web_bgp = ips["web"], ips["web-bgp"]
    assert 10 <= int(web_bgp.rsplit(".", 1)[1]) <= 30 and web_bgp.startswith("203.0.113.")

    # The printed kubectl command, run by the test with the real kubectl while the demo ran.
    assert live_kubectl is not None, "the demo printed no kubectl command"
    assert live_kubectl.returncode == 0, live_kubectl.stderr
    for row in (rf"service/web\s+LoadBalancer\s+\S+\s+{re.escape(web)}\s",
                rf"service/web-bgp\s+LoadBalancer\s+\S+\s+{re.escape(web_bgp)}\s",
                r"ipaddresspool\.metallb\.io/layer2\s+true",
                r"ipaddresspool\.metallb\.io/bgp\s+false"):  # fmt: skip
        assert re.search(row, live_kubectl.stdout), live_kubectl.stdout
    # ... and by the demo itself at the end (--once), same output shape.
    final = text[text.index("[12/12]") :]
    assert re.search(rf"service/web\s+LoadBalancer\s+\S+\s+{re.escape(web)}\s", final), final

    # 8-9: three BGP sessions, three paths at BIRD, one ECMP route in its kernel.
    assert "BGP sessions to BIRD: node1, node2, node3 Established" in text
    routes = section(text, "[9/12]", "[10/12]")
    assert "birdc -s " in routes and "show route" in routes
    assert f"{web_bgp}/32" in routes
    assert sorted(re.findall(r"via (198\.51\.100\.1[1-3]) on eth0", routes)) == [
        "198.51.100.11",
        "198.51.100.12",
        "198.51.100.13",
    ]
    assert len(re.findall(r"nexthop via 198\.51\.100\.1[1-3] dev eth0", routes)) == 3

    # 10: HTTP through both service IPs, answered by the nodes' stand-ins.
    pages = section(text, "[10/12]", "[11/12]")
    assert re.search(rf"hello from node\d \(you reached {re.escape(web)}:80\)", pages), pages
    assert re.search(rf"hello from node\d \(you reached {re.escape(web_bgp)}:80\)", pages), pages
    spread = re.search(r"answered by ((?:node\d x\d+(?:, )?)+)$", pages, re.M)
    assert spread, pages
    assert sum(int(n) for n in re.findall(r"x(\d+)", spread.group(1))) == 6

    # 11: the layer-2 owner's speaker is killed; another node takes over, measured.
    owner = re.search(r"arping \S+ -> (\S+) \((node\d)\)", text)
    taken = re.search(r"table had \S+ at (\S+) \((node\d)\) ([\d.]+) s after the kill", text)
    assert owner and taken, text
    assert owner.group(2) != taken.group(2) and owner.group(1) != taken.group(1)
    # Membership, not a deleted Node, moved it; the bound only catches a broken mechanism.
    assert "Node untouched" in text and float(taken.group(3)) < 10, text
    after = section(text, "[11/12]", "[12/12]")
    assert f"hello from {taken.group(2)} (you reached {web}:80)" in after
    assert re.search(r"BIRD now has 2 paths", after)
    assert f"198.51.100.1{owner.group(2)[-1]}" not in after.split("BIRD now has")[1]

    assert_nothing_left(proc.pid, workdir_of(text))


def test_demo_ctrl_c_during_the_walkthrough_removes_everything() -> None:
    require_lab()
    proc = start_demo()
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("[8/"):  # speakers, BIRD, stand-ins and namespaces all running
            break
    text = "".join(lines)
    assert text.rstrip().splitlines()[-1].startswith("[8/"), text
    assert namespaces_of(proc.pid)
    proc.send_signal(signal.SIGINT)
    rest, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, text + rest + stderr
    assert "Traceback" not in stderr, stderr
    assert_nothing_left(proc.pid, workdir_of(text))


def test_demo_without_the_network_part_still_allocates() -> None:
    """What a user without root gets (here forced with --no-network): the API server, the
    webhook and the controller, a clear line saying what was skipped and why, and a kubectl
    command that works."""
    code, out, err, pid = run_demo("--once", "--no-network")
    assert code == 0, out + err
    assert "[7/8] network part skipped: --no-network was given" in out
    assert "(rule pool-overlap)" in out
    assert re.search(r"service/web-bgp\s+LoadBalancer\s+\S+\s+203\.0\.113\.", out)
    assert_nothing_left(pid, workdir_of(out))


def test_demo_failure_stops_everything_and_keeps_the_logs(tmp_path: Path) -> None:
    """A component that fails (here a `bird` that cannot start) ends the demo with its log on
    stderr; every process and namespace is gone, the logs stay for the post-mortem."""
    require_lab()
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "bird").write_text("#!/bin/sh\necho 'bird: cannot start (a stand-in)' >&2\nexit 1\n")
    (fake / "bird").chmod(0o755)
    env = {**demo_env(), "PATH": f"{fake}:{demo_env()['PATH']}"}
    code, out, err, pid = run_demo("--once", env=env)
    assert code == 1, out + err
    assert "bird exited while waiting for BIRD's control socket" in err
    assert "bird: cannot start (a stand-in)" in err
    workdir = workdir_of(out)
    assert f"component logs are kept in {workdir}" in err
    assert (Path(workdir) / "apiserver.log").exists()
    try:
        assert not namespaces_of(pid)
        assert_nothing_left_running(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
