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
#: ``DecodeError``), ``UnicodeDecodeError`` for a string that is not UTF-8, which msgspec
#: raises as it is rather than as a ``DecodeError``, and ``RecursionError`` for arrays or maps
#: nested about a thousand deep (msgspec skips an unread value such as a ``Raw`` field
#: recursively). Describe such a failure with ``decode_failure``, never with ``str(exc)``.
DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)

#: Nesting of arrays and maps beyond which a failed decode is reported as too deep (see
#: ``decode_failure``); no consensus struct nests more than a few levels.
MAX_NESTING = 32
TOO_DEEP = f"arrays or maps nested deeper than {MAX_NESTING}"

#: Bytes after a MessagePack scalar's first byte: the whole rest of the fixed-size forms (nil,
#: booleans, floats, ints, fixext) and, for the variable ones (str, bin, ext), the length field
#: (ext: and its type byte), after which ``nesting_depth`` skips the announced length.
_FIXED_TAIL = {
    0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8,
    0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8, 0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17,
}  # fmt: skip
_LENGTH_PREFIX = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xC7: 2, 0xC8: 3, 0xC9: 5, 0xD9: 1, 0xDA: 2, 0xDB: 4}
#: every byte that cannot open an array or map (``bytes.translate`` deletes them to count the rest)
_NOT_CONTAINER_HEADERS = bytes(b for b in range(256) if not (0x80 <= b <= 0x9F or 0xDC <= b <= 0xDF))
_WIDE_CONTAINERS = {0xDC: (2, 1), 0xDD: (4, 1), 0xDE: (2, 2), 0xDF: (4, 2)}  # prefix bytes, items per entry


def nesting_depth(data: bytes, limit: int = MAX_NESTING) -> int:
    """How deep arrays and maps nest in the first MessagePack object of ``data``, counted up to
    ``limit + 1`` (the scan stops there); bytes that end early or are not MessagePack end the
    scan with the depth seen so far. An iterative scan: it cannot itself run out of stack."""
    open_items: list[int] = []  # items still to come in each open container
    deepest = 0
    at, size = 0, len(data)
    while at < size:
        first = data[at]
        at += 1
        if first <= 0x7F or first >= 0xE0:  # fixint
            items = 0
        elif first <= 0x9F:  # fixmap (0x80-0x8f) or fixarray (0x90-0x9f)
            items = (first & 0x0F) * (2 if first <= 0x8F else 1)
        elif first <= 0xBF:  # fixstr
            at += first & 0x1F
            items = 0
        elif first in _WIDE_CONTAINERS:
            width, per_entry = _WIDE_CONTAINERS[first]
            items = int.from_bytes(data[at : at + width], "big") * per_entry
            at += width
        elif first in _FIXED_TAIL:
            at += _FIXED_TAIL[first]
            items = 0
        elif first in _LENGTH_PREFIX:
            width = _LENGTH_PREFIX[first]
            length_width = width - 1 if first in (0xC7, 0xC8, 0xC9) else width  # ext: a type byte follows
            at += width + int.from_bytes(data[at : at + length_width], "big")
            items = 0
        else:  # 0xc1: never used
            return deepest
        if items:
            open_items.append(items)
            deepest = max(deepest, len(open_items))
            if deepest > limit:
                return deepest
            continue
        while open_items:  # a complete item: count it in its container, closing the finished ones
            open_items[-1] -= 1
            if open_items[-1]:
                break
            open_items.pop()
        if not open_items:
            return deepest
    return deepest


def decode_failure(data: bytes | msgspec.Raw, exc: BaseException) -> str:
    """The reason to report for bytes that failed to decode with ``exc``. A receipt carries it,
    so it must not depend on where the decode ran: ``RecursionError`` comes at a depth that
    depends on the caller's stack (a worker process, a thread, a deeper call), and a value
    nested just below that depth fails elsewhere with a schema error instead. Every failure
    of a value nested beyond ``MAX_NESTING`` is therefore reported the same way. The scan
    (pure Python, ~0.2 ms a KB) runs only for bytes holding more container headers than that
    depth needs, counted first at C speed: a long but flat malformed input costs ~1 us."""
    raw = bytes(data)
    if len(raw.translate(None, _NOT_CONTAINER_HEADERS)) <= MAX_NESTING:
        return str(exc)
    return TOO_DEEP if nesting_depth(raw) > MAX_NESTING else str(exc)


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
