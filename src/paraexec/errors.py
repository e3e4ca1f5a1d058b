"""The two error families of paraexec.

``InvalidTransaction`` (and its subclasses) are *expected* failures: bad input that the system
refuses with a stable numeric ``code``. Inside a block they become failure receipts; at the
mempool or API they become typed rejections. They never change state beyond the rules.

``InvariantViolation`` is a broken invariant: a bug. It is fatal and never caught by the engine.
"""

from __future__ import annotations


class ParaexecError(Exception):
    """Base of every paraexec exception."""


class InvariantViolation(ParaexecError):
    """An internal invariant does not hold. Always a bug; never swallowed."""


class ConcurrentWriter(ParaexecError):
    """Another writer committed to the store since this one's snapshot: the block being
    committed was computed on stale state, so it is refused and nothing is written. One process
    writes a store (``paraexec node`` and ``paraexec run`` lock the data directory)."""


class IncompatibleStore(ParaexecError):
    """The store holds no chain, or one whose state this version cannot continue (written with
    another state layout of its application). Nothing was changed."""


class CorruptStore(IncompatibleStore):
    """Bytes the chain stored cannot be decoded (its metadata, a block, a receipt list): the
    store was damaged outside paraexec. Nothing was changed."""


class InvalidTransaction(ParaexecError):
    """An expected failure of one transaction, with a stable code and a short name."""

    code: int = 1
    name: str = "INVALID"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.name)
        self.message = message or self.name


class MalformedTransaction(InvalidTransaction):
    code = 2
    name = "MALFORMED"


class OversizeTransaction(InvalidTransaction):
    code = 3
    name = "OVERSIZE"


class BadSignature(InvalidTransaction):
    code = 4
    name = "BAD_SIGNATURE"


class WrongChainId(InvalidTransaction):
    code = 5
    name = "WRONG_CHAIN_ID"


class ReplayedNonce(InvalidTransaction):
    """The nonce was already used by this sender."""

    code = 6
    name = "REPLAYED_NONCE"


class NonceGap(InvalidTransaction):
    """The nonce is ahead of the sender's next nonce."""

    code = 7
    name = "NONCE_GAP"


class UnknownPayloadType(InvalidTransaction):
    code = 8
    name = "UNKNOWN_PAYLOAD_TYPE"


class ValueOutOfRange(InvalidTransaction):
    """The transaction computed a value its application's records cannot hold (an integer
    beyond 64 bits in a fixed-width field): it fails, the block goes on."""

    code = 9
    name = "VALUE_OUT_OF_RANGE"


class MempoolFull(InvalidTransaction):
    """The mempool is at its size bound; retry later (HTTP 429 over the API)."""

    code = 20
    name = "MEMPOOL_FULL"


class SenderQuotaExceeded(MempoolFull):
    """This sender already holds its quota of pending transactions (HTTP 429 over the API)."""

    code = 21
    name = "SENDER_QUOTA"


class BusinessError(InvalidTransaction):
    """A well-formed, correctly signed transaction that the application's rules refuse.

    The nonce is still consumed (the transaction is included with a failure receipt), but
    every application write is rolled back.
    """

    code = 100
    name = "REJECTED"


class InsufficientBalance(BusinessError):
    code = 101
    name = "INSUFFICIENT_BALANCE"


class InvalidAmount(BusinessError):
    code = 102
    name = "INVALID_AMOUNT"


class Unauthorized(BusinessError):
    code = 103
    name = "UNAUTHORIZED"


class UndeclaredAccess(BusinessError):
    """A transaction touched a key outside its declared access list (access-list executor)."""

    code = 104
    name = "UNDECLARED_ACCESS"


#: Every stable code, for docs and for clients that map codes back to names.
ERROR_CODES: dict[int, str] = {
    cls.code: cls.name
    for cls in (
        InvalidTransaction,
        MalformedTransaction,
        OversizeTransaction,
        BadSignature,
        WrongChainId,
        ReplayedNonce,
        NonceGap,
        UnknownPayloadType,
        ValueOutOfRange,
        MempoolFull,
        SenderQuotaExceeded,
        BusinessError,
        InsufficientBalance,
        InvalidAmount,
        Unauthorized,
        UndeclaredAccess,
    )
}
