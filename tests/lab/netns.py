"""A network lab made of Linux network namespaces, owned by one test.

Every namespace the lab creates carries the lab's prefix (`mlbt<pid>x<n>-`), so parallel tests never
collide and a crashed run can be swept later by pid. Teardown kills only the processes this lab
started (by pid, via the process group it created) and deletes only its own namespaces, even when
the test failed.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PREFIX_RE = re.compile(r"^mlbt(\d+)x\d+-")
_counter = itertools.count(1)


class LabError(RuntimeError):
    pass


def can_build_labs() -> tuple[bool, str]:
    """Whether this process can create namespaces (root and iproute2)."""
    if os.geteuid() != 0:
        return False, "needs root"
    if not Path("/usr/sbin/ip").exists() and not Path("/sbin/ip").exists():
        return False, "needs iproute2"
    return True, ""


def sh(
    argv: Sequence[str], *, check: bool = True, timeout: float = 30, input: str | None = None
) -> str:
    proc = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, input=input, check=False
    )
    if check and proc.returncode != 0:
        raise LabError(f"{shlex.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def sweep_stale() -> list[str]:
    """Delete namespaces left by lab runs whose process is gone (a crashed or killed test run)."""
    removed = []
    for name in sh(["ip", "netns", "list"], check=False).split():
        m = PREFIX_RE.match(name)
        if not m:
            continue
        pid = int(m.group(1))
        if Path(f"/proc/{pid}").exists():
            continue
        for pid_in_ns in sh(["ip", "netns", "pids", name], check=False).split():
            # Processes left in a namespace of ours by a dead test run were started by that run.
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_in_ns), signal.SIGKILL)
        sh(["ip", "netns", "del", name], check=False)
        removed.append(name)
    return removed


@dataclass
class LabProcess:
    """A process the lab started inside a namespace; output goes to a log file."""

    name: str
    ns: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def signal(self, sig: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.popen.poll()

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)


@dataclass
class Lab:
    """Namespaces, links and processes of one test, torn down together."""

    prefix: str = field(default_factory=lambda: f"mlbt{os.getpid()}x{next(_counter)}-")
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mlb-lab-")))
    namespaces: list[str] = field(default_factory=list)
    processes: list[LabProcess] = field(default_factory=list)
    _cleanups: list[Callable[[], None]] = field(default_factory=list)

    # -- namespaces -------------------------------------------------------------------------
    def ns(self, role: str) -> str:
        """The full namespace name for a role ("node1", "router", ...)."""
        return self.prefix + role

    def add_ns(self, role: str) -> str:
        name = self.ns(role)
        sh(["ip", "netns", "add", name])
        self.namespaces.append(name)
        self.exec(role, ["ip", "link", "set", "lo", "up"])
        # Lab hosts behave like servers: no DAD delay, forwarding off, loose rp_filter.
        for key, value in (
            ("net.ipv6.conf.default.accept_dad", "0"),
            ("net.ipv6.conf.all.accept_dad", "0"),
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "0"),
        ):
            self.exec(role, ["sysctl", "-qw", f"{key}={value}"], check=False)
        return name

    def exec(
        self,
        role: str,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 30,
        input: str | None = None,
    ) -> str:
        """Run a command to completion inside a namespace; returns stdout."""
        return sh(
            ["ip", "netns", "exec", self.ns(role), *argv], check=check, timeout=timeout, input=input
        )

    def run(
        self, role: str, argv: Sequence[str], *, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Like exec, but returns the whole result whatever the exit status."""
        return subprocess.run(
            ["ip", "netns", "exec", self.ns(role), *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def spawn(
        self,
        role: str,
        argv: Sequence[str],
        *,
        name: str | None = None,
        env: dict[str, str] | None = None,
        stdin: int | None = subprocess.DEVNULL,
    ) -> LabProcess:
        """Start a long-running process in a namespace, in its own process group."""
        label = name or Path(argv[0]).name
        log_path = self.workdir / f"{role}-{label}-{len(self.processes)}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - owned by the child for its lifetime
        popen = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(role), *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=stdin,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        log.close()
        proc = LabProcess(label, self.ns(role), list(argv), popen, log_path)
        self.processes.append(proc)
        return proc

    def on_cleanup(self, fn: Callable[[], None]) -> None:
        self._cleanups.append(fn)

    # -- links ------------------------------------------------------------------------------
    def veth(self, role_a: str, if_a: str, role_b: str, if_b: str, *, mtu: int = 1500) -> None:
        """A veth pair made directly inside both namespaces (names need not be unique on host)."""
        sh(
            [
                "ip",
                "link",
                "add",
                if_a,
                "netns",
                self.ns(role_a),
                "mtu",
                str(mtu),
                "type",
                "veth",
                "peer",
                "name",
                if_b,
                "netns",
                self.ns(role_b),
                "mtu",
                str(mtu),
            ]
        )
        self.exec(role_a, ["ip", "link", "set", if_a, "up"])
        self.exec(role_b, ["ip", "link", "set", if_b, "up"])

    def addr(self, role: str, iface: str, cidr: str) -> None:
        extra = ["nodad"] if ":" in cidr else []
        self.exec(role, ["ip", "addr", "add", cidr, "dev", iface, *extra])

    def link_set(self, role: str, iface: str, up: bool) -> None:
        self.exec(role, ["ip", "link", "set", iface, "up" if up else "down"])

    def mac(self, role: str, iface: str) -> str:
        out = self.exec(role, ["cat", f"/sys/class/net/{iface}/address"])
        return out.strip().lower()

    def nft(self, role: str, script: str) -> None:
        self.exec(role, ["nft", "-f", "-"], input=script)

    # -- teardown ---------------------------------------------------------------------------
    def close(self) -> None:
        for fn in reversed(self._cleanups):
            with contextlib.suppress(Exception):
                fn()
        self._cleanups.clear()
        for proc in self.processes:
            proc.signal(signal.SIGTERM)
        deadline = time.monotonic() + 3
        for proc in self.processes:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                proc.popen.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                proc.kill()
        for name in reversed(self.namespaces):
            # Anything still inside our namespace was started through it by this lab.
            for pid in sh(["ip", "netns", "pids", name], check=False).split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            sh(["ip", "netns", "del", name], check=False)
        self.namespaces.clear()
        # Process logs and daemon configs live here; keep them only when asked (debugging).
        if not os.environ.get("MLB_KEEP_LAB"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_for(
    predicate: Callable[[], object], timeout: float, interval: float = 0.1, what: str = "condition"
) -> object:
    """Poll until `predicate()` is truthy; raise with `what` on timeout."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # keep polling; report the last failure on timeout
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc})" if last_exc else ""
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}{detail}")
        time.sleep(interval)


@contextlib.contextmanager
def lab_context() -> Iterator[Lab]:
    lab = Lab()
    try:
        yield lab
    finally:
        lab.close()
