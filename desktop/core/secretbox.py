"""Authenticated encryption of small values (job secrets, and any other column a store module
wants sealed): AES-256-GCM from ``cryptography``.

Why AES-GCM and not Fernet: both are authenticated, but GCM takes associated data, so a sealed
value is bound to where it belongs (``context``, e.g. "job-secret:12:DB_PASSWORD"): a row copied
onto another job or another name no longer decrypts.

A sealed value is text, portable to every database: ``v1:<key id>:<base64 nonce+ciphertext>``.
The key id (a hash of the key, never the key) says which key sealed it, so rotation knows what
is left to do and a wrong key gives a clear message instead of garbage.

Pure: no I/O.  The key is kept by desktop/store/secretkey.py.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
PREFIX = "v1"


class SecretKeyError(Exception):
    """A sealed value cannot be opened: no key, the wrong key, or damaged text.  The message
    names key ids and contexts, never a value."""


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def key_id(key: bytes) -> str:
    """A short public name for a key (safe to log and store next to what it sealed)."""
    return hashlib.sha256(b"job-trigger key id\x00" + key).hexdigest()[:16]


def sealed_key_id(token: str) -> str:
    """Which key sealed TOKEN ('' when it is not a sealed value)."""
    parts = token.split(":", 2)
    return parts[1] if len(parts) == 3 and parts[0] == PREFIX else ""


class SecretBox:
    """Seals with its first key; opens with any key it holds (the others are old keys kept
    during a rotation)."""

    def __init__(self, keys: Iterable[bytes]) -> None:
        self.keys = [bytes(k) for k in keys]
        if not self.keys or any(len(k) != KEY_BYTES for k in self.keys):
            raise SecretKeyError(f"a secrets key must be {KEY_BYTES} bytes")
        self._by_id = {key_id(k): AESGCM(k) for k in self.keys}

    @property
    def key_id(self) -> str:
        return key_id(self.keys[0])

    def key_ids(self) -> list[str]:
        return [key_id(k) for k in self.keys]

    def seal(self, value: str, context: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        data = AESGCM(self.keys[0]).encrypt(nonce, value.encode("utf-8"), context.encode())
        return f"{PREFIX}:{self.key_id}:{base64.b64encode(nonce + data).decode('ascii')}"

    def open(self, token: str, context: str) -> str:
        kid = sealed_key_id(token)
        if not kid:
            raise SecretKeyError(f"{context}: not a sealed value (damaged?)")
        aead = self._by_id.get(kid)
        if aead is None:
            raise SecretKeyError(
                f"{context}: sealed with key {kid}, but the key available is "
                f"{', '.join(self.key_ids())}; restore the right key (README, 'Secrets')"
            )
        try:
            raw = base64.b64decode(token.split(":", 2)[2], validate=True)
            plain = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode())
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise SecretKeyError(f"{context}: the sealed value does not open (damaged)") from exc
        return plain.decode("utf-8")
