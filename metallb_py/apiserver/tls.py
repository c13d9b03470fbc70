"""The server's own CA, serving certificate and admin client certificate.

Generated with `cryptography` the first time, then kept as PEM files in the certificate directory
(beside `--data`, or `--cert-dir`) so a restart serves the same CA and every kubeconfig written
before keeps working. Without a directory they live in memory only: a private temporary file
exists just long enough for `ssl` to load the key, which it can only read from a path.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from metallb_py.pki import ca_certificate, key_pem, new_key


@dataclass
class Pem:
    cert: bytes
    key: bytes = field(repr=False)  # a private key never shows in a repr or traceback


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def make_ca(days: int = 3650) -> Pem:
    key = new_key()
    now = datetime.datetime.now(datetime.UTC)
    name = _name("metallb-py-apiserver-ca")
    not_before = now - datetime.timedelta(minutes=5)
    cert = ca_certificate(key, name, not_before, now + datetime.timedelta(days=days))
    return Pem(cert.public_bytes(serialization.Encoding.PEM), key_pem(key))


def _issue(ca: Pem, subject: x509.Name, *, server: bool, hosts: list[str], days: int = 825) -> Pem:
    ca_cert = x509.load_pem_x509_certificate(ca.cert)
    ca_key = serialization.load_pem_private_key(ca.key, None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = new_key()
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    if hosts:
        sans: list[x509.GeneralName] = []
        for h in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return Pem(cert.public_bytes(serialization.Encoding.PEM), key_pem(key))


# Reissue the stored serving certificate when less than this much of its life is left.
RENEW_BEFORE = datetime.timedelta(days=30)


def serving_cert(ca: Pem, hosts: list[str]) -> Pem:
    return _issue(ca, _name("metallb-py-apiserver"), server=True, hosts=hosts)


def client_cert(ca: Pem, user: str, groups: list[str]) -> Pem:
    org = groups[0] if groups else None
    return _issue(ca, _name(user, org), server=False, hosts=[])


def cert_hosts(pem: bytes) -> list[str]:
    cert = x509.load_pem_x509_certificate(pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in san.get_values_for_type(x509.IPAddress)] + list(
        san.get_values_for_type(x509.DNSName)
    )


def serving_cert_usable(pem: Pem, ca: Pem, hosts: list[str]) -> bool:
    """A stored serving certificate may be reused: issued by `ca`, naming every host we serve
    under, and not within RENEW_BEFORE of expiry."""
    try:
        cert = x509.load_pem_x509_certificate(pem.cert)
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert))
        key = serialization.load_pem_private_key(pem.key, None)
    except (ValueError, TypeError, InvalidSignature):
        return False
    if key.public_key() != cert.public_key():
        return False
    now = datetime.datetime.now(datetime.UTC)
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return False
    named = {_norm(h) for h in cert_hosts(pem.cert)}
    return all(_norm(h) in named for h in hosts)


def _norm(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


def check_pair(pem: Pem) -> None:
    """Raise ValueError unless the key belongs to the certificate (a hand-edited directory)."""
    cert = x509.load_pem_x509_certificate(pem.cert)
    key = serialization.load_pem_private_key(pem.key, None)
    if key.public_key() != cert.public_key():
        raise ValueError("the key does not match the certificate")


def read_pair(directory: str, name: str) -> Pem | None:
    """`NAME.crt` and `NAME.key` from `directory`, or None when either is missing."""
    try:
        with open(os.path.join(directory, f"{name}.crt"), "rb") as c:
            cert = c.read()
        with open(os.path.join(directory, f"{name}.key"), "rb") as k:
            key = k.read()
    except FileNotFoundError:
        return None
    return Pem(cert, key)


def _write_private(path: str, data: bytes, mode: int) -> None:
    """Write atomically with `mode` from the first byte: the key is never readable by others,
    not even between create and chmod."""
    tmp = f"{path}.tmp{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_pair(directory: str, name: str, pem: Pem) -> None:
    """Store `NAME.crt` (0644) and `NAME.key` (0600) in `directory` (created 0700)."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    _write_private(os.path.join(directory, f"{name}.key"), pem.key, 0o600)
    _write_private(os.path.join(directory, f"{name}.crt"), pem.cert, 0o644)


@contextlib.contextmanager
def pair_files(pem: Pem) -> Iterator[tuple[str, str]]:
    """(cert path, key path) for `SSLContext.load_cert_chain` when the pair has no home on disk.

    On Linux they are anonymous memory files (memfd) named through /proc/self/fd: the key never
    touches a file system, so not even a `kill -9` during the load can leave it behind. Elsewhere
    a private temporary directory, removed on exit."""
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fds: list[int] = []
        try:
            for data in (pem.cert, pem.key):
                fd = os.memfd_create("mlb-apiserver-tls", os.MFD_CLOEXEC)
                fds.append(fd)
                os.write(fd, data)
            yield f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}"
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="mlb-apiserver-tls-") as tmp:
        write_pair(tmp, "tls", pem)
        yield os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
