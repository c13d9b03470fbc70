"""`metallb-py apiserver` with no TLS flag is what a newcomer runs: it must serve HTTPS with its
own CA and write a kubeconfig that the real kubectl and kubernetes_asyncio use as it is, on
loopback and on a LAN address seen from another network namespace. Plain HTTP only on loopback
and only when asked; the CA survives restarts with --data; no key is left in a temporary
directory; the server logs JSON lines like every component."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.lab.apiserver import KUBECTL, running_apiserver
from tests.lab.netns import Lab

ROOT = Path(__file__).resolve().parents[2]

CLIENT = r"""
import asyncio, sys
from kubernetes_asyncio import client, config

async def main() -> None:
    await config.load_kube_config(config_file=sys.argv[1])
    async with client.ApiClient() as api:
        items = (await client.CoreV1Api(api).list_namespace()).items
        print(" ".join(sorted(n.metadata.name for n in items)))

asyncio.run(main())
"""


FETCH_CERT = "import ssl, sys; print(ssl.get_server_certificate((sys.argv[1], int(sys.argv[2]))))"


def apiserver_cmd(*flags: str) -> list[str]:
    return [sys.executable, "-m", "metallb_py", "apiserver", "--metrics-port", "0", *flags]


@contextlib.contextmanager
def apiserver_process(tmp: Path, *flags: str) -> Iterator[tuple[Path, Path]]:
    """`metallb-py apiserver FLAGS --kubeconfig-out tmp/kubeconfig` with TMPDIR=tmp/tmpdir (so a
    key left in a temporary directory would be seen); yields (kubeconfig, log)."""
    kubeconfig, log_path, tmpdir = tmp / "kubeconfig", tmp / "apiserver.log", tmp / "tmpdir"
    tmpdir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        kubeconfig.unlink()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            apiserver_cmd(*flags, "--kubeconfig-out", str(kubeconfig)),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=str(ROOT),
            env={**os.environ, "TMPDIR": str(tmpdir)},
        )
    try:
        deadline = time.monotonic() + 30
        while not kubeconfig.exists():
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        yield kubeconfig, log_path
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, log_path.read_text()


def kubectl(
    kubeconfig: Path, *args: str, netns: str | None = None, input: str | None = None
) -> str:
    """The real kubectl with `--kubeconfig FILE` and nothing else (its own discovery cache)."""
    argv = [KUBECTL, "--kubeconfig", str(kubeconfig), *args]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    env = {**os.environ, "KUBECACHEDIR": str(kubeconfig.parent / "kubecache")}
    env.pop("KUBECONFIG", None)
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, env=env, input=input, check=False
    )
    assert out.returncode == 0, f"kubectl {' '.join(args)}: {out.stderr}"
    return out.stdout


def cluster(kubeconfig: Path) -> dict[str, Any]:
    doc = yaml.safe_load(kubeconfig.read_text())
    return dict(doc["clusters"][0]["cluster"])


def json_lines(log_path: Path) -> list[dict[str, Any]]:
    """Every line of the log, each of which must be a JSON object."""
    return [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_loopback_default_is_https_for_kubectl_and_kubernetes_asyncio(tmp_path: Path) -> None:
    with apiserver_process(tmp_path, "--listen", "127.0.0.1:0") as (kc, log_path):
        server = cluster(kc)
        assert server["server"].startswith("https://127.0.0.1:")
        assert b"BEGIN CERTIFICATE" in base64.b64decode(server["certificate-authority-data"])
        assert mode(kc) == 0o600
        manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hello"}}
        kubectl(kc, "apply", "-f", "-", input=json.dumps(manifest))
        assert kubectl(kc, "get", "cm", "hello", "-o", "name").strip() == "configmap/hello"
        out = subprocess.run(
            [sys.executable, "-c", CLIENT, str(kc)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert "default" in out.stdout.split()
        # The serving key was loaded from a private temporary directory that is gone now.
        assert list((tmp_path / "tmpdir").iterdir()) == []
    serving = [r for r in json_lines(log_path) if r["event"] == "apiserverServing"]
    assert serving[0]["tls"] is True and serving[0]["url"] == server["server"]
    assert serving[0]["logger"] == "apiserver" and serving[0]["level"] == "info"


@pytest.mark.lab
def test_lan_address_in_a_namespace_works_from_another_namespace(lab: Lab, tmp_path: Path) -> None:
    lab.add_ns("api")
    lab.add_ns("client")
    lab.veth("api", "eth0", "client", "eth0")
    lab.addr("api", "eth0", "198.51.100.10/24")
    lab.addr("client", "eth0", "198.51.100.20/24")
    with running_apiserver(
        lab=lab, role="api", listen="198.51.100.10:0", workdir=tmp_path / "srv"
    ) as s:
        assert not any("tls" in a or "insecure" in a for a in s.argv)
        assert s.url.startswith("https://198.51.100.10:")
        names = kubectl(s.kubeconfig, "get", "ns", "-o", "name", netns=lab.ns("client"))
        assert "namespace/default" in names.split()
        listed = lab.exec("client", [sys.executable, "-c", CLIENT, str(s.kubeconfig)])
        assert "kube-system" in listed.split()


@pytest.mark.lab
def test_wildcard_listener_certificate_names_the_hosts_addresses(lab: Lab, tmp_path: Path) -> None:
    """On 0.0.0.0 the kubeconfig names loopback, and the certificate also covers the host's own
    addresses, so the same kubeconfig pointed at the LAN address works from another host."""
    lab.add_ns("api")
    lab.add_ns("client")
    lab.veth("api", "eth0", "client", "eth0")
    lab.addr("api", "eth0", "198.51.100.10/24")
    lab.addr("client", "eth0", "198.51.100.20/24")
    with running_apiserver(
        lab=lab,
        role="api",
        listen="0.0.0.0:0",
        workdir=tmp_path / "srv",
        args=["--tls-san", "api.example.net"],
    ) as s:
        assert s.url.startswith("https://127.0.0.1:")
        assert "namespace/default" in s.kubectl("get", "ns", "-o", "name").stdout.split()
        remote = tmp_path / "remote.kubeconfig"
        doc = json.loads(json.dumps(s.config))
        port = s.url.rpartition(":")[2]
        doc["clusters"][0]["cluster"]["server"] = f"https://198.51.100.10:{port}"
        remote.write_text(yaml.safe_dump(doc))
        names = kubectl(remote, "get", "ns", "-o", "name", netns=lab.ns("client"))
        assert "namespace/default" in names.split()
        from metallb_py.apiserver import tls

        pem = lab.exec(
            "client",
            [
                sys.executable,
                "-c",
                FETCH_CERT,
                "198.51.100.10",
                port,
            ],
        )
        hosts = tls.cert_hosts(pem.encode())
        assert "198.51.100.10" in hosts and "api.example.net" in hosts and "127.0.0.1" in hosts


def test_insecure_http_on_loopback_when_asked(tmp_path: Path) -> None:
    with apiserver_process(
        tmp_path, "--listen", "127.0.0.1:0", "--insecure-http", "--anonymous"
    ) as (kc, log_path):
        assert cluster(kc)["server"].startswith("http://127.0.0.1:")
        assert "certificate-authority-data" not in cluster(kc)
        assert "namespace/default" in kubectl(kc, "get", "ns", "-o", "name").split()
    events = {r["event"]: r for r in json_lines(log_path)}
    assert events["apiserverServing"]["tls"] is False
    assert events["apiserverInsecureHttp"]["level"] == "warn"


@pytest.mark.parametrize(
    "flags",
    [
        ["--listen", "198.51.100.10:6443", "--insecure-http"],
        ["--listen", "0.0.0.0:6443", "--insecure-http"],
        ["--listen", "[2001:db8::1]:6443", "--insecure-http"],
    ],
    ids=["ipv4", "wildcard", "ipv6"],
)
def test_insecure_http_is_refused_off_loopback(flags: list[str]) -> None:
    out = subprocess.run(
        apiserver_cmd(*flags), capture_output=True, text=True, timeout=60, check=False
    )
    host = flags[1].rpartition(":")[0].strip("[]")
    assert out.returncode == 2
    assert out.stderr == (
        f"metallb-py apiserver: --insecure-http is only allowed on a loopback address, not {host}\n"
    )


def test_insecure_http_does_not_mix_with_tls_flags() -> None:
    out = subprocess.run(
        apiserver_cmd("--listen", "127.0.0.1:0", "--insecure-http", "--tls"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "--insecure-http cannot be combined" in out.stderr


def test_ca_is_kept_beside_data_and_reused_across_restarts(tmp_path: Path) -> None:
    data = tmp_path / "state.db"
    pki = tmp_path / "state-pki"
    with apiserver_process(tmp_path / "a", "--listen", "127.0.0.1:0", "--data", str(data)) as (
        kc,
        _,
    ):
        first = cluster(kc)
        kubectl(kc, "create", "namespace", "kept")
    saved = tmp_path / "old.kubeconfig"
    saved.write_text(kc.read_text())
    assert mode(data) == 0o600 and mode(pki) == 0o700
    assert mode(pki / "ca.key") == 0o600 and mode(pki / "apiserver.key") == 0o600
    ca = (pki / "ca.crt").read_bytes()
    assert base64.b64decode(first["certificate-authority-data"]) == ca
    serving = (pki / "apiserver.crt").read_bytes()

    # Restart on another port: the kubeconfig from before (same CA, same token) still works
    # once pointed at the new port, and the serving certificate is reused.
    with apiserver_process(tmp_path / "b", "--listen", "127.0.0.1:0", "--data", str(data)) as (
        kc2,
        _,
    ):
        second = cluster(kc2)
        assert second["certificate-authority-data"] == first["certificate-authority-data"]
        doc = yaml.safe_load(saved.read_text())
        doc["clusters"][0]["cluster"]["server"] = second["server"]
        saved.write_text(yaml.safe_dump(doc))
        assert "namespace/kept" in kubectl(saved, "get", "ns", "-o", "name").split()
    assert (pki / "apiserver.crt").read_bytes() == serving

    # A new name for the certificate: reissued by the same CA.
    with apiserver_process(
        tmp_path / "c", "--listen", "127.0.0.1:0", "--data", str(data), "--tls-san", "lb.example"
    ) as (kc3, _):
        assert "namespace/kept" in kubectl(kc3, "get", "ns", "-o", "name").split()
    assert (pki / "ca.crt").read_bytes() == ca
    assert (pki / "apiserver.crt").read_bytes() != serving
    assert not [p.name for p in pki.iterdir() if ".tmp" in p.name]


def test_cert_dir_flag_and_a_ca_from_an_older_database(tmp_path: Path) -> None:
    """Servers before the certificate directory kept the CA in the database: it moves out to
    the files (so their kubeconfigs keep working) and leaves the database."""
    from metallb_py.apiserver import tls
    from metallb_py.apiserver.persist import SqlitePersistence

    data = tmp_path / "old.db"
    legacy = tls.make_ca()
    db = SqlitePersistence(str(data))
    db.set_meta("ca_cert", legacy.cert.decode())
    db.set_meta("ca_key", legacy.key.decode())
    db.close()
    pki = tmp_path / "pki"
    with apiserver_process(
        tmp_path / "a", "--listen", "127.0.0.1:0", "--data", str(data), "--cert-dir", str(pki)
    ) as (kc, _):
        assert base64.b64decode(cluster(kc)["certificate-authority-data"]) == legacy.cert
        assert "namespace/default" in kubectl(kc, "get", "ns", "-o", "name").split()
    assert (pki / "ca.crt").read_bytes() == legacy.cert
    db = SqlitePersistence(str(data))
    assert db.get_meta("ca_key") is None and db.get_meta("ca_cert") is None
    db.close()


def test_a_damaged_ca_is_a_one_line_error(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    (pki / "ca.crt").write_text("not a certificate\n")
    (pki / "ca.key").write_text("not a key\n")
    (pki / "ca.key").chmod(0o600)  # a key others can read is refused before it is parsed
    out = subprocess.run(
        apiserver_cmd("--listen", "127.0.0.1:0", "--cert-dir", str(pki)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert out.stderr.startswith(f"metallb-py apiserver: cannot use the CA in {pki}:")


def test_text_log_format_for_a_terminal(tmp_path: Path) -> None:
    with apiserver_process(tmp_path, "--listen", "127.0.0.1:0", "--log-format", "text") as (
        _,
        log_path,
    ):
        pass
    lines = log_path.read_text().splitlines()
    serving = next(line for line in lines if "apiserverServing" in line)
    assert not serving.startswith("{") and "[apiserver]" in serving and "tls=True" in serving


def test_in_memory_ca_differs_per_start(tmp_path: Path) -> None:
    """Without --data nothing is written but the kubeconfig: each start has a new CA."""
    with apiserver_process(tmp_path / "a", "--listen", "127.0.0.1:0") as (kc, _):
        first = cluster(kc)["certificate-authority-data"]
    with apiserver_process(tmp_path / "b", "--listen", "127.0.0.1:0") as (kc, _):
        assert cluster(kc)["certificate-authority-data"] != first
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "apiserver.log",
        "kubeconfig",
        "tmpdir",
    ]
