"""Issue 16, item 14: every TLS start once left an `mlb-apiserver-*` directory holding the serving
key in the temporary folder. Two starts with an in-memory CA and two with --data: afterwards no
such directory exists and the only private keys on disk are in the PKI directory."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_apiserver_default_tls import apiserver_process, kubectl


def private_keys(top: Path) -> set[Path]:
    return {
        p for p in top.rglob("*") if p.is_file() and b"PRIVATE KEY-----" in p.read_bytes()[:4096]
    }


def test_two_starts_leave_no_key_outside_the_pki_directory(tmp_path: Path) -> None:
    data = tmp_path / "state.db"
    for i, flags in enumerate(
        [
            ("--listen", "127.0.0.1:0"),
            ("--listen", "127.0.0.1:0"),
            ("--listen", "127.0.0.1:0", "--data", str(data)),
            ("--listen", "127.0.0.1:0", "--data", str(data)),
        ]
    ):
        run = tmp_path / f"run{i}"
        with apiserver_process(run, *flags) as (kc, _):
            assert "namespace/default" in kubectl(kc, "get", "ns", "-o", "name").split()
            # While it serves, too: the key was loaded from memory, not from a temporary file.
            assert list((run / "tmpdir").iterdir()) == []
        assert list((run / "tmpdir").iterdir()) == []
    assert not [p for p in tmp_path.rglob("mlb-apiserver-*")]
    pki = tmp_path / "state-pki"
    assert private_keys(tmp_path) == {pki / "ca.key", pki / "apiserver.key"}
