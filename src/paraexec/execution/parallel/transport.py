"""Worker processes behind a small interface: start, send bytes, receive bytes, replace.

Local processes today (``spawn`` start method: a fresh interpreter per worker, so no LMDB
environment or lock is inherited across ``fork``); the algorithm only sees ``send`` / ``recv``
of byte strings and ``WorkerLost``, so threads (free-threaded CPython) or remote actors can
replace this module without touching it.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection, wait

#: Socket buffer size asked for on each end of a worker's pipe (the kernel caps it at its
#: ``wmem_max`` / ``rmem_max``). A block's write set and receipts are ~1 MB; with the default
#: ~200 KB the reader and writer must take turns a handful of times per message, and on a busy
#: machine every turn waits for a scheduler slot.
SOCKET_BUFFER = 4 << 20


def widen(conn: Connection) -> None:
    """Best effort: enlarge the send and receive buffers of a ``Pipe(duplex=True)`` end."""
    try:
        sock = socket.socket(fileno=conn.fileno())
    except OSError:
        return
    try:
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
            except OSError:
                pass
    finally:
        sock.detach()  # the fd stays owned by ``conn``


_HEADER = struct.Struct("!i")


def send_frame(conn: Connection, data: bytes) -> None:
    """``conn.send_bytes(data)`` in one write: header and payload together.

    ``Connection.send_bytes`` writes the 4-byte length header and a payload over 16 KB in two
    calls; the reader wakes on the header and then blocks for the payload while, on a machine
    with fewer cores than processes, the writer may wait a whole scheduler tick (4-8 ms
    measured) to write it. One write of the same frame avoids that (the reader is unchanged:
    ``recv_bytes`` parses the standard ``multiprocessing`` framing).
    """
    write = getattr(conn, "_send", None)
    if write is None or len(data) >= 0x7FFFFFFF:
        conn.send_bytes(data)
    else:
        write(_HEADER.pack(len(data)) + data)


class WorkerLost(Exception):
    """A worker process died or its pipe broke; the block must be re-run on fresh workers."""


class WorkerStalled(WorkerLost):
    """No awaited worker answered within the pool's ``stall_timeout``: most likely a speculative
    incarnation that never ends (see ``executor.STALL_TIMEOUT``). Handled like a lost worker
    (the pool is replaced) by every caller that only needs fresh workers."""


class WorkerPool:
    """``size`` long-lived worker processes, each with a duplex pipe to the coordinator.

    Every wait for a reply is bounded by ``stall_timeout`` seconds (``None``: unbounded): past
    it, ``ready`` and ``recv`` raise ``WorkerStalled``. ``target`` is the processes' entry point,
    called with the worker's end of the pipe (``None``: the parallel executor's ``worker.main``)."""

    def __init__(
        self, size: int, stall_timeout: float | None = None, target: Callable[[Connection], None] | None = None
    ) -> None:
        self.size = size
        self.stall_timeout = stall_timeout
        self.target = target
        self.procs: list[mp.process.BaseProcess] = []
        self.conns: list[Connection] = []

    @property
    def started(self) -> bool:
        return bool(self.procs)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def start(self) -> None:
        """Start the workers with SIGINT ignored in them. Ctrl-C reaches a terminal's whole
        process group, and stopping the workers is the coordinator's job (``stop``, or the EOF
        its exit leaves on their pipes); a worker interrupted while it starts or mid-message
        would only print a ``KeyboardInterrupt`` traceback. An ignored signal stays ignored
        across the spawn's exec (a handler would not), and Python leaves an ignored SIGINT
        alone at start-up, so this covers the new interpreter's imports too; ``worker.main``
        ignores it again for pools started otherwise (``_sigint_ignored_for_children``)."""
        from . import worker  # here: ``worker`` imports this module

        target = worker.main if self.target is None else self.target
        ctx = mp.get_context("spawn")
        with _sigint_ignored_for_children():
            for index in range(self.size):
                parent, child = ctx.Pipe(duplex=True)
                widen(parent)
                proc = ctx.Process(target=target, args=(child,), name=f"paraexec-worker-{index}", daemon=True)
                proc.start()
                child.close()  # only the worker holds its end: a dead worker reads as EOF here
                self.procs.append(proc)
                self.conns.append(parent)

    def send(self, index: int, data: bytes) -> None:
        try:
            send_frame(self.conns[index], data)
        except OSError as exc:
            raise WorkerLost(f"worker {index}: {exc!r}") from exc

    def ready(self, indices: list[int]) -> list[int]:
        """Indices among ``indices`` whose pipe has a message (or EOF); blocks until one does,
        at most ``stall_timeout`` seconds."""
        by_conn = {id(self.conns[i]): i for i in indices}
        found = wait([self.conns[i] for i in indices], self.stall_timeout)  # type: ignore[list-item]
        if not found:
            raise WorkerStalled(f"workers {indices}: no reply within {self.stall_timeout} s")
        return [by_conn[id(c)] for c in found]

    def has_reply(self, index: int) -> bool:
        """Whether worker ``index``'s pipe holds a message (or EOF: ``recv`` then raises), now."""
        try:
            return self.conns[index].poll(0)
        except (EOFError, OSError):
            return True

    def recv(self, index: int) -> bytes:
        conn = self.conns[index]
        try:
            if self.stall_timeout is not None and not conn.poll(self.stall_timeout):
                raise WorkerStalled(f"worker {index}: no reply within {self.stall_timeout} s")
            return conn.recv_bytes()
        except (EOFError, OSError) as exc:
            raise WorkerLost(f"worker {index}: {exc!r}") from exc

    def stop(self, graceful: bytes | None = None, timeout: float = 2.0) -> None:
        """Stop every worker (``graceful`` is sent first, when given), then forget them."""
        for index, conn in enumerate(self.conns):
            if graceful is not None and self.procs[index].is_alive():
                try:
                    conn.send_bytes(graceful)
                except OSError:
                    pass
        for proc in self.procs:
            proc.join(timeout if graceful is not None else 0.0)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout)
        for conn in self.conns:
            conn.close()
        self.procs.clear()
        self.conns.clear()


@contextmanager
def _sigint_ignored_for_children() -> Iterator[None]:
    """SIGINT ignored, so inherited as ignored by processes spawned meanwhile, and blocked in
    this thread, so a Ctrl-C meanwhile is held for the coordinator (Linux keeps a blocked
    signal pending even while it is ignored); both restored after. Blocking is per thread and
    ignoring per process: where other threads are alive, a Ctrl-C that the kernel hands to one
    of them during the few milliseconds of the spawn is dropped (pressed again, it stops the
    run). The alternative, leaving SIGINT alone then, let a Ctrl-C in a worker's first fraction
    of a second (its imports, before ``worker.main``) print a traceback, a far wider window at
    every pool start. Off the main thread (a node's producer or API thread replacing workers),
    where handlers cannot change, SIGINT is only blocked in this thread: a child spawned then
    inherits the blocked mask across its exec, so a Ctrl-C during its imports stays pending in
    it instead of killing it with a traceback, and the kernel hands the process's Ctrl-C to a
    thread that does not block it (the main thread, whose handler stops the program)."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    if threading.current_thread() is not threading.main_thread():
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        return
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if handler is None else handler)  # None: not set from Python
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
