"""The server's TLS context, reloaded in place: new handshakes get the new certificate, open
connections keep theirs, so a rotation never fails a request.

ssl only loads certificates from files, and the webhook runs with a read-only root filesystem,
so generated PEM material goes through anonymous memory files (memfd) rather than disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def _memory_file(data: bytes) -> Iterator[str]:
    """A path holding `data` that never touches the filesystem (tmpfs fallback without memfd)."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("metallb-webhook-tls", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.NamedTemporaryFile(prefix="metallb-webhook-") as fh:  # pragma: no cover
        fh.write(data)
        fh.flush()
        yield fh.name


class ServingTLS:
    def __init__(self) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.set_alpn_protocols(["http/1.1"])
        self.loaded_cert = b""

    def load_pem(self, cert: bytes, key: bytes) -> None:
        with _memory_file(cert) as cert_path, _memory_file(key) as key_path:
            self.context.load_cert_chain(cert_path, key_path)
        self.loaded_cert = cert

    def load_files(self, cert_path: Path, key_path: Path) -> bool:
        """Load from --cert-dir files; returns True when the certificate changed."""
        cert = cert_path.read_bytes()
        if cert == self.loaded_cert:
            return False
        self.context.load_cert_chain(str(cert_path), str(key_path))
        self.loaded_cert = cert
        return True

    def close(self) -> None:
        """Nothing to clean up: no file is left behind."""


CERT_DIR_POLL = 5.0  # seconds between looks at a mounted certificate directory


async def watch_cert_files(
    tls: ServingTLS, cert: Path, key: Path, stop: asyncio.Event, log: Any
) -> None:
    """Reload a mounted certificate when it changes (cert-manager, OLM or a person rotated it)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=CERT_DIR_POLL)
            return
        try:
            if tls.load_files(cert, key):
                log.info("certificateReloaded", path=str(cert))
        except (OSError, ValueError) as exc:
            log.error("certificateReloadFailed", path=str(cert), error=str(exc))
