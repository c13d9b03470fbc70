"""A self-managed CA and serving certificate for the webhook (the `cryptography` package; stdlib
ssl cannot create certificates).

The CA outlives many serving certificates, so renewing the serving certificate never changes the
caBundle. When the CA itself is renewed, the bundle carries the old and the new CA until the old
one expires, so a client holding either keeps working.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from metallb_py.pki import ca_certificate, key_pem, new_key

CA_NAME = "cert"
ORGANIZATION = "metallb"
RENEW_FRACTION = 0.2  # renew when less than a fifth of the lifetime is left
CA_LIFETIME_FACTOR = 10


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _backdate(lifetime: dt.timedelta) -> dt.timedelta:
    """Tolerate clock skew between us and the API server, without eating a short lifetime."""
    return min(dt.timedelta(minutes=5), lifetime / 20)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


@dataclass(frozen=True)
class Bundle:
    """PEM material as stored in the Secret (`ca.crt`, `ca.key`, `tls.crt`, `tls.key`) plus
    `ca-bundle.crt`, the CAs clients must trust (the current one first)."""

    ca_cert: bytes
    ca_key: bytes
    cert: bytes
    key: bytes
    ca_bundle: bytes

    def to_secret_data(self) -> dict[str, bytes]:
        return {
            "ca.crt": self.ca_cert,
            "ca.key": self.ca_key,
            "tls.crt": self.cert,
            "tls.key": self.key,
            "ca-bundle.crt": self.ca_bundle,
        }

    @classmethod
    def from_secret_data(cls, data: dict[str, bytes]) -> Bundle | None:
        try:
            bundle = cls(
                data["ca.crt"],
                data["ca.key"],
                data["tls.crt"],
                data["tls.key"],
                data.get("ca-bundle.crt") or data["ca.crt"],
            )
            bundle.serving_cert()
            bundle.ca()
        except (KeyError, ValueError):
            return None
        return bundle

    def serving_cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert)

    def ca(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.ca_cert)

    def dns_names(self) -> list[str]:
        ext = self.serving_cert().extensions.get_extension_for_class(x509.SubjectAlternativeName)
        ips = [str(ip) for ip in ext.value.get_values_for_type(x509.IPAddress)]
        return list(ext.value.get_values_for_type(x509.DNSName)) + ips


def new_ca(lifetime: dt.timedelta, now: dt.datetime | None = None) -> tuple[bytes, bytes]:
    now = now or _now()
    key = new_key()
    cert = ca_certificate(key, _name(CA_NAME), now - _backdate(lifetime), now + lifetime)
    return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)


def issue(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    dns_names: list[str],
    lifetime: dt.timedelta,
    now: dt.datetime | None = None,
) -> tuple[bytes, bytes]:
    """A serving certificate for `dns_names` (the first is the CN), signed by the CA."""
    now = now or _now()
    ca = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = new_key()
    not_after = min(now + lifetime, ca.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(dns_names[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _backdate(lifetime))
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in dns_names]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _remaining_fraction(cert: x509.Certificate, now: dt.datetime) -> float:
    total = (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds()
    left = (cert.not_valid_after_utc - now).total_seconds()
    return left / total if total > 0 else 0.0


def _live_cas(bundle_pem: bytes, now: dt.datetime) -> list[bytes]:
    out = []
    for cert in x509.load_pem_x509_certificates(bundle_pem) if bundle_pem.strip() else []:
        if cert.not_valid_after_utc > now:
            out.append(cert.public_bytes(serialization.Encoding.PEM))
    return out


def ensure(
    current: Bundle | None,
    dns_names: list[str],
    lifetime: dt.timedelta,
    now: dt.datetime | None = None,
) -> tuple[Bundle, bool]:
    """The bundle to serve, renewed if needed; returns (bundle, changed)."""
    now = now or _now()
    ca_lifetime = lifetime * CA_LIFETIME_FACTOR
    if current is None:
        ca_cert, ca_key = new_ca(ca_lifetime, now)
        cert, key = issue(ca_cert, ca_key, dns_names, lifetime, now)
        return Bundle(ca_cert, ca_key, cert, key, ca_cert), True
    ca_cert, ca_key, bundle_pem = current.ca_cert, current.ca_key, current.ca_bundle
    ca_changed = False
    if _remaining_fraction(current.ca(), now) < RENEW_FRACTION:
        ca_cert, ca_key = new_ca(ca_lifetime, now)
        ca_changed = True
    serving = current.serving_cert()
    stale = (
        ca_changed
        or _remaining_fraction(serving, now) < RENEW_FRACTION
        or sorted(current.dns_names()) != sorted(dns_names)
    )
    live = _live_cas(bundle_pem, now)
    wanted_bundle = b"".join(dict.fromkeys([ca_cert, *live]))
    if not stale and wanted_bundle == bundle_pem:
        return current, False
    cert, key = (
        issue(ca_cert, ca_key, dns_names, lifetime, now) if stale else (current.cert, current.key)
    )
    return Bundle(ca_cert, ca_key, cert, key, wanted_bundle), True
