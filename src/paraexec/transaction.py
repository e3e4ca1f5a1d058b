"""The signed transaction envelope.

Wire form: ``SignedTransaction(body, signature)`` where ``body`` is the canonical encoding of
``Transaction(chain_id, sender, nonce, payload)`` and ``signature`` is the sender's ed25519
signature over ``SIGN_DOMAIN + body``. Signing the body bytes as sent (not a re-encoding)
means verification never depends on an encoder's behaviour.

``payload`` is itself canonical bytes of ``Payload(type, body)``: the application owns the
payload types and decodes ``body`` with the struct registered under ``type``.

Stateless checks live here (``decode_signed``): size, shape, signature, chain id. The stateful
nonce rule lives in the runtime, because it reads state.
"""

from __future__ import annotations

import msgspec

from . import codec, crypto
from .errors import BadSignature, MalformedTransaction, OversizeTransaction, WrongChainId

SIGN_DOMAIN = b"paraexec/tx/v1:"
MAX_TX_BYTES = 4096
MAX_PAYLOAD_BYTES = 3072


class Transaction(msgspec.Struct, array_like=True, frozen=True):
    chain_id: str
    sender: bytes
    nonce: int
    payload: bytes


class SignedTransaction(msgspec.Struct, array_like=True, frozen=True):
    body: bytes
    signature: bytes


class Payload(msgspec.Struct, array_like=True, frozen=True):
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
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedTransaction(f"payload: {exc}") from None


def sign(key: crypto.SigningKey, chain_id: str, nonce: int, payload: bytes) -> bytes:
    """Build and sign a transaction; returns its wire bytes."""
    body = codec.encode(Transaction(chain_id, key.public_key, nonce, payload))
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
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedTransaction(str(exc)) from None
    if len(tx.payload) > MAX_PAYLOAD_BYTES:
        raise OversizeTransaction(f"payload {len(tx.payload)} bytes > {MAX_PAYLOAD_BYTES}")
    if len(tx.sender) != crypto.PUBLIC_KEY_SIZE or tx.nonce < 0:
        raise MalformedTransaction("bad sender or nonce")
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
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return tx.sender, SIGN_DOMAIN + signed.body, signed.signature
