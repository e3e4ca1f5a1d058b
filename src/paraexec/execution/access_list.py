"""The access-list executor: schedule from declared keys, without speculation (Sealevel / Sui).

When transactions declare the keys they read and write (``transaction.AccessList``, enforced
by the runtime's ``AccessGuard``), conflicts are known before anything runs, so nothing needs
to be guessed, validated or re-executed:

    execute_block(runtime, txs, state, env):
        prepared = [runtime.prepare(raw) for raw in txs]          # on threads, or decode only (below)
        access   = [runtime.declared_access(p) for p in prepared]  # None = undeclared
        levels   = schedule(access)
        for level in levels:                                      # in order
            run every tx of the level against the overlay of the levels before it
            fold their effects into the overlay, in block order
        finalize(overlay)                                         # as sequential

``schedule`` gives every transaction a level with read/write locks on declared keys: two
transactions conflict when one writes a key the other reads or writes, and a conflicting
later transaction gets a strictly higher level than the earlier one:

    level(j) = max(floor,
                   1 + level of the latest writer of any key j reads or writes,
                   1 + highest level of a reader of any key j writes)

An undeclared transaction may touch anything, so it is a barrier: it gets a level of its own
above every earlier one, and ``floor`` puts everything after it above it.

Why this equals sequential: if ``i < j`` and ``j`` reads a key ``i`` writes, ``i`` runs in an
earlier level and its write is in the overlay when ``j`` runs; every writer of that key before
``j`` conflicts with every other one, so their levels follow block order and the overlay holds
the latest one's value; writers after ``j`` run in later levels. Transactions of one level
touch pairwise disjoint written keys, so the order in which they run does not matter; their
effects are folded in block order anyway. The runtime guarantees no transaction touches a key
outside its declaration (it fails with ``UNDECLARED_ACCESS`` first, in every executor), so the
declared keys are a safe over-approximation of the real ones. Executions = transactions,
re-executions = 0, rounds = levels.

Where it runs (``backend``):

- ``prepare`` (decode and ed25519 check) runs on a long-lived thread pool: real parallelism
  even on the GIL build, as PyNaCl releases the GIL while verifying.
- ``"threads"``: levels run on the same pool only where threads run Python in parallel
  (free-threaded CPython, or ``thread_levels=True`` for tests); on the GIL build threads give
  ~1.0x for pure-Python transaction logic (GUIDE.md), so levels run in the calling thread.
- ``"processes"``: levels of ``min_process_level`` or more transactions go to long-lived worker
  processes (``WorkerProcesses``). A declared transaction touches only its declared keys, so a
  batch ships the raw transactions plus the current values of those keys, and nothing else:
  no shared store, no speculation, no validation. Workers check signatures and execute; the
  coordinator gathers values, folds effects in block order and computes the root.
- ``"auto"`` (default): processes on a GIL build when the runtime checks signatures (the work
  that pays for ~5-10 us of coordination per transaction), threads otherwise.

Measured on the shared 2-core box (noisy: in one run two processes got ~1.1 cores between
them), declared transfers, 10,000 accounts, 2,000-tx blocks, vs sequential: threads
0.85-0.9x; processes 0.64x with signatures pre-verified (why ``auto`` uses threads there) and
0.80-1.13x end to end (``parallel`` reached 1.33x end to end in the 1.13x run). So the adaptive executor does not
pick it on GIL builds, and it measures before it trusts any plan. The
coordinator also computes the state commitment (a quarter of a transfer block's sequential
time); hashing in the workers, as ``parallel`` does, is the next step.

A transaction that *raises* (a bug, or unreadable state) is not an expected failure: the block
is re-run by ``sequential`` so that the exception raised is the one sequential meets first.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from .. import codec
from ..errors import InvariantViolation
from ..types import Key, Value, WriteSet
from .contract import BlockEnv, BlockOutput, ExecStats, Receipt, Runtime, StateView, TxContext
from .prepare import map_chunks, split
from .registry import register
from .runtime import Declared
from .sequential import OverlayContext, SequentialExecutor, apply_effects, finalize

#: Below this many transactions a phase is not worth handing to threads.
MIN_THREADED = 64
#: Below this many transactions a level is not worth a round trip to worker processes.
MIN_PROCESS_LEVEL = 32


def free_threaded() -> bool:
    """True on a CPython build whose threads run Python in parallel (PEP 703, GIL disabled)."""
    is_gil_enabled: Callable[[], bool] | None = getattr(sys, "_is_gil_enabled", None)
    return is_gil_enabled is not None and not is_gil_enabled()


def schedule(access: Sequence[Declared | None]) -> list[list[int]]:
    """Levels of transaction indices (ascending in each level); see the module docstring."""
    last_write: dict[Key, int] = {}  # key -> level of its latest writer
    last_read: dict[Key, int] = {}  # key -> highest level of a reader
    levels: list[list[int]] = []
    floor = 0
    for j, declared in enumerate(access):
        if declared is None:  # undeclared: a barrier above everything so far
            level = len(levels)
            floor = level + 1
        else:
            # A written key is also read, but needs no read lock: every later toucher of it
            # already waits for this writer through ``last_write``.
            level = floor
            writes, read_only = declared.writes, declared.read_only
            for key in writes:
                w = last_write.get(key, -1)
                if w >= level:
                    level = w + 1
                r = last_read.get(key, -1)
                if r >= level:
                    level = r + 1
            for key in read_only:
                w = last_write.get(key, -1)
                if w >= level:
                    level = w + 1
            for key in read_only:
                if last_read.get(key, -1) < level:
                    last_read[key] = level
            for key in writes:
                last_write[key] = level
        if level == len(levels):
            levels.append([])
        levels[level].append(j)
    return levels


def declared_access(runtime: Runtime, prepared: Sequence[Any]) -> list[Declared | None]:
    """Each transaction's declaration; all ``None`` when the runtime has no declarations."""
    declare = getattr(runtime, "declared_access", None)
    if declare is None:
        return [None] * len(prepared)
    return [declare(p) for p in prepared]


class AccessListExecutor:
    """See module docstring. Thread pool and worker processes are created once, reused across blocks.

    ``backend``: ``"threads"`` (levels on threads only where they scale), ``"processes"`` (wide
    levels on worker processes), or ``"auto"``: processes on a GIL build when the runtime
    verifies signatures (see ``WorkerProcesses``), else threads.
    """

    name = "access-list"

    def __init__(
        self,
        workers: int = 1,
        thread_levels: bool | None = None,
        min_threaded: int = MIN_THREADED,
        backend: str = "auto",
        min_process_level: int = MIN_PROCESS_LEVEL,
    ) -> None:
        if backend not in ("auto", "threads", "processes"):
            raise ValueError(f"unknown backend {backend!r}")
        self.workers = max(1, workers)
        self.thread_levels = free_threaded() if thread_levels is None else thread_levels
        self.min_threaded = min_threaded
        self.backend = backend
        self.min_process_level = min_process_level
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="access-list") if self.workers > 1 else None
        self._procs = WorkerProcesses(self.workers) if self.workers > 1 else None

    def uses_processes(self, runtime: Runtime) -> bool:
        """Whether this block's wide levels go to worker processes (see class docstring)."""
        if self._procs is None or getattr(runtime, "spec", None) is None or self.backend == "threads":
            return False
        if self.backend == "processes":
            return True
        return not self.thread_levels and bool(getattr(runtime, "verify_signatures", False))

    def execute_block(self, runtime: Runtime, txs: Sequence[bytes], state: StateView, env: BlockEnv) -> BlockOutput:
        started = time.perf_counter()
        procs = self.uses_processes(runtime)
        if procs:  # the workers check signatures: here, decode only, and prepare on demand
            peek = getattr(runtime, "peek", runtime.prepare)
            access = declared_access(runtime, [peek(raw) for raw in txs])
            prepared: Sequence[Any] = _OnDemand(runtime, txs)
        else:
            prepared = self._map(runtime.prepare, txs)
            access = declared_access(runtime, prepared)
        levels = schedule(access)
        if procs:  # transactions of narrow levels run here: check their signatures on threads now
            here = [i for level in levels if len(level) < self.min_process_level for i in level]
            self._prepare_on_threads(prepared, here)  # type: ignore[arg-type]
        scheduled = time.perf_counter()

        try:
            receipts, overlay, threaded_levels = self._run_levels(
                runtime, txs, prepared, access if procs else None, levels, state, env
            )
        except Exception:
            # A raising transaction is a bug or unreadable state, not an expected failure; which
            # one raises first must be the one sequential meets first, in block order.
            SequentialExecutor().execute_block(runtime, txs, state, env)
            raise
        accumulator, root = finalize(overlay, state)
        elapsed = time.perf_counter() - started

        barriers = sum(1 for d in access if d is None)
        note = (
            f"{len(levels)} levels (widest {max(map(len, levels), default=0)}), {barriers} undeclared as barriers, "
            f"{threaded_levels} levels on {'processes' if procs else 'threads'}, "
            f"schedule {1e3 * (scheduled - started):.1f} ms"
        )
        stats = ExecStats(
            self.name,
            self.workers,
            executions=len(txs),
            rounds=len(levels),
            seconds=elapsed,
            worker_busy=[elapsed],
            note=note,
        )
        return BlockOutput(_must_all(receipts), overlay, accumulator, root, stats)

    def _run_levels(
        self,
        runtime: Runtime,
        txs: Sequence[bytes],
        prepared: Sequence[Any],
        access: list[Declared | None] | None,
        levels: list[list[int]],
        state: StateView,
        env: BlockEnv,
    ) -> tuple[list[Receipt | None], WriteSet, int]:
        """Execute the levels in order; returns (receipts, the block's overlay, levels run elsewhere).

        ``access`` is given when wide levels go to worker processes.
        """
        receipts: list[Receipt | None] = [None] * len(prepared)
        overlay: WriteSet = {}
        threaded_levels = 0
        for level in levels:
            # Every tx of a level reads the overlay as the levels before left it, whether the level
            # runs on threads or here; effects are folded in afterwards, in block order.
            if len(level) == 1:  # a conflict chain: no list building, as cheap as sequential
                txn_idx = level[0]
                ctx = OverlayContext(env, overlay, state)
                receipts[txn_idx] = runtime.execute(prepared[txn_idx], ctx)
                apply_effects(ctx, overlay)
                continue
            if access is not None and self._procs is not None and len(level) >= self.min_process_level:
                done = self._procs.run_level(runtime.spec, env, level, txs, access, overlay, state)
                if done is not None:
                    threaded_levels += 1
                    for txn_idx, receipt, writes, deltas in done:
                        receipts[txn_idx] = receipt
                        fold(overlay, state, writes, deltas)
                    continue
            if self._pool is not None and self.thread_levels and len(level) >= self.min_threaded:
                threaded_levels += 1
                chunks = split(level, self.workers)
                runs = self._pool.map(lambda chunk: _run(runtime, prepared, chunk, overlay, state, env), chunks)
                results = [result for chunk_results in runs for result in chunk_results]
            else:
                results = _run(runtime, prepared, level, overlay, state, env)
            for txn_idx, receipt, ctx in results:
                receipts[txn_idx] = receipt
                apply_effects(ctx, overlay)
        return receipts, overlay, threaded_levels

    def _prepare_on_threads(self, prepared: _OnDemand, indices: list[int]) -> None:
        """Fill ``prepared`` for ``indices`` on the thread pool: PyNaCl releases the GIL while
        verifying, so a block of narrow levels (a conflict chain) still checks its signatures on
        every core, though its transactions then run one after another."""
        if self._pool is None or len(indices) < self.min_threaded:
            return
        txs, prepare = prepared.txs, prepared.runtime.prepare
        done = self._map(lambda i: prepare(txs[i]), indices)
        prepared.cache.update(zip(indices, done, strict=True))

    def _map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``[fn(x) for x in items]``, in contiguous chunks on the pool when worth it."""
        if len(items) < self.min_threaded:
            return [fn(x) for x in items]
        return map_chunks(self._pool, self.workers, fn, items)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._procs is not None:
            self._procs.stop()
            self._procs = None


class _OnDemand(Sequence[Any]):
    """``runtime.prepare(txs[i])`` computed when first asked (transactions run in-process)."""

    def __init__(self, runtime: Runtime, txs: Sequence[bytes]) -> None:
        self.runtime = runtime
        self.txs = txs
        self.cache: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.txs)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        try:
            return self.cache[i]
        except KeyError:
            p = self.cache[i] = self.runtime.prepare(self.txs[i])
            return p


def fold(overlay: WriteSet, state: StateView, writes: WriteSet, deltas: dict[Key, int]) -> None:
    """``sequential.apply_effects`` for effects that come back from a worker as plain dicts."""
    overlay.update(writes)
    for key, delta in deltas.items():
        base = overlay[key] if key in overlay else state.get(key)
        overlay[key] = codec.encode_int(codec.decode_int(base) + delta)


class WorkerLost(Exception):
    """A worker process died or its pipe broke."""


class WorkerProcesses:
    """Long-lived worker processes that execute one level's declared transactions in batches.

    A declared transaction can touch only its declared keys, so a batch carries everything a
    worker needs: the raw transactions and the current values of their declared keys (from the
    overlay of earlier levels, else committed state). The worker prepares each transaction
    (decode and signature check: the expensive, parallel part), executes it on a context that
    reads those values, and returns receipts, writes and unresolved deltas; the coordinator
    folds them in block order. Coordination costs a few us per transaction (gathering ~3
    values, pickling both ways, folding), so this only pays when transactions are expensive,
    e.g. with signature checks (~56 us): the ``auto`` backend uses it only then.

    A worker that dies (EOF on its pipe) makes ``run_level`` return ``None``: the caller runs
    that level in-process and the pool is restarted on the next level, so a crash never
    changes the result. A worker whose transaction raises returns the traceback, and the
    executor re-runs the block sequentially to raise the genuine error.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.procs: list[Any] = []
        self.conns: list[Connection] = []
        self.specs: list[Any] = []

    def start(self) -> None:
        ctx = mp.get_context("spawn")
        for index in range(self.size):
            parent, child = ctx.Pipe(duplex=True)
            proc = ctx.Process(target=worker_main, args=(child,), name=f"access-list-{index}", daemon=True)
            proc.start()
            child.close()  # only the worker holds its end: its death reads as EOF here
            self.procs.append(proc)
            self.conns.append(parent)
            self.specs.append(None)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def run_level(
        self,
        spec: Any,
        env: BlockEnv,
        level: list[int],
        txs: Sequence[bytes],
        access: list[Declared | None],
        overlay: WriteSet,
        state: StateView,
    ) -> list[tuple[int, Receipt, WriteSet, dict[Key, int]]] | None:
        """Execute ``level`` on the workers; ``None`` when a worker was lost (run it here)."""
        if not self.procs:
            self.start()
        chunks = split(level, self.size)
        get = state.get
        try:
            for index, chunk in enumerate(chunks):
                values: dict[Key, Value | None] = {}
                for txn_idx in chunk:
                    declared = access[txn_idx]
                    assert declared is not None  # undeclared txs are barriers: levels of their own
                    for key in declared.reads:
                        values[key] = overlay[key] if key in overlay else get(key)
                new_spec = spec if self.specs[index] != spec else None
                batch = (new_spec, env, chunk, [txs[i] for i in chunk], values)
                self._send(index, pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
                self.specs[index] = spec
            results = []
            for index in range(len(chunks)):
                status, payload = pickle.loads(self._recv(index))
                if status != "ok":
                    self.stop()
                    raise InvariantViolation(f"access-list worker failed:\n{payload}")
                results.extend(payload)
            return results
        except WorkerLost:
            self.stop()
            return None

    def _send(self, index: int, data: bytes) -> None:
        try:
            self.conns[index].send_bytes(data)
        except OSError as exc:
            raise WorkerLost(str(exc)) from exc

    def _recv(self, index: int) -> bytes:
        try:
            return self.conns[index].recv_bytes()
        except (EOFError, OSError) as exc:
            raise WorkerLost(str(exc)) from exc

    def stop(self) -> None:
        for conn in self.conns:
            conn.close()  # the worker reads EOF and exits
        for proc in self.procs:
            proc.join(2.0)
            if proc.is_alive():
                proc.kill()
                proc.join(2.0)
        self.procs.clear()
        self.conns.clear()
        self.specs.clear()


class ValuesContext(TxContext):
    """A worker's ``TxContext``: reads only the values shipped with the batch."""

    __slots__ = ("values",)

    def __init__(self, env: BlockEnv, values: dict[Key, Value | None]) -> None:
        super().__init__(env)
        self.values = values

    def _read(self, key: Key) -> Value | None:
        try:
            return self.values[key]
        except KeyError:
            raise InvariantViolation(f"read of {key.hex()} outside the declared keys reached a worker") from None


def worker_main(conn: Connection) -> None:
    """Worker process entry point: execute batches until the pipe closes."""
    runtime: Any = None
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        spec, env, idxs, raws, values = pickle.loads(data)
        if spec is not None:
            runtime = spec.build()
        try:
            out = []
            for txn_idx, raw in zip(idxs, raws, strict=True):
                ctx = ValuesContext(env, values)
                receipt = runtime.execute(runtime.prepare(raw), ctx)
                out.append((txn_idx, receipt, ctx.writes, ctx.deltas))
            reply: tuple[str, Any] = ("ok", out)
        except Exception:
            reply = ("error", traceback.format_exc())
        try:
            conn.send_bytes(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:
            return


def _must_all(receipts: list[Receipt | None]) -> list[Receipt]:
    """Every transaction was scheduled exactly once, so every receipt is there."""
    done = [r for r in receipts if r is not None]
    if len(done) != len(receipts):
        raise InvariantViolation(f"{len(receipts) - len(done)} transactions were never scheduled")
    return done


def _run(
    runtime: Runtime,
    prepared: Sequence[Any],
    chunk: Sequence[int],
    overlay: WriteSet,
    state: StateView,
    env: BlockEnv,
) -> list[tuple[int, Receipt, OverlayContext]]:
    """Execute a chunk of one level; the overlay is only read while a level runs."""
    out = []
    for txn_idx in chunk:
        ctx = OverlayContext(env, overlay, state)
        out.append((txn_idx, runtime.execute(prepared[txn_idx], ctx), ctx))
    return out


register("access-list", AccessListExecutor)
