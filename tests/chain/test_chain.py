"""Determinism across processes, replay, and crash safety of the LMDB-backed chain."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from itertools import pairwise

import lmdb
import pytest

from paraexec import codec
from paraexec.chain import Chain, ReplayMismatch
from paraexec.execution import SequentialExecutor
from paraexec.state import LmdbStore, MemoryStore
from paraexec.state import commitment as cm

from ..helpers import ALICE, BOB, transfer, transfers_chain


def paraexec(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "paraexec", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs
    )


def stored_chain(path) -> list[tuple[bytes, bytes]]:
    store = LmdbStore(path, readonly=True)
    try:
        return [(store.get_block(h), store.get_receipts(h)) for h in range(store.height + 1)]
    finally:
        store.close()


def test_same_seed_gives_same_chain_in_two_processes(tmp_path):
    args = ("run", "--accounts", "20", "--block-size", "50", "--blocks", "3", "--seed", "7")
    a = paraexec(*args, "--data", str(tmp_path / "a"))
    b = paraexec(*args, "--data", str(tmp_path / "b"))
    assert a.wait(120) == 0 and b.wait(120) == 0, (a.stderr.read(), b.stderr.read())
    chain_a, chain_b = stored_chain(tmp_path / "a"), stored_chain(tmp_path / "b")
    assert len(chain_a) == 4
    assert chain_a == chain_b
    other = paraexec(*args[:-1], "8", "--data", str(tmp_path / "c"))
    assert other.wait(120) == 0
    assert stored_chain(tmp_path / "c")[1] != chain_a[1]


def test_replay_detects_state_values_changed_outside_paraexec():
    """The roots vouch for the stored accumulator, not for the values beside it: a value changed
    (or a key added or removed) without the accumulator is found by comparing the stored state
    with the replayed one after the last block."""
    from paraexec.apps.transfers import balance_key

    for change in (
        lambda state: state.__setitem__(balance_key(ALICE.public_key), codec.encode_int(10**9)),
        lambda state: state.__setitem__(b"\xff stray", b"\x00"),
        lambda state: state.pop(balance_key(BOB.public_key)),
    ):
        chain = transfers_chain()
        chain.produce_block([transfer(ALICE, 0, BOB.public_key, 5)], 1, SequentialExecutor())
        assert len(list(chain.replay(SequentialExecutor(), scratch=MemoryStore()))) == 1
        assert chain.state_checked
        change(chain.store._state)
        with pytest.raises(ReplayMismatch, match="stored state differs from the replayed one"):
            list(chain.replay(SequentialExecutor(), scratch=MemoryStore()))


def test_replay_detects_a_tampered_block():
    chain = transfers_chain()
    chain.produce_block([transfer(ALICE, 0, BOB.public_key, 5)], 1, SequentialExecutor())
    assert len(list(chain.replay(SequentialExecutor(), scratch=MemoryStore()))) == 1
    # rewrite history: same block bytes, but a lying receipt list
    store = chain.store
    store._receipts[1] = store._receipts[0]
    with pytest.raises(ReplayMismatch):
        list(chain.replay(SequentialExecutor(), scratch=MemoryStore()))


@pytest.mark.parametrize(
    "forge, message",
    [
        (lambda h: {"parent_hash": b"\x01" * 32}, "parent hash"),
        (lambda h: {"txs_root": b"\x02" * 32}, "txs_root"),
        (lambda h: {"time": 0}, "before its parent"),
        (lambda h: {"height": 7}, "stored with height"),
    ],
)
def test_replay_refuses_a_forged_header(forge, message):
    """The state root alone does not bind a header: replay checks each one follows its parent
    (height, parent hash, time) and commits to its own transactions (txs_root)."""
    import msgspec

    from paraexec import codec
    from paraexec.chain.block import decode_block

    chain = transfers_chain()
    for k, at in enumerate((5, 6)):
        chain.produce_block([transfer(ALICE, k, BOB.public_key, 5)], at, SequentialExecutor())
    store = chain.store
    block = decode_block(store._blocks[2])
    header = msgspec.structs.replace(block.header, **forge(block.header))
    store._blocks[2] = codec.encode(msgspec.structs.replace(block, header=header))
    with pytest.raises(ReplayMismatch, match=message):
        list(chain.replay(SequentialExecutor(), scratch=MemoryStore()))


def test_a_block_time_before_the_parent_is_refused_before_anything_runs():
    chain = transfers_chain()
    chain.produce_block([transfer(ALICE, 0, BOB.public_key, 5)], 10, SequentialExecutor())
    with pytest.raises(ValueError, match="before its parent"):
        chain.produce_block([transfer(ALICE, 1, BOB.public_key, 5)], 9, SequentialExecutor())
    assert chain.height == 1


def test_damaged_bytes_are_a_typed_error_not_a_decoder_crash():
    """A store damaged outside paraexec: metadata, a block or its receipts that do not decode
    raise ``CorruptStore`` (an ``IncompatibleStore``: the CLI prints it and exits)."""
    from paraexec.errors import CorruptStore, IncompatibleStore

    chain = transfers_chain()
    chain.produce_block([transfer(ALICE, 0, BOB.public_key, 5)], 1, SequentialExecutor())
    store = chain.store
    store._blocks[1], store._receipts[1] = b"\xc1", b"\x92\x01"
    with pytest.raises(CorruptStore, match="block 1 cannot be read"):
        chain.block(1)
    with pytest.raises(CorruptStore, match="receipts of block 1"):
        chain.receipts(1)
    for meta in (b"\xff\xfe", b"[1]", b'{"chain_id": "x"}'):
        store._meta["chain"] = meta
        with pytest.raises(IncompatibleStore, match="metadata cannot be read"):
            Chain.open(store)


def test_a_store_this_version_cannot_run_or_whose_blocks_do_not_add_up_is_refused_at_open():
    """Each way a store can be damaged or foreign is a typed error at ``Chain.open`` (the CLI
    and the node print it), never a traceback from deeper in: an application this version
    lacks, a layout record that is not text, a head block missing (the height record ahead
    of the blocks), a state whose root is not the last block's. Nothing is written."""
    import json

    from paraexec.errors import CorruptStore, IncompatibleStore

    def damaged(change) -> MemoryStore:
        chain = transfers_chain()
        chain.produce_block([transfer(ALICE, 0, BOB.public_key, 5)], 1, SequentialExecutor())
        Chain.open(chain.store)  # undamaged: opens
        change(chain.store)
        return chain.store

    def foreign_app(store):
        config = json.loads(store._meta["chain"])
        store._meta["chain"] = json.dumps({**config, "app": "nope"}).encode()

    def binary_layout(store):
        config = json.loads(store._meta["chain"])
        store._meta["chain"] = json.dumps({**config, "app": "exchange", "app_config": {}}).encode()
        store._meta["state_layout"] = b"\xff\xfe"

    def height_ahead(store):
        store._height = 5

    def state_changed(store):
        store._accumulator += 1

    cases = [
        (foreign_app, IncompatibleStore, "cannot run the stored chain: unknown application 'nope'"),
        (binary_layout, IncompatibleStore, "written with layout \ufffd"),
        (height_ahead, CorruptStore, "block 5 is missing from the store"),
        (state_changed, CorruptStore, "is not the root of the last block"),
    ]
    for change, error, message in cases:
        with pytest.raises(error, match=message):
            Chain.open(damaged(change))
    with pytest.raises(KeyError):  # above the chain's height: the caller's mistake, not damage
        transfers_chain().block(1)


def test_transactions_are_indexed_by_hash():
    from paraexec.transaction import tx_hash

    chain = transfers_chain()
    raws = [transfer(ALICE, 0, BOB.public_key, 5), transfer(BOB, 0, ALICE.public_key, 1)]
    chain.produce_block(raws, 1, SequentialExecutor())
    assert chain.find_tx(tx_hash(raws[1])) == (1, 1)
    assert chain.find_tx(b"\x00" * 32) is None


def test_system_transactions_are_not_indexed():
    """A market tick's bytes are the same every block: indexed, its hash would point at block 1
    forever. Only user transactions are indexed; the ticks are found in their blocks."""
    from paraexec.chain import ChainConfig
    from paraexec.exchange.genesis import dev_genesis
    from paraexec.transaction import tx_hash

    chain = Chain.create(MemoryStore(), ChainConfig("ticks", "exchange", dev_genesis(accounts=2, markets=1)))
    for height in (1, 2):
        chain.produce_block([], height, SequentialExecutor())
    tick = chain.block(2).txs[-1]
    assert tick == chain.block(1).txs[-1] and chain.find_tx(tx_hash(tick)) is None


def check_consistent(path) -> int:
    """The store is exactly at some block: root matches that block's header and a replay agrees."""
    store = LmdbStore(path)  # read-write open, as a restarting node would
    try:
        chain = Chain.open(store)
        head = chain.block(chain.height)
        assert head.header.state_root == store.root
        assert cm.accumulate(store.items()) == store.accumulator
        assert len(chain.receipts(chain.height)) == len(head.txs)  # the head's receipts were committed with it
        blocks = list(chain.replay(SequentialExecutor()))
        assert len(blocks) == chain.height
        return chain.height
    finally:
        store.close()


def committed_height(path) -> int:
    """The height the store at ``path`` has committed, read from another process (-1 while there
    is no store to read yet)."""
    if not (path / "data.mdb").exists():
        return -1
    try:
        store = LmdbStore(path, readonly=True)
    except lmdb.Error:  # being created
        return -1
    try:
        return store.height
    finally:
        store.close()


@pytest.mark.slow
def test_sigkill_at_random_moments_never_leaves_a_torn_store(tmp_path):
    """Each round waits (however slow the start) until the child has committed a block beyond the
    last round's, then kills it at a random moment of its block loop: every kill lands in a run
    that commits, and the height it saw committed is never lost."""
    path = tmp_path / "chain"
    rng = random.Random(1234)
    heights: list[int] = []
    args = ("run", "--data", str(path), "--accounts", "50", "--block-size", "20", "--blocks", "100000", "--seed", "3")
    for _ in range(22):
        child = paraexec(*args)
        try:
            deadline = time.monotonic() + 120  # an upper bound: the wait ends at the first new block
            while (seen := committed_height(path)) <= (heights[-1] if heights else 0):
                if child.poll() is not None:
                    pytest.fail(f"child exited early: {child.stderr.read()!r}")
                if time.monotonic() > deadline:
                    pytest.fail(f"no block committed past {heights[-1:]} within 120 s")
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))  # somewhere in the block loop: mid-block, mid-commit...
            if child.poll() is not None:
                pytest.fail(f"child exited early: {child.stderr.read()!r}")
        finally:
            child.send_signal(signal.SIGKILL)  # nothing when it has exited
            child.wait()
        height = check_consistent(path)
        assert height >= seen, (height, seen)  # nothing committed is ever lost
        heights.append(height)
    assert all(a < b for a, b in pairwise(heights)), heights  # each run committed more


def _exchange_store(path):
    from paraexec.chain import ChainConfig
    from paraexec.exchange.genesis import dev_genesis

    store = LmdbStore(path)
    Chain.create(store, ChainConfig("layout", "exchange", dev_genesis()))
    return store


def test_a_store_written_with_another_state_layout_is_refused(tmp_path):
    """An exchange chain records its state layout at genesis; a store whose layout differs (or
    predates the record) is refused at open with the reason, unchanged, and the CLI exits 2."""
    from typer.testing import CliRunner

    from paraexec.cli import app
    from paraexec.errors import IncompatibleStore

    store = _exchange_store(tmp_path / "db")
    assert store.get_meta("state_layout") == b"8"
    Chain.open(store)  # the layout it was written with: fine
    with store.env.begin(write=True) as txn:  # as a store written before layouts were recorded
        txn.delete(b"state_layout", db=store._meta)
    with pytest.raises(IncompatibleStore, match="unrecorded"):
        Chain.open(store)
    with store.env.begin(write=True) as txn:
        txn.put(b"state_layout", b"1", db=store._meta)
    with pytest.raises(IncompatibleStore, match="layout 1"):
        Chain.open(store)
    height, root = store.height, store.root
    store.close()
    for args in (["replay", "--data", str(tmp_path / "db")], ["inspect", "--data", str(tmp_path / "db")]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and "state layout" in result.output, result.output
    store = LmdbStore(tmp_path / "db", readonly=True)
    assert (store.height, store.root) == (height, root)
    store.close()


def test_an_application_without_a_layout_opens_any_store():
    chain = transfers_chain()
    assert chain.store.get_meta("state_layout") is None
    assert Chain.open(chain.store).config == chain.config
