"""A synthetic runtime for differential tests and engine benchmarks.

A synthetic transaction is a list of ``(op, key, arg)`` triples run through ``TxContext``.
Values read feed an accumulator that later writes depend on, and ``INDIRECT`` writes to a key
*chosen by a value read*, so a transaction's read and write sets change between incarnations
(the hard case for Block-STM). ``FAIL_IF`` injects business failures (rolled back writes),
``DELTA`` exercises commutative deltas, ``SPIN`` burns deterministic CPU to emulate costly
transactions, ``AWAIT`` is code that is only safe on consistent state: it loops, reading a key
again each turn, until the key holds the value the transaction expects. Where every run sees the
state ``sequential`` sees, the first read matches (the tests build such blocks); a speculative
run may see another value, and a worker process, where nothing changes under a running
transaction, would then loop forever (the parallel executor's ``STALL_TIMEOUT``).

    op        meaning
    READ k    acc = mix(acc, value(k))
    WRITE k v put(k, acc + v)
    DELTA k d add(k, d)
    INDIRECT k v   put(key(value(k) mod universe), acc + v)
    FAIL_IF k m    raise BusinessError when value(k) mod m == 0
    DELETE k       delete(k)
    SPIN 0 n       n rounds of integer mixing (cost only)
    AWAIT k v      read k until value(k) == v (forever if it never is)

Keys are ``b"s/" + 4-byte index``; ``universe`` bounds INDIRECT targets. The receipt carries
one ``synth`` event with the final accumulator, so receipts differ whenever reads differ.

A synthetic transaction may declare its access list as ``(read indices, write indices)``
(``encode_tx(ops, access=...)``); the ops then run behind the runtime's ``AccessGuard``, so an
op on an undeclared key fails the transaction with ``UNDECLARED_ACCESS`` exactly as a signed
transaction would. Undeclared transactions encode as before (one-element array).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from .. import codec
from ..errors import BusinessError, MalformedTransaction
from ..types import Key
from .contract import Receipt, TxContext
from .runtime import NOTHING, Declared, failure, guarded

READ, WRITE, DELTA, INDIRECT, FAIL_IF, DELETE, SPIN, AWAIT = range(8)
MOD = (1 << 61) - 1


class SynthTx(msgspec.Struct, array_like=True, frozen=True):
    ops: list[tuple[int, int, int]]
    access: tuple[list[int], list[int]] | None = None


def key_of(index: int) -> Key:
    return b"s/" + index.to_bytes(4, "big")


def encode_tx(ops: Sequence[tuple[int, int, int]], access: tuple[Sequence[int], Sequence[int]] | None = None) -> bytes:
    """Wire bytes of a synthetic transaction; ``access`` = (read key indices, write key indices)."""
    op_list = [tuple(op) for op in ops]
    if access is None:
        return codec.encode((op_list,))
    return codec.encode(SynthTx(op_list, (list(access[0]), list(access[1]))))  # type: ignore[arg-type]


def declared_of(tx: SynthTx) -> Declared | None:
    if tx.access is None:
        return None
    reads, writes = tx.access
    return Declared.of(map(key_of, reads), map(key_of, writes))


_decoder = msgspec.msgpack.Decoder(SynthTx)


@dataclass(frozen=True)
class SyntheticSpec:
    """Picklable recipe for ``SyntheticRuntime`` (worker processes rebuild it)."""

    universe: int

    def build(self) -> SyntheticRuntime:
        return SyntheticRuntime(self.universe)


class SyntheticRuntime:
    def __init__(self, universe: int) -> None:
        self.universe = max(1, universe)
        self.spec = SyntheticSpec(self.universe)

    def prepare(self, raw: bytes) -> SynthTx | MalformedTransaction:
        try:
            return _decoder.decode(raw)
        except codec.DECODE_ERRORS as exc:
            return MalformedTransaction(codec.decode_failure(raw, exc))

    def execute(self, prepared: SynthTx | MalformedTransaction, ctx: TxContext) -> Receipt:
        if isinstance(prepared, MalformedTransaction):
            return failure(prepared)
        mark = ctx.checkpoint()
        outer = ctx
        ctx = guarded(ctx, declared_of(prepared))
        acc = 0
        try:
            for op, k, arg in prepared.ops:
                if op == READ:
                    acc = (acc * 1_000_003 + ctx.get_int(key_of(k))) % MOD
                elif op == WRITE:
                    ctx.put_int(key_of(k), acc + arg)
                elif op == DELTA:
                    ctx.add(key_of(k), arg)
                elif op == INDIRECT:
                    target = ctx.get_int(key_of(k)) % self.universe
                    ctx.put_int(key_of(target), acc + arg)
                elif op == FAIL_IF:
                    if arg > 0 and ctx.get_int(key_of(k)) % arg == 0:
                        raise BusinessError(f"value of {k} divisible by {arg}")
                elif op == DELETE:
                    ctx.delete(key_of(k))
                elif op == SPIN:
                    x = k + 1
                    for _ in range(arg):
                        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
                    acc = (acc + (x & 0xFF)) % MOD
                elif op == AWAIT:
                    while ctx.get_int(key_of(k)) != arg:
                        pass
        except BusinessError as exc:
            outer.rollback(mark)
            return failure(exc)
        outer.emit("synth", acc=acc)
        return Receipt(0, "", outer.events)

    def declared_access(self, prepared: SynthTx | MalformedTransaction) -> Declared | None:
        """The keys ``prepared`` may touch (enforced by ``execute``), or ``None``: unrestricted."""
        if isinstance(prepared, MalformedTransaction):
            return NOTHING
        return declared_of(prepared)

    def hint_keys(self, prepared: SynthTx | MalformedTransaction) -> tuple[Key, ...]:
        if isinstance(prepared, MalformedTransaction):
            return ()
        return tuple(key_of(k) for op, k, _ in prepared.ops if op != SPIN)
