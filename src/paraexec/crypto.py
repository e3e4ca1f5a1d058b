"""Ed25519 signatures (PyNaCl) and hashing (BLAKE2b-256).

PyNaCl releases the GIL while verifying, so signature checks of many transactions can run on
several threads at once (``verify_many``). Hashing uses hashlib's BLAKE2b, which does not release
the GIL for small inputs; hash in worker processes where it matters.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import nacl.exceptions
import nacl.signing

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64


def hash32(data: bytes) -> bytes:
    """BLAKE2b with a 32-byte digest."""
    return hashlib.blake2b(data, digest_size=32).digest()


class SigningKey:
    """An ed25519 private key; ``public_key`` is the account address."""

    def __init__(self, seed: bytes) -> None:
        self._key = nacl.signing.SigningKey(seed)
        self.public_key: bytes = bytes(self._key.verify_key)

    @classmethod
    def from_seed_text(cls, text: str) -> SigningKey:
        """A key derived deterministically from a string (dev and test accounts)."""
        return cls(hash32(text.encode()))

    def sign(self, message: bytes) -> bytes:
        """The 64-byte detached signature of ``message``."""
        return self._key.sign(message).signature


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is ``public_key``'s signature of ``message``."""
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, nacl.exceptions.TypeError):
        return False
    return True


def verify_many(items: Sequence[tuple[bytes, bytes, bytes]], threads: int = 1) -> list[bool]:
    """Verify (public_key, message, signature) triples, on ``threads`` threads when > 1."""
    if threads <= 1 or len(items) < 64:
        return [verify(*item) for item in items]
    chunk = (len(items) + threads - 1) // threads
    parts = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = pool.map(lambda part: [verify(*item) for item in part], parts)
    return [ok for part in results for ok in part]
