"""Canonical, deterministic encoding (msgspec MessagePack).

Consensus bytes (transactions, blocks, receipts, state values) are encoded with one encoder
whose map order is deterministic, so the same object gives the same bytes on every machine.
Structs are encoded as arrays (``array_like=True`` on the consensus structs) to keep them compact.

Integer state values (balances, counters written with ``TxContext.add``) use ``encode_int`` /
``decode_int``: MessagePack's integer encoding, which is canonical (shortest form) and signed,
for every value it can hold (-2**63 .. 2**64 - 1); a value outside that range is a MessagePack
extension (type ``BIG_INT_EXT``: the minimal signed big-endian bytes). State integers are thus
unbounded: no sum of deltas or balance can overflow the encoding and fail a block.
"""

from __future__ import annotations

import binascii
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")

_encoder = msgspec.msgpack.Encoder(order="deterministic")
_int_decoder = msgspec.msgpack.Decoder(int)
_ext_decoder = msgspec.msgpack.Decoder(msgspec.msgpack.Ext)

#: What decoding untrusted bytes can raise: msgspec's errors (``ValidationError`` is a
#: ``DecodeError``), and ``UnicodeDecodeError`` for a string that is not UTF-8, which msgspec
#: raises as it is rather than as a ``DecodeError``.
DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError)

#: MessagePack extension type of an integer state value outside MessagePack's integer range.
BIG_INT_EXT = 1
_MSGPACK_INTS = range(-(2**63), 2**64)


def encode(obj: Any) -> bytes:
    """Canonical bytes of ``obj``."""
    return _encoder.encode(obj)


def decode(data: bytes, typ: type[T]) -> T:
    """Decode ``data`` as ``typ``; raises ``msgspec.DecodeError`` / ``ValidationError``."""
    return msgspec.msgpack.decode(data, type=typ)


def encode_int(value: int) -> bytes:
    """Canonical bytes of a signed integer state value (MessagePack int, or ``BIG_INT_EXT``
    outside its range: see module docstring)."""
    try:
        return _encoder.encode(value)
    except OverflowError:
        magnitude = value if value >= 0 else ~value  # -2**71 fits 9 bytes, as 2**71 - 1 does
        size = (magnitude.bit_length() + 8) // 8  # room for the sign bit: the fewest bytes
        return _encoder.encode(msgspec.msgpack.Ext(BIG_INT_EXT, value.to_bytes(size, "big", signed=True)))


def decode_int(data: bytes | None) -> int:
    """Inverse of ``encode_int``; a missing value (``None``) reads as 0."""
    if data is None:
        return 0
    try:
        return _int_decoder.decode(data)
    except msgspec.ValidationError:  # not a MessagePack int: a big one, or not an integer at all
        ext = _ext_decoder.decode(data)
        value = int.from_bytes(ext.data, "big", signed=True) if ext.code == BIG_INT_EXT else None
        if value is None or value in _MSGPACK_INTS or encode_int(value) != data:
            raise msgspec.ValidationError(f"not a canonical integer state value: {data[:16].hex()}") from None
        return value


def from_hex(text: str) -> bytes:
    """Bytes from user-given hex (an optional ``0x`` prefix): digits only. ``bytes.fromhex``
    skips whitespace, so ``" ab"`` and ``"ab"`` would both be accepted for one key; this refuses
    anything but hex digits with ``ValueError``."""
    return binascii.unhexlify(text[2:] if text.startswith(("0x", "0X")) else text)
