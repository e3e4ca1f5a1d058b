"""Signature checks of the announced next block on idle workers (``parallel.precheck``).

The result must stay exactly sequential's whatever was announced (the same block, a different
one, a block whose bytes changed after the announcement, bad signatures), the verdicts must be
bound to the exact bytes that passed, and a worker that dies while checking must change nothing.
Between blocks the tests wait until the workers have got through what they were sent (``settle``:
until each sleeps waiting for its next message, however slow the machine), so they can check
that the feature engages (``prechecked``), which timing alone would not guarantee.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from paraexec.chain.chain import Chain
from paraexec.execution import SequentialExecutor
from paraexec.execution.adaptive import AdaptiveExecutor
from paraexec.execution.parallel import ParallelExecutor
from paraexec.execution.parallel.precheck import Prechecks, usable_cores
from paraexec.state.lmdb_store import LmdbStore

from .strategies import _resign_badly, transfer_block, transfer_chain

#: Where ``/proc`` cannot tell whether a worker is idle: a pause long enough for a worker to check
#: a 150-transaction announcement on a busy 2-core box.
IDLE = 0.5
#: ``settle``'s upper bound: it returns as soon as the workers are idle.
SETTLE_DEADLINE = 120.0


def blocks_of(accounts: int, count: int, size: int = 150) -> tuple[object, list[list[bytes]]]:
    reference = transfer_chain(accounts)
    return reference, [transfer_block(reference, size, seed=height) for height in range(1, count + 1)]


def worker_pids(executor: object) -> list[int]:
    """The worker processes of ``executor`` (``adaptive``: of its ``parallel``), if any."""
    if isinstance(executor, AdaptiveExecutor):
        executor = executor.executor("parallel")
    return executor.worker_pids() if isinstance(executor, ParallelExecutor) else []


def process_state(pid: int) -> str:
    """The state letter of ``/proc/<pid>/stat`` (``R`` running or runnable, ``S`` asleep, ``Z``
    dead, not yet reaped); ``X`` once the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return "X"


def settle(executor: object) -> None:
    """Wait until ``executor``'s workers have done all they were sent (the announced block's
    checks, hashing): each is asleep on its pipe, waiting for the next message, at two looks
    10 ms apart. A worker with checks left never sleeps (it only polls its pipe between them),
    and one that waits for a core is runnable, not asleep: so this holds on a slow, loaded box
    as on a fast one, and returns as soon as it is true (``SETTLE_DEADLINE`` bounds it)."""
    pids = worker_pids(executor)
    if not pids:
        return
    if not os.path.exists(f"/proc/{os.getpid()}/stat"):  # not Linux: a pause instead
        time.sleep(IDLE)
        return
    deadline = time.monotonic() + SETTLE_DEADLINE
    calm = 0
    while calm < 2 and time.monotonic() < deadline:
        calm = calm + 1 if all(process_state(pid) in "SZX" for pid in pids) else 0
        time.sleep(0.01)


def run_chain(chain: Chain, executor: object, blocks: list[list[bytes]], announced: list[list[bytes]]) -> list:
    """Produce ``blocks``, announcing ``announced[k + 1]`` with block k; (root, receipts) per block.
    After each block the workers get through what they were sent (``settle``)."""
    results = []
    for k, txs in enumerate(blocks):
        upcoming = announced[k + 1] if k + 1 < len(announced) else None
        block, output = chain.produce_block(txs, k + 1, executor, upcoming)  # type: ignore[arg-type]
        results.append((block.header.state_root, output.receipts))
        settle(executor)
    return results


def sequential_results(blocks: list[list[bytes]], accounts: int) -> list:
    return run_chain(transfer_chain(accounts).chain, SequentialExecutor(), blocks, [])


@pytest.mark.parametrize("in_process", (False, True), ids=("on-workers", "in-process"))
def test_announced_blocks_equal_sequential(tmp_path, in_process):
    """Blocks 2 and 4 are announced exactly; block 3 differs from its announcement: one valid
    transaction re-signed badly after it was checked, one dropped, one not announced at all."""
    _, blocks = blocks_of(40, 4)
    announced = [list(txs) for txs in blocks]
    changed = next(
        i for i, raw in enumerate(blocks[2]) if i > 5 and transfer_chain(40).chain.runtime.prepare(raw).error is None
    )
    blocks[2][changed] = _resign_badly(blocks[2][changed])
    announced[2].append(blocks[3][0])  # announced, but comes a block later
    del blocks[2][1]
    expected = sequential_results(blocks, 40)
    store = LmdbStore(tmp_path / "db")
    executor = ParallelExecutor(2, wave=16, contention_fallback=False)
    if in_process:
        executor.execute_block = executor.execute_in_process  # type: ignore[method-assign]
    try:
        chain = transfer_chain(40, store).chain
        got = run_chain(chain, executor, blocks, announced)
        assert got == expected
        assert executor.prechecked > 0
    finally:
        executor.close()
        store.close()


def test_verdicts_cover_exactly_the_bytes_that_passed(tmp_path):
    _, blocks = blocks_of(30, 2, size=120)
    store = LmdbStore(tmp_path / "db")
    executor = ParallelExecutor(2, wave=16, contention_fallback=False)
    try:
        chain = transfer_chain(30, store).chain
        run_chain(chain, executor, blocks[:1], blocks)  # block 2 announced; the workers check it
        runtime = chain.runtime
        verified = executor._take_prechecks(runtime, blocks[1])
        passed = {raw for raw in blocks[1] if runtime.prepare(raw).error is None}
        failed = set(blocks[1]) - passed
        assert failed, "the block should hold bad signatures"
        assert verified and verified <= passed and not verified & failed
        assert verified == passed  # the worker got through them all (``settle``)
        assert not executor._take_prechecks(runtime, blocks[1]), "a verdict serves one block"
    finally:
        executor.close()
        store.close()


@pytest.mark.parametrize("in_block", (True, False), ids=("in-block", "after-block"))
def test_worker_killed_while_checking_changes_nothing(tmp_path, monkeypatch, in_block):
    """A worker is killed right after it was sent its share of the announced block, its checks
    outstanding: during block 1 (``precheck_in_block``: the block is re-run on fresh workers) or
    after it (the next block's ``Collect`` finds it gone). It is replaced, and every block equals
    sequential."""
    _, blocks = blocks_of(30, 3, size=400)
    expected = sequential_results(blocks, 30)
    store = LmdbStore(tmp_path / "db")
    executor = ParallelExecutor(2, wave=16, contention_fallback=False)
    executor.precheck_in_block = in_block
    send = Prechecks.send
    killed: list[int] = []

    def send_then_kill(self, pool, specs, every_worker=False):
        send(self, pool, specs, every_worker)
        if self.sent and not killed:  # the share is in the worker's pipe: it cannot be done yet
            killed.append(pool.pids()[min(self.sent)])
            os.kill(killed[0], signal.SIGKILL)

    monkeypatch.setattr(Prechecks, "send", send_then_kill)
    try:
        chain = transfer_chain(30, store).chain
        got = run_chain(chain, executor, blocks, blocks)
        assert killed, "block 2's announcement should have been sent to a worker"
        assert killed[0] not in executor.worker_pids() and executor.worker_pids()
        assert got == expected
    finally:
        executor.close()
        store.close()


@pytest.mark.parametrize("workers", (1, 2))
def test_adaptive_sequential_plan_uses_the_workers_checks(tmp_path, workers):
    """Small blocks go sequential; with ``parallel`` available its idle workers check ahead,
    with one worker too (``adaptive`` x1, like ``parallel`` x1)."""
    _, blocks = blocks_of(40, 3)
    expected = sequential_results(blocks, 40)
    store = LmdbStore(tmp_path / "db")
    executor = AdaptiveExecutor(workers, available=["sequential", "parallel"])
    try:
        chain = transfer_chain(40, store).chain
        got = run_chain(chain, executor, blocks, blocks)
        assert got == expected
        assert all(choice.executor == "sequential" for choice in executor.history)
        assert executor.executor("parallel").prechecked > 0  # type: ignore[attr-defined]
    finally:
        executor.close()
        store.close()


class ElsewhereStore(LmdbStore):
    """An LMDB store that, once ``lie`` is set, names a directory where the workers find no
    store: they must refuse to hash."""

    lie = False

    def __getattribute__(self, name: str) -> object:
        if name == "path" and object.__getattribute__(self, "lie"):
            return "/nonexistent/paraexec-store"
        return object.__getattribute__(self, name)


@pytest.mark.parametrize("store_class", (LmdbStore, ElsewhereStore))
def test_in_process_root_hashed_on_workers_equals_sequential(tmp_path, store_class):
    """A block run in-process with a large write set has its root hashed by the workers; a
    worker whose view of the store does not match answers ``None`` and the share is hashed
    in-process. Either way the root is sequential's."""
    from paraexec.execution.parallel import executor as executor_module
    from paraexec.execution.parallel import old_hashes

    _, blocks = blocks_of(400, 2, size=300)
    expected = sequential_results(blocks, 400)
    store = store_class(tmp_path / "db")
    executor = ParallelExecutor(2, wave=16, contention_fallback=False)
    executor.execute_block = executor.execute_in_process  # type: ignore[method-assign]
    threshold, every = executor_module.HASH_ON_WORKERS, old_hashes.EVERY
    executor_module.HASH_ON_WORKERS = 100  # these blocks write ~500 keys
    old_hashes.EVERY = 16  # old values hashed on a worker while the block runs, ~18 messages
    try:
        chain = transfer_chain(400, store).chain
        store.lie = True  # type: ignore[attr-defined]
        got = run_chain(chain, executor, blocks, [])
        assert got == expected
        if store_class is LmdbStore:
            assert executor.hashed_on_workers > 0 and executor.old_hashed_ahead > 0
        else:
            assert executor.hashed_on_workers == 0 and executor.old_hashed_ahead == 0
    finally:
        executor_module.HASH_ON_WORKERS, old_hashes.EVERY = threshold, every
        executor.close()
        store.close()


def test_a_worker_killed_while_hashing_old_values_changes_nothing(tmp_path, monkeypatch):
    """The worker summing a block's old values dies after a few ``HashOld`` messages: the root
    is computed without it, and every block still equals sequential."""
    from paraexec.execution.parallel import executor as executor_module
    from paraexec.execution.parallel import old_hashes

    _, blocks = blocks_of(400, 2, size=300)
    expected = sequential_results(blocks, 400)
    store = LmdbStore(tmp_path / "db")
    executor = ParallelExecutor(2, wave=16, contention_fallback=False)
    executor.execute_block = executor.execute_in_process  # type: ignore[method-assign]
    monkeypatch.setattr(executor_module, "HASH_ON_WORKERS", 100)
    monkeypatch.setattr(old_hashes, "EVERY", 16)
    send = old_hashes.OldHashes.send
    killed = []

    def kill_after_three(self):
        send(self)
        if self.sent and not killed and len(list(self.overlay)) > 3 * 16:
            os.kill(self.pool.pids()[self.worker], signal.SIGKILL)
            killed.append(self.worker)
            time.sleep(0.2)

    monkeypatch.setattr(old_hashes.OldHashes, "send", kill_after_three)
    try:
        chain = transfer_chain(400, store).chain
        assert run_chain(chain, executor, blocks, []) == expected
        assert killed
    finally:
        executor.close()
        store.close()


def test_a_precheck_that_fails_in_the_worker_costs_only_its_verdicts(monkeypatch):
    """An application known to the coordinator but not to the workers: their ``Precheck``
    raises (``Failed``); the coordinator drops those verdicts and every block is still exact."""
    from paraexec import apps
    from paraexec.execution import BlockEnv
    from paraexec.execution.runtime import RuntimeSpec

    monkeypatch.setitem(apps.APPS, "transfers-here-only", apps.APPS["transfers"])
    _, blocks = blocks_of(30, 3)
    tc = transfer_chain(30)
    spec = tc.chain.runtime.spec
    runtime = RuntimeSpec("transfers-here-only", spec.app_config, spec.chain_id).build()
    store = tc.chain.store
    executor = ParallelExecutor(2, wave=16, contention_fallback=False)
    try:
        for k, txs in enumerate(blocks):
            env = BlockEnv(k + 1, k + 1)
            if k + 1 < len(blocks):
                executor.announce(runtime, blocks[k + 1])
            expected = SequentialExecutor().execute_block(tc.chain.runtime, txs, store, env)
            got = executor.execute_in_process(runtime, txs, store, env)
            assert got.same_result(expected) and got.accumulator == expected.accumulator
            store.commit_block(k + 1, got.write_set, got.accumulator, b"", b"")
            settle(executor)  # the workers got through the announcement: their Precheck raised
        assert executor.pool.started and executor.prechecked == 0
    finally:
        executor.close()


@pytest.mark.parametrize("in_block", (True, False), ids=("in-block", "after-block"))
def test_next_block_is_checked_by_every_worker_during_a_block_on_the_workers(tmp_path, in_block):
    """With ``precheck_in_block`` the announced block goes to every worker with the block's
    ``Setup`` (they check it while waiting for chunks); without, only after the block, to the
    cores beside the coordinator's. Either way the verdicts are right and the blocks equal
    sequential."""
    _, blocks = blocks_of(30, 2, size=300)
    expected = sequential_results(blocks, 30)
    store = LmdbStore(tmp_path / "db")
    executor = ParallelExecutor(2, wave=16, contention_fallback=False)
    executor.precheck_in_block = in_block
    try:
        chain = transfer_chain(30, store).chain
        block, output = chain.produce_block(blocks[0], 1, executor, blocks[1])
        got = [(block.header.state_root, output.receipts)]
        sent = dict(executor._prechecks.sent)
        if in_block:
            assert sorted(sent) == [0, 1]
        else:
            assert len(sent) == min(2, max(1, usable_cores() - 1))
        assert sum(len(share) for share in sent.values()) == len(blocks[1])
        settle(executor)  # after the block the checks run only as fast as this busy box lets them
        block, output = chain.produce_block(blocks[1], 2, executor)
        got.append((block.header.state_root, output.receipts))
        assert got == expected
        assert executor.prechecked > 0
    finally:
        executor.close()
        store.close()


def test_blocks_checked_ahead_are_timed_apart_for_the_time_guard(tmp_path):
    """A block whose signatures were checked ahead is far cheaper on either plan: the time guard
    compares it only with blocks like it (``ParallelExecutor.clocks``)."""
    _, blocks = blocks_of(200, 3, size=600)
    expected = sequential_results(blocks, 200)
    store = LmdbStore(tmp_path / "db")
    executor = ParallelExecutor(2)
    try:
        chain = transfer_chain(200, store).chain
        assert run_chain(chain, executor, blocks, blocks) == expected
        cold, ahead = executor.clocks[False], executor.clocks[True]
        assert cold.runs == {"in-process": 1}  # block 1: nothing announced before it
        assert sum(ahead.runs.values()) == 2 and executor.prechecked > 0
    finally:
        executor.close()
        store.close()


def test_a_failed_precheck_does_not_shift_the_verdicts_of_a_verified_stream(monkeypatch):
    """The workers cannot build the announced runtime: their ``Precheck`` must stay unanswered.
    (It used to answer ``Failed``; during a block big enough for a ``VerifyStream``, that reply
    was taken for the first ``Verify`` batch's, every later verdict was credited to the batch
    after its own, and transactions with bad signatures ran as if checked.)"""
    from paraexec import apps
    from paraexec.execution import BlockEnv
    from paraexec.execution.runtime import RuntimeSpec

    monkeypatch.setitem(apps.APPS, "transfers-here-only", apps.APPS["transfers"])
    tc = transfer_chain(2000)
    txs = transfer_block(tc, 1024, seed=1, invalid_share=0.0)
    txs = txs[:640] + [_resign_badly(raw) for raw in txs[640:]]
    runtime = tc.chain.runtime
    spec = runtime.spec
    elsewhere = RuntimeSpec("transfers-here-only", spec.app_config, spec.chain_id).build()
    env = BlockEnv(1, 1)
    expected = SequentialExecutor().execute_block(runtime, txs, tc.chain.store, env)
    assert sum(r.code == 4 for r in expected.receipts) == 1024 - 640  # BAD_SIGNATURE
    executor = ParallelExecutor(2)
    try:
        executor.announce(elsewhere, txs[:100])
        got = executor.execute_in_process(runtime, txs, tc.chain.store, env)
        assert executor.stream_verified > 0  # the stream ran: the case under test
        assert got.same_result(expected)
    finally:
        executor.close()


def test_a_worker_whose_precheck_spec_failed_gets_the_spec_again(tmp_path):
    """The workers' first build of the announced runtime fails. Their ``Precheck`` stays
    unanswered, but the answer to ``Collect`` says so (``Prechecked.failed``), so the block's
    ``Setup`` sends the spec again instead of assuming the worker holds it (it held no runtime:
    every execution raised and the block ended in InvariantViolation)."""
    from paraexec.execution import BlockEnv

    from .flaky_spec import FlakySpec

    store = LmdbStore(tmp_path / "db")
    tc = transfer_chain(200, store)
    spec = tc.chain.runtime.spec
    runtime = FlakySpec(spec.app_name, spec.app_config, spec.chain_id, spec.verify_signatures).build()
    txs = transfer_block(tc, 300, seed=1, invalid_share=0.0)
    expected = SequentialExecutor().execute_block(runtime, txs, store, BlockEnv(1, 1))
    executor = ParallelExecutor(2, contention_fallback=False, time_guard=False)
    try:
        executor.announce(runtime, txs)
        executor._send_prechecks(every_worker=True)  # the workers' first build: it fails
        settle(executor)
        got = executor.execute_block(runtime, txs, store, BlockEnv(1, 1))
        assert got.same_result(expected)
    finally:
        executor.close()
        store.close()
