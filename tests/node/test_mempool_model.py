"""The mempool against a naive model: admissions, block production and expiry in random order.

The model keeps, per sender, the committed nonce and the pending nonces (with their admission
height and order); it decides each admission's outcome from the rules in the mempool's docstring
(a full pool evicts held-back entries, newest first and the newcomer's own last, for a transaction
that would be ready), and the block it expects is every sender's run of consecutive nonces from
its committed nonce.
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from paraexec.apps.transfers import Transfer, TransfersApp
from paraexec.chain.mempool import Mempool, MempoolConfig
from paraexec.crypto import SigningKey
from paraexec.execution.runtime import ChainRuntime
from paraexec.transaction import encode_payload, sign, tx_hash

CHAIN = "model"
KEYS = [SigningKey.from_seed_text(f"model/{i}") for i in range(3)]
CONFIG = MempoolConfig(max_txs=8, max_per_sender=4, max_nonce_ahead=6, ttl_blocks=3, verify_threads=1)
DECODE = ChainRuntime(TransfersApp(), CHAIN).decode_payload
TXS = {
    (k, n, a): sign(KEYS[k], CHAIN, n, encode_payload(Transfer(KEYS[0].public_key, a)))
    for k in range(3)
    for n in range(10)
    for a in (1, 2)
}


class MempoolModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.committed = {k.public_key: 0 for k in KEYS}
        self.pool = Mempool(CHAIN, self.committed.__getitem__, CONFIG, DECODE)
        # nonce -> (hash, height, admission number)
        self.pending: dict[int, dict[int, tuple[bytes, int, int]]] = {k: {} for k in range(3)}
        self.height = 0
        self.admitted = 0

    def size(self) -> int:
        return sum(len(p) for p in self.pending.values())

    def first_gap(self, k: int) -> int:
        n = self.committed[KEYS[k].public_key]
        while n in self.pending[k]:
            n += 1
        return n

    def evictable(self, k: int, n: int) -> list[tuple[int, int]]:
        """Held-back (sender, nonce) in eviction order for a ready newcomer (k, n)."""
        held = [(j, m) for j in range(3) for m in self.pending[j] if m > self.first_gap(j)]
        after = n + 1
        while after in self.pending[k]:
            after += 1
        own = sorted(((j, m) for j, m in held if j == k and m < after), key=lambda e: -e[1])
        others = sorted((e for e in held if e not in own), key=lambda e: -self.pending[e[0]][e[1]][2])
        return others + own

    @rule(k=st.integers(0, 2), n=st.integers(0, 9), amount=st.sampled_from([1, 2]))
    def admit(self, k: int, n: int, amount: int) -> None:
        raw = TXS[(k, n, amount)]
        txh = tx_hash(raw)
        result = self.pool.admit(raw)
        committed, pending = self.committed[KEYS[k].public_key], self.pending[k]
        if n in pending and pending[n][0] == txh:
            expected = "known"
        elif n < committed or n in pending:
            expected = "REPLAYED_NONCE"
        elif len(pending) >= CONFIG.max_per_sender:
            expected = "SENDER_QUOTA"
        elif n >= committed + CONFIG.max_nonce_ahead:
            expected = "NONCE_GAP"
        elif self.size() >= CONFIG.max_txs and (self.first_gap(k) < n or not self.evictable(k, n)):
            expected = "MEMPOOL_FULL"  # held back itself, or nothing held back to evict
        else:
            expected = "ok"
            if self.size() >= CONFIG.max_txs:
                j, m = self.evictable(k, n)[0]
                del self.pending[j][m]
            self.admitted += 1
            pending[n] = (txh, self.height, self.admitted)
        got = "known" if result.known else ("ok" if result.error is None else result.error.name)
        assert got == expected

    @rule(limit=st.integers(0, 10))
    def produce(self, limit: int) -> None:
        block = self.pool.reap(limit)
        ready = {}
        for k in range(3):
            n = self.committed[KEYS[k].public_key]
            while n in self.pending[k]:
                ready[self.pending[k][n][0]] = k
                n += 1
        assert len(block) == min(limit, len(ready))
        for raw in block:  # commit: each included tx uses its sender's next nonce
            k = ready[tx_hash(raw)]
            nonce = self.committed[KEYS[k].public_key]
            assert self.pending[k][nonce][0] == tx_hash(raw)  # nonce order within the sender
            del self.pending[k][nonce]
            self.committed[KEYS[k].public_key] = nonce + 1
        self.height += 1
        self.pool.on_block(self.height, block)
        for k in range(3):  # model expiry: admitted ttl_blocks or more blocks ago
            self.pending[k] = {n: v for n, v in self.pending[k].items() if v[1] > self.height - CONFIG.ttl_blocks}

    @invariant()
    def same_contents(self) -> None:
        assert len(self.pool) == self.size()
        for k in range(3):
            for txh, _, _ in self.pending[k].values():
                assert self.pool.get(txh) is not None


TestMempoolModel = MempoolModel.TestCase
