"""`metallb-py webhook` with certificates from --cert-dir: served, reloaded when the files change,
no Secret written. (Generated certificates, caBundle injection and rotation under load are in
test_webhook_kubectl.py, through the API server.)"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.lab.apiserver import running_apiserver
from tests.lab.config_objects import pool
from tests.lab.netns import wait_for
from tests.lab.webhook_proc import (
    NAMESPACE_YAML,
    ROOT,
    free_port,
    post_review,
    start_webhook,
)
from tests.lab.webhook_reviews import admission_review
from webhooks import certs

POOL_PATH = "/validate-metallb-io-v1beta1-ipaddresspool"
POOL_YAML = """\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: production
  namespace: metallb-system
spec:
  addresses: [192.0.2.0/24]
"""


async def test_cert_dir_files_are_served_and_reloaded(tmp_path: Path) -> None:
    names = ["metallb-webhook-service.metallb-system.svc", "127.0.0.1"]
    first, _ = certs.ensure(None, names, dt.timedelta(hours=1))
    cert_dir = tmp_path / "certs"
    cert_dir.mkdir()
    (cert_dir / "tls.crt").write_bytes(first.cert)
    (cert_dir / "tls.key").write_bytes(first.key)
    with running_apiserver(workdir=tmp_path / "apiserver") as api:
        api.kubectl("apply", "-f", "-", input=NAMESPACE_YAML)
        api.kubectl("apply", "-k", str(ROOT / "manifests" / "crds"))
        port = free_port()
        hook = start_webhook(api, port, "--cert-dir", str(cert_dir))
        try:
            review = admission_review("CREATE", pool("p", "192.0.2.0/24"))

            async def served() -> bytes:
                _, cert = await post_review(port, POOL_PATH, review, first.ca_bundle)
                return cert

            async def poll(want: bytes) -> None:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        if await served() == want:
                            return
                    except OSError:
                        pass
                    assert time.monotonic() < deadline, hook.output()
                    await asyncio.sleep(0.2)

            def der(pem: bytes) -> bytes:
                return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)

            await poll(der(first.cert))
            # No Secret is created in --cert-dir mode.
            out = api.kubectl(
                "get", "secret", "-n", "metallb-system", "metallb-webhook-cert", check=False
            )
            assert out.returncode != 0
            # Renewed under the same CA (the caBundle of a --cert-dir setup is managed outside).
            renewed = certs.issue(first.ca_cert, first.ca_key, names, dt.timedelta(hours=2))
            (cert_dir / "tls.key").write_bytes(renewed[1])
            (cert_dir / "tls.crt").write_bytes(renewed[0])
            await poll(der(renewed[0]))
            wait_for(lambda: "certificateReloaded" in hook.output(), 10, what="reload logged")
        finally:
            hook.stop()
