"""Signature checks for mempool admission in helper processes (``SignatureChecker``).

PyNaCl releases the GIL inside an ed25519 check, so the mempool's checks on threads
(``crypto.verify_many``) run side by side, but only while nothing else in the process wants the
GIL: a checking thread needs it back after every check, and beside a thread that runs Python (a
node's producer executing a block) it gets it about once per switch interval (5 ms). Measured on
the 2-core box (``bench/admission.py``, 2,000 perps transactions admitted on two threads): ~0.15
s alone, ~3.6 s beside a producer executing perps blocks. So while a block executes, admission
all but stops, and a node under load queues transactions at its API instead of checking them on
the idle core.

``SignatureChecker`` sends a batch to helper processes instead (split among them: each checks its
share and answers with one byte per signature) and waits on their pipes, which needs no GIL: the
admitting thread takes the GIL a few times per helper's answer (write, wake-up, reads), not once
per signature, and the checks run on another core whatever the producer does. A batch of fewer
than ``SMALL_BATCH`` signatures (a single ``submit_tx``) is checked on the calling thread: its
few GIL hand-offs cost less than a round trip, and it does not queue behind a large batch.

Failures change no verdict:

- a helper that dies or breaks its pipe, or a batch not answered within its deadline
  (``timeout`` + ``per_signature`` x its size: a watchdog kills the helpers, which also ends a
  write blocked on a helper that stopped reading): the pool is stopped, the batch is checked on
  the calling thread, and a later batch starts a new pool;
- anything else raised while a batch is out (an interrupt, memory): the pool is stopped before
  the exception goes on, so no answer is left in a pipe for the next batch to read; answers
  also carry the batch's sequence number, which is checked;
- after ``MAX_FAILURES`` failures in a row, batches are checked on the calling threads for
  ``BACKOFF`` seconds before helpers are tried again (an environment where they keep dying must
  not pay a spawn and a failure per batch).

One batch at a time uses the pool (``_lock``): admissions that arrive together queue for it
(waiting on a lock releases the GIL too).
"""

from __future__ import annotations

import logging
import signal
import struct
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection

import msgspec

from .. import crypto
from ..execution.parallel.transport import WorkerLost, WorkerPool, send_frame

log = logging.getLogger(__name__)

#: Seconds of a batch's deadline before its size is counted (spawning, a busy machine) ...
TIMEOUT = 5.0
#: ... and per signature (a check takes ~45-70 us on the dev box: a wide margin).
PER_SIGNATURE = 1e-3
#: Batches smaller than this are checked on the calling thread.
SMALL_BATCH = 8
#: Failures in a row before helpers are left alone for ``BACKOFF`` seconds.
MAX_FAILURES = 3
BACKOFF = 60.0

Triple = tuple[bytes, bytes, bytes]  # (public key, message, signature)

_SEQ = struct.Struct("!Q")
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(tuple[int, list[tuple[bytes, bytes, bytes]]])


def serve(conn: Connection) -> None:
    """Helper process entry point: answer every (sequence number, triples) message with the
    number and one byte per signature (1: valid), until the pipe closes. Ctrl-C is the node's
    (``WorkerPool.start`` spawns with it ignored or blocked)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            seq, items = _decoder.decode(conn.recv_bytes())
            send_frame(conn, _SEQ.pack(seq) + bytes(crypto.verify(*item) for item in items))
        except (EOFError, OSError):  # the node closed the pipe or is gone
            return


class SignatureChecker:
    """See module docstring. ``verify_many`` is thread-safe; ``close`` stops the helpers (later
    batches are checked on the calling thread)."""

    def __init__(self, processes: int, timeout: float = TIMEOUT, per_signature: float = PER_SIGNATURE) -> None:
        if processes < 1:
            raise ValueError(f"signature helper processes must be >= 1, not {processes}")
        self.processes = processes
        self.timeout = timeout
        self.per_signature = per_signature
        self._lock = threading.Lock()
        self._pool: WorkerPool | None = None
        self._closed = False
        self._seq = 0
        self._failures = 0  # in a row
        self._retry_at = 0.0  # monotonic: no helpers before then
        #: batches checked on the calling thread because a helper failed (metrics, tests)
        self.fallbacks = 0

    def start(self) -> None:
        """Start the helpers now (a node at start-up: spawning takes ~0.1-0.5 s a process, and
        from the main thread the spawn is shielded from Ctrl-C) rather than at the first batch.
        A failure to start is logged; the first batch then tries again."""
        with self._lock:
            if self._closed:
                return
            try:
                self._started()
            except Exception as exc:
                log.warning("signature helpers not started (%s): the first batch tries again", exc)

    def pids(self) -> list[int]:
        with self._lock:
            return [] if self._pool is None else self._pool.pids()

    def verify_many(self, triples: Sequence[Triple]) -> list[bool]:
        """One verdict per (public key, message, signature), as ``crypto.verify``."""
        verdicts = self._on_helpers(triples) if len(triples) >= SMALL_BATCH else None
        if verdicts is None:
            return crypto.verify_many(triples)
        return [v == 1 for v in verdicts]

    def _on_helpers(self, triples: Sequence[Triple]) -> bytes | None:
        with self._lock:
            if self._closed or (self._failures >= MAX_FAILURES and time.monotonic() < self._retry_at):
                return None
            try:
                return self._round_trip(triples)
            except Exception as exc:  # WorkerLost (WorkerStalled, killed by the watchdog), OSError, spawn
                self._failed(exc)
                return None
            except BaseException:
                self._stop()  # an interrupt mid-batch: leave no answer for the next batch to read
                raise

    def _round_trip(self, triples: Sequence[Triple]) -> bytes:
        pool = self._started()
        self._seq += 1
        seq = self._seq
        share = -(-len(triples) // pool.size)
        parts = [list(triples[i : i + share]) for i in range(0, len(triples), share)]
        watchdog = threading.Timer(self.timeout + self.per_signature * len(triples), self._kill, args=(pool,))
        watchdog.daemon = True
        watchdog.start()
        try:
            for index, part in enumerate(parts):
                pool.send(index, _encoder.encode((seq, part)))
            answers = [pool.recv(index) for index in range(len(parts))]
        finally:
            watchdog.cancel()
        for index, (part, answer) in enumerate(zip(parts, answers, strict=True)):
            if len(answer) != _SEQ.size + len(part) or _SEQ.unpack_from(answer)[0] != seq:
                raise WorkerLost(f"helper {index}: an answer that is not this batch's")
        self._failures = 0
        return b"".join(answer[_SEQ.size :] for answer in answers)

    def _failed(self, exc: Exception) -> None:
        self.fallbacks += 1
        self._failures += 1
        self._stop()
        if self._failures >= MAX_FAILURES:
            self._retry_at = time.monotonic() + BACKOFF
            log.warning(
                "signature helpers failed %d times in a row (%s): checking on API threads for %d s",
                self._failures,
                exc,
                BACKOFF,
            )
        else:
            log.warning("signature helper lost (%s): this batch is checked here, the next starts new ones", exc)

    @staticmethod
    def _kill(pool: WorkerPool) -> None:
        """The watchdog: a batch past its deadline. Killing the helpers ends a blocked write or
        read with an error, which ``_on_helpers`` handles as a lost helper."""
        for proc in pool.procs:
            if proc.is_alive():
                proc.kill()

    def close(self) -> None:
        """Stop the helpers; an in-flight batch's helpers are killed first, so it ends (checked
        on its thread) instead of holding the lock until its deadline."""
        self._closed = True
        pool = self._pool
        if pool is not None:
            self._kill(pool)
        with self._lock:
            self._stop()

    def _started(self) -> WorkerPool:
        if self._pool is None:
            pool = WorkerPool(self.processes, target=serve)
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
