"""Preparing on threads (module ``execution.prepare``) and the executors that run a block one
transaction after another with their signatures checked on threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from hypothesis import given
from hypothesis import strategies as st

from paraexec.execution import BlockEnv, SequentialExecutor
from paraexec.execution.adaptive import AdaptiveExecutor
from paraexec.execution.parallel import ParallelExecutor
from paraexec.execution.prepare import map_chunks, prepare_all, split, worth_threads
from paraexec.execution.synthetic import SyntheticRuntime

from .strategies import transfer_block, transfer_chain

ENV = BlockEnv(1, 1_700_000_000)


@given(n=st.integers(0, 300), parts=st.integers(1, 5))
def test_split_keeps_every_item_in_order(n, parts):
    chunks = split(list(range(n)), parts)
    assert [x for chunk in chunks for x in chunk] == list(range(n))
    assert len(chunks) <= parts and all(chunks)


def test_map_chunks_equals_a_plain_map_in_order():
    with ThreadPoolExecutor(3) as pool:
        assert map_chunks(pool, 3, lambda x: x * x, list(range(500))) == [x * x for x in range(500)]
        assert map_chunks(pool, 3, str, list(range(10))) == [str(x) for x in range(10)]  # small: inline


def test_prepare_all_on_threads_equals_prepare_one_by_one():
    tc = transfer_chain(50)
    runtime = tc.chain.runtime
    assert worth_threads(runtime, 200) and not worth_threads(SyntheticRuntime(4), 200)
    txs = transfer_block(tc, 200, seed=4)  # includes bad signatures and malformed bytes

    def shown(p):  # errors are exceptions: compared by type and message
        return (p.sender, p.nonce, p.payload, type(p.error), str(p.error), p.access)

    with ThreadPoolExecutor(2) as pool:
        threaded = prepare_all(runtime, txs, pool, 2)
    assert [shown(p) for p in threaded] == [shown(runtime.prepare(raw)) for raw in txs]
    assert any(p.error is not None for p in threaded) and any(p.error is None for p in threaded)


def test_contended_blocks_run_in_process_with_signatures_checked_in_parallel():
    """Parallel's contention fallback and adaptive's sequential plan check signatures on threads
    or on the workers and still give exactly the sequential result."""
    tc = transfer_chain(2)  # two accounts: every transfer conflicts with the one before
    runtime, store = tc.chain.runtime, tc.chain.store
    txs = transfer_block(tc, 600, seed=1)
    expected = SequentialExecutor().execute_block(runtime, txs, store, ENV)
    parallel = ParallelExecutor(2, wave=32, time_guard=False)  # the contention fallback decides
    adaptive = AdaptiveExecutor(2)
    try:
        notes = []
        for executor in (parallel, parallel, parallel, adaptive):
            got = executor.execute_block(runtime, txs, store, ENV)
            assert got.same_result(expected) and got.accumulator == expected.accumulator
            notes.append(got.stats.note)
    finally:
        parallel.close()
        adaptive.close()
    # by position, then by key affinity: both bail out; then a pause, in-process. The workers are
    # up, so what runs in-process has its signatures checked on them as it runs (``verify_stream``)
    checked = ("signatures checked on 2 threads", "worker process(es) and here as the block ran")
    assert all("in-process" in note and any(c in note for c in checked) for note in notes[:3]), notes
    assert "ran in-process (parallel probed again" in notes[2], notes[2]
    assert notes[3].startswith("sequential:") and any(c in notes[3] for c in checked), notes[3]
