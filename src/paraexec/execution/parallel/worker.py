"""The worker process: runs its chunks speculatively, validates them, hashes its share of the
result (algorithm: package docstring).

One ``WorkerState`` lives for the whole process; ``BlockRun`` holds one block's speculative
state. While it waits for a message, a worker prepares (decodes, signature-checks) its next
transactions. A worker reads committed state straight from the LMDB directory (opened read-only once,
``refresh``-ed per block) when the coordinator's store is that directory at the same height and
accumulator; otherwise it asks the coordinator for values (``Fetch``), caching them for the
block (committed state does not change during a block).

Per transaction it keeps the current incarnation's read set as (key, value seen) pairs:
validation re-resolves a key against the multi-version memory and compares bytes, but only when
the memory's ``changed`` map says an entry below the reader changed since the last validation.
When it has nothing else to do, during a block or between blocks, a worker checks the
signatures of the next block's transactions it was sent (``Precheck``) until the coordinator
collects the verdicts (``Collect``); between blocks it also computes the
commitment delta of its share of a block the coordinator executed itself (``Hash``). During
such a block it checks batches of that block's own transactions as they come (``Verify``).
While it waits, after preparing, a worker hashes the committed values of newly written keys of
its share (``hash_some``), so ``finish`` hashes mostly new values. A read
whose resolution raised (a delta folded onto a non-integer) is recorded as ``RAISED``, so it is
re-checked like any other read when the key's entries change.
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import time
import traceback
from bisect import bisect_left, bisect_right
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from ...errors import InvariantViolation
from ...state import commitment
from ...types import Key, Value
from ..contract import BlockEnv, Receipt, TxContext
from . import messages as m
from .mvmemory import MVMemory
from .transport import send_frame, widen

_receipts_decoder = msgspec.msgpack.Decoder(list[Receipt])

#: Scheduling niceness of a worker process. When a block runs in the coordinator (contended
#: blocks: perps, the replay, ``adaptive``'s in-process plan), the coordinator's execution is the
#: critical path while the workers check signatures, the next block's included: three busy
#: processes on two cores, and at equal priority the coordinator waited on the run queue
#: 36-85 ms per 3-block perps pass (``/proc/self/schedstat``, 2-core box). At niceness 10 a
#: worker weighs ~1/10 of the coordinator, which then waits 4-20 ms; a worker still gets every
#: core the coordinator leaves idle, and the coordinator sleeps whenever it waits for them.
WORKER_NICENESS = 10


def lower_priority() -> None:
    """Lower this process's CPU priority (``WORKER_NICENESS``); where the OS refuses, carry on:
    it is a schedule preference, never needed for a result."""
    try:
        current = os.nice(0)
        if current < WORKER_NICENESS:
            os.nice(WORKER_NICENESS - current)
    except (AttributeError, OSError):
        pass


class MVContext(TxContext):
    """A TxContext reading the multi-version memory just below ``txn_idx``, recording reads."""

    __slots__ = ("txn_idx", "mv", "reads")

    def __init__(self, env: BlockEnv, txn_idx: int, mv: MVMemory) -> None:
        self.env = env  # TxContext.__init__, inlined: this runs once per incarnation
        self.writes = {}
        self.deltas = {}
        self.events = []
        self.txn_idx = txn_idx
        self.mv = mv
        #: key -> value seen (a repeated read sees the same value: the memory does not change
        #: while one incarnation runs). A dict, so validation can test a whole read set against
        #: the changed keys with one C-level ``isdisjoint``.
        self.reads: dict[Key, Value | None] = {}

    def _read(self, key: Key) -> Value | None:
        mv = self.mv
        if key in mv.data:
            try:
                value = mv.resolve(key, self.txn_idx)
            except Exception:  # a delta folded onto a non-integer: record that the read raised
                self.reads[key] = RAISED
                raise
        else:  # fast path: nobody in the block wrote it (yet)
            value = mv.base_get(key)
        self.reads[key] = value
        return value


#: What a read set records for a read whose resolution raised (compared by identity).
RAISED: Any = object()


def resolve_or_raised(mv: MVMemory, key: Key, txn_idx: int) -> Value | None:
    try:
        return mv.resolve(key, txn_idx)
    except Exception:
        return RAISED  # type: ignore[no-any-return]


class BlockRun:
    """One block on one worker: own transactions, their read sets, receipts, the MV memory."""

    def __init__(self, runtime: Any, setup: m.Setup, base_get: Any) -> None:
        self.runtime = runtime
        self.env = setup.env
        self.n = setup.n_txs
        self.worker_id = setup.worker_id
        self.n_workers = setup.n_workers
        self.base_get = base_get
        self.mv = MVMemory(base_get)
        self.raw: list[bytes | None] = [None] * self.n
        self.order: list[int] = setup.own  # own txn_idx ascending: the preparation order
        for txn_idx, raw in zip(setup.own, setup.txs, strict=True):
            self.raw[txn_idx] = raw
        #: own transactions whose signature a worker checked ahead of the block (``Precheck``)
        self.checked = {txn_idx for txn_idx, ok in zip(setup.own, setup.checked, strict=False) if ok}
        self.next_prepare = 0
        self.prepared: dict[int, Any] = {}
        self.reads: dict[int, dict[Key, Value | None]] = {}
        self.receipts: dict[int, Receipt | None] = {}
        self.raised: set[int] = set()
        self.pending: list[int] = []  # own executed, not yet known final, ascending
        self.executions = 0
        self.validations = 0
        self.aborts = 0
        #: key -> (committed value, its lattice contribution), for keys of this worker's share,
        #: computed while waiting for messages so that ``finish`` hashes only the new values.
        self.old_hashes: dict[Key, tuple[Value | None, int]] = {}

    def ingest(self, foreign: list[msgspec.Raw]) -> None:
        mv = self.mv
        for blob in foreign:
            effects = m.decode_effects(blob)
            for txn_idx, keys in effects.purges:
                mv.purge(txn_idx, keys)
            mv.merge(effects.writes, effects.delta_keys)  # type: ignore[arg-type]

    def round(self, msg: m.Round) -> m.RoundDone:
        self.ingest(msg.foreign)
        lo = msg.lo
        pending = self.pending
        pending = pending[bisect_left(pending, lo) :]  # ascending: ranges are sent in order
        mv = self.mv
        reads = self.reads
        changed = mv.changed
        invalid = []
        if changed:  # a read can only have gone stale through a key whose entries changed
            floor = min(changed.values())  # at or below it, no transaction can be affected
            changed_keys = changed.keys()
            for txn_idx in pending[bisect_right(pending, floor) :]:
                read = reads[txn_idx]
                if changed_keys.isdisjoint(read.keys()):  # the common case, in C
                    continue
                for key, value in read.items():
                    # only an entry below txn_idx can change what it reads
                    if changed.get(key, txn_idx) < txn_idx and resolve_or_raised(mv, key, txn_idx) != value:
                        invalid.append(txn_idx)
                        break
            changed.clear()
        self.validations += len(pending)
        self.aborts += len(invalid)
        out = m.Effects([], {}, [])
        chunk = self.order[msg.a : msg.b]
        if isinstance(self.base_get, ServedReads):
            self.prefetch_hints([*invalid, *chunk])
        for txn_idx in invalid:
            self.execute(txn_idx, out)
        for txn_idx in chunk:
            self.execute(txn_idx, out)
        pending.extend(chunk)
        self.pending = pending
        first_invalid = invalid[0] if invalid else self.n
        executed = len(invalid) + len(chunk)
        return m.RoundDone(first_invalid, msgspec.Raw(m.encode_effects(out)), executed, len(invalid))

    def prefetch_hints(self, txn_idxs: list[int]) -> None:
        """Served reads only: fetch the hinted keys of ``txn_idxs`` in one round trip."""
        runtime, prepared, keys = self.runtime, self.prepared, []
        for txn_idx in txn_idxs:
            try:
                if txn_idx not in prepared:
                    prepared[txn_idx] = self.prepare(txn_idx)
                keys.extend(runtime.hint_keys(prepared[txn_idx]))
            except Exception:  # only a hint: execution reads whatever it needs
                pass
        self.base_get.prefetch(keys)

    def prepare(self, txn_idx: int) -> Any:
        """``runtime.prepare`` of an own transaction, without the signature check when a worker
        already checked it ahead of the block."""
        if txn_idx in self.checked:
            return self.runtime.prepare_checked(self.raw[txn_idx])
        return self.runtime.prepare(self.raw[txn_idx])

    def prepare_some(self, count: int = 16) -> bool:
        """Prepare the next ``count`` own transactions ahead of time; False when all are done."""
        order, prepared = self.order, self.prepared
        stop = min(len(order), self.next_prepare + count)
        for position in range(self.next_prepare, stop):
            txn_idx = order[position]
            if txn_idx not in prepared:
                try:
                    prepared[txn_idx] = self.prepare(txn_idx)
                except Exception:  # execution prepares it again and treats the error there
                    pass
        self.next_prepare = stop
        return stop < len(order)

    def hash_some(self, count: int = 64) -> bool:
        """Hash the committed values of up to ``count`` newly written keys of this worker's share
        (``finish`` needs them); False when none are left. Only with direct LMDB reads."""
        fresh = self.mv.fresh
        if isinstance(self.base_get, ServedReads):
            fresh.clear()  # a read would cost a round trip: ``finish`` fetches them in one
            return False
        hashed, get, contribution = self.old_hashes, self.base_get, commitment.contribution
        n_workers, worker_id = self.n_workers, self.worker_id
        while fresh and count > 0:
            key = fresh.pop()
            if key in hashed or (key[-1] if key else 0) % n_workers != worker_id:
                continue
            old = get(key)
            hashed[key] = (old, 0 if old is None else contribution(key, old))
            count -= 1
        return bool(fresh)

    def accumulator_delta(self, writes: dict[Key, Value | None]) -> int:
        """``commitment.delta`` of (key, committed value, ``writes[key]``), reusing ``old_hashes``."""
        get = self.base_get
        if isinstance(get, ServedReads):
            get.prefetch([k for k in writes if k not in self.old_hashes])
        hashed, contribution = self.old_hashes, commitment.contribution
        total = 0
        for key, new in writes.items():
            pre = hashed.get(key)
            if pre is None:
                old = get(key)
                if old == new:
                    continue
                if old is not None:
                    total -= contribution(key, old)
            else:
                old, old_hash = pre
                if old == new:
                    continue
                total -= old_hash
            if new is not None:
                total += contribution(key, new)
        return total & commitment.MASK

    def execute(self, txn_idx: int, out: m.Effects) -> None:
        """Run the next incarnation of ``txn_idx`` and publish its effects."""
        runtime = self.runtime
        ctx = MVContext(self.env, txn_idx, self.mv)
        try:
            prepared = self.prepared.get(txn_idx)
            if prepared is None:
                prepared = self.prepared[txn_idx] = self.prepare(txn_idx)
            receipt: Receipt | None = runtime.execute(prepared, ctx)
            writes, deltas = ctx.writes, ctx.deltas
            if self.raised:
                self.raised.discard(txn_idx)
        except Exception:  # speculative runs may see inconsistent state; final ones re-raise later
            receipt, writes, deltas = None, {}, {}
            self.raised.add(txn_idx)
        self.executions += 1
        self.reads[txn_idx] = ctx.reads
        self.receipts[txn_idx] = receipt
        old = self.mv.record(txn_idx, writes, deltas, out.writes)
        if old:
            out.purges.append((txn_idx, list(old)))
        if deltas:
            out.delta_keys.extend(deltas)

    def finish(self, msg: m.Finish, cpu_at_setup: float) -> m.Finished:
        """Resolve, hash and encode this worker's share; busy = CPU time since ``Setup``."""
        self.ingest(msg.foreign)
        upto = msg.upto
        n_workers, worker_id = self.n_workers, self.worker_id
        resolve = self.mv.resolve
        writes: dict[Key, Value | None] = {}
        delta_keys = self.mv.delta_keys
        raised = sorted(i for i in self.raised if i < upto)
        for key, entries in self.mv.data.items():
            if entries[0][0] < upto and (key[-1] if key else 0) % n_workers == worker_id:
                if key not in delta_keys:
                    last = entries[-1]
                    writes[key] = last[2] if last[0] < upto else resolve(key, upto)  # type: ignore[assignment]
                    continue
                try:
                    writes[key] = self.mv.fold(key, upto)
                except Exception:  # sequential raises while folding this delta: re-run it there
                    raised.append(upto)
        acc_delta = 0
        if msg.hash_writes:
            acc_delta = self.accumulator_delta(writes)
        encoded, pickled = b"", False
        if not raised:  # else the coordinator re-runs the block in-process: receipts are moot
            receipts = [self.receipts[i] for i in sorted(self.receipts) if i < upto]
            encoded = m.encode(receipts)
            pickled = _receipts_decoder.decode(encoded) != receipts
            if pickled:
                encoded = pickle.dumps(receipts, protocol=pickle.HIGHEST_PROTOCOL)
        return m.Finished(
            msgspec.Raw(m.encode(writes)),
            acc_delta.to_bytes(commitment.LATTICE_BYTES, "little"),
            encoded,
            pickled,
            raised,
            self.executions,
            self.validations,
            self.aborts,
            time.process_time() - cpu_at_setup,
        )


class ServedReads:
    """Committed reads served by the coordinator (``Fetch``), cached for the block.

    Committed state does not change during a block, so every key is fetched at most once;
    ``prefetch`` asks for many keys in one round trip (a chunk's hinted keys, a finish's keys).
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.cache: dict[Key, Value | None] = {}

    def __call__(self, key: Key) -> Value | None:
        try:
            return self.cache[key]
        except KeyError:
            self.prefetch([key])
            return self.cache[key]

    def prefetch(self, keys: list[Key]) -> None:
        cache = self.cache
        missing = [k for k in dict.fromkeys(keys) if k not in cache]
        if not missing:
            return
        send_frame(self.conn, m.encode(m.Fetch(missing)))
        reply = m.to_worker.decode(self.conn.recv_bytes())
        if not isinstance(reply, m.Values) or len(reply.values) != len(missing):
            raise InvariantViolation(f"expected {len(missing)} values, got {reply!r}")
        cache.update(zip(missing, reply.values, strict=True))


class Spans:
    """The worker's timeline of one block: (start, end, label) spans, merged when one follows
    the previous of the same label within ``GAP`` seconds (hundreds of messages a block would
    otherwise make thousands of slivers)."""

    GAP = 50e-6

    def __init__(self) -> None:
        self.spans: list[tuple[float, float, str]] = []

    def add(self, start: float, label: str) -> None:
        end = time.perf_counter()
        spans = self.spans
        if spans and spans[-1][2] == label and start - spans[-1][1] < self.GAP:
            spans[-1] = (spans[-1][0], end, label)
        else:
            spans.append((start, end, label))


class Precheck:
    """Signature checks of the next block's transactions, done between blocks while the
    coordinator merges and commits (``messages.Precheck``): ``ok`` holds a verdict per checked
    transaction, in order."""

    def __init__(self, runtime: Any, txs: list[bytes]) -> None:
        self.runtime = runtime
        self.txs = txs
        self.ok = bytearray()

    def check_some(self, count: int = 16) -> bool:
        """Check the next ``count`` transactions; False when all are checked."""
        prepare, ok, txs = self.runtime.prepare, self.ok, self.txs
        for raw in txs[len(ok) : len(ok) + count]:
            try:
                ok.append(prepare(raw).error is None)
            except Exception:  # execution prepares it again and reports the error there
                ok.append(0)
        return len(ok) < len(txs)


class WorkerState:
    """Process-lifetime state: the runtime (rebuilt when its spec changes) and the LMDB reader."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.runtime: Any = None
        self.store: Any = None
        self.block: BlockRun | None = None
        self.precheck: Precheck | None = None
        self.precheck_failed = False  # the last Precheck's spec did not build (told at Collect)
        #: sum of h(k, old) over the keys of this block's ``HashOld`` messages; ``None``: unusable
        self.old_sum: int | None = None
        self.cpu_at_setup = 0.0
        self.spans = Spans()

    def handle(self, msg: Any) -> Any:
        started = time.perf_counter()
        if isinstance(msg, m.Round):
            assert self.block is not None
            reply = self.block.round(msg)
            self.spans.add(started, "execute" if msg.b > msg.a else "validate")
            return reply
        if isinstance(msg, m.Setup):
            self.cpu_at_setup = time.process_time()  # busy is CPU time: waiting for a core is not work
            self.spans = Spans()
            self.precheck = None  # collected before the block; the next block's may follow
            self.setup(msg)
            self.spans.add(started, "setup")
            return None
        if isinstance(msg, m.Precheck):  # never answered, even on error (as ``HashOld``): an
            # unasked-for ``Failed`` would be read as the answer to the next request
            self.precheck = None
            self.precheck_failed = False
            if msg.spec is not None:
                self.runtime = None  # a spec that fails to build leaves no stale runtime behind
                try:
                    self.runtime = pickle.loads(msg.spec).build()
                except Exception:  # said in the answer to ``Collect``: no verdicts, no runtime
                    self.precheck_failed = True
                    return None
            if self.runtime is not None:
                self.precheck = Precheck(self.runtime, msg.txs)
            return None
        if isinstance(msg, m.Verify):
            if msg.spec is not None:
                self.runtime = None  # as for Precheck: a spec that fails leaves no stale runtime
                self.runtime = pickle.loads(msg.spec).build()
            check = Precheck(self.runtime, msg.txs)
            check.check_some(len(msg.txs))
            return m.Prechecked(bytes(check.ok))
        if isinstance(msg, m.HashOld):  # never answered, even on error: the coordinator reads no reply
            if msg.first:
                self.old_sum = 0
            if self.old_sum is not None:
                try:
                    # the view is opened (and checked against the block's base) by the block's first
                    # message only: the base cannot change before the block's root is asked for
                    if self.block is None and (not msg.first or self.open_store(msg)):
                        self.old_sum = (self.old_sum + commitment.sum_of(msg.keys, self.store.get)) & commitment.MASK
                    else:
                        self.old_sum = None
                except Exception:  # the sum is unusable: ``Hash.minus_old`` answers None, the root is hashed as usual
                    self.old_sum = None
            return None
        if isinstance(msg, m.Hash):
            old, self.old_sum = self.old_sum, None
            if self.block is not None or not self.open_store(msg) or (msg.minus_old and old is None):
                return m.Hashed(None)
            if msg.minus_old:
                assert old is not None
                delta = (commitment.sum_of(msg.writes, msg.writes.get) - old) & commitment.MASK
            else:
                delta = commitment.write_delta(msg.writes.items(), self.store.get)
            return m.Hashed(delta.to_bytes(commitment.LATTICE_BYTES, "little"))
        if isinstance(msg, m.Collect):
            ok = bytes(self.precheck.ok) if self.precheck is not None else b""
            self.precheck = None
            failed, self.precheck_failed = self.precheck_failed, False
            return m.Prechecked(ok, failed)
        if isinstance(msg, m.Finish):
            assert self.block is not None
            finished = self.block.finish(msg, self.cpu_at_setup)
            self.spans.add(started, "finish")
            finished.spans = self.spans.spans
            return finished
        raise TypeError(f"unexpected message {type(msg).__name__}")

    def prepare_ahead(self) -> None:
        """Use time that would be spent waiting for a message to prepare own transactions, then
        to hash the committed values of keys this worker will hash in ``finish``, then (and
        between blocks) to check the signatures of the next block's transactions (``Precheck``)."""
        block = self.block
        if block is None:
            precheck, poll = self.precheck, self.conn.poll
            if precheck is not None:
                while not poll(0) and precheck.check_some():
                    pass
            return
        poll = self.conn.poll
        started = time.perf_counter()
        if block.next_prepare < len(block.order):
            before = block.next_prepare
            while not poll(0) and block.prepare_some():
                pass
            if block.next_prepare != before:
                self.spans.add(started, "prepare")
            started = time.perf_counter()
        if block.next_prepare >= len(block.order) and block.mv.fresh:
            before = len(block.old_hashes)
            while block.mv.fresh and not poll(0) and block.hash_some():
                pass
            if len(block.old_hashes) != before:
                self.spans.add(started, "hash")
            started = time.perf_counter()
        precheck = self.precheck
        if precheck is not None and block.next_prepare >= len(block.order) and not block.mv.fresh:
            # one at a time: a Round that arrives meanwhile waits for at most one check
            before = len(precheck.ok)
            while not poll(0) and precheck.check_some(1):
                pass
            if len(precheck.ok) != before:
                self.spans.add(started, "precheck")

    def end_block(self) -> None:
        self.block = None
        gc.enable()

    def setup(self, msg: m.Setup) -> None:
        # A block allocates many small containers and frees them all at its end: the cyclic
        # collector would only rescan them over and over (measured: ~15% of a worker's time).
        gc.disable()
        if msg.spec is not None:
            self.runtime = pickle.loads(msg.spec).build()
        self.block = BlockRun(self.runtime, msg, self.base_reader(msg))

    def base_reader(self, msg: m.Setup) -> Any:
        """Committed-state reads: LMDB directly when it is the coordinator's store."""
        if msg.lmdb_path is not None and self.open_store(msg):
            return self.store.get
        return ServedReads(self.conn)

    def open_store(self, msg: m.Setup | m.Hash | m.HashOld) -> bool:
        """Open (or refresh) the read-only LMDB view; True when it matches the coordinator's."""
        from ...state.lmdb_store import LmdbStore

        accumulator = int.from_bytes(msg.accumulator, "little")
        for attempt in range(2):
            try:
                if self.store is None or self.store.path != msg.lmdb_path or attempt:
                    if self.store is not None:
                        self.store.close()
                        self.store = None
                    self.store = LmdbStore(msg.lmdb_path, readonly=True)  # type: ignore[arg-type]
                else:
                    self.store.refresh()
            except Exception:
                self.store = None
                return False
            if self.store.accumulator == accumulator and (msg.height is None or self.store.height == msg.height):
                return True
        return False


def main(conn: Connection) -> None:
    """Worker process entry point: serve messages until ``Shutdown`` or the pipe closes."""

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's (``transport.WorkerPool.start``)
    widen(conn)
    lower_priority()
    state = WorkerState(conn)
    while True:
        state.prepare_ahead()
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        msg = m.to_worker.decode(data)
        if isinstance(msg, m.Shutdown):
            return
        try:
            reply = state.handle(msg)
        except Exception:
            reply = m.Failed(traceback.format_exc())
        if reply is not None:
            send_frame(conn, m.encode(reply))
        if isinstance(reply, m.Finished | m.Failed):
            state.end_block()  # after the reply: freeing the block overlaps the coordinator's commit
