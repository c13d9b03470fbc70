"""memberlist's payload encryption (security.go) and MetalLB's key derivation.

An encrypted payload is [version u8][nonce 12][AES-GCM ciphertext + 16-byte tag]. Version 0
pads the plaintext PKCS#7-style to the AES block size before sealing (protocol version 1 peers);
version 1 seals it as is. The key length picks AES-128/192/256. Decryption tries every key of
the keyring, the primary first, so keys can be rotated without a flag day.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION_SIZE = 1
NONCE_SIZE = 12
TAG_SIZE = 16
BLOCK_SIZE = 16
MIN_ENCRYPTION_VERSION = 0
MAX_ENCRYPTION_VERSION = 1
KEY_SIZES = (16, 24, 32)


class CryptoError(ValueError):
    """A payload no installed key opens, or a bad key or version."""


def key_from_secret(secret: str | bytes) -> bytes:
    """MetalLB's memberlist key: ``sha256.New().Sum(secret)[:32]``; b"" (no encryption) if empty.

    Go's ``Sum(b)`` appends the digest of the (empty) hash to ``b``, so the key is the secret's
    first 32 bytes, padded with the SHA-256 of nothing when the secret is shorter.
    """
    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    if not raw:
        return b""
    return (raw + hashlib.sha256(b"").digest())[:32]


def encryption_overhead(version: int) -> int:
    """Bytes encryption adds at most (memberlist's encryptOverhead), for packet budgets."""
    if version == 0:
        return VERSION_SIZE + NONCE_SIZE + BLOCK_SIZE + TAG_SIZE
    if version == 1:
        return VERSION_SIZE + NONCE_SIZE + TAG_SIZE
    raise CryptoError(f"unsupported encryption version {version}")


def encrypted_length(version: int, plain_len: int) -> int:
    """The exact encrypted size of `plain_len` bytes (memberlist's encryptedLength)."""
    if version >= 1:
        return VERSION_SIZE + NONCE_SIZE + plain_len + TAG_SIZE
    return VERSION_SIZE + NONCE_SIZE + plain_len + BLOCK_SIZE - plain_len % BLOCK_SIZE + TAG_SIZE


def _check_key(key: bytes) -> None:
    if len(key) not in KEY_SIZES:
        raise CryptoError(f"key must be 16, 24 or 32 bytes, not {len(key)}")


def encrypt_payload(
    version: int,
    key: bytes,
    plain: bytes,
    additional_data: bytes = b"",
    *,
    nonce: bytes | None = None,
) -> bytes:
    """Seal `plain` the way memberlist's encryptPayload does; `nonce` only for test vectors."""
    _check_key(key)
    if version not in (0, 1):
        raise CryptoError(f"unsupported encryption version {version}")
    if nonce is None:
        nonce = os.urandom(NONCE_SIZE)
    elif len(nonce) != NONCE_SIZE:
        raise CryptoError("nonce must be 12 bytes")
    if version == 0:
        pad = BLOCK_SIZE - len(plain) % BLOCK_SIZE
        plain = plain + bytes([pad]) * pad
    sealed = AESGCM(key).encrypt(nonce, plain, additional_data or None)
    return bytes([version]) + nonce + sealed


def decrypt_payload(keys: Iterable[bytes], payload: bytes, additional_data: bytes = b"") -> bytes:
    """Open `payload` with the first key that authenticates it, as memberlist's decryptPayload."""
    if not payload:
        raise CryptoError("empty payload")
    version = payload[0]
    if version > MAX_ENCRYPTION_VERSION:
        raise CryptoError(f"unsupported encryption version {version}")
    if len(payload) < encrypted_length(version, 0):
        raise CryptoError(f"payload too small to decrypt: {len(payload)}")
    nonce = payload[VERSION_SIZE : VERSION_SIZE + NONCE_SIZE]
    sealed = payload[VERSION_SIZE + NONCE_SIZE :]
    for key in keys:
        _check_key(key)
        try:
            plain = AESGCM(key).decrypt(nonce, sealed, additional_data or None)
        except InvalidTag:
            continue
        if version == 0:
            # Go trusts the pad byte blindly (and panics on a bad one); we refuse it.
            if not plain or not 1 <= plain[-1] <= BLOCK_SIZE or plain[-1] > len(plain):
                raise CryptoError("bad padding")
            plain = plain[: -plain[-1]]
        return plain
    raise CryptoError("no installed key could decrypt the message")


class Keyring:
    """The primary key (used to encrypt) and extra keys (also tried on decrypt)."""

    __slots__ = ("_keys",)

    def __init__(self, primary: bytes, extra: Iterable[bytes] = ()) -> None:
        keys = [bytes(primary)]
        for key in extra:
            if bytes(key) not in keys:
                keys.append(bytes(key))
        for key in keys:
            _check_key(key)
        self._keys = tuple(keys)

    @classmethod
    def from_secret(cls, secret: str | bytes) -> Keyring | None:
        """MetalLB's keyring for a memberlist secret; None when the secret is empty."""
        key = key_from_secret(secret)
        return cls(key) if key else None

    @property
    def primary(self) -> bytes:
        return self._keys[0]

    @property
    def keys(self) -> tuple[bytes, ...]:
        return self._keys

    def encrypt(
        self,
        plain: bytes,
        additional_data: bytes = b"",
        *,
        version: int = 1,
        nonce: bytes | None = None,
    ) -> bytes:
        """Seal with the primary key."""
        return encrypt_payload(version, self.primary, plain, additional_data, nonce=nonce)

    def decrypt(self, payload: bytes, additional_data: bytes = b"") -> bytes:
        """Open with any installed key."""
        return decrypt_payload(self._keys, payload, additional_data)

    def __repr__(self) -> str:  # never print key material
        return f"Keyring({len(self._keys)} keys)"
