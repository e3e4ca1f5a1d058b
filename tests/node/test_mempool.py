"""Mempool admission, nonce ordering, bounds, deterministic assembly and expiry."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from paraexec.apps.transfers import Transfer, TransfersApp
from paraexec.chain.mempool import Mempool, MempoolConfig, MempoolFull, SenderQuotaExceeded
from paraexec.crypto import SigningKey
from paraexec.errors import (
    BadSignature,
    MalformedTransaction,
    NonceGap,
    ReplayedNonce,
    UnknownPayloadType,
    WrongChainId,
)
from paraexec.execution.runtime import ChainRuntime
from paraexec.transaction import encode_payload, sign, tx_hash

CHAIN = "test-chain"
KEYS = [SigningKey.from_seed_text(f"mempool/{i}") for i in range(4)]
RUNTIME = ChainRuntime(TransfersApp(), CHAIN)


def tx(key: SigningKey, nonce: int, amount: int = 1, chain: str = CHAIN) -> bytes:
    return sign(key, chain, nonce, encode_payload(Transfer(KEYS[0].public_key, amount)))


def pool(committed: dict[bytes, int] | None = None, **cfg) -> tuple[Mempool, dict[bytes, int]]:
    nonces = committed if committed is not None else {}
    return Mempool(CHAIN, lambda s: nonces.get(s, 0), MempoolConfig(**cfg), RUNTIME.decode_payload), nonces


def test_stateless_rejections():
    mp, _ = pool()
    good = tx(KEYS[1], 0)
    forged = bytearray(good)
    forged[-1] ^= 1
    results = mp.admit_many([b"\x01garbage", bytes(forged), tx(KEYS[1], 0, chain="other"), good])
    assert isinstance(results[0].error, MalformedTransaction)
    assert isinstance(results[1].error, BadSignature)
    assert isinstance(results[2].error, WrongChainId)
    assert results[3].error is None and results[3].hash == tx_hash(good)
    assert len(mp) == 1
    unknown = sign(KEYS[2], CHAIN, 0, encode_payload(Transfer(KEYS[0].public_key, 1), "Nope"))
    assert isinstance(mp.admit(unknown).error, UnknownPayloadType)


def test_parallel_signature_batch_matches_serial():
    mp, _ = pool(max_per_sender=1000, max_nonce_ahead=1000, verify_threads=2)
    raws = [tx(KEYS[i % 4], i // 4) for i in range(200)]
    bad = {7, 50, 199}
    for i in bad:
        b = bytearray(raws[i])
        b[-3] ^= 0x10
        raws[i] = bytes(b)
    results = mp.admit_many(raws)
    assert {i for i, r in enumerate(results) if r.error is not None} == bad
    assert all(isinstance(results[i].error, BadSignature) for i in bad)


def test_nonce_rules_and_idempotent_resubmit():
    mp, nonces = pool({KEYS[1].public_key: 5}, max_nonce_ahead=10)
    assert isinstance(mp.admit(tx(KEYS[1], 4)).error, ReplayedNonce)
    first = tx(KEYS[1], 5)
    assert mp.admit(first).error is None
    assert mp.admit(first).known  # same bytes again: accepted idempotently
    assert isinstance(mp.admit(tx(KEYS[1], 5, amount=2)).error, ReplayedNonce)  # no replacement
    assert isinstance(mp.admit(tx(KEYS[1], 15)).error, NonceGap)
    assert mp.admit(tx(KEYS[1], 14)).error is None  # held back, not refused
    assert len(mp) == 2
    assert mp.pending_nonce(KEYS[1].public_key) == 6


def test_gaps_are_held_back_until_filled():
    mp, nonces = pool()
    mp.admit_many([tx(KEYS[1], 2), tx(KEYS[1], 0)])
    assert mp.reap(10) == [tx(KEYS[1], 0)]
    mp.admit(tx(KEYS[1], 1))
    assert mp.reap(10) == [tx(KEYS[1], 0), tx(KEYS[1], 1), tx(KEYS[1], 2)]


def test_quota_and_full_are_distinct_429_errors():
    mp, _ = pool(max_txs=5, max_per_sender=3)
    results = mp.admit_many([tx(KEYS[1], n) for n in range(4)])
    assert [r.error is None for r in results] == [True, True, True, False]
    assert isinstance(results[3].error, SenderQuotaExceeded)
    results = mp.admit_many([tx(KEYS[2], 0), tx(KEYS[2], 1), tx(KEYS[3], 0)])
    assert [r.error is None for r in results] == [True, True, False]
    assert type(results[2].error) is MempoolFull
    assert mp.rejections == {"SENDER_QUOTA": 1, "MEMPOOL_FULL": 1}


def test_a_full_pool_of_held_back_entries_gives_way_to_ready_ones():
    """Transactions behind a nonce gap that may never fill must not lock the pool: a ready
    transaction evicts the newest held-back entries; a held-back one is refused as before."""
    mp, nonces = pool(max_txs=4, max_per_sender=4)
    assert all(r.error is None for r in mp.admit_many([tx(KEYS[1], n) for n in (1, 2)] + [tx(KEYS[2], 3)]))
    assert mp.admit(tx(KEYS[3], 0)).error is None  # full now: 3 held back, 1 ready
    assert type(mp.admit(tx(KEYS[3], 2)).error) is MempoolFull  # held back itself: no eviction
    assert mp.admit(tx(KEYS[3], 1)).error is None  # ready (continues nonce 0): evicts KEYS[2]'s nonce 3
    assert mp.evicted_total == 1 and mp.pending_nonce(KEYS[2].public_key) == 0
    # ready, and it un-gaps its own nonces 1 and 2: they are the only held entries left, so the
    # farthest of them (2) makes room and nonce 1 becomes ready
    assert mp.admit(tx(KEYS[1], 0)).error is None
    assert len(mp) == 4 and mp.evicted_total == 2
    assert sorted(mp.reap(10)) == sorted([tx(KEYS[3], 0), tx(KEYS[3], 1), tx(KEYS[1], 0), tx(KEYS[1], 1)])
    # others' held entries go before the newcomer's own: KEYS[2]'s nonce 5, not KEYS[1]'s nonce 1
    mp, _ = pool(max_txs=3, max_per_sender=8)
    mp.admit_many([tx(KEYS[1], 1), tx(KEYS[2], 5), tx(KEYS[3], 0)])
    assert mp.admit(tx(KEYS[1], 0)).error is None
    assert sorted(mp.reap(10)) == sorted([tx(KEYS[1], 0), tx(KEYS[1], 1), tx(KEYS[3], 0)])


def test_byte_bound():
    size = len(tx(KEYS[1], 0))
    mp, _ = pool(max_bytes=2 * size)
    assert [r.error is None for r in mp.admit_many([tx(KEYS[1], n) for n in range(3)])] == [True, True, False]
    assert mp.size_bytes == 2 * size


def test_on_block_removes_included_and_used_nonces_then_expires():
    mp, nonces = pool(ttl_blocks=3)
    a0, a1, b0 = tx(KEYS[1], 0), tx(KEYS[1], 1), tx(KEYS[2], 0)
    mp.admit_many([a0, a1, b0])
    block = mp.reap(1)
    assert block == [a0]
    nonces[KEYS[1].public_key] = 2  # a0 committed; a1's nonce used by some other tx of KEYS[1]
    mp.on_block(1, block)
    assert len(mp) == 1 and mp.get(tx_hash(b0)) is not None
    late = tx(KEYS[3], 4)  # gapped, never becomes ready
    mp.admit(late)
    mp.on_block(2, [])
    mp.on_block(3, [])
    assert mp.get(tx_hash(b0)) is None  # admitted at height 0, expired at 3
    assert mp.get(tx_hash(late)) is not None  # admitted at height 1
    mp.on_block(4, [])
    assert len(mp) == 0 and mp.expired_total == 2 and mp.size_bytes == 0


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 6)), max_size=40), st.integers(0, 2**32))
def test_reap_is_deterministic_and_respects_nonce_order(items, seed):
    """Model: the block is a valid nonce sequence per sender and independent of pool history."""
    raws = [tx(KEYS[k], n) for k, n in items]
    mp1, _ = pool(max_per_sender=100)
    mp1.admit_many(raws)
    mp2, _ = pool(max_per_sender=100)
    for raw in raws:  # one by one instead of one batch: same arrival order, same block
        mp2.admit(raw)
    block = mp1.reap(1000)
    assert block == mp2.reap(1000)
    next_nonce: dict[bytes, int] = {}
    for raw in block:
        entry = mp1.get(tx_hash(raw))
        assert entry is not None
        assert entry.nonce == next_nonce.get(entry.sender, 0)
        next_nonce[entry.sender] = entry.nonce + 1
    # every sender's ready run is included in full (no cap hit)
    for key in KEYS:
        held = {n for k, n in items if KEYS[k] == key}
        run = 0
        while run in held:
            run += 1
        assert next_nonce.get(key.public_key, 0) == run
    # the cap takes a prefix of the uncapped block
    cap = random.Random(seed).randrange(0, len(block) + 1)
    assert mp1.reap(cap) == block[:cap]
