"""Signature checks for mempool admission in helper processes (``SignatureChecker``).

PyNaCl releases the GIL inside an ed25519 check, so the mempool's checks on threads
(``crypto.verify_many``) run side by side, but only while nothing else in the process wants the
GIL: a checking thread needs it back after every check, and beside a thread that runs Python (a
node's producer executing a block) it gets it about once per switch interval (5 ms). Measured on
the 2-core box (``bench/admission.py``, 2,000 perps transactions admitted on two threads): ~0.15
s alone, many seconds beside a producer executing perps blocks. So while a block executes,
admission all but stops, and a node under load queues transactions at its API instead of
checking them on the idle core.

``SignatureChecker`` sends a batch to helper processes instead (split among them: each checks its
share and answers with one byte per signature) and waits on their pipes, which needs no GIL: the
admitting thread takes the GIL once per helper's answer, not once per signature, and the checks
run on another core whatever the producer does.

Failures change no verdict. A helper that dies, breaks its pipe or does not answer within
``TIMEOUT`` seconds has its pool stopped (killed); the batch is checked on the calling thread, and
the next batch starts a new pool. One batch at a time uses the pool (``_lock``): admissions that
arrive together queue for it (waiting on a lock releases the GIL too), and as every batch is split
over every helper, none idles while a batch waits.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection

import msgspec

from .. import crypto
from ..execution.parallel.transport import WorkerLost, WorkerPool, send_frame

log = logging.getLogger(__name__)

#: Seconds a helper may take to answer a batch before it is replaced (a batch of 5,000 checks
#: takes ~0.3 s on the dev box's core).
TIMEOUT = 30.0

Triple = tuple[bytes, bytes, bytes]  # (public key, message, signature)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[tuple[bytes, bytes, bytes]])


def serve(conn: Connection) -> None:
    """Helper process entry point: answer every batch with one byte per signature (1: valid),
    until the pipe closes. Ctrl-C is the node's: ``WorkerPool.start`` spawns with it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        send_frame(conn, bytes(crypto.verify(*item) for item in _decoder.decode(data)))


class SignatureChecker:
    """See module docstring. ``verify_many`` is thread-safe; ``close`` stops the helpers (later
    batches are checked on the calling thread)."""

    def __init__(self, processes: int, timeout: float = TIMEOUT) -> None:
        if processes < 1:
            raise ValueError(f"signature helper processes must be >= 1, not {processes}")
        self.processes = processes
        self.timeout = timeout
        self._lock = threading.Lock()
        self._pool: WorkerPool | None = None
        self._closed = False
        #: batches checked on the calling thread because a helper failed (metrics, tests)
        self.fallbacks = 0

    def start(self) -> None:
        """Start the helpers now (a node at start-up: spawning takes ~0.1-0.5 s a process, and
        from the main thread the spawn is shielded from Ctrl-C) rather than at the first batch.
        A failure to start is logged; the first batch then tries again."""
        with self._lock:
            try:
                self._started()
            except (OSError, WorkerLost) as exc:
                log.warning("signature helpers not started (%s): the first batch tries again", exc)

    def pids(self) -> list[int]:
        with self._lock:
            return [] if self._pool is None else self._pool.pids()

    def verify_many(self, triples: Sequence[Triple]) -> list[bool]:
        """One verdict per (public key, message, signature), as ``crypto.verify``."""
        if not triples:
            return []
        verdicts = self._on_helpers(triples)
        if verdicts is None:
            return [crypto.verify(*item) for item in triples]
        return [v == 1 for v in verdicts]

    def _on_helpers(self, triples: Sequence[Triple]) -> bytes | None:
        with self._lock:
            if self._closed:
                return None
            try:
                pool = self._started()
                share = -(-len(triples) // pool.size)
                parts = [list(triples[i : i + share]) for i in range(0, len(triples), share)]
                for index, part in enumerate(parts):
                    pool.send(index, _encoder.encode(part))
                verdicts = b"".join(pool.recv(index) for index in range(len(parts)))
                if len(verdicts) != len(triples):
                    raise WorkerLost(f"{len(verdicts)} verdicts for {len(triples)} signatures")
            except (OSError, WorkerLost) as exc:  # WorkerStalled is a WorkerLost
                log.warning("signature helper lost (%s): this batch is checked here, the next starts new ones", exc)
                self.fallbacks += 1
                self._stop()
                return None
            return verdicts

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._stop()

    def _started(self) -> WorkerPool:
        if self._pool is None:
            pool = WorkerPool(self.processes, stall_timeout=self.timeout, target=serve)
            try:
                pool.start()
            except BaseException:
                pool.stop()
                raise
            self._pool = pool
        return self._pool

    def _stop(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool = None
