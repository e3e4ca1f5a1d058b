"""The signed transaction envelope.

Wire form: ``SignedTransaction(body, signature)`` where ``body`` is the canonical encoding of
``Transaction(chain_id, sender, nonce, payload)`` and ``signature`` is the sender's ed25519
signature over ``SIGN_DOMAIN + body``. Signing the body bytes as sent (not a re-encoding)
means verification never depends on an encoder's behaviour.

``payload`` is itself canonical bytes of ``Payload(type, body)``: the application owns the
payload types and decodes ``body`` with the struct registered under ``type``.

Stateless checks live here (``decode_signed``): size, shape, signature, chain id. The stateful
nonce rule lives in the runtime, because it reads state. Only canonical bytes are valid: no
struct of a transaction takes trailing fields (``forbid_unknown_fields``; msgspec would ignore
them), and the envelope must be exactly the bytes ``sign`` writes. The transaction id hashes the
wire bytes while the signature covers only ``body``, so anyone relaying a valid transaction could
otherwise pad or re-encode its envelope (wider msgpack formats for the same values), and the same
transaction would be included under an id its sender never saw.

Declared access lists (Solana Sealevel / Sui style): a transaction may carry an optional fifth
field, ``access = AccessList(reads, writes)``, the state keys it may read and write. It is part
of the signed body, so nobody but the sender can widen or narrow it. The runtime enforces it
(``runtime.AccessGuard``): touching any other key fails the transaction with
``UNDECLARED_ACCESS``, in every executor, so schedulers may trust it. A written key may also be
read; the sender's nonce key is declared implicitly. Each declared key must be a possible state
key, 1 to ``MAX_KEY_BYTES`` bytes, or the transaction is malformed: schedulers read declared
keys from the store before the block runs, and LMDB refuses an empty or over-long key. A
transaction without the field is unrestricted, and its wire bytes are exactly those of the
four-field envelope (old transactions and their hashes do not change).
"""

from __future__ import annotations

import msgspec

from . import codec, crypto
from .errors import BadSignature, MalformedTransaction, OversizeTransaction, WrongChainId
from .types import MAX_KEY_BYTES

SIGN_DOMAIN = b"paraexec/tx/v1:"
MAX_TX_BYTES = 4096
MAX_PAYLOAD_BYTES = 3072


class AccessList(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """Keys a transaction declares it reads (``reads``) and writes or adds to (``writes``)."""

    reads: list[bytes]
    writes: list[bytes]


class Transaction(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    chain_id: str
    sender: bytes
    nonce: int
    payload: bytes
    access: AccessList | None = None


class SignedTransaction(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    body: bytes
    signature: bytes


class Payload(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """An application payload: a type name and its canonical body."""

    type: str
    body: msgspec.Raw


_signed_decoder = msgspec.msgpack.Decoder(SignedTransaction)
_tx_decoder = msgspec.msgpack.Decoder(Transaction)
_payload_decoder = msgspec.msgpack.Decoder(Payload)


def encode_payload(payload: msgspec.Struct, type_name: str | None = None) -> bytes:
    """Canonical payload bytes for an application struct (type name defaults to its tag)."""
    name = type_name or type(payload).__name__
    return codec.encode(Payload(name, msgspec.Raw(codec.encode(payload))))


def decode_payload_envelope(data: bytes) -> Payload:
    try:
        return _payload_decoder.decode(data)
    except codec.DECODE_ERRORS as exc:
        raise malformed_payload(data, exc) from None


def malformed_payload(data: bytes, exc: BaseException, part: str = "payload") -> MalformedTransaction:
    """The error for a payload (envelope bytes ``data``) whose envelope or body (``part``: its
    type name) did not decode. A body nested too deep fails as the same error at either stage:
    whether the envelope's skip over the body or the body's own decoding gives up first depends
    on the caller's stack (``codec.decode_failure``)."""
    reason = codec.decode_failure(data, exc)
    return MalformedTransaction(f"{'payload' if reason == codec.TOO_DEEP else part}: {reason}")


def encode_body(tx: Transaction) -> bytes:
    """Canonical body bytes; without an access list, the four-field form (no trailing nil)."""
    if tx.access is None:
        return codec.encode((tx.chain_id, tx.sender, tx.nonce, tx.payload))
    return codec.encode(tx)


def sign(key: crypto.SigningKey, chain_id: str, nonce: int, payload: bytes, access: AccessList | None = None) -> bytes:
    """Build and sign a transaction (optionally declaring its ``access`` list); returns its wire bytes."""
    body = encode_body(Transaction(chain_id, key.public_key, nonce, payload, access))
    return codec.encode(SignedTransaction(body, key.sign(SIGN_DOMAIN + body)))


def tx_hash(raw: bytes) -> bytes:
    """The transaction id: BLAKE2b-256 of its wire bytes."""
    return crypto.hash32(raw)


def decode_signed(raw: bytes, chain_id: str, verify_signature: bool = True) -> Transaction:
    """Decode wire bytes and run every stateless check.

    Raises ``OversizeTransaction``, ``MalformedTransaction``, ``BadSignature`` or
    ``WrongChainId``. With ``verify_signature=False`` the signature is trusted (it was checked
    earlier, e.g. at mempool admission); everything else is still checked.
    """
    if len(raw) > MAX_TX_BYTES:
        raise OversizeTransaction(f"{len(raw)} bytes > {MAX_TX_BYTES}")
    try:
        signed = _signed_decoder.decode(raw)
        tx = _tx_decoder.decode(signed.body)
    except codec.DECODE_ERRORS as exc:
        raise MalformedTransaction(codec.decode_failure(raw, exc)) from None
    if codec.encode(signed) != raw:
        raise MalformedTransaction("envelope not in canonical form (re-encoded or padded)")
    if len(tx.payload) > MAX_PAYLOAD_BYTES:
        raise OversizeTransaction(f"payload {len(tx.payload)} bytes > {MAX_PAYLOAD_BYTES}")
    if len(tx.sender) != crypto.PUBLIC_KEY_SIZE or tx.nonce < 0:
        raise MalformedTransaction("bad sender or nonce")
    if tx.access is not None:
        for key in (*tx.access.reads, *tx.access.writes):
            if not 0 < len(key) <= MAX_KEY_BYTES:
                raise MalformedTransaction(f"declared key of {len(key)} bytes (a state key has 1..{MAX_KEY_BYTES})")
    if verify_signature and not crypto.verify(tx.sender, SIGN_DOMAIN + signed.body, signed.signature):
        raise BadSignature()
    if tx.chain_id != chain_id:
        raise WrongChainId(f"expected {chain_id!r}, got {tx.chain_id!r}")
    return tx


def signature_triple(raw: bytes) -> tuple[bytes, bytes, bytes] | None:
    """(public_key, message, signature) of a wire transaction, for batch verification."""
    try:
        signed = _signed_decoder.decode(raw)
        tx = _tx_decoder.decode(signed.body)
    except codec.DECODE_ERRORS:
        return None
    return tx.sender, SIGN_DOMAIN + signed.body, signed.signature
