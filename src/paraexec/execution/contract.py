"""The execution contract shared by the application and every executor.

A *runtime* turns one transaction (wire bytes) into a receipt by reading and writing state only
through a ``TxContext``. An *executor* runs a whole block of transactions against a pre-state
and returns a ``BlockOutput``: ordered receipts, the final write set, the new state root and
stats. Every executor must return exactly what ``sequential`` returns (receipts, write set,
root); only ``stats`` may differ.

``TxContext`` buffers a transaction's effects: ``put``/``delete`` go to ``writes``; ``add`` records
a commutative integer delta in ``deltas`` without reading the key, so hot counters do not make
transactions conflict (Aptos aggregators, AIP-47); a ``get`` of a key with a pending delta reads
the base value and resolves the delta. ``checkpoint``/``rollback`` let the runtime undo an
application's writes on a business error while keeping the nonce bump.

Executors differ only in where ``_read`` looks: the block overlay (sequential), the multi-version
memory (Block-STM), or a worker's view of committed state plus earlier waves (parallel).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from .. import codec
from ..errors import InvariantViolation
from ..types import Key, Value, WriteSet


class Event(msgspec.Struct, array_like=True, frozen=True):
    """Something that happened, for indexers and clients (fills, liquidations, transfers)."""

    name: str
    attrs: dict[str, Any]


class Receipt(msgspec.Struct, array_like=True, frozen=True):
    """The outcome of one transaction. ``code`` 0 is success; else an ``InvalidTransaction`` code."""

    code: int
    error: str
    events: list[Event]

    @property
    def ok(self) -> bool:
        return self.code == 0


class BlockEnv(msgspec.Struct, array_like=True, frozen=True):
    """What a transaction may know about its block: height and block time (seconds).

    Block time is chosen by the producer and stored in the block, so it is an input, not a
    clock: re-execution sees the same value.
    """

    height: int
    time: int


class StateView(Protocol):
    """Committed pre-block state, as executors read it."""

    def get(self, key: Key) -> Value | None: ...

    @property
    def accumulator(self) -> int: ...


class TxContext:
    """A transaction's window on state. Subclasses provide ``_read`` (base value of a key)."""

    __slots__ = ("env", "writes", "deltas", "events")

    def __init__(self, env: BlockEnv) -> None:
        self.env = env
        self.writes: dict[Key, Value | None] = {}
        self.deltas: dict[Key, int] = {}
        self.events: list[Event] = []

    def _read(self, key: Key) -> Value | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def get(self, key: Key) -> Value | None:
        """Current value of ``key`` as this transaction sees it (own writes first)."""
        writes = self.writes
        if key in writes:
            return writes[key]
        base = self._read(key)
        delta = self.deltas.get(key)
        if delta is None:
            return base
        return codec.encode_int(codec.decode_int(base) + delta)

    def get_int(self, key: Key) -> int:
        return codec.decode_int(self.get(key))

    def put(self, key: Key, value: Value) -> None:
        self.deltas.pop(key, None)
        self.writes[key] = value

    def put_int(self, key: Key, value: int) -> None:
        self.put(key, codec.encode_int(value))

    def delete(self, key: Key) -> None:
        self.deltas.pop(key, None)
        self.writes[key] = None

    def add(self, key: Key, delta: int) -> None:
        """Add ``delta`` to the integer at ``key`` without reading it (commutative)."""
        writes = self.writes
        if key in writes:  # already overwritten by this transaction: fold in directly
            writes[key] = codec.encode_int(codec.decode_int(writes[key]) + delta)
        else:
            self.deltas[key] = self.deltas.get(key, 0) + delta

    def emit(self, name: str, **attrs: Any) -> None:
        self.events.append(Event(name, attrs))

    def checkpoint(self) -> tuple[dict[Key, Value | None], dict[Key, int], int]:
        return dict(self.writes), dict(self.deltas), len(self.events)

    def rollback(self, mark: tuple[dict[Key, Value | None], dict[Key, int], int]) -> None:
        writes, deltas, n_events = mark
        self.writes = writes
        self.deltas = deltas
        del self.events[n_events:]


class Runtime(Protocol):
    """Turns wire transactions into receipts. Must be deterministic.

    ``spec`` is a picklable recipe with a ``build()`` method that rebuilds an equal runtime in
    another process (worker processes use it); it may be ``None`` for in-process-only runtimes.
    """

    spec: Any

    def prepare(self, raw: bytes) -> Any:
        """Stateless work (decode, signature check). Never raises; errors are carried."""
        ...

    def execute(self, prepared: Any, ctx: TxContext) -> Receipt:
        """Apply one prepared transaction through ``ctx``. Never raises ``InvalidTransaction``."""
        ...

    def hint_keys(self, prepared: Any) -> tuple[Key, ...]:
        """Keys the transaction is expected to touch (sender, receiver, market), for affinity."""
        ...

    def declared_access(self, prepared: Any) -> Any:
        """The keys the transaction declared (``runtime.Declared``), or ``None`` when it declared none.

        Declarations are enforced by the runtime in every executor; the access-list executor
        schedules from them.
        """
        ...


@dataclass
class ExecStats:
    """How an executor got its result. Not part of the result: executors may differ here."""

    executor: str
    workers: int = 1
    executions: int = 0
    validations: int = 0
    aborts: int = 0
    rounds: int = 0
    seconds: float = 0.0
    worker_busy: list[float] = field(default_factory=list)
    note: str = ""
    #: What each worker did when: (worker, start, end, label), seconds since the block started;
    #: worker -1 is the coordinator. Empty when the executor does not record it.
    timeline: list[tuple[int, float, float, str]] = field(default_factory=list)

    def re_executions(self, n_txs: int) -> int:
        return max(0, self.executions - n_txs)


#: A block's (accumulator, state root), computed later: see ``BlockOutput``.
RootFn = Callable[[], tuple[int, bytes]]


class BlockOutput:
    """The result of executing a block: the part every executor must agree on, plus stats.

    The root may still be *pending*: an executor that hands the hashing of a large write set to
    other processes returns before they finish (``pending``), so the caller can write the block to
    the store meanwhile (``LmdbStore.commit_block`` takes the accumulator as a callable for this).
    Reading ``accumulator`` or ``state_root`` waits for it. A pending root must be read before the
    store moves past the block's pre-state: it is computed against that snapshot, and an executor
    raises ``InvariantViolation`` rather than hash against a later one.
    """

    __slots__ = ("receipts", "write_set", "stats", "_root", "_pending")

    def __init__(
        self,
        receipts: list[Receipt],
        write_set: WriteSet,
        accumulator: int | None,
        state_root: bytes | None,
        stats: ExecStats,
        pending: RootFn | None = None,
    ) -> None:
        self.receipts = receipts
        self.write_set = write_set
        self.stats = stats
        self._root: tuple[int, bytes] | None = None
        self._pending = pending
        if pending is None:
            if accumulator is None or state_root is None:
                raise ValueError("a BlockOutput needs its root, or a pending one")
            self._root = (accumulator, state_root)

    @property
    def root_pending(self) -> bool:
        """The root is still being computed elsewhere (see class docstring)."""
        return self._root is None

    def settle(self) -> tuple[int, bytes]:
        """(accumulator, state root), waiting for a pending root; computed at most once."""
        if self._root is None:
            pending, self._pending = self._pending, None
            if pending is None:
                raise InvariantViolation("this block's pending root failed earlier")
            self._root = pending()
        return self._root

    @property
    def accumulator(self) -> int:
        return self.settle()[0]

    @accumulator.setter
    def accumulator(self, value: int) -> None:
        self._root, self._pending = (value, self.settle()[1]), None

    @property
    def state_root(self) -> bytes:
        return self.settle()[1]

    @state_root.setter
    def state_root(self, value: bytes) -> None:
        self._root, self._pending = (self.settle()[0], value), None

    def same_result(self, other: BlockOutput) -> bool:
        return (
            self.receipts == other.receipts
            and self.write_set == other.write_set
            and self.state_root == other.state_root
        )

    def __repr__(self) -> str:
        root = "pending" if self._root is None else self._root[1].hex()[:16]
        return f"BlockOutput({len(self.receipts)} receipts, {len(self.write_set)} writes, root {root}, {self.stats!r})"


class Executor(Protocol):
    name: str

    def execute_block(self, runtime: Runtime, txs: Sequence[bytes], state: StateView, env: BlockEnv) -> BlockOutput: ...

    def close(self) -> None: ...
