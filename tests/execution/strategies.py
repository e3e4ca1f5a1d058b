"""Hypothesis strategies and block builders for the differential suite (aptos-core proptest style).

Contention is set by the key universe (1, 10, 100, 1000 keys): with one key every transaction
conflicts with every other; with 1000 almost none do. Synthetic transactions mix plain reads and
writes with the hard cases: ``INDIRECT`` writes to a key chosen by a value read (read and write
sets change between incarnations), ``FAIL_IF`` injects business failures (rolled-back writes),
``DELTA`` adds commutative deltas, ``DELETE`` removes keys, ``SPIN`` makes a transaction longer
so threads and processes really overlap, some transactions declare access lists (sometimes too
narrow: ``UNDECLARED_ACCESS``), and a few are malformed bytes.

Real transfer blocks (``transfer_block``) are signed with the workload's keys and mix valid
transfers with invalid ones: bad signature, replayed nonce, nonce gap, overdraft, zero amount,
wrong chain id, malformed bytes, mints (deltas) by the minter and by a stranger, and optionally
declared access lists (one kind declaring too little).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import strategies as st

from paraexec import codec
from paraexec.apps.transfers import Mint, Transfer, balance_key
from paraexec.chain.chain import Chain, ChainConfig
from paraexec.execution.synthetic import DELETE, DELTA, FAIL_IF, INDIRECT, READ, SPIN, WRITE, encode_tx, key_of
from paraexec.state import MemoryStore, commitment
from paraexec.transaction import AccessList, SignedTransaction, encode_payload, sign
from paraexec.types import Key, Value
from paraexec.workloads.transfers import INITIAL_BALANCE, TransferWorkload

UNIVERSES = (1, 10, 100, 1000)
CHAIN_ID = "paraexec-test"


def op_strategy(universe: int) -> st.SearchStrategy[tuple[int, int, int]]:
    key = st.integers(0, universe - 1)
    return st.one_of(
        st.tuples(st.just(READ), key, st.just(0)),
        st.tuples(st.just(WRITE), key, st.integers(-5, 50)),
        st.tuples(st.just(DELTA), key, st.integers(-20, 20)),
        st.tuples(st.just(INDIRECT), key, st.integers(0, 50)),
        st.tuples(st.just(FAIL_IF), key, st.integers(1, 7)),
        st.tuples(st.just(DELETE), key, st.just(0)),
        st.tuples(st.just(SPIN), st.just(0), st.integers(0, 40)),
    )


@st.composite
def declared_synthetic_tx(draw: st.DrawFn, universe: int) -> bytes:
    """A synthetic transaction declaring its access list (for the access-list executor).

    The declaration covers the keys the ops name, plus a few random extra writes (which may or
    may not cover an ``INDIRECT`` target); one time in four one declared key is dropped. Either
    way an access outside the declaration fails the transaction with ``UNDECLARED_ACCESS``.
    """
    ops = draw(st.lists(op_strategy(universe), min_size=1, max_size=6))
    reads = {k for op, k, _ in ops if op in (READ, FAIL_IF, INDIRECT)}
    writes = {k for op, k, _ in ops if op in (WRITE, DELTA, DELETE)}
    writes |= draw(st.sets(st.integers(0, universe - 1), max_size=3))
    if draw(st.integers(0, 3)) == 0 and (reads or writes):
        victim = draw(st.sampled_from(sorted(reads | writes)))
        reads.discard(victim)
        writes.discard(victim)
    return encode_tx(ops, (sorted(reads), sorted(writes)))


def synthetic_tx(universe: int) -> st.SearchStrategy[bytes]:
    well_formed = st.lists(op_strategy(universe), min_size=1, max_size=6).map(encode_tx)
    declared = declared_synthetic_tx(universe)
    malformed = st.binary(min_size=0, max_size=6)
    return st.one_of(well_formed, well_formed, well_formed, well_formed, declared, declared, malformed)


def synthetic_txs(universe: int, max_size: int = 40) -> st.SearchStrategy[list[bytes]]:
    return st.lists(synthetic_tx(universe), min_size=0, max_size=max_size)


def pre_state(universe: int, garbage: bool = False) -> st.SearchStrategy[dict[Key, Value]]:
    """Committed values for up to 40 keys of the universe; ``garbage`` adds non-integer values.

    A garbage value makes a read raise (a decode error): real when sequential reads it too, only
    speculative when a lower transaction overwrites it first.
    """
    value = st.integers(-(2**40), 2**40).map(codec.encode_int)
    if garbage:
        value = st.one_of(value, value, value, st.just(b"\xc1"), st.just(b"\x92\x01"))
    return st.dictionaries(st.integers(0, universe - 1).map(key_of), value, max_size=min(universe, 40))


def memory_store(state: dict[Key, Value]) -> MemoryStore:
    """A MemoryStore with ``state`` committed as block 0."""
    store = MemoryStore()
    store.commit_block(0, dict(state), commitment.accumulate(state.items()), b"", b"")
    return store


# -- real transfer blocks ------------------------------------------------------------------------


@dataclass
class TransferChain:
    """A transfers chain at genesis plus the keys that can sign for it; ``nonces`` tracks next nonces."""

    workload: TransferWorkload
    chain: Chain
    nonces: dict[bytes, int]
    declare_access: bool = False


_workloads: dict[int, TransferWorkload] = {}


def transfer_chain(accounts: int, store: object | None = None, declare_access: bool = False) -> TransferChain:
    """A fresh transfers chain whose genesis funds ``accounts`` accounts; account 0 is the minter.

    With ``declare_access`` the transfers declare their access lists (sender and receiver
    balances), and some declare too little (``UNDECLARED_ACCESS``).
    """
    workload = _workloads.get(accounts)
    if workload is None:
        workload = _workloads[accounts] = TransferWorkload(accounts, seed=7, chain_id=CHAIN_ID)
    genesis = dict(workload.genesis_config())
    genesis["minter"] = workload.keys[0].public_key.hex()
    config = ChainConfig(CHAIN_ID, "transfers", genesis)
    chain = Chain.create(store if store is not None else MemoryStore(), config)  # type: ignore[arg-type]
    return TransferChain(workload, chain, {}, declare_access)


def _resign_badly(raw: bytes) -> bytes:
    signed = codec.decode(raw, SignedTransaction)
    bad = bytes([signed.signature[0] ^ 1]) + signed.signature[1:]
    return codec.encode(SignedTransaction(signed.body, bad))


def transfer_block(tc: TransferChain, size: int, seed: int, invalid_share: float = 0.1) -> list[bytes]:
    """``size`` transactions: random transfers, with about ``invalid_share`` invalid or special ones."""
    rng = random.Random(f"{seed}/{size}/{tc.workload.accounts}")
    keys = tc.workload.keys
    nonces = tc.nonces
    txs: list[bytes] = []

    def next_nonce(key: object) -> int:
        pub = key.public_key  # type: ignore[attr-defined]
        nonce = nonces.get(pub, 0)
        nonces[pub] = nonce + 1
        return nonce

    for _ in range(size):
        src = keys[rng.randrange(len(keys))]
        dst = keys[rng.randrange(len(keys))]
        roll = rng.random()
        if roll >= invalid_share or not txs:
            payload = encode_payload(Transfer(dst.public_key, rng.randrange(1, 100)))
            access = None
            if tc.declare_access:
                access = AccessList([], [balance_key(src.public_key), balance_key(dst.public_key)])
            txs.append(sign(src, CHAIN_ID, next_nonce(src), payload, access))
            continue
        kind = rng.randrange(10 if tc.declare_access else 9)
        if kind == 0:  # bad signature on an otherwise valid transfer (nonce not consumed)
            payload = encode_payload(Transfer(dst.public_key, 5))
            txs.append(_resign_badly(sign(src, CHAIN_ID, nonces.get(src.public_key, 0), payload)))
        elif kind == 1:  # replay an earlier transaction verbatim
            txs.append(txs[rng.randrange(len(txs))])
        elif kind == 2:  # nonce gap
            payload = encode_payload(Transfer(dst.public_key, 5))
            txs.append(sign(src, CHAIN_ID, nonces.get(src.public_key, 0) + 3, payload))
        elif kind == 3:  # overdraft: more than any balance (nonce consumed, writes rolled back)
            payload = encode_payload(Transfer(dst.public_key, INITIAL_BALANCE * 10))
            txs.append(sign(src, CHAIN_ID, next_nonce(src), payload))
        elif kind == 4:  # zero amount
            payload = encode_payload(Transfer(dst.public_key, 0))
            txs.append(sign(src, CHAIN_ID, next_nonce(src), payload))
        elif kind == 5:  # wrong chain id
            payload = encode_payload(Transfer(dst.public_key, 5))
            txs.append(sign(src, "other-chain", nonces.get(src.public_key, 0), payload))
        elif kind == 6:  # malformed bytes
            txs.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 20))))
        elif kind == 7:  # mint by the minter: a delta on the receiver's balance
            minter = keys[0]
            payload = encode_payload(Mint(dst.public_key, rng.randrange(1, 1000)))
            txs.append(sign(minter, CHAIN_ID, next_nonce(minter), payload))
        elif kind == 8:  # mint by someone else: UNAUTHORIZED (account 0 is the minter)
            stranger = keys[1]
            payload = encode_payload(Mint(dst.public_key, 5))
            txs.append(sign(stranger, CHAIN_ID, next_nonce(stranger), payload))
        else:  # declares only its own balance, then credits the receiver: UNDECLARED_ACCESS
            payload = encode_payload(Transfer(dst.public_key, 5))
            access = AccessList([], [balance_key(src.public_key)])
            txs.append(sign(src, CHAIN_ID, next_nonce(src), payload, access))
    return txs
