"""`metallb-py webhook` usage errors: one line on stderr, exit 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metallb_py", "webhook", "--metrics-port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--cert-lifetime", "forever"], "--cert-lifetime"),
        (["--kubeconfig", "/nonexistent/kubeconfig"], "does not exist"),
    ],
)
def test_usage_errors(args: list[str], needle: str) -> None:
    out = run(*args)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and needle in out.stderr
    assert "Traceback" not in out.stderr


def test_cert_dir_without_files(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
        "current-context: x\n"
    )
    env = {**os.environ, "KUBECONFIG": ""}
    out = run("--kubeconfig", str(kubeconfig), "--cert-dir", str(tmp_path / "none"), env=env)
    assert out.returncode == 2 and "cannot load" in out.stderr and "Traceback" not in out.stderr
