"""The mempool: admitted, signed transactions waiting for a block.

Admission (``admit_many``), in two phases so the expensive part runs outside the lock:

1. *stateless*, in parallel: size, decode, chain id, payload type (``decode_payload``), then
   the ed25519 signatures of the whole batch at once: by ``checker`` where one is given (a
   node's ``verifier.SignatureChecker``: helper processes, which keep checking while the
   producer thread executes a block), else with ``crypto.verify_many`` on ``verify_threads``
   threads (PyNaCl releases the GIL, so they run side by side while this process is otherwise
   idle);
2. *stateful*, under the pool lock, in arrival order:
   - a transaction already in the pool is accepted again idempotently (same hash back);
   - ``nonce < committed nonce`` of the sender -> ``REPLAYED_NONCE`` (already used on chain);
   - another pending transaction with the same (sender, nonce) -> ``REPLAYED_NONCE``
     (no replacement: first come, first kept);
   - the sender already holds ``max_per_sender`` entries -> ``SENDER_QUOTA`` (HTTP 429);
   - ``nonce >= committed + max_nonce_ahead`` -> ``NONCE_GAP`` (too far ahead to hold);
   - the pool holds ``max_txs`` entries or ``max_bytes`` bytes: a transaction that would be
     ready (it continues its sender's run of consecutive nonces from the committed one) takes
     the place of the most recently admitted held-back entries; otherwise ``MEMPOOL_FULL``
     (HTTP 429).

Entries whose nonce is ahead of the sender's next nonce are *held back*: they are kept but not
offered to blocks until the gap before them fills. They are also the first to go when the pool
is full: transactions behind a gap that may never fill (a sender that cannot pay, a key made
for the purpose) must not lock out senders whose transactions can run. Finding them scans the
pool, which happens only when it is full.

Block assembly (``reap``) is deterministic for a given pool: a sender's *ready* transactions are
the run of consecutive nonces starting at its committed nonce; senders are interleaved by the
arrival number (``seq``) of their next ready transaction (a heap), so the block is in arrival
order except where a sender's nonce order demands otherwise. ``reap`` does not remove anything:
``on_block`` does, once the block is committed (drop included hashes, drop entries whose nonce the
chain has now used, then expire entries admitted more than ``ttl_blocks`` blocks ago). Only one
block is assembled at a time (single producer), so a reaped-but-uncommitted transaction is never
offered twice.

Expiry counts blocks, not seconds, so it is reproducible in tests and needs no clock.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from .. import crypto
from ..errors import BadSignature, InvalidTransaction, MempoolFull, NonceGap, ReplayedNonce, SenderQuotaExceeded
from ..transaction import decode_signed, signature_triple, tx_hash

#: Codes added by the mempool (to be merged into ``errors.ERROR_CODES``).
MEMPOOL_ERROR_CODES = {MempoolFull.code: MempoolFull.name, SenderQuotaExceeded.code: SenderQuotaExceeded.name}


@dataclass(frozen=True)
class MempoolConfig:
    max_txs: int = 20_000
    max_bytes: int = 32 << 20
    max_per_sender: int = 256
    max_nonce_ahead: int = 256
    ttl_blocks: int = 120
    verify_threads: int = 2


@dataclass(frozen=True)
class Entry:
    raw: bytes
    hash: bytes
    sender: bytes
    nonce: int
    seq: int
    height: int  # chain height when admitted (for expiry)


@dataclass(frozen=True)
class Admitted:
    """Result of one admission: ``hash`` always; ``error`` when refused; ``known`` if already pooled."""

    hash: bytes
    error: InvalidTransaction | None = None
    known: bool = False


class Mempool:
    """See module docstring. Thread-safe: RPC threads admit while the producer reaps."""

    def __init__(
        self,
        chain_id: str,
        nonce_of: Callable[[bytes], int],
        config: MempoolConfig | None = None,
        decode_payload: Callable[[bytes], Any] | None = None,
        height: int = 0,
        checker: Callable[[Sequence[tuple[bytes, bytes, bytes]]], list[bool]] | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.nonce_of = nonce_of
        self.config = config or MempoolConfig()
        self.decode_payload = decode_payload
        #: the signature check of a batch: ``checker``, else ``crypto.verify_many`` on threads
        self.verify_many = checker or partial(crypto.verify_many, threads=self.config.verify_threads)
        self._lock = threading.Lock()
        self._by_hash: dict[bytes, Entry] = {}  # insertion order == admission order (expiry scan)
        self._by_sender: dict[bytes, dict[int, Entry]] = {}
        self._bytes = 0
        self._seq = 0
        self._height = height
        self.rejections: dict[str, int] = {}
        self.admitted_total = 0
        self.expired_total = 0
        self.evicted_total = 0  # held-back entries evicted for ready ones (pool full)

    # -- queries ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_hash)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, txh: bytes) -> Entry | None:
        return self._by_hash.get(txh)

    def pending_nonce(self, sender: bytes) -> int:
        """The next nonce a client should use: committed nonce plus the ready run in the pool."""
        with self._lock:
            nonce = self.nonce_of(sender)
            pending = self._by_sender.get(sender, {})
            while nonce in pending:
                nonce += 1
            return nonce

    # -- admission -------------------------------------------------------------------------

    def admit(self, raw: bytes) -> Admitted:
        return self.admit_many([raw])[0]

    def admit_many(self, raws: Sequence[bytes]) -> list[Admitted]:
        """Admit a batch; one ``Admitted`` per input, in order (see module docstring)."""
        results: list[Admitted | None] = [None] * len(raws)
        decoded: list[tuple[int, bytes, Any]] = []
        triples = []
        for i, raw in enumerate(raws):
            txh = tx_hash(raw)
            try:
                tx = decode_signed(raw, self.chain_id, verify_signature=False)
                if self.decode_payload is not None:
                    self.decode_payload(tx.payload)
            except InvalidTransaction as exc:
                results[i] = Admitted(txh, exc)
                continue
            triple = signature_triple(raw)
            assert triple is not None  # decode_signed succeeded on the same bytes
            decoded.append((i, txh, tx))
            triples.append(triple)
        verified = self.verify_many(triples)
        with self._lock:
            for (i, txh, tx), ok in zip(decoded, verified, strict=True):
                if not ok:
                    results[i] = Admitted(txh, BadSignature())
                    continue
                results[i] = self._admit_locked(raws[i], txh, tx.sender, tx.nonce)
        out = [r for r in results if r is not None]
        with self._lock:  # API threads admit concurrently: an unlocked += could lose counts
            for r in out:
                if r.error is not None:
                    self.rejections[r.error.name] = self.rejections.get(r.error.name, 0) + 1
        return out

    def _admit_locked(self, raw: bytes, txh: bytes, sender: bytes, nonce: int) -> Admitted:
        if txh in self._by_hash:
            return Admitted(txh, known=True)
        cfg = self.config
        committed = self.nonce_of(sender)
        if nonce < committed:
            return Admitted(txh, ReplayedNonce(f"nonce {nonce} already used (next is {committed})"))
        pending = self._by_sender.get(sender)
        if pending is not None and nonce in pending:
            return Admitted(txh, ReplayedNonce(f"nonce {nonce} already pending"))
        if pending is not None and len(pending) >= cfg.max_per_sender:
            return Admitted(txh, SenderQuotaExceeded(f"{len(pending)} pending transactions"))
        if nonce >= committed + cfg.max_nonce_ahead:
            return Admitted(txh, NonceGap(f"nonce {nonce} too far ahead of {committed}"))
        if not self._room_for(raw, sender, nonce, committed):
            return Admitted(txh, MempoolFull(f"{len(self._by_hash)} transactions, {self._bytes} bytes"))
        self._seq += 1
        entry = Entry(raw, txh, sender, nonce, self._seq, self._height)
        self._by_hash[txh] = entry
        self._by_sender.setdefault(sender, {})[nonce] = entry
        self._bytes += len(raw)
        self.admitted_total += 1
        return Admitted(txh)

    def _full(self, extra_bytes: int) -> bool:
        return len(self._by_hash) >= self.config.max_txs or self._bytes + extra_bytes > self.config.max_bytes

    def _room_for(self, raw: bytes, sender: bytes, nonce: int, committed: int) -> bool:
        """Whether ``raw`` fits, after evicting held-back entries for it if it would be ready."""
        if not self._full(len(raw)):
            return True
        pending = self._by_sender.get(sender, {})
        if any(n not in pending for n in range(committed, nonce)):
            return False  # held back itself: it does not displace anything
        after = nonce + 1  # the newcomer's own held entries it makes ready go last, farthest first
        while after in pending:
            after += 1
        held = self._held_locked()
        own = sorted((e for e in held if e.sender == sender and e.nonce < after), key=lambda e: -e.nonce)
        held = sorted((e for e in held if e not in own), key=lambda e: -e.seq) + own
        count, size, evict = len(self._by_hash), self._bytes + len(raw), 0
        while evict < len(held) and (count >= self.config.max_txs or size > self.config.max_bytes):
            count, size, evict = count - 1, size - len(held[evict].raw), evict + 1
        if count >= self.config.max_txs or size > self.config.max_bytes:
            return False  # even every held entry would not make room: evict none
        for entry in held[:evict]:
            self._remove(entry)
        self.evicted_total += evict
        return True

    def _held_locked(self) -> list[Entry]:
        """Every held-back entry: after a gap in its sender's nonces from the committed one."""
        out: list[Entry] = []
        for sender, pending in self._by_sender.items():
            nonce = self.nonce_of(sender)
            while nonce in pending:
                nonce += 1
            out.extend(e for n, e in pending.items() if n > nonce)
        return out

    # -- block assembly --------------------------------------------------------------------

    def reap(self, max_txs: int) -> list[bytes]:
        """Up to ``max_txs`` ready transactions, in deterministic order (see module docstring)."""
        with self._lock:
            heap: list[tuple[int, bytes, int]] = []  # (seq, sender, nonce) of each sender's next ready tx
            for sender, pending in self._by_sender.items():
                nonce = self.nonce_of(sender)
                entry = pending.get(nonce)
                if entry is not None:
                    heap.append((entry.seq, sender, nonce))
            heapq.heapify(heap)
            out: list[bytes] = []
            while heap and len(out) < max_txs:
                _, sender, nonce = heapq.heappop(heap)
                pending = self._by_sender[sender]
                out.append(pending[nonce].raw)
                following = pending.get(nonce + 1)
                if following is not None:
                    heapq.heappush(heap, (following.seq, sender, nonce + 1))
            return out

    def on_block(self, height: int, included: Iterable[bytes]) -> None:
        """After block ``height`` commits: drop its transactions, used nonces and expired entries."""
        with self._lock:
            self._height = height
            senders = set()
            for raw in included:
                entry = self._by_hash.get(tx_hash(raw))
                if entry is not None:
                    self._remove(entry)
                    senders.add(entry.sender)
            for sender in senders:  # any other entry whose nonce the chain has now used is dead
                pending = self._by_sender.get(sender)
                if pending:
                    committed = self.nonce_of(sender)
                    for entry in [e for n, e in pending.items() if n < committed]:
                        self._remove(entry)
            self._expire(height)

    def _expire(self, height: int) -> None:
        limit = height - self.config.ttl_blocks
        expired = []
        for entry in self._by_hash.values():  # admission order: stop at the first young entry
            if entry.height > limit:
                break
            expired.append(entry)
        for entry in expired:
            self._remove(entry)
        self.expired_total += len(expired)

    def _remove(self, entry: Entry) -> None:
        del self._by_hash[entry.hash]
        pending = self._by_sender[entry.sender]
        del pending[entry.nonce]
        if not pending:
            del self._by_sender[entry.sender]
        self._bytes -= len(entry.raw)
