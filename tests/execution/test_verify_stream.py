"""A block run in-process checks its signatures on the workers while it runs (``verify_stream``).

The result must be exactly sequential's, bad signatures included (a wrong positive verdict
would let a badly signed transfer through and change the receipts); a worker that dies
mid-stream, or cannot build the runtime, must change nothing but the speed. Each test checks
that the stream engaged (``stream_verified``), which the result alone would not show.
"""

from __future__ import annotations

import os
import signal

from paraexec.execution import BlockEnv, SequentialExecutor
from paraexec.execution.parallel import ParallelExecutor
from paraexec.execution.parallel import verify_stream as vs

from .strategies import _resign_badly, transfer_block, transfer_chain

SIZE = 3 * vs.BATCH + vs.MIN_TXS  # several batches on each of two workers


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
    receive = vs.VerifyStream._receive

    def kill_then_receive(self, ok):  # after the first batch: the rest of worker 0's are lost
        if self.received == 2 and not killed:
            killed.append(executor.worker_pids()[0])
            os.kill(killed[0], signal.SIGKILL)
        receive(self, ok)

    monkeypatch.setattr(vs.VerifyStream, "_receive", kill_then_receive)
    try:
        run_blocks(executor, blocks)
        assert killed and killed[0] not in executor.worker_pids()
        first = executor.stream_verified
        assert 0 < first < SIZE  # verdicts of the first batches only
        run_blocks(executor, [block_with_bad_signatures(tc, 2)])  # the replaced pool streams again
        assert executor.stream_verified > first
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
