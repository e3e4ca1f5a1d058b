"""A block run in-process checks its signatures on the workers while it runs (``verify_stream``).

The result must be exactly sequential's, bad signatures included (a wrong positive verdict
would let a badly signed transfer through and change the receipts); a worker that dies
mid-stream, or cannot build the runtime, must change nothing but the speed. Each test checks
that the stream engaged (``stream_verified``), which the result alone would not show.
"""

from __future__ import annotations

import os
import signal
from collections import deque

import pytest

from paraexec.execution import BlockEnv, SequentialExecutor
from paraexec.execution.parallel import ParallelExecutor
from paraexec.execution.parallel import messages as m
from paraexec.execution.parallel import verify_stream as vs

from .strategies import _resign_badly, transfer_block, transfer_chain

SIZE = 3 * vs.BATCH + vs.MIN_TXS  # several batches for the helper and for the coordinator


def block_with_bad_signatures(tc, seed: int) -> list[bytes]:
    txs = transfer_block(tc, SIZE, seed=seed)
    for i in range(3, SIZE, 97):
        txs[i] = _resign_badly(txs[i])
    return txs


def run_blocks(executor: ParallelExecutor, blocks: list[list[bytes]], runtime=None) -> None:
    """Each block in-process on ``executor`` equals sequential's, on the same committed state."""
    tc = transfer_chain(40)
    runtime = runtime or tc.chain.runtime
    store = tc.chain.store
    for k, txs in enumerate(blocks):
        env = BlockEnv(k + 1, k + 1)
        expected = SequentialExecutor().execute_block(tc.chain.runtime, txs, store, env)
        assert sum(not r.ok for r in expected.receipts) >= SIZE // 97  # the bad signatures
        got = executor.execute_in_process(runtime, txs, store, env)
        assert got.same_result(expected) and got.accumulator == expected.accumulator
        store.commit_block(k + 1, got.write_set, got.accumulator, b"", b"")


def test_in_process_blocks_checked_on_workers_equal_sequential():
    tc = transfer_chain(40)
    blocks = [block_with_bad_signatures(tc, seed) for seed in (1, 2)]
    executor = ParallelExecutor(2)
    try:
        run_blocks(executor, blocks)
        bad = sum(len(range(3, SIZE, 97)) for _ in blocks)
        assert executor.stream_verified > 0
        assert executor.stream_verified <= 2 * SIZE - bad  # never a badly signed one
    finally:
        executor.close()


def test_worker_lost_mid_stream_changes_nothing(monkeypatch):
    tc = transfer_chain(40)
    blocks = [block_with_bad_signatures(tc, 1)]
    executor = ParallelExecutor(2)
    killed: list[int] = []
    read = vs.VerifyStream._read

    def kill_then_read(self, w, current):  # after the first replies: the helper's later batches are lost
        if self.received == 2 and not killed:
            killed.append(executor.worker_pids()[w])
            os.kill(killed[0], signal.SIGKILL)
        read(self, w, current)

    monkeypatch.setattr(vs.VerifyStream, "_read", kill_then_read)
    try:
        run_blocks(executor, blocks)
        assert killed and killed[0] not in executor.worker_pids()
        first = executor.stream_verified
        assert 0 < first < SIZE  # verdicts of the first batches only
        run_blocks(executor, [block_with_bad_signatures(tc, 2)])  # the replaced pool streams again
        assert executor.stream_verified > first
    finally:
        executor.close()


class VirtualTime:
    """The stream's clock (``verify_stream.time``), moved only by the costs a test charges: the
    stream's measures (checks S, execution E, waits left out) and so its placement of batches
    then follow from those costs alone, however busy the machine is."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class PacedPool:
    """``pool`` with each helper's replies released in virtual time: a helper checks the batches
    it is sent one after another at ``check`` a transaction, from when each was sent; a reply is
    in (``has_reply``) once the clock has passed the time its batch is done, and reading one
    sooner waits for it (the clock jumps there: a wait, which the stream leaves out of its
    measures). The verdicts are the real helper's; a slow real helper only delays ``recv``."""

    def __init__(self, pool, clock: VirtualTime, check: float) -> None:
        self.pool, self.size, self.clock, self.check = pool, pool.size, clock, check
        self.done: dict[int, deque[float]] = {w: deque() for w in range(pool.size)}
        self.free = [0.0] * pool.size  # when each helper is done with what it holds

    def send(self, w: int, data: bytes) -> None:
        self.pool.send(w, data)
        msg = m.to_worker.decode(data)
        if isinstance(msg, m.Verify):
            self.free[w] = max(self.free[w], self.clock.now) + self.check * len(msg.txs)
            self.done[w].append(self.free[w])

    def has_reply(self, w: int) -> bool:
        return bool(self.done[w]) and self.done[w][0] <= self.clock.now

    def recv(self, w: int) -> bytes:
        data = self.pool.recv(w)
        self.clock.now = max(self.clock.now, self.done[w].popleft())
        return data


def stream_through(
    txs,
    tc,
    executor,
    monkeypatch,
    execute: float = 1.0,
    check: float = 4.0,
    verified: frozenset = frozenset(),
    ratio: float = 2.0,
):
    """Every prepared transaction of ``txs`` from a ``VerifyStream`` on ``executor``'s booted
    workers, the coordinator's own checks recorded (``full``). Time is virtual (``VirtualTime``,
    ``PacedPool``): each transaction's execution costs ``execute``, each signature check
    ``check``, the coordinator's and the helpers' alike; ``verified``: transactions checked ahead
    (``precheck``); ``ratio``: the stream's estimate of checks over execution until it has
    measured its own."""
    runtime = tc.chain.runtime
    clock = VirtualTime()
    monkeypatch.setattr(vs, "time", clock)
    full: list[bytes] = []

    class Counting:  # the runtime, counting (and charging) the coordinator's own signature checks
        spec, verify_signatures = runtime.spec, True

        def prepare(self, raw):
            full.append(raw)
            clock.now += check
            return runtime.prepare(raw)

        def prepare_checked(self, raw):
            return runtime.prepare_checked(raw)

    executor._boot_workers(tc.chain.store)
    pool = PacedPool(executor.pool, clock, check)
    stream = vs.VerifyStream(pool, executor._specs, executor._restart, Counting(), txs, verified, ratio)
    stream.send()
    prepared = []
    for p in stream:
        prepared.append(p)
        clock.now += execute
    return stream, prepared, full


def assert_each_checked_once(stream, txs, prepared, full, runtime, verified=frozenset()):
    """The coordinator checked (the full ``prepare``) exactly the batches no helper had, and the
    transactions a helper found bad (to report their error), in block order; the rest came with
    a helper's positive verdict or were ``verified`` ahead; every result is the plain
    ``prepare``'s."""
    assert not stream.owner and stream.received == sum(stream.assigned)
    assert not stream.assigned[0]  # the coordinator starts on the first batch at once
    fails = {raw for raw in txs if runtime.prepare(raw).error is not None}  # bad signatures and more
    batch_of = {i: k for k, b in enumerate(stream.batches) for i in b}
    expected = [
        raw for i, raw in enumerate(txs) if raw not in verified and (not stream.assigned[batch_of[i]] or raw in fails)
    ]
    assert full == expected
    assert stream.checked == sum(raw not in verified for raw in txs) - len(expected)
    assert [p.error is None for p in prepared] == [raw not in fails for raw in txs]


@pytest.mark.parametrize("helpers", (1, 2))
def test_helpers_that_lead_check_everything_after_the_first_batch(monkeypatch, helpers):
    """Execution far dearer than the checks (20 times, and a stream told so): the helpers stay
    ahead and take every batch in order; the coordinator checks only its first batch, and
    measures the checks far cheaper than the execution."""
    monkeypatch.setattr(vs, "helper_count", lambda workers: min(workers, helpers))
    tc = transfer_chain(40)
    txs = block_with_bad_signatures(tc, 3)
    executor = ParallelExecutor(2)
    try:
        stream, prepared, full = stream_through(txs, tc, executor, monkeypatch, execute=20.0, check=1.0, ratio=0.5)
        assert len(stream.helpers) == helpers
        assert_each_checked_once(stream, txs, prepared, full, tc.chain.runtime)
        assert all(stream.assigned[1:])
        assert stream.checks[1] >= vs.BATCH and stream.executed[1] >= vs.BATCH and stream.ratio() < 0.5
    finally:
        executor.close()


@pytest.mark.parametrize("helpers", (1, 2))
def test_checks_dearer_than_execution_are_shared_along_the_block(monkeypatch, helpers):
    """Checks cost four times the execution (transfers, measured, ~4): the helpers get batches
    well ahead of the coordinator, which checks the ones in between itself; each is checked
    once, both sides check part of the block, and the stream measures checks dearer than
    execution."""
    monkeypatch.setattr(vs, "helper_count", lambda workers: min(workers, helpers))
    tc = transfer_chain(40)
    txs = block_with_bad_signatures(tc, 3)
    executor = ParallelExecutor(2)
    try:
        stream, prepared, full = stream_through(txs, tc, executor, monkeypatch, execute=1.0, check=4.0)
        assert len(stream.helpers) == helpers
        assert_each_checked_once(stream, txs, prepared, full, tc.chain.runtime)
        own = [k for k, a in enumerate(stream.assigned) if not a]
        assert 2 < len(own) < len(stream.batches) - 2, own  # more than the first batch each side
        assert any(k and stream.assigned[k - 1] for k in own)  # interleaved with the helpers' batches
        assert stream.ratio() > 1
    finally:
        executor.close()


def test_transactions_checked_ahead_are_skipped_wherever_they_lie(monkeypatch):
    """Part of the block checked ahead (a scattered subset, as ``precheck`` leaves when it was
    cut short, and never a badly signed one): the batches hold only the others, and each
    transaction still gets exactly its own verdict."""
    tc = transfer_chain(40)
    txs = block_with_bad_signatures(tc, 4)
    runtime = tc.chain.runtime
    good = [raw for raw in txs if runtime.prepare(raw).error is None]
    verified = frozenset(good[::3] + good[100:400])
    executor = ParallelExecutor(2)
    try:
        stream, prepared, full = stream_through(txs, tc, executor, monkeypatch, verified=verified)
        assert stream.unchecked == sum(raw not in verified for raw in txs) >= vs.MIN_TXS // 2
        assert_each_checked_once(stream, txs, prepared, full, runtime, verified)
        assert sum(stream.assigned) >= 2  # the helpers had batches
    finally:
        executor.close()


def test_workers_that_cannot_build_the_runtime_leave_it_to_the_coordinator(monkeypatch):
    from paraexec import apps
    from paraexec.execution.runtime import RuntimeSpec

    monkeypatch.setitem(apps.APPS, "transfers-here-only", apps.APPS["transfers"])
    spec = transfer_chain(40).chain.runtime.spec
    runtime = RuntimeSpec("transfers-here-only", spec.app_config, spec.chain_id).build()
    tc = transfer_chain(40)
    executor = ParallelExecutor(2)
    try:
        run_blocks(executor, [block_with_bad_signatures(tc, 1), block_with_bad_signatures(tc, 2)], runtime)
        assert executor.pool.started and executor.stream_verified == 0
    finally:
        executor.close()


class FakePool:
    """A pool that sends nothing: ``_send_next``'s placement alone."""

    size = 2

    def send(self, w, data):
        pass


def placement(ratio: float, coordinator_at: list[float]) -> tuple[vs.VerifyStream, list[int]]:
    """The batches one helper gets at a fixed ``ratio``: ``AHEAD`` at the start, then one each
    time its oldest reply is read with the coordinator at each position of ``coordinator_at``
    (in batches: 2.0 is the start of batch 2)."""
    tc = transfer_chain(40)
    txs = transfer_block(tc, 40 * vs.BATCH, seed=9)
    stream = vs.VerifyStream(FakePool(), [None, None], lambda: None, tc.chain.runtime, txs, frozenset(), ratio)
    stream.helpers = [0]
    stream.pending = {0: stream.pending[0]}
    stream.spec_bytes = b"spec"
    for _ in range(vs.AHEAD):
        stream._send_next(0, 0.0)
    for at in coordinator_at:
        k = stream.pending[0].popleft()
        del stream.owner[k]
        stream._send_next(0, at)
    return stream, [k for k, a in enumerate(stream.assigned) if a]


def test_a_helper_gets_the_first_batch_it_can_check_before_the_coordinator_gets_there():
    """In units of one batch's execution, the helper needs r (placed as ``SAFETY`` r) a batch it
    holds plus the new one; the coordinator crosses a helper's batch in 1 and its own in 1 + r.

    Cheap checks (r = 0.5): every batch in order. Dear ones (r = 4, placed as 5): from the start,
    the coordinator's batch 0 (6) covers the helper's first batch (5) but not its second (10), so
    batch 2 is left to the coordinator (6 + 1 + 6 >= 10) and the helper gets 3. Its reply for 1
    read at the start of batch 1: 1 + 6 + 1 < 10, so batch 4 is the coordinator's and 5 the
    helper's; at 2.0: 6 + 1 + 6 + 1 >= 10 already, so 6; past the last batch: nothing."""
    _, cheap = placement(0.5, [1.0, 2.0, 3.0])
    assert cheap == [1, 2, 3, 4, 5]
    stream, dear = placement(4.0, [1.0, 2.0, 39.0])
    assert vs.SAFETY == 1.25 and dear == [1, 3, 5, 6]
    assert stream.front == len(stream.batches) == 40  # every batch decided


def test_the_executor_starts_the_next_stream_with_the_last_ones_measured_ratio(monkeypatch):
    """Transfers check far slower than they execute: the first block's stream starts from
    ``RATIO_START`` and measures more; the second block's stream starts from that measure."""
    tc = transfer_chain(40)
    blocks = [block_with_bad_signatures(tc, seed) for seed in (7, 8)]
    executor = ParallelExecutor(2)
    streams: list[vs.VerifyStream] = []
    init = vs.VerifyStream.__init__

    def recording(self, *args, **kwargs):
        init(self, *args, **kwargs)
        streams.append(self)

    monkeypatch.setattr(vs.VerifyStream, "__init__", recording)
    try:
        run_blocks(executor, blocks)
        first, second = streams
        assert first.start_ratio == vs.RATIO_START
        assert second.start_ratio == first.ratio() != vs.RATIO_START
    finally:
        executor.close()
