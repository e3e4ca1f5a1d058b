"""A block run in-process checks its signatures on the workers while it runs (``verify_stream``).

The result must be exactly sequential's, bad signatures included (a wrong positive verdict
would let a badly signed transfer through and change the receipts); a worker that dies
mid-stream, or cannot build the runtime, must change nothing but the speed. Each test checks
that the stream engaged (``stream_verified``), which the result alone would not show.
"""

from __future__ import annotations

import os
import signal
import time

from paraexec.execution import BlockEnv, SequentialExecutor
from paraexec.execution.parallel import ParallelExecutor
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


def stream_through(txs, tc, executor, pause: float = 0.0, verified: frozenset = frozenset(), from_end: bool = False):
    """Every prepared transaction of ``txs`` from a ``VerifyStream`` on ``executor``'s booted
    workers, the coordinator's own checks recorded (``full``); ``pause`` seconds stand for the
    execution of each transaction; ``verified``: transactions checked ahead (``precheck``);
    ``from_end``: the helpers take batches from the end from the start."""
    runtime = tc.chain.runtime
    full: list[bytes] = []

    class Counting:  # the runtime, counting the coordinator's own signature checks
        spec, verify_signatures = runtime.spec, True

        def prepare(self, raw):
            full.append(raw)
            return runtime.prepare(raw)

        def prepare_checked(self, raw):
            return runtime.prepare_checked(raw)

    executor._boot_workers(tc.chain.store)
    stream = vs.VerifyStream(executor.pool, executor._specs, executor._restart, Counting(), txs, verified, from_end)
    stream.send()
    prepared = []
    for p in stream:
        prepared.append(p)
        if pause:
            time.sleep(pause)
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


def test_helpers_that_lead_check_everything_after_the_first_batch():
    """Execution slower than the checks (a pause per transaction): the helpers stay ahead and
    take every batch from the front; the coordinator checks only its first batch."""
    tc = transfer_chain(40)
    txs = block_with_bad_signatures(tc, 3)
    executor = ParallelExecutor(2)
    try:
        stream, prepared, full = stream_through(txs, tc, executor, pause=0.001)
        assert_each_checked_once(stream, txs, prepared, full, tc.chain.runtime)
        assert not stream.from_end and all(stream.assigned[1:])
    finally:
        executor.close()


def test_one_long_wait_does_not_send_the_helpers_to_the_end(monkeypatch):
    """Helpers that lead (1 ms of execution a transaction), but the coordinator once finds batch 3
    unanswered and waits 50 ms (a helper busy with a hash message): the waits so far are less than
    0.618 times the execution of the helpers' batches (2 x 64 ms), so the stream stays at the
    front. Judged by that one wait against the last batch alone, it switched to the end."""
    tc = transfer_chain(40)
    txs = block_with_bad_signatures(tc, 3)
    executor = ParallelExecutor(2)
    waits: list[int] = []
    read, has_reply = vs.VerifyStream._read, executor.pool.has_reply

    def slow_once(self, w, current):  # batch 3's reply is read only while the coordinator waits
        if self.pending[w][0] == 3 and not waits:
            waits.append(3)
            time.sleep(0.05)
        read(self, w, current)

    monkeypatch.setattr(vs.VerifyStream, "_read", slow_once)
    monkeypatch.setattr(executor.pool, "has_reply", lambda w: has_reply(w) and 3 not in executor_stream[0].owner)
    executor_stream: list = []
    init = vs.VerifyStream.__init__

    def recording(self, *args, **kwargs):
        init(self, *args, **kwargs)
        executor_stream.append(self)

    monkeypatch.setattr(vs.VerifyStream, "__init__", recording)
    try:
        stream, prepared, full = stream_through(txs, tc, executor, pause=0.001)
        assert waits == [3] and stream.waited >= 0.05
        assert vs.CATCH_UP * 0.064 < 0.05 < vs.CATCH_UP * 2 * 0.064  # one batch's execution, two
        assert_each_checked_once(stream, txs, prepared, full, tc.chain.runtime)
        assert not stream.from_end and all(stream.assigned[1:])
    finally:
        executor.close()


def test_a_coordinator_that_catches_up_meets_the_helpers_from_the_end():
    """No execution at all: the coordinator reaches batches before their verdicts, and the
    helpers then take batches from the end; each end checks part of the block."""
    tc = transfer_chain(40)
    txs = block_with_bad_signatures(tc, 3)
    executor = ParallelExecutor(2)
    try:
        stream, prepared, full = stream_through(txs, tc, executor)
        assert_each_checked_once(stream, txs, prepared, full, tc.chain.runtime)
        assert stream.from_end and stream.tail < len(stream.batches)  # the end went to a helper
        assert 1 < sum(not a for a in stream.assigned) < len(stream.batches) - 1  # the coordinator
        # checked more than its first batch, and the helpers more than their first ones
    finally:
        executor.close()


def test_transactions_checked_ahead_are_skipped_wherever_they_lie():
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
        stream, prepared, full = stream_through(txs, tc, executor, verified=verified)
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


def test_a_stream_started_from_the_end_keeps_the_mode_while_checks_cost_more():
    """Started from the end (the last block's lesson) with checks far dearer than execution
    (none here): the helpers' first batches are the last ones, each transaction is checked
    once, and the next block is told to start from the end again."""
    tc = transfer_chain(40)
    txs = block_with_bad_signatures(tc, 5)
    executor = ParallelExecutor(2)
    try:
        stream, prepared, full = stream_through(txs, tc, executor, from_end=True)
        assert_each_checked_once(stream, txs, prepared, full, tc.chain.runtime)
        assert stream.assigned[-1] and not stream.assigned[1]  # never the front
        assert stream.prefers_from_end()
    finally:
        executor.close()


def test_a_stream_started_from_the_end_returns_to_the_front_when_checks_are_cheap():
    """Started from the end, but execution (a 1 ms pause per transaction) far dearer than the
    checks: the coordinator's own batches took about as long as the helpers' did, so the next
    block starts from the front."""
    tc = transfer_chain(40)
    txs = block_with_bad_signatures(tc, 3)
    executor = ParallelExecutor(2)
    try:
        stream, prepared, full = stream_through(txs, tc, executor, pause=0.001, from_end=True)
        assert_each_checked_once(stream, txs, prepared, full, tc.chain.runtime)
        assert stream.checks[1] and stream.executed[1]  # both the checks and the execution were timed
        assert not stream.prefers_from_end()
    finally:
        executor.close()


def test_the_executor_starts_the_next_stream_in_the_mode_the_last_one_ended_in(monkeypatch):
    """Transfers check far slower than they execute: the first block's stream switches to
    meeting from the end, and the second block's stream starts that way."""
    tc = transfer_chain(40)
    blocks = [block_with_bad_signatures(tc, seed) for seed in (7, 8)]
    executor = ParallelExecutor(2)
    started: list[bool] = []
    init = vs.VerifyStream.__init__

    def recording(self, *args, **kwargs):
        init(self, *args, **kwargs)
        started.append(self.from_end)

    monkeypatch.setattr(vs.VerifyStream, "__init__", recording)
    try:
        run_blocks(executor, blocks)
        assert started == [False, True]
    finally:
        executor.close()
