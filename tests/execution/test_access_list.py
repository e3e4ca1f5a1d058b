"""The access-list executor and declared access lists: equal to sequential, failures included."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paraexec import codec
from paraexec.apps.transfers import Transfer, balance_key
from paraexec.chain import Chain, ChainConfig
from paraexec.execution import BlockEnv, SequentialExecutor
from paraexec.execution.access_list import AccessListExecutor, schedule
from paraexec.execution.registry import make_executor
from paraexec.execution.runtime import Declared, nonce_key
from paraexec.execution.synthetic import (
    DELETE,
    DELTA,
    FAIL_IF,
    INDIRECT,
    READ,
    WRITE,
    SyntheticRuntime,
    encode_tx,
    key_of,
)
from paraexec.state import MemoryStore
from paraexec.transaction import AccessList, decode_signed, encode_payload, sign
from paraexec.workloads.transfers import TransferWorkload

from ..helpers import ALICE, BOB, CHAIN_ID, MINTER, transfers_chain

ENV = BlockEnv(1, 1)
UNIVERSE = 8
RUNTIME = SyntheticRuntime(UNIVERSE)
SEQUENTIAL = SequentialExecutor()
UNDECLARED = 104


@pytest.fixture(scope="module")
def executors():
    made = [
        AccessListExecutor(1),
        AccessListExecutor(2),
        AccessListExecutor(2, thread_levels=True, min_threaded=2),  # levels of 2+ txs on threads
        AccessListExecutor(2, backend="processes", min_process_level=2),  # levels of 2+ txs on processes
    ]
    yield made
    for ex in made:
        ex.close()


def seeded_state() -> MemoryStore:
    store = MemoryStore()
    store.commit_block(0, {key_of(i): codec.encode_int(i * 3 + 1) for i in range(UNIVERSE)}, 0, b"", b"")
    return store


def assert_same_as_sequential(executors, txs, runtime=RUNTIME, state=None, env=ENV):
    state = state if state is not None else seeded_state()
    expected = SEQUENTIAL.execute_block(runtime, txs, state, env)
    for ex in executors:
        out = ex.execute_block(runtime, txs, state, env)
        assert out.receipts == expected.receipts, ex.workers
        assert out.write_set == expected.write_set
        assert out.state_root == expected.state_root
        assert out.stats.executions == len(txs) and out.stats.re_executions(len(txs)) == 0
    return expected


def d(reads=(), writes=()):
    return Declared.of([key_of(k) for k in reads], [key_of(k) for k in writes])


# --- schedule ---------------------------------------------------------------------------------


def test_disjoint_writers_share_a_level():
    assert schedule([d(writes=[0]), d(writes=[1]), d(writes=[2])]) == [[0, 1, 2]]


def test_readers_of_one_key_share_a_level_and_a_writer_waits_for_them():
    levels = schedule([d(reads=[0]), d(reads=[0]), d(writes=[0]), d(reads=[0])])
    assert levels == [[0, 1], [2], [3]]


def test_write_write_conflicts_keep_block_order():
    assert schedule([d(writes=[0]), d(writes=[1]), d(writes=[0, 1]), d(writes=[2])]) == [[0, 1, 3], [2]]


def test_undeclared_transaction_is_a_barrier():
    levels = schedule([d(writes=[0]), None, d(writes=[1]), d(writes=[2])])
    assert levels == [[0], [1], [2, 3]]


def test_read_only_then_independent_tx_can_move_ahead():
    # tx 2 touches nothing tx 0 or 1 touch: it joins the first level
    assert schedule([d(writes=[0]), d(reads=[0], writes=[1]), d(writes=[5])]) == [[0, 2], [1]]


# --- synthetic blocks ---------------------------------------------------------------------------


def test_declared_block_equals_sequential(executors):
    txs = [
        encode_tx([(READ, 0, 0), (WRITE, 1, 1)], ([0], [1])),
        encode_tx([(WRITE, 2, 5)], ([], [2])),
        encode_tx([(READ, 1, 0), (WRITE, 0, 1)], ([1], [0])),
        encode_tx([(DELTA, 3, 4)], ([], [3])),
        encode_tx([(DELTA, 3, 5), (READ, 2, 0)], ([2], [3])),
        encode_tx([(WRITE, 4, 1)]),  # undeclared: barrier
        encode_tx([(READ, 3, 0), (DELETE, 4, 0)], ([3], [4])),
    ]
    expected = assert_same_as_sequential(executors, txs)
    assert all(r.ok for r in expected.receipts)


def test_undeclared_write_fails_identically_and_rolls_back(executors):
    txs = [
        encode_tx([(WRITE, 1, 7), (WRITE, 2, 9)], ([], [1])),  # key 2 not declared
        encode_tx([(READ, 1, 0), (WRITE, 3, 1)], ([1], [3])),
    ]
    expected = assert_same_as_sequential(executors, txs)
    assert expected.receipts[0].code == UNDECLARED
    assert "write of undeclared key" in expected.receipts[0].error
    assert key_of(1) not in expected.write_set and key_of(2) not in expected.write_set
    assert expected.receipts[1].ok


def test_undeclared_read_fails_before_reading(executors):
    txs = [encode_tx([(READ, 5, 0), (WRITE, 1, 1)], ([], [1]))]
    expected = assert_same_as_sequential(executors, txs)
    assert expected.receipts[0].code == UNDECLARED
    assert "read of undeclared key" in expected.receipts[0].error
    assert expected.write_set == {}


def test_written_keys_may_be_read_and_deltas_need_a_write_declaration(executors):
    txs = [
        encode_tx([(READ, 1, 0), (WRITE, 1, 1)], ([], [1])),
        encode_tx([(DELTA, 2, 1)], ([2], [])),  # only declared as read
    ]
    expected = assert_same_as_sequential(executors, txs)
    assert expected.receipts[0].ok
    assert expected.receipts[1].code == UNDECLARED


def test_indirect_write_outside_declaration_fails_in_every_executor(executors):
    # key 0 holds 1 in the seeded state -> INDIRECT writes key 1, which only tx 1 declares
    txs = [
        encode_tx([(INDIRECT, 0, 3)], ([0], [2])),
        encode_tx([(INDIRECT, 0, 3)], ([0], [1])),
    ]
    expected = assert_same_as_sequential(executors, txs)
    assert [r.code for r in expected.receipts] == [UNDECLARED, 0]


def test_fully_conflicting_declared_block_runs_one_tx_per_level(executors):
    txs = [encode_tx([(READ, 0, 0), (WRITE, 0, i)], ([], [0])) for i in range(20)]
    assert_same_as_sequential(executors, txs)
    assert executors[0].execute_block(RUNTIME, txs, seeded_state(), ENV).stats.rounds == 20


def test_wide_level_runs_on_threads_and_equals_sequential(executors):
    # 200 independent declared txs: one level, wide enough to be split across threads
    txs = [encode_tx([(READ, i % UNIVERSE, 0), (WRITE, 100 + i, i)], ([i % UNIVERSE], [100 + i])) for i in range(200)]
    runtime = SyntheticRuntime(400)
    assert_same_as_sequential(executors, txs, runtime=runtime)
    out = AccessListExecutor(2, thread_levels=True).execute_block(runtime, txs, seeded_state(), ENV)
    assert out.stats.rounds == 1 and "1 levels on threads" in out.stats.note


def test_registered_under_its_name():
    ex = make_executor("access-list", 2)
    try:
        assert ex.name == "access-list" and isinstance(ex, AccessListExecutor)
    finally:
        ex.close()


OPS = st.tuples(
    st.sampled_from([READ, WRITE, DELTA, INDIRECT, FAIL_IF, DELETE]), st.integers(0, UNIVERSE - 1), st.integers(1, 4)
)
KEYS = st.lists(st.integers(0, UNIVERSE - 1), max_size=4, unique=True)
TX = st.tuples(st.lists(OPS, min_size=1, max_size=5), st.none() | st.tuples(KEYS, KEYS))


@given(st.lists(TX, max_size=25))
def test_random_blocks_with_partial_declarations_equal_sequential(executors, block):
    txs = [encode_tx(ops, access) for ops, access in block]
    assert_same_as_sequential(executors, txs)


def exact_declaration(ops):
    """The keys the ops touch (INDIRECT excluded: its target depends on state)."""
    reads = {k for op, k, _ in ops if op in (READ, FAIL_IF)}
    writes = {k for op, k, _ in ops if op in (WRITE, DELTA, DELETE)}
    return sorted(reads), sorted(writes)


@given(st.lists(st.lists(OPS.filter(lambda o: o[0] != INDIRECT), min_size=1, max_size=5), max_size=25))
def test_exact_declarations_never_fail_as_undeclared(executors, blocks):
    txs = [encode_tx(ops, exact_declaration(ops)) for ops in blocks]
    expected = assert_same_as_sequential(executors, txs)
    assert all(r.code != UNDECLARED for r in expected.receipts)


# --- signed transfers ---------------------------------------------------------------------------


def test_declared_transfer_workload_equals_sequential(executors):
    workload = TransferWorkload(20, seed=3, declare_access=True, chain_id="paraexec-test")
    chain = Chain.create(MemoryStore(), ChainConfig(workload.chain_id, "transfers", workload.genesis_config()))
    txs = workload.block(1, 150)
    assert decode_signed(txs[0], workload.chain_id).access is not None
    expected = assert_same_as_sequential(executors, txs, runtime=chain.runtime, state=chain.store)
    assert all(r.ok for r in expected.receipts)
    out = executors[0].execute_block(chain.runtime, txs, chain.store, ENV)
    assert 1 < out.stats.rounds < len(txs)  # some parallelism, some conflicts among 20 accounts


def test_undeclared_workload_is_unchanged_by_the_option():
    plain = TransferWorkload(5, seed=1).block(1, 10)
    again = TransferWorkload(5, seed=1, declare_access=False).block(1, 10)
    assert plain == again
    assert decode_signed(plain[0], "paraexec-dev").access is None


def test_signed_transfer_to_undeclared_receiver_fails_and_keeps_nonce(executors):
    chain = transfers_chain()
    wrong = AccessList([], [balance_key(ALICE.public_key)])  # receiver BOB missing
    right = AccessList([], [balance_key(ALICE.public_key), balance_key(BOB.public_key)])
    txs = [
        sign(ALICE, CHAIN_ID, 0, encode_payload(Transfer(BOB.public_key, 10)), wrong),
        sign(ALICE, CHAIN_ID, 1, encode_payload(Transfer(BOB.public_key, 10)), right),
        sign(BOB, CHAIN_ID, 0, encode_payload(Transfer(ALICE.public_key, 5))),  # undeclared: unrestricted
    ]
    expected = assert_same_as_sequential(executors, txs, runtime=chain.runtime, state=chain.store)
    assert [r.code for r in expected.receipts] == [UNDECLARED, 0, 0]
    assert codec.decode_int(expected.write_set[nonce_key(ALICE.public_key)]) == 2
    assert codec.decode_int(expected.write_set[balance_key(ALICE.public_key)]) == 1000 - 10 + 5


def test_mint_must_declare_the_minter_key_it_reads(executors):
    from paraexec.apps.transfers import MINTER_KEY, Mint

    chain = transfers_chain()
    target = balance_key(BOB.public_key)
    txs = [
        sign(MINTER, CHAIN_ID, 0, encode_payload(Mint(BOB.public_key, 7)), AccessList([], [target])),
        sign(MINTER, CHAIN_ID, 1, encode_payload(Mint(BOB.public_key, 7)), AccessList([MINTER_KEY], [target])),
    ]
    expected = assert_same_as_sequential(executors, txs, runtime=chain.runtime, state=chain.store)
    assert [r.code for r in expected.receipts] == [UNDECLARED, 0]


def test_a_raising_transaction_raises_what_sequential_raises_first(executors):
    store = MemoryStore()
    store.commit_block(0, {key_of(5): codec.encode("x"), key_of(6): b"\xc1"}, 0, b"", b"")
    txs = [
        encode_tx([(WRITE, 1, 1)], ([], [1])),
        encode_tx([(READ, 1, 0), (READ, 5, 0)], ([1, 5], [])),  # level 1; sequential raises here first
        encode_tx([(READ, 6, 0)], ([6], [])),  # level 0: would raise a different error first
    ]
    with pytest.raises(Exception) as expected:
        SEQUENTIAL.execute_block(RUNTIME, txs, store, ENV)
    for ex in executors:
        with pytest.raises(Exception) as got:
            ex.execute_block(RUNTIME, txs, store, ENV)
        assert type(got.value) is type(expected.value)


@pytest.fixture(scope="module")
def every_executor():
    from paraexec.execution.registry import executor_names

    made = {name: make_executor(name, 2) for name in executor_names() if name != "sequential"}
    yield made
    for ex in made.values():
        ex.close()


def test_undeclared_access_fails_identically_in_every_registered_executor(every_executor):
    """The guard is the runtime's: speculative executors must produce the same failures."""
    import random

    rng = random.Random(7)
    blocks = [
        [encode_tx([(WRITE, 1, 7), (WRITE, 2, 9)], ([], [1])), encode_tx([(READ, 1, 0), (WRITE, 3, 1)], ([1], [3]))],
        [encode_tx([(INDIRECT, 0, 3)], ([0], [2])), encode_tx([(INDIRECT, 0, 3)], ([0], [1]))],
    ]
    for _ in range(3):  # random mixes of declared, under-declared and undeclared txs
        block = []
        for _ in range(40):
            ops = [
                (rng.choice([READ, WRITE, DELTA, INDIRECT]), rng.randrange(UNIVERSE), rng.randrange(1, 5))
                for _ in range(3)
            ]
            keys = rng.sample(range(UNIVERSE), 3)
            block.append(encode_tx(ops, rng.choice([None, (keys[:1], keys[1:]), exact_declaration(ops)])))
        blocks.append(block)
    for txs in blocks:
        expected = SEQUENTIAL.execute_block(RUNTIME, txs, seeded_state(), ENV)
        assert any(r.code == UNDECLARED for r in expected.receipts)
        for name, ex in every_executor.items():
            assert ex.execute_block(RUNTIME, txs, seeded_state(), ENV).same_result(expected), name


def test_access_guard_delegates_everything_to_the_executor_context():
    from paraexec.errors import UndeclaredAccess
    from paraexec.execution.runtime import AccessGuard
    from paraexec.execution.sequential import OverlayContext

    inner = OverlayContext(BlockEnv(7, 99), {key_of(1): codec.encode_int(5)}, MemoryStore())
    guard = AccessGuard(inner, d(reads=[1], writes=[2]))
    assert guard.env.height == 7 and guard.env.time == 99
    assert guard.get_int(key_of(1)) == 5
    mark = guard.checkpoint()
    guard.put_int(key_of(2), 3)
    guard.add(key_of(2), 4)
    guard.emit("e", x=1)
    assert inner.writes == {key_of(2): codec.encode_int(7)} and guard.writes is inner.writes
    assert [e.name for e in guard.events] == ["e"]
    guard.rollback(mark)
    assert inner.writes == {} and inner.events == []
    for touch in (lambda: guard.get(key_of(3)), lambda: guard.put(key_of(1), b""), lambda: guard.delete(key_of(1))):
        with pytest.raises(UndeclaredAccess):
            touch()
    assert inner.writes == {}


def test_auto_backend_uses_processes_only_for_signature_checking_runtimes():
    from paraexec.execution.runtime import RuntimeSpec

    ex = AccessListExecutor(2, thread_levels=False)
    try:
        signed = RuntimeSpec("transfers", {}, CHAIN_ID, verify_signatures=True).build()
        trusted = RuntimeSpec("transfers", {}, CHAIN_ID, verify_signatures=False).build()
        assert ex.uses_processes(signed)
        assert not ex.uses_processes(trusted)
        assert not ex.uses_processes(RUNTIME)
        assert not AccessListExecutor(1).uses_processes(signed)  # one worker: nothing to spread
        assert not AccessListExecutor(2, thread_levels=True).uses_processes(signed)  # threads scale
    finally:
        ex.close()


def test_declared_transfers_on_worker_processes_survive_a_killed_worker():
    import os
    import re
    import signal

    workload = TransferWorkload(200, seed=5, declare_access=True, chain_id="paraexec-test")
    chain = Chain.create(MemoryStore(), ChainConfig(workload.chain_id, "transfers", workload.genesis_config()))
    ex = AccessListExecutor(2, backend="processes", min_process_level=8)
    try:
        killed = None
        for height in (1, 2, 3):
            txs = workload.block(height, 120)
            env = BlockEnv(height, height)
            expected = SEQUENTIAL.execute_block(chain.runtime, txs, chain.store, env)
            got = ex.execute_block(chain.runtime, txs, chain.store, env)
            assert got.same_result(expected), height
            on_processes = int(re.search(r"(\d+) levels on processes", got.stats.note).group(1))
            assert on_processes > 0, got.stats.note
            if height == 1:  # kill a worker between blocks: block 2 must still be right
                killed = ex._procs.pids()[0]
                os.kill(killed, signal.SIGKILL)
                ex._procs.procs[0].join(5)
            chain.store.commit_block(height, expected.write_set, expected.accumulator, b"", b"")
        assert killed not in ex._procs.pids()  # the pool was replaced
    finally:
        ex.close()


def test_a_worker_lost_mid_level_reruns_that_level_in_process(monkeypatch):
    """A worker dies after the first chunk of a level went out (``run_level`` returns ``None``):
    that level runs in-process, the pool is replaced for the next levels, and the block equals
    sequential. Three chained levels of 20 declared transactions, with deltas and failures."""
    import os
    import re
    import signal

    runtime = SyntheticRuntime(100)
    txs = []
    for level in range(3):
        for i in range(20):
            src, dst = level * 20 + i, (level + 1) * 20 + i
            ops = [(READ, src, 0), (WRITE, dst, level + i), (DELTA, 80 + i, level + 1)]
            if i % 7 == 3:
                ops.append((FAIL_IF, src, 1))
            txs.append(encode_tx(ops, ([src], [dst, 80 + i])))
    store = MemoryStore()
    store.commit_block(0, {key_of(i): codec.encode_int(i % 2) for i in range(20)}, 0, b"", b"")
    expected = SEQUENTIAL.execute_block(runtime, txs, store, ENV)
    assert any(r.ok for r in expected.receipts) and not all(r.ok for r in expected.receipts)
    ex = AccessListExecutor(2, backend="processes", min_process_level=8)
    try:
        warm = ex.execute_block(runtime, txs, store, ENV)  # starts the workers: 3 levels on processes
        assert (
            warm.same_result(expected)
            and "3 levels (widest 20), 0 undeclared as barriers, 3 levels on processes" in warm.stats.note
        ), warm.stats.note
        procs = ex._procs
        before = procs.pids()
        send = procs._send
        killed: list[int] = []

        def send_then_lose_the_next_worker(index: int, data: bytes) -> None:
            if index == 1 and not killed:  # chunk 0 of the first level is out: worker 1 dies
                killed.append(procs.procs[1].pid)
                os.kill(killed[0], signal.SIGKILL)
                procs.procs[1].join(5)
            send(index, data)

        monkeypatch.setattr(procs, "_send", send_then_lose_the_next_worker)
        got = ex.execute_block(runtime, txs, store, ENV)
        assert killed == [before[1]]
        assert got.same_result(expected) and got.accumulator == expected.accumulator
        on_processes = int(re.search(r"(\d+) levels on processes", got.stats.note).group(1))
        assert on_processes == 2, got.stats.note  # the first level ran here, the other two on fresh workers
        assert len(procs.pids()) == 2 and not set(procs.pids()) & set(before)
    finally:
        ex.close()


def test_a_declared_key_no_store_could_hold_makes_the_transaction_malformed(every_executor, tmp_path):
    """An empty or over-long declared key is refused at ``prepare`` (MALFORMED), in every
    executor: the access-list executor reads declared keys from LMDB before the block runs, and
    LMDB refuses such keys (it raised ``BadValsizeError`` on a block that sequential committed)."""
    from paraexec.crypto import SigningKey
    from paraexec.errors import MalformedTransaction
    from paraexec.state.lmdb_store import LmdbStore
    from paraexec.types import MAX_KEY_BYTES

    senders = [SigningKey(bytes([i + 1]) * 32) for i in range(40)]
    config = ChainConfig(
        CHAIN_ID,
        "transfers",
        {"accounts": {k.public_key.hex(): 100 for k in senders}, "minter": MINTER.public_key.hex()},
    )
    chain = Chain.create(LmdbStore(tmp_path / "db"), config)
    bad_keys = [b"", b"k" * (MAX_KEY_BYTES + 1)]
    txs = []
    for i, key in enumerate(senders):  # 40 independent declared transfers: one wide level
        own = balance_key(key.public_key)
        reads = [bad_keys[i % 2]] if i % 4 < 2 else [b"k" * MAX_KEY_BYTES]
        txs.append(
            sign(
                key,
                CHAIN_ID,
                0,
                encode_payload(Transfer(BOB.public_key, 1)),
                AccessList(reads, [own, balance_key(BOB.public_key)]),
            )
        )
    with pytest.raises(MalformedTransaction, match="declared key of 0 bytes"):
        decode_signed(txs[0], CHAIN_ID)
    expected = SEQUENTIAL.execute_block(chain.runtime, txs, chain.store, ENV)
    codes = [r.code for r in expected.receipts]
    assert codes == [MalformedTransaction.code if i % 4 < 2 else 0 for i in range(len(txs))]
    for name, ex in [*every_executor.items(), ("access-list processes", AccessListExecutor(2, backend="processes"))]:
        try:
            assert ex.execute_block(chain.runtime, txs, chain.store, ENV).same_result(expected), name
        finally:
            if name == "access-list processes":
                ex.close()
