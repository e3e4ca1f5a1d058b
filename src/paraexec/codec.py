"""Canonical, deterministic encoding (msgspec MessagePack).

Consensus bytes (transactions, blocks, receipts, state values) are encoded with one encoder
whose map order is deterministic, so the same object gives the same bytes on every machine.
Structs are encoded as arrays (``array_like=True`` on the consensus structs) to keep them compact.

Integer state values (balances, counters written with ``TxContext.add``) use ``encode_int`` /
``decode_int``: MessagePack's integer encoding, which is canonical (shortest form) and signed.
"""

from __future__ import annotations

import binascii
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")

_encoder = msgspec.msgpack.Encoder(order="deterministic")
_int_decoder = msgspec.msgpack.Decoder(int)


def encode(obj: Any) -> bytes:
    """Canonical bytes of ``obj``."""
    return _encoder.encode(obj)


def decode(data: bytes, typ: type[T]) -> T:
    """Decode ``data`` as ``typ``; raises ``msgspec.DecodeError`` / ``ValidationError``."""
    return msgspec.msgpack.decode(data, type=typ)


def encode_int(value: int) -> bytes:
    """Canonical bytes of a signed integer state value (MessagePack int)."""
    return _encoder.encode(value)


def decode_int(data: bytes | None) -> int:
    """Inverse of ``encode_int``; a missing value (``None``) reads as 0."""
    if data is None:
        return 0
    return _int_decoder.decode(data)


def from_hex(text: str) -> bytes:
    """Bytes from user-given hex (an optional ``0x`` prefix): digits only. ``bytes.fromhex``
    skips whitespace, so ``" ab"`` and ``"ab"`` would both be accepted for one key; this refuses
    anything but hex digits with ``ValueError``."""
    return binascii.unhexlify(text[2:] if text.startswith(("0x", "0X")) else text)
