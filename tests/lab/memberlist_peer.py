"""A real hashicorp/memberlist member (tests/lab/memberlist/*.go) for interop tests.

`peer_binary()` builds the Go program once per source hash into a shared cache (the Debian
memberlist source, GOPATH mode, offline) and skips the test when Go is missing, except in CI,
where a missing toolchain fails it. `GoMemberlistPeer` runs the peer on the host (loopback) or
inside a lab namespace, reads its JSON event lines with timeouts and sends it commands.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.lab.netns import Lab, LabProcess

SOURCE_DIR = Path(__file__).resolve().parent / "memberlist"
CACHE_ROOT = Path(os.environ.get("METALLB_PY_GO_CACHE", "/tmp/metallb-py-go-cache"))
GOPATH = "/usr/share/gocode"
MEMBERLIST_SRC = Path(GOPATH) / "src/github.com/hashicorp/memberlist"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BINARY_NAME = "memberlist-peer"

Event = dict[str, Any]


class PeerError(RuntimeError):
    """The Go peer did not answer in time, or exited."""


def _unavailable(why: str) -> None:
    if IN_CI:
        pytest.fail(f"Go memberlist peer unavailable in CI: {why}")
    pytest.skip(f"Go memberlist peer unavailable: {why}")


def _source_hash(go: str) -> str:
    digest = hashlib.sha256()
    for path in sorted(SOURCE_DIR.glob("*.go")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    version = subprocess.run([go, "version"], capture_output=True, text=True, check=False)
    digest.update(version.stdout.encode())
    return digest.hexdigest()[:16]


def go_env(cache: Path) -> dict[str, str]:
    """GOPATH mode against Debian's packaged sources, never the network."""
    return {
        **os.environ,
        "GOPATH": GOPATH,
        "GO111MODULE": "off",
        "GOFLAGS": "",
        "GOPROXY": "off",
        "GOCACHE": str(cache / "gocache"),
        "CGO_ENABLED": "0",
    }


def build_peer() -> Path:
    """Build (or reuse) the peer binary; raises RuntimeError when Go or memberlist is missing."""
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("the go toolchain is not installed (golang-go)")
    if not MEMBERLIST_SRC.is_dir():
        raise RuntimeError(f"{MEMBERLIST_SRC} missing (golang-github-hashicorp-memberlist-dev)")
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    target_dir = CACHE_ROOT / _source_hash(go)
    binary = target_dir / BINARY_NAME
    if binary.exists():
        return binary
    target_dir.mkdir(parents=True, exist_ok=True)
    with open(CACHE_ROOT / ".lock", "w") as lock:
        # Parallel test workers wait for the first one's build instead of racing it.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists():
            return binary
        tmp = target_dir / f".{BINARY_NAME}.{os.getpid()}"
        result = subprocess.run(
            [go, "build", "-o", str(tmp), "."],
            cwd=SOURCE_DIR,
            env=go_env(CACHE_ROOT),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise RuntimeError(f"go build failed:\n{result.stdout}{result.stderr}")
        tmp.rename(binary)
    return binary


def peer_binary() -> Path:
    """The built peer, or a skip (a failure under CI=true) when it cannot be built."""
    try:
        return build_peer()
    except RuntimeError as exc:
        _unavailable(str(exc))
        raise  # unreachable: skip/fail raise


def run_tool(args: Sequence[str], stdin: str = "", timeout: float = 60) -> str:
    """Run the binary's one-shot modes (-vectors, -decode) and return stdout."""
    result = subprocess.run(
        [str(peer_binary()), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise PeerError(f"{args} exited {result.returncode}: {result.stderr}")
    return result.stdout


class GoMemberlistPeer:
    """One running Go member: its event lines, and a command channel on its stdin."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        log_path: Path,
        *,
        lab_process: LabProcess | None = None,
    ) -> None:
        self.popen = popen
        self.log_path = log_path
        self.lab_process = lab_process
        self.events: list[Event] = []
        self._offset = 0
        self._partial = b""
        self.ready: Event = {}
        self.log_dir: Path | None = None  # a host peer's own temporary directory

    # -- starting ---------------------------------------------------------------------------
    @staticmethod
    def argv(
        *,
        name: str,
        bind: str = "127.0.0.1",
        port: int = 0,
        secret: str = "",
        profile: str = "local",
        join: Sequence[str] = (),
        extra: Sequence[str] = (),
    ) -> list[str]:
        args = [str(peer_binary()), "-name", name, "-bind", bind, "-port", str(port)]
        args += ["-profile", profile, "-secret", secret]
        if join:
            args += ["-join", ",".join(join)]
        return [*args, *extra]

    @classmethod
    def start(
        cls,
        *,
        name: str,
        bind: str = "127.0.0.1",
        port: int = 0,
        secret: str = "",
        profile: str = "local",
        join: Sequence[str] = (),
        extra: Sequence[str] = (),
        lab: Lab | None = None,
        role: str | None = None,
        ready_timeout: float = 15.0,
    ) -> GoMemberlistPeer:
        """Start a peer on the host, or in `lab`'s namespace `role`; wait for its ready line."""
        argv = cls.argv(
            name=name, bind=bind, port=port, secret=secret, profile=profile, join=join, extra=extra
        )
        if lab is not None:
            if role is None:
                raise ValueError("a lab peer needs a role (namespace)")
            proc = lab.spawn(role, argv, name=f"memberlist-{name}", stdin=subprocess.PIPE)
            peer = cls(proc.popen, proc.log_path, lab_process=proc)
        else:
            log_dir = Path(tempfile.mkdtemp(prefix="mlb-memberlist-"))
            log_path = log_dir / f"{name}.log"
            with open(log_path, "wb") as log:
                popen = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            peer = cls(popen, log_path)
            peer.log_dir = log_dir
        try:
            peer.ready = peer.wait_for(
                lambda e: e.get("event") in ("ready", "error"), ready_timeout
            )
        except PeerError:
            peer.close()
            raise
        if peer.ready.get("event") == "error":
            peer.close()
            raise PeerError(f"peer {name} failed to start: {peer.ready.get('error')}")
        return peer

    # -- reading ----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self.ready["port"])

    @property
    def address(self) -> str:
        return f"{self.ready['addr']}:{self.ready['port']}"

    def output(self) -> str:
        """Everything the peer printed so far (for failure messages)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def poll(self) -> list[Event]:
        """Read new event lines; returns the ones that arrived since the last call."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        new: list[Event] = []
        for line in lines:
            line = line.strip()
            if not line.startswith(b"{"):
                continue  # memberlist's own log lines (with -v) go to the same file
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    new.append(event)
        self.events.extend(new)
        return new

    def wait_for(
        self, predicate: Callable[[Event], bool], timeout: float = 10.0, *, since: int = 0
    ) -> Event:
        """The first event from index `since` on that matches; PeerError after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            for event in self.events[since:]:
                if predicate(event):
                    return event
            if self.popen.poll() is not None:
                self.poll()
                for event in self.events[since:]:
                    if predicate(event):
                        return event
                raise PeerError(f"peer exited ({self.popen.returncode}):\n{self.output()}")
            if time.monotonic() > deadline:
                raise PeerError(f"timed out after {timeout}s; peer output:\n{self.output()}")
            time.sleep(0.02)

    def wait_event(
        self, kind: str, *, name: str | None = None, timeout: float = 10.0, since: int = 0
    ) -> Event:
        """Wait for an event of `kind` ("join", "leave", "update", ...), optionally for `name`."""
        return self.wait_for(
            lambda e: e.get("event") == kind and (name is None or e.get("name") == name),
            timeout,
            since=since,
        )

    # -- commands ---------------------------------------------------------------------------
    def command(self, line: str) -> None:
        if self.popen.stdin is None or self.popen.poll() is not None:
            raise PeerError("peer is not running")
        self.popen.stdin.write(line.encode() + b"\n")
        self.popen.stdin.flush()

    def _ask(self, line: str, answer: str, timeout: float) -> Event:
        self.poll()
        since = len(self.events)
        self.command(line)
        return self.wait_for(lambda e: e.get("event") == answer, timeout, since=since)

    def members(self, timeout: float = 10.0) -> list[Event]:
        """The peer's member list: dicts with name, addr, port, state, meta, vsn."""
        return list(self._ask("members", "members", timeout).get("members") or [])

    def member_states(self, timeout: float = 10.0) -> dict[str, str]:
        return {m["name"]: m["state"] for m in self.members(timeout)}

    def join(self, *addrs: str, timeout: float = 15.0) -> Event:
        """Join `addrs` (ip:port); the answer carries "contacted" and maybe "error"."""
        return self._ask("join " + " ".join(addrs), "joined", timeout)

    def leave(self, timeout: float = 15.0) -> Event:
        """Graceful leave (broadcast dead-self); the member keeps running until quit."""
        return self._ask("leave", "left", timeout)

    def quit(self, timeout: float = 10.0) -> None:
        with contextlib.suppress(PeerError, BrokenPipeError, OSError):
            self.command("quit")
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=timeout)

    def close(self) -> None:
        """Quit politely, then kill this peer's own process group if it lingers."""
        if self.popen.poll() is None:
            self.quit(timeout=3)
        if self.lab_process is not None:
            self.lab_process.stop()
        elif self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, 9)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=5)
        if self.popen.stdin is not None:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()
        if self.log_dir is not None:
            shutil.rmtree(self.log_dir, ignore_errors=True)
            self.log_dir = None

    def __enter__(self) -> GoMemberlistPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
