"""Keep the webhook's certificate valid: one Secret shared by every replica, renewal before
expiry, and the caBundle of the webhook configuration and converted CRDs kept current."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from metallb_py.kube.rest import ApiError, Rest
from webhooks import certs, kubeio, metrics
from webhooks.tlsfiles import ServingTLS

MAX_CHECK_INTERVAL = 3600.0


def service_names(service: str, namespace: str, extra: list[str]) -> list[str]:
    base = [
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
        f"{service}.{namespace}",
        service,
    ]
    return list(dict.fromkeys(base + list(extra)))


@dataclass(eq=False)
class CertManager:
    """Owns the webhook's serving certificate: `first_sync` before serving, then `run`."""

    rest: Rest
    namespace: str
    secret: str
    names: list[str]
    lifetime: dt.timedelta
    tls: ServingTLS
    configuration: str
    crds: tuple[str, ...]
    log: Any
    bundle: certs.Bundle | None = field(default=None, init=False)
    rotations: int = field(default=0, init=False)

    @property
    def check_interval(self) -> float:
        return max(
            0.5, min(self.lifetime.total_seconds() * certs.RENEW_FRACTION / 4, MAX_CHECK_INTERVAL)
        )

    async def sync(self) -> None:
        """One pass: adopt or renew the Secret's bundle, serve it, inject the CA bundle."""
        for _ in range(5):
            existing, data = await kubeio.read_secret(self.rest, self.namespace, self.secret)
            stored = certs.Bundle.from_secret_data(data) if data else None
            bundle, changed = await asyncio.to_thread(
                certs.ensure, stored, self.names, self.lifetime
            )
            if changed:
                try:
                    await kubeio.write_secret(
                        self.rest, self.namespace, self.secret, existing, bundle.to_secret_data()
                    )
                except ApiError as exc:
                    if exc.conflict:  # another replica renewed first: adopt theirs
                        continue
                    raise
                self.log.info(
                    "certificateRotated",
                    secret=self.secret,
                    notAfter=bundle.serving_cert().not_valid_after_utc.isoformat(),
                )
                self.rotations += 1
                metrics.certificate_rotations_total.inc()
            break
        else:
            raise RuntimeError(f"could not update Secret {self.secret}: kept conflicting")
        # Publish the CA bundle before serving a certificate it must vouch for.
        updated = await kubeio.inject_ca_bundle(
            self.rest, self.configuration, self.crds, bundle.ca_bundle
        )
        for what in updated:
            self.log.info("caBundleInjected", object=what)
        if bundle.cert != self.tls.loaded_cert:
            self.tls.load_pem(bundle.cert, bundle.key)
            expiry = bundle.serving_cert().not_valid_after_utc.timestamp()
            metrics.certificate_not_after.set(expiry)
        self.bundle = bundle

    async def first_sync(self, stop: asyncio.Event, max_delay: float = 30.0) -> bool:
        """Retry `sync` with backoff until a certificate is in place; False when stopped first
        (the API server may not be reachable yet when the process starts)."""
        delay = 0.5
        while True:
            try:
                await self.sync()
                return True
            except Exception as exc:
                self.log.error("certificateSyncFailed", error=str(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                if stop.is_set():
                    return False
                delay = min(delay * 2, max_delay)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.check_interval)
                return
            except TimeoutError:
                pass
            try:
                await self.sync()
            except Exception as exc:  # keep serving the current certificate; retry next time
                self.log.error("certificateSyncFailed", error=str(exc))
