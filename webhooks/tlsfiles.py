"""The server's TLS context, reloaded in place: new handshakes get the new certificate, open
connections keep theirs, so a rotation never fails a request."""

from __future__ import annotations

import os
import ssl
import tempfile
from pathlib import Path


class ServingTLS:
    def __init__(self) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.set_alpn_protocols(["http/1.1"])
        self._dir = tempfile.TemporaryDirectory(prefix="metallb-webhook-")
        self.loaded_cert = b""

    def load_pem(self, cert: bytes, key: bytes) -> None:
        """Load PEM bytes (written to a private directory: ssl only reads files)."""
        base = Path(self._dir.name)
        cert_path, key_path = base / "tls.crt", base / "tls.key"
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        cert_path.write_bytes(cert)
        self.context.load_cert_chain(str(cert_path), str(key_path))
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
        self._dir.cleanup()
