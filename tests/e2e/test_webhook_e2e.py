"""`metallb-py apiserver` + `metallb-py webhook` + manifests/: the webhook makes its own CA and
certificate, stores them in a Secret, injects the caBundle into the ValidatingWebhookConfiguration
and the BGPPeer CRD conversion, judges requests against the objects in the API server, and rotates
a short-lived certificate while requests keep flowing without one failing."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
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
    get_json,
    metallb_cluster,
    post_review,
    start_webhook,
)
from tests.lab.webhook_reviews import admission_review, conversion_review
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


async def test_generated_certificate_secret_ca_bundle_and_decisions_from_the_api(
    tmp_path: Path,
) -> None:
    with metallb_cluster(tmp_path) as (api, hook, bundle):
        secret = get_json(api, "secret", "-n", "metallb-system", "metallb-webhook-cert")
        assert {"ca.crt", "ca.key", "tls.crt", "tls.key"} <= set(secret["data"])
        api.kubectl("apply", "-f", "-", input=POOL_YAML)
        overlapping = pool("staging", "192.0.2.128/25")
        out, _ = await post_review(
            hook.port, POOL_PATH, admission_review("CREATE", overlapping), bundle
        )
        resp = out["response"]
        assert resp["allowed"] is False
        assert (
            "overlaps with already defined CIDR '192.0.2.0/24' in pool 'production'"
            in resp["status"]["message"]
        )
        out, _ = await post_review(
            hook.port, POOL_PATH, admission_review("CREATE", pool("lab", "198.51.100.0/24")), bundle
        )
        assert out["response"]["allowed"] is True
        peer_v1 = {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "BGPPeer",
            "metadata": {"name": "tor", "namespace": "metallb-system"},
            "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "192.0.2.1"},
        }
        out, _ = await post_review(
            hook.port, "/convert", conversion_review("metallb.io/v1beta2", peer_v1), bundle
        )
        assert out["response"]["convertedObjects"][0]["spec"]["holdTime"] == "1m30s"
        # A second replica adopts the same Secret instead of minting its own CA.
        assert (
            json.loads(
                api.kubectl(
                    "get", "secret", "-n", "metallb-system", "metallb-webhook-cert", "-o", "json"
                ).stdout
            )["data"]["ca.crt"]
            == secret["data"]["ca.crt"]
        )


async def test_rotation_with_a_short_lifetime_fails_no_request(tmp_path: Path) -> None:
    with metallb_cluster(tmp_path, "--cert-lifetime", "4s") as (_api, hook, bundle):
        seen: set[bytes] = set()
        failures: list[str] = []
        done = asyncio.Event()
        three = asyncio.Event()  # set once three serving certificates were seen

        async def client(n: int) -> int:
            count = 0
            while not done.is_set():
                review = admission_review("CREATE", pool(f"p{n}-{count}", "203.0.113.0/24"))
                try:
                    out, cert = await post_review(hook.port, POOL_PATH, review, bundle)
                    if out["response"]["allowed"] is not True:
                        failures.append(json.dumps(out["response"]))
                    seen.add(cert)
                    if len(seen) >= 3:
                        three.set()
                except Exception as exc:
                    failures.append(repr(exc))
                count += 1
            return count

        start = time.monotonic()
        tasks = [asyncio.create_task(client(n)) for n in range(4)]
        # Run until three serving certificates have been seen (two rotations), at most 60 s.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(three.wait(), timeout=60)
        done.set()
        total = sum(await asyncio.gather(*tasks))
        assert failures == [], failures[:5]
        elapsed = time.monotonic() - start
        assert len(seen) >= 3, f"{len(seen)} certificate(s) in {elapsed:.0f}s\n{hook.output()}"
        assert total > 10
        assert hook.output().count("certificateRotated") >= 3


async def test_cert_dir_files_are_served_and_reloaded(tmp_path: Path) -> None:
    names = ["metallb-webhook-service.metallb-system.svc", "127.0.0.1"]
    first, _ = certs.ensure(None, names, dt.timedelta(hours=1))
    cert_dir = tmp_path / "certs"
    cert_dir.mkdir()
    (cert_dir / "tls.crt").write_bytes(first.cert)
    (cert_dir / "tls.key").write_bytes(first.key)
    with running_apiserver(workdir=tmp_path / "apiserver") as api:
        api.kubectl("apply", "-f", "-", input=NAMESPACE_YAML)
        api.kubectl("apply", "-f", str(ROOT / "manifests" / "crds"))
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
