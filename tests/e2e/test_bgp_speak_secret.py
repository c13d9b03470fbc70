"""`python -m bgp speak` sessions with a TCP MD5 key (issue 16, item 13): the key given by
--password-file or $BGP_PASSWORD never appears in the process list, and whichever way it is given
it never appears in any output, against a local listener or when the flags are wrong."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECRET = "S3cr3t-md5-key-4242"


def test_bgp_speak_password_file_keeps_the_key_out_of_ps_and_logs(tmp_path: Path) -> None:
    """A session against a local listener (which has no key, so the handshake never completes):
    the key is in neither the command line nor any output, whichever way it was given."""
    key_file = tmp_path / "md5.key"
    key_file.write_text(SECRET + "\n")
    key_file.chmod(0o600)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    base = [
        sys.executable,
        "-m",
        "bgp",
        "speak",
        "--local-as",
        "64512",
        "--router-id",
        "127.0.0.1",
        "--peer",
        f"64500@127.0.0.1:{port}",
        "--announce",
        "198.51.100.0/24",
    ]
    runs = [
        ([*base, "--password-file", str(key_file)], {}),
        (base, {"BGP_PASSWORD": SECRET}),
        ([*base, "--password", SECRET, "--log-level", "debug"], {}),
    ]
    try:
        for argv, env in runs:
            proc = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=ROOT,
                env={**os.environ, **env},
            )
            time.sleep(1.5)
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=20)
            assert proc.returncode == 0, err.decode()
            if "--password" not in argv:
                assert SECRET.encode() not in cmdline
            assert out or err  # it did log something
            assert SECRET.encode() not in out + err
    finally:
        listener.close()


def test_bgp_speak_password_file_errors_name_the_file_not_the_key(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "bgp", "speak", "--local-as", "1", "--peer", "2@192.0.2.1"]
    long_key = tmp_path / "long"
    long_key.write_text(SECRET * 10)
    for extra, why in (
        (["--password-file", str(tmp_path / "missing")], "missing"),
        (["--password-file", str(long_key)], "longer than 80 bytes"),
        (["--password-file", str(long_key), "--password", "x"], "not allowed with"),
    ):
        got = subprocess.run(cmd + extra, capture_output=True, text=True, cwd=ROOT, timeout=30)
        assert got.returncode == 2 and why in got.stderr and SECRET not in got.stderr
