"""Generated certificates: valid for the service, verified by a real TLS client, renewed before
expiry with the CA kept (so the caBundle does not change), CA rollover bundling old and new."""

from __future__ import annotations

import datetime as dt
import ssl

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from webhooks import certs

NAMES = ["metallb-webhook-service.metallb-system.svc", "127.0.0.1"]
YEAR = dt.timedelta(days=365)


def test_fresh_bundle_is_a_ca_and_a_serving_cert_for_the_service() -> None:
    bundle, changed = certs.ensure(None, NAMES, YEAR)
    assert changed
    ca, cert = bundle.ca(), bundle.serving_cert()
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.issuer == ca.subject
    assert sorted(bundle.dns_names()) == sorted(NAMES)
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc) <= YEAR + dt.timedelta(minutes=6)
    # A TLS client trusting the bundle accepts the chain for the service name.
    client = ssl.create_default_context(cadata=bundle.ca_bundle.decode())
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "c").write_bytes(bundle.cert)
        (Path(d) / "k").write_bytes(bundle.key)
        server.load_cert_chain(str(Path(d) / "c"), str(Path(d) / "k"))
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    cli = client.wrap_bio(c_in, c_out, server_hostname=NAMES[0])
    srv = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (cli, srv):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    assert cli.version() is not None  # handshake completed and verified


def test_unchanged_until_a_fifth_is_left_then_renewed_with_the_same_ca() -> None:
    now = dt.datetime.now(dt.UTC)
    life = dt.timedelta(seconds=100)
    bundle, _ = certs.ensure(None, NAMES, life, now)
    same, changed = certs.ensure(bundle, NAMES, life, now + dt.timedelta(seconds=70))
    assert not changed and same is bundle
    renewed, changed = certs.ensure(bundle, NAMES, life, now + dt.timedelta(seconds=85))
    assert changed and renewed.cert != bundle.cert
    assert renewed.ca_cert == bundle.ca_cert and renewed.ca_bundle == bundle.ca_bundle


def test_new_names_reissue() -> None:
    bundle, _ = certs.ensure(None, NAMES, YEAR)
    other, changed = certs.ensure(bundle, [*NAMES, "extra.example"], YEAR)
    assert changed and "extra.example" in other.dns_names()


def test_ca_rollover_keeps_the_old_ca_trusted_until_it_expires() -> None:
    now = dt.datetime.now(dt.UTC)
    life = dt.timedelta(seconds=10)  # CA lives 100 s
    bundle, _ = certs.ensure(None, NAMES, life, now)
    rolled, changed = certs.ensure(bundle, NAMES, life, now + dt.timedelta(seconds=85))
    assert changed and rolled.ca_cert != bundle.ca_cert
    cas = x509.load_pem_x509_certificates(rolled.ca_bundle)
    assert [c.public_bytes(ssl_encoding()) for c in cas][1] == bundle.ca_cert
    later, _ = certs.ensure(rolled, NAMES, life, now + dt.timedelta(seconds=150))
    assert len(x509.load_pem_x509_certificates(later.ca_bundle)) == 1


def ssl_encoding() -> Encoding:
    return Encoding.PEM


def test_secret_round_trip_and_garbage() -> None:
    bundle, _ = certs.ensure(None, NAMES, YEAR)
    assert certs.Bundle.from_secret_data(bundle.to_secret_data()) == bundle
    assert certs.Bundle.from_secret_data({"tls.crt": b"junk"}) is None
    assert certs.Bundle.from_secret_data({k: b"junk" for k in bundle.to_secret_data()}) is None
