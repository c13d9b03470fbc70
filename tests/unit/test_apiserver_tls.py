"""When the API server reuses its stored serving certificate and when it issues a new one, and
how its key files are written."""

from __future__ import annotations

import os
import ssl
import stat
import tempfile
from pathlib import Path

import pytest
from cryptography import x509

from metallb_py.apiserver import tls
from metallb_py.apiserver.main import default_cert_dir, serving_hosts

HOSTS = ["198.51.100.10", "127.0.0.1", "localhost"]


def test_the_ca_signs_leaves_only_and_names_its_key() -> None:
    cert = x509.load_pem_x509_certificate(tls.make_ca().cert)
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert basic.ca and basic.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    assert cert.subject == cert.issuer


def test_a_fresh_certificate_is_reused() -> None:
    ca = tls.make_ca()
    assert tls.serving_cert_usable(tls.serving_cert(ca, HOSTS), ca, HOSTS)
    # IPv6 written another way is the same address
    v6 = tls.serving_cert(ca, ["2001:db8::1"])
    assert tls.serving_cert_usable(v6, ca, ["2001:0db8:0:0::1"])


def test_a_missing_name_another_ca_or_near_expiry_means_a_new_one() -> None:
    ca = tls.make_ca()
    pem = tls.serving_cert(ca, HOSTS)
    assert not tls.serving_cert_usable(pem, ca, [*HOSTS, "203.0.113.7"])
    assert not tls.serving_cert_usable(pem, tls.make_ca(), HOSTS)
    days = tls.RENEW_BEFORE.days
    short = tls._issue(ca, tls._name("x"), server=True, hosts=HOSTS, days=days - 1)
    assert not tls.serving_cert_usable(short, ca, HOSTS)
    longer = tls._issue(ca, tls._name("x"), server=True, hosts=HOSTS, days=days + 2)
    assert tls.serving_cert_usable(longer, ca, HOSTS)
    other_key = tls.Pem(pem.cert, tls.serving_cert(ca, HOSTS).key)
    assert not tls.serving_cert_usable(other_key, ca, HOSTS)


def test_pairs_are_written_private_and_read_back(tmp_path: Path) -> None:
    ca = tls.make_ca()
    target = tmp_path / "pki"
    tls.write_pair(str(target), "ca", ca)
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert stat.S_IMODE((target / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((target / "ca.crt").stat().st_mode) == 0o644
    assert tls.read_pair(str(target), "ca") == ca
    assert tls.read_pair(str(target), "apiserver") is None
    assert sorted(os.listdir(target)) == ["ca.crt", "ca.key"]


def test_temporary_pair_files_are_gone_afterwards(tmp_path: Path) -> None:
    """On Linux the pair lives in memory files only; nothing is written to the temporary
    folder, and the descriptors are closed afterwards."""
    pem = tls.serving_cert(tls.make_ca(), HOSTS)
    before = set(os.listdir(tempfile.gettempdir()))
    with tls.pair_files(pem) as (cert, key):
        assert key.startswith("/proc/self/fd/") and cert.startswith("/proc/self/fd/")
        with open(key, "rb") as f:
            assert f.read() == pem.key
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
        assert set(os.listdir(tempfile.gettempdir())) - before == set()
    assert not os.path.exists(key) and not os.path.exists(cert)
    assert pem.key.decode() not in repr(pem)


def test_without_memfd_a_private_directory_is_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    pem = tls.serving_cert(tls.make_ca(), HOSTS)
    monkeypatch.delattr(os, "memfd_create")
    with tls.pair_files(pem) as (cert, key):
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
        folder = os.path.dirname(key)
    assert not os.path.exists(folder) and not os.path.exists(cert)


def test_names_and_places() -> None:
    assert default_cert_dir("/var/lib/metallb-py/state.db") == "/var/lib/metallb-py/state-pki"
    assert default_cert_dir("state") == "state-pki"
    hosts = serving_hosts("198.51.100.10", ["lb.example"])
    assert hosts[0] == "198.51.100.10" and "lb.example" in hosts and "::1" in hosts
    assert len(hosts) == len(set(hosts))
    wildcard = serving_hosts("0.0.0.0", [])
    assert "0.0.0.0" not in wildcard and "127.0.0.1" in wildcard
