"""Run `metallb-py apiserver` for a test: on a free loopback port (or inside a lab namespace),
wait until it serves, hand back its kubeconfig, stop it afterwards.

    from tests.lab.apiserver import running_apiserver, apiserver_fixture

    apiserver = apiserver_fixture()           # in a test module: a pytest fixture

    def test_x(apiserver):
        apiserver.kubectl("get", "svc")        # the real kubectl, with its own discovery cache
        async with apiserver.client() as api:  # kubernetes_asyncio ApiClient
            ...

The server listens on port 0 and writes the kubeconfig once it serves, so there is no port race;
the kubeconfig names the real port. It runs as a user runs it: HTTPS with its own CA, which the
kubeconfig embeds together with the admin credentials, so kubectl and kubernetes_asyncio need
no extra flag. Raw HTTP clients in tests trust that CA through `apiserver.ssl_context()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from tests.lab.netns import Lab, LabProcess

KUBECTL = str(Path(sys.executable).parent / "kubectl")


@dataclass
class ApiServer:
    """A running `metallb-py apiserver`."""

    kubeconfig: Path
    workdir: Path
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    lab_proc: LabProcess | None = None
    lab: Lab | None = None
    role: str | None = None
    namespace: str | None = None  # kubectl's default namespace for this view of the server
    _config: dict[str, Any] = field(default_factory=dict)

    # -- what the kubeconfig says ----------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        if not self._config:
            self._config = yaml.safe_load(self.kubeconfig.read_text())
        return self._config

    @property
    def url(self) -> str:
        return str(self.config["clusters"][0]["cluster"]["server"])

    @property
    def admin_token(self) -> str:
        return str(self.config["users"][0]["user"].get("token", ""))

    @property
    def ca_pem(self) -> bytes | None:
        """The CA the kubeconfig trusts (None for a plain-HTTP server)."""
        import base64

        data = self.config["clusters"][0]["cluster"].get("certificate-authority-data")
        return base64.b64decode(data) if data else None

    def ssl_context(self) -> ssl.SSLContext | bool:
        """For aiohttp's `ssl=`: a context trusting the server's CA, or True for plain HTTP."""
        ca = self.ca_pem
        if ca is None:
            return True
        return ssl.create_default_context(cadata=ca.decode())

    def env(self) -> dict[str, str]:
        """Environment for tools: KUBECONFIG and a discovery cache private to this server."""
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "KUBECACHEDIR": str(self.workdir / "kubecache"),
        }

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        if self.lab_proc is not None:
            return self.lab_proc.alive()
        return self.popen is not None and self.popen.poll() is None

    # -- tools -------------------------------------------------------------------------------------
    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this server (inside the lab namespace if it runs there)."""
        argv = self._kubectl_argv(args)
        if self.lab is not None and self.role is not None:
            argv = ["ip", "netns", "exec", self.lab.ns(self.role), *argv]
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            env=self.env(),
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n"
                f"{proc.stdout}\n{proc.stderr}"
            )
        return proc

    async def akubectl(
        self, *args: str, input: str | None = None, check: bool = True, limit: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """`kubectl` from async tests, in a thread, so the test's own servers keep answering."""
        import asyncio

        return await asyncio.to_thread(self.kubectl, *args, input=input, check=check, timeout=limit)

    def _kubectl_argv(self, args: Sequence[str]) -> list[str]:
        scoped = any(
            a in ("-n", "-A", "--all-namespaces") or a.startswith("--namespace") for a in args
        )
        if self.namespace and not scoped:
            return [KUBECTL, f"--namespace={self.namespace}", *args]
        return [KUBECTL, *args]

    def in_namespace(self, namespace: str) -> ApiServer:
        """A view of this server whose kubectl works in `namespace` (created if missing), so
        tests can share one server without seeing each other's objects."""
        import dataclasses
        import json

        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        self.kubectl("apply", "-f", "-", input=json.dumps(ns))
        return dataclasses.replace(self, namespace=namespace)

    def kubectl_bg(self, *args: str) -> subprocess.Popen[str]:
        """Start kubectl in the background (e.g. `get -w`); the caller stops it."""
        return subprocess.Popen(
            self._kubectl_argv(args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env(),
            start_new_session=True,
        )

    @contextlib.asynccontextmanager
    async def client(self, token: str | None = None) -> AsyncIterator[Any]:
        """A kubernetes_asyncio ApiClient for this server (admin, or the given bearer token)."""
        from kubernetes_asyncio import client as k8s
        from kubernetes_asyncio import config as k8s_config

        cfg = k8s.Configuration()
        await k8s_config.load_kube_config(
            config_file=str(self.kubeconfig), client_configuration=cfg
        )
        if token is not None:
            cfg.api_key = {"authorization": f"Bearer {token}"} if token else {}
        api = k8s.ApiClient(configuration=cfg)
        try:
            yield api
        finally:
            await api.close()

    # -- lifecycle ---------------------------------------------------------------------------------
    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
        if self.lab_proc is not None:
            return self.lab_proc.stop(timeout)
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL: a crash, not a clean stop."""
        if self.lab_proc is not None:
            self.lab_proc.kill()
        elif self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)


def start_apiserver(
    *,
    data: Path | str | None = None,
    args: Sequence[str] = (),
    anonymous: bool = False,
    lab: Lab | None = None,
    role: str | None = None,
    listen: str | None = None,
    workdir: Path | None = None,
    timeout: float = 30,
) -> ApiServer:
    """Start the server and return once it serves (its kubeconfig exists).

    `lab`/`role` run it inside that lab namespace (listen on an address of that namespace, e.g.
    "198.51.100.11:0"; the admin kubeconfig then carries a client certificate instead of the
    token). `data` makes it persistent; `args` are extra flags (`--insecure-http` for plain HTTP
    on loopback). `anonymous` lets requests without credentials in as an administrator.
    """
    workdir = workdir or Path(tempfile.mkdtemp(prefix="mlb-apiserver-"))
    workdir.mkdir(parents=True, exist_ok=True)
    kubeconfig = workdir / "kubeconfig"
    with contextlib.suppress(FileNotFoundError):
        kubeconfig.unlink()
    listen = listen or "127.0.0.1:0"
    argv = [
        sys.executable,
        "-m",
        "metallb_py",
        "apiserver",
        "--listen",
        listen,
        "--kubeconfig-out",
        str(kubeconfig),
        "--metrics-port",
        "0",
        "--log-level",
        "info",
    ]
    if data is not None:
        argv += ["--data", str(data)]
    if anonymous:
        argv.append("--anonymous")
    argv += list(args)
    log_path = workdir / f"apiserver-{int(time.time() * 1000)}.log"
    server = ApiServer(kubeconfig, workdir, argv, log_path, lab=lab, role=role)
    if lab is not None:
        if role is None:
            raise ValueError("a lab apiserver needs the role (namespace) to run in")
        server.lab_proc = lab.spawn(role, argv, name="apiserver")
        server.log_path = server.lab_proc.log_path
    else:
        log = open(log_path, "wb")  # noqa: SIM115 - the child owns it
        server.popen = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=str(Path(__file__).resolve().parents[2]),
        )
        log.close()
    deadline = time.monotonic() + timeout
    while not kubeconfig.exists():
        if not server.alive():
            raise RuntimeError(f"apiserver exited early:\n{server.output()}")
        if time.monotonic() > deadline:
            server.stop()
            raise TimeoutError(f"apiserver not ready after {timeout}s:\n{server.output()}")
        time.sleep(0.05)
    return server


@contextlib.contextmanager
def running_apiserver(**kwargs: Any) -> Iterator[ApiServer]:
    """`start_apiserver` as a context manager; stops the server and removes its files."""
    server = start_apiserver(**kwargs)
    try:
        yield server
    finally:
        server.stop()
        if kwargs.get("workdir") is None:
            shutil.rmtree(server.workdir, ignore_errors=True)


def apiserver_fixture(scope: str = "function", **kwargs: Any) -> Callable[..., Any]:
    """A pytest fixture yielding a running ApiServer: a fresh one per test by default, or one per
    module with `scope="module"` (then give each test its own namespace with `in_namespace`).

    In a test module: `apiserver = apiserver_fixture()`; extra flags with `args=[...]`.
    """

    @pytest.fixture(scope=scope)  # type: ignore[call-overload]
    def _fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
        workdir = tmp_path_factory.mktemp("apiserver")
        with running_apiserver(workdir=workdir, **kwargs) as server:
            yield server

    return _fixture


async def wait_for_async(
    predicate: Callable[[], Any], within: float, interval: float = 0.05, what: str = "condition"
) -> Any:
    """Poll an async predicate until truthy, for `within` seconds (kubernetes_asyncio tests)."""
    import asyncio

    deadline = time.monotonic() + within
    last: Exception | None = None
    while True:
        try:
            value = await predicate()
            if value:
                return value
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"timed out after {within}s waiting for {what}"
                + (f" (last error: {last})" if last else "")
            )
        await asyncio.sleep(interval)


def in_process_apiserver(start_rv: int = 1000, history: int = 10_000) -> Any:
    """The API server object itself, without a process, for tests that must reach inside it
    (monkeypatching its name generator, a bounded history): serve it with aiohttp's TestServer.
    Anonymous access, no TLS."""
    from metallb_py.apiserver.auth import Authenticator
    from metallb_py.apiserver.server import ApiServer as Server
    from metallb_py.apiserver.server import ServerConfig
    from metallb_py.apiserver.store import Store

    store = Store(start_rv=start_rv, history_limit=history)
    server = Server(
        ServerConfig(anonymous=True, bookmark_interval=3600),
        store,
        Authenticator(store, b"k" * 32, {}),
    )
    server.bootstrap()
    return server


@contextlib.asynccontextmanager
async def served_in_process(server: Any = None) -> AsyncIterator[tuple[Any, Any]]:
    """`server` (a new `in_process_apiserver()` by default) on a loopback port with aiohttp's
    TestServer, and a client session for it; both closed on exit."""
    import aiohttp
    from aiohttp.test_utils import TestServer

    http = TestServer((server or in_process_apiserver()).app())
    await http.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield http, session
    finally:
        await http.close()


class Reply(NamedTuple):
    status: int
    body: Any
    warnings: list[str]  # the Warning headers, as sent


async def request_json(
    http: tuple[Any, Any],
    method: str,
    path: str,
    body: Any = None,
    ctype: str = "application/json",
    *,
    agent: str = "",
    **params: str,
) -> Reply:
    """One request to a `served_in_process` server: `body` sent as JSON (bytes as they are),
    the reply decoded as JSON."""
    server, session = http
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    headers = {"Content-Type": ctype, **({"User-Agent": agent} if agent else {})}
    async with session.request(
        method, server.make_url(path), data=data, params=params, headers=headers
    ) as resp:
        return Reply(resp.status, await resp.json(), resp.headers.getall("Warning", []))


@contextlib.asynccontextmanager
async def rest_in_process(server: Any = None) -> AsyncIterator[Any]:
    """The product's kube `Rest` client (on the real kubernetes_asyncio ApiClient) talking HTTP
    to `server` (a new `in_process_apiserver()` by default); both closed on exit."""
    from metallb_py.kube.k8s import ApiClient, Configuration
    from metallb_py.kube.rest import Rest

    async with served_in_process(server) as (http, _session):
        rest = Rest(ApiClient(Configuration(host=str(http.make_url("")).rstrip("/"))))
        try:
            yield rest
        finally:
            await rest.close()


@contextlib.asynccontextmanager
async def running_tasks() -> AsyncIterator[tuple[asyncio.Event, Callable[[Any], None]]]:
    """(stop, start): `start(coro)` runs it as a task; on exit `stop` is set and every task is
    cancelled and awaited, pass or fail."""
    stop = asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []
    try:
        yield stop, lambda coro: tasks.append(asyncio.create_task(coro))
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
