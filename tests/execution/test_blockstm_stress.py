"""Block-STM under hard concurrency: a thread switch every microsecond, many repetitions.

With CPython's default 5 ms switch interval a small block often finishes on one thread; at 1 us
the threads interleave inside MVMemory, the scheduler and the transactions themselves, which is
where lost updates, missed validations and leaked tasks show up. Blocks are drawn from a seeded
PRNG (reproducible) with high contention (1 to 10 keys), indirect writes, deltas, deletes, failures,
spins (so transactions overlap), and sometimes a non-integer committed value (speculative or real
exceptions). Each must equal ``sequential`` exactly, or raise what it raises.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator

import pytest

from paraexec import codec
from paraexec.execution import BlockEnv, SequentialExecutor
from paraexec.execution.blockstm import BlockSTMExecutor
from paraexec.execution.synthetic import (
    DELETE,
    DELTA,
    FAIL_IF,
    INDIRECT,
    READ,
    SPIN,
    WRITE,
    SyntheticRuntime,
    encode_tx,
    key_of,
)
from paraexec.state.lmdb_store import LmdbStore

from .strategies import memory_store, transfer_block, transfer_chain

ENV = BlockEnv(1, 1)
OPS = (READ, READ, WRITE, WRITE, DELTA, INDIRECT, FAIL_IF, DELETE, SPIN)


@pytest.fixture(autouse=True)
def tiny_switch_interval() -> Iterator[None]:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


@pytest.fixture(scope="module")
def executors() -> Iterator[list[BlockSTMExecutor]]:
    made = [BlockSTMExecutor(2), BlockSTMExecutor(4), BlockSTMExecutor(8)]
    yield made
    for executor in made:
        executor.close()


def random_block(rng: random.Random) -> tuple[int, dict[bytes, bytes], list[bytes]]:
    universe = rng.choice((1, 2, 3, 10))
    state = {key_of(k): codec.encode_int(rng.randrange(-50, 50)) for k in range(universe) if rng.random() < 0.6}
    if rng.random() < 0.15:
        state[key_of(rng.randrange(universe))] = b"\xc1"
    txs = []
    for _ in range(rng.randrange(1, 40)):
        ops = []
        for _ in range(rng.randrange(1, 6)):
            op = rng.choice(OPS)
            arg = rng.randrange(1, 8) if op == FAIL_IF else rng.randrange(0, 60 if op == SPIN else 20)
            ops.append((op, rng.randrange(universe), arg))
        txs.append(encode_tx(ops))
    return universe, state, txs


def check_random_blocks(executors: list[BlockSTMExecutor], seed: int, blocks: int) -> None:
    rng = random.Random(seed)
    reference = SequentialExecutor()
    for block in range(blocks):
        universe, state_values, txs = random_block(rng)
        state = memory_store(state_values)
        runtime = SyntheticRuntime(universe)
        try:
            expected = reference.execute_block(runtime, txs, state, ENV)
        except Exception as exc:
            for executor in executors:
                with pytest.raises(type(exc)):
                    executor.execute_block(runtime, txs, state, ENV)
            continue
        for executor in executors:
            got = executor.execute_block(runtime, txs, state, ENV)
            assert got.same_result(expected), f"seed {seed} block {block}, {executor.workers} workers"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", range(4))
def test_random_contended_blocks(executors: list[BlockSTMExecutor], seed: int) -> None:
    check_random_blocks(executors, seed, blocks=60)


@pytest.mark.timeout(120)
def test_full_contention_transfers_repeated(executors: list[BlockSTMExecutor]) -> None:
    """Two accounts: every transfer conflicts with the next; signature checks release the GIL."""
    tc = transfer_chain(2)
    txs = transfer_block(tc, 200, seed=99)
    state = tc.chain.store
    expected = SequentialExecutor().execute_block(tc.chain.runtime, txs, state, ENV)
    for _ in range(5):
        for executor in executors:
            got = executor.execute_block(tc.chain.runtime, txs, state, ENV)
            assert got.same_result(expected), f"{executor.workers} workers"


@pytest.mark.timeout(120)
def test_transfers_on_lmdb_repeated(executors: list[BlockSTMExecutor], tmp_path) -> None:  # type: ignore[no-untyped-def]
    """LMDB's shared read cursor is not thread-safe: committed reads must be serialised (they are)."""
    store = LmdbStore(tmp_path / "db")
    try:
        tc = transfer_chain(10, store)
        txs = transfer_block(tc, 150, seed=3)
        expected = SequentialExecutor().execute_block(tc.chain.runtime, txs, store, ENV)
        for _ in range(4):
            for executor in executors:
                got = executor.execute_block(tc.chain.runtime, txs, store, ENV)
                assert got.same_result(expected), f"{executor.workers} workers"
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("seed", range(100, 110))
def test_random_contended_blocks_long(executors: list[BlockSTMExecutor], seed: int) -> None:
    check_random_blocks(executors, seed, blocks=300)
