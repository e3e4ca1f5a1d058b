"""``ChainRuntime``: the chain's rules around an application, for one transaction.

    process_transaction(raw):
        prepare  (stateless, cacheable, parallel): size, decode, signature, chain id, payload type
        execute  (stateful, through TxContext):
            nonce must equal the sender's next nonce  (REPLAYED_NONCE / NONCE_GAP, no state change)
            bump the nonce
            checkpoint; app.apply(payload); on BusinessError roll back to the checkpoint
        -> Receipt(code, error, events)

Declared access lists: when the signed transaction declares ``access`` (see ``transaction``),
the application runs behind an ``AccessGuard``: a get of a key outside ``reads + writes`` or a
put/delete/add of a key outside ``writes`` raises ``UndeclaredAccess`` (a ``BusinessError``,
code 104) *before* touching the key, so the transaction fails like any refused one: writes
rolled back, nonce consumed. The guard lives in the runtime, not in one executor, so every
executor produces the same failure and a scheduler may rely on the declaration (the
access-list executor does). The sender's nonce key is declared implicitly (read and written);
a transaction that fails ``prepare`` declares nothing, as it touches nothing.

A transaction that fails ``prepare`` or the nonce rule changes nothing and gets a failure
receipt; one the application refuses keeps only its nonce bump. System transactions (wire
bytes starting with ``SYSTEM_TAG``) skip signature and nonce: only the block producer adds them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgspec

from .. import codec
from .. import transaction as txmod
from ..errors import (
    InvalidTransaction,
    NonceGap,
    OversizeTransaction,
    ReplayedNonce,
    UndeclaredAccess,
    UnknownPayloadType,
    ValueOutOfRange,
)
from ..types import Key, Value
from .application import Application
from .contract import Receipt, TxContext

SYSTEM_TAG = b"\x00"
NONCE_PREFIX = b"n/"


def nonce_key(sender: bytes) -> Key:
    return NONCE_PREFIX + sender


class Declared(NamedTuple):
    """A transaction's declared access: ``reads`` holds every key it may read (its writes
    included), ``writes`` every key it may put, delete or add to, ``read_only`` the difference
    (what a scheduler takes read locks on)."""

    reads: frozenset[Key]
    writes: frozenset[Key]
    read_only: frozenset[Key]

    @classmethod
    def of(cls, reads: Iterable[Key], writes: Iterable[Key], implicit: Iterable[Key] = ()) -> Declared:
        """From declared lists, plus ``implicit`` keys (the nonce) that are read and written."""
        w = frozenset(writes).union(implicit)
        r = w.union(reads) if reads else w
        return cls(r, w, r - w if r is not w else _EMPTY)


_EMPTY: frozenset[Key] = frozenset()


#: What a transaction that touches nothing declares (one that failed ``prepare``).
NOTHING = Declared.of((), ())


class AccessGuard(TxContext):
    """A ``TxContext`` that lets an application touch only its declared keys.

    Every call is checked, then delegated to the executor's context ``inner``, which keeps the
    effects (``writes``/``deltas``/``events`` are ``inner``'s); an undeclared access raises
    ``UndeclaredAccess`` before the key is read or written.
    """

    __slots__ = ("inner", "declared", "_reads", "_writes")

    def __init__(self, inner: TxContext, declared: Declared) -> None:  # no super(): state is inner's
        self.inner = inner
        self.declared = declared
        self._reads = declared.reads
        self._writes = declared.writes

    env = property(lambda self: self.inner.env)  # type: ignore[assignment]
    writes = property(lambda self: self.inner.writes)  # type: ignore[assignment]
    deltas = property(lambda self: self.inner.deltas)  # type: ignore[assignment]
    events = property(lambda self: self.inner.events)  # type: ignore[assignment]

    def _read(self, key: Key) -> Value | None:
        self._must_read(key)
        return self.inner._read(key)

    def _must_read(self, key: Key) -> None:
        if key not in self._reads:
            raise UndeclaredAccess(f"read of undeclared key {key.hex()}")

    def _must_write(self, key: Key) -> None:
        if key not in self._writes:
            raise UndeclaredAccess(f"write of undeclared key {key.hex()}")

    def get(self, key: Key) -> Value | None:
        if key not in self._reads:
            self._must_read(key)
        return self.inner.get(key)

    def put(self, key: Key, value: Value) -> None:
        if key not in self._writes:
            self._must_write(key)
        self.inner.put(key, value)

    def delete(self, key: Key) -> None:
        self._must_write(key)
        self.inner.delete(key)

    def add(self, key: Key, delta: int) -> None:
        self._must_write(key)
        self.inner.add(key, delta)

    def emit(self, name: str, **attrs: Any) -> None:
        self.inner.emit(name, **attrs)

    def checkpoint(self) -> tuple[dict[Key, Value | None], dict[Key, int], int]:
        return self.inner.checkpoint()

    def rollback(self, mark: tuple[dict[Key, Value | None], dict[Key, int], int]) -> None:
        self.inner.rollback(mark)


def guarded(ctx: TxContext, declared: Declared | None) -> TxContext:
    """``ctx`` itself for unrestricted transactions, else ``ctx`` behind an ``AccessGuard``."""
    return ctx if declared is None else AccessGuard(ctx, declared)


class Prepared(msgspec.Struct):
    """A transaction after its stateless checks: either a decoded payload or an error.

    ``access`` is the declared access (nonce key included), ``None`` when unrestricted.
    """

    sender: bytes | None
    nonce: int
    payload: Any
    error: InvalidTransaction | None = None
    access: Declared | None = None


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
        self._decoders: dict[str, msgspec.msgpack.Decoder[Any]] = {
            name: msgspec.msgpack.Decoder(typ) for name, typ in app.payload_types.items()
        }

    def decode_payload(self, data: bytes) -> Any:
        envelope = txmod.decode_payload_envelope(data)
        decoder = self._decoders.get(envelope.type)
        if decoder is None:
            raise UnknownPayloadType(envelope.type)
        try:
            return decoder.decode(envelope.body)
        except codec.DECODE_ERRORS as exc:
            raise txmod.malformed_payload(data, exc, envelope.type) from None

    def prepare(self, raw: bytes) -> Prepared:
        return self._prepare(raw, self.verify_signatures)

    def prepare_checked(self, raw: bytes) -> Prepared:
        """``prepare`` of bytes whose signature this runtime's ``prepare`` already accepted (a
        worker checked them ahead of the block, see ``parallel.precheck``): the same result
        without the ed25519 check. Only ever for those exact bytes."""
        return self._prepare(raw, False)

    def peek(self, raw: bytes) -> Prepared:
        """``prepare`` without the signature check (~50 us less): for scheduling hints only
        (the adaptive executor's samples), never for execution."""
        return self._prepare(raw, False)

    def _prepare(self, raw: bytes, verify_signature: bool) -> Prepared:
        try:
            if len(raw) > txmod.MAX_TX_BYTES:
                raise OversizeTransaction(f"{len(raw)} bytes > {txmod.MAX_TX_BYTES}")
            if raw[:1] == SYSTEM_TAG:
                return Prepared(None, 0, self.decode_payload(raw[1:]))
            tx = txmod.decode_signed(raw, self.chain_id, verify_signature)
            access = None
            if tx.access is not None:
                access = Declared.of(tx.access.reads, tx.access.writes, (nonce_key(tx.sender),))
            return Prepared(tx.sender, tx.nonce, self.decode_payload(tx.payload), None, access)
        except InvalidTransaction as exc:
            return Prepared(None, 0, None, exc, NOTHING)

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
            self.app.apply(guarded(ctx, prepared.access), sender, prepared.payload)
        except InvalidTransaction as exc:
            ctx.rollback(mark)
            return failure(exc)
        except OverflowError as exc:  # a value too big for a fixed-width record: this tx fails
            ctx.rollback(mark)
            return failure(ValueOutOfRange(str(exc)))
        return Receipt(0, "", ctx.events)

    def declared_access(self, prepared: Prepared) -> Declared | None:
        """The keys ``prepared`` may touch (enforced by ``execute``), or ``None``: unrestricted."""
        return prepared.access

    def hint_keys(self, prepared: Prepared) -> tuple[Key, ...]:
        if prepared.error is not None:
            return ()
        keys = self.app.hint_keys(prepared.sender, prepared.payload)
        if prepared.sender is not None:
            return (nonce_key(prepared.sender), *keys)
        return keys

    def affinity_key(self, prepared: Prepared) -> Key | None:
        """The key that picks the transaction's worker under key affinity: the application's
        first hint (its hottest key: the market of an order, the sender of a transfer), else
        the sender's nonce key; ``None`` for a transaction that failed its stateless checks."""
        if prepared.error is not None:
            return None
        keys = self.app.hint_keys(prepared.sender, prepared.payload)
        if keys:
            return keys[0]
        return nonce_key(prepared.sender) if prepared.sender is not None else None

    def barrier(self, prepared: Prepared) -> bool:
        """Whether the application says the transaction writes state that transactions of every
        affinity group read (``Application.barrier``; oracle prices in the exchange): a schedule
        hint, never a correctness condition."""
        barrier = getattr(self.app, "barrier", None)
        if barrier is None or prepared.error is not None:
            return False
        return bool(barrier(prepared.payload))

    def system_transactions(self, env: Any) -> list[bytes]:
        return [SYSTEM_TAG + p for p in self.app.system_payloads(env)]


def failure(exc: InvalidTransaction) -> Receipt:
    return Receipt(exc.code, f"{exc.name}: {exc.message}" if exc.message != exc.name else exc.name, [])
