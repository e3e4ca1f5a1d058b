"""``ChainRuntime``: the chain's rules around an application, for one transaction.

    process_transaction(raw):
        prepare  (stateless, cacheable, parallel): size, decode, signature, chain id, payload type
        execute  (stateful, through TxContext):
            nonce must equal the sender's next nonce  (REPLAYED_NONCE / NONCE_GAP, no state change)
            bump the nonce
            checkpoint; app.apply(payload); on BusinessError roll back to the checkpoint
        -> Receipt(code, error, events)

A transaction that fails ``prepare`` or the nonce rule changes nothing and gets a failure
receipt; one the application refuses keeps only its nonce bump. System transactions (wire
bytes starting with ``SYSTEM_TAG``) skip signature and nonce: only the block producer adds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from .. import transaction as txmod
from ..errors import (
    InvalidTransaction,
    MalformedTransaction,
    NonceGap,
    ReplayedNonce,
    UnknownPayloadType,
)
from ..types import Key
from .application import Application
from .contract import Receipt, TxContext

SYSTEM_TAG = b"\x00"
NONCE_PREFIX = b"n/"


def nonce_key(sender: bytes) -> Key:
    return NONCE_PREFIX + sender


class Prepared(msgspec.Struct):
    """A transaction after its stateless checks: either a decoded payload or an error."""

    sender: bytes | None
    nonce: int
    payload: Any
    error: InvalidTransaction | None = None


@dataclass(frozen=True)
class RuntimeSpec:
    """Everything needed to rebuild a runtime in another process (picklable)."""

    app_name: str
    app_config: dict[str, Any]
    chain_id: str
    verify_signatures: bool = True

    def build(self) -> ChainRuntime:
        from ..apps import load_app

        return ChainRuntime(load_app(self.app_name, self.app_config), self.chain_id, self.verify_signatures, self)


class ChainRuntime:
    """The runtime every executor uses for real chains (see module docstring)."""

    def __init__(
        self,
        app: Application,
        chain_id: str,
        verify_signatures: bool = True,
        spec: RuntimeSpec | None = None,
    ) -> None:
        self.app = app
        self.chain_id = chain_id
        self.verify_signatures = verify_signatures
        self.spec = spec
        self._decoders = {name: msgspec.msgpack.Decoder(typ) for name, typ in app.payload_types.items()}

    def decode_payload(self, data: bytes) -> Any:
        envelope = txmod.decode_payload_envelope(data)
        decoder = self._decoders.get(envelope.type)
        if decoder is None:
            raise UnknownPayloadType(envelope.type)
        try:
            return decoder.decode(envelope.body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise MalformedTransaction(f"{envelope.type}: {exc}") from None

    def prepare(self, raw: bytes) -> Prepared:
        try:
            if raw[:1] == SYSTEM_TAG:
                return Prepared(None, 0, self.decode_payload(raw[1:]))
            tx = txmod.decode_signed(raw, self.chain_id, self.verify_signatures)
            return Prepared(tx.sender, tx.nonce, self.decode_payload(tx.payload))
        except InvalidTransaction as exc:
            return Prepared(None, 0, None, exc)

    def execute(self, prepared: Prepared, ctx: TxContext) -> Receipt:
        if prepared.error is not None:
            return failure(prepared.error)
        sender = prepared.sender
        if sender is not None:
            key = nonce_key(sender)
            expected = ctx.get_int(key)
            if prepared.nonce != expected:
                cls = ReplayedNonce if prepared.nonce < expected else NonceGap
                return failure(cls(f"nonce {prepared.nonce}, expected {expected}"))
            ctx.put_int(key, expected + 1)
        mark = ctx.checkpoint()
        try:
            self.app.apply(ctx, sender, prepared.payload)
        except InvalidTransaction as exc:
            ctx.rollback(mark)
            return failure(exc)
        return Receipt(0, "", ctx.events)

    def hint_keys(self, prepared: Prepared) -> tuple[Key, ...]:
        if prepared.error is not None:
            return ()
        keys = self.app.hint_keys(prepared.sender, prepared.payload)
        if prepared.sender is not None:
            return (nonce_key(prepared.sender), *keys)
        return keys

    def system_transactions(self, env: Any) -> list[bytes]:
        return [SYSTEM_TAG + p for p in self.app.system_payloads(env)]


def failure(exc: InvalidTransaction) -> Receipt:
    return Receipt(exc.code, f"{exc.name}: {exc.message}" if exc.message != exc.name else exc.name, [])
