"""Pause CPython's cyclic garbage collector while a block runs, for every executor alike.

A block allocates many small containers (decoded records, read and write sets, receipts) and
keeps most of them alive until its commit; each collection during the block rescans them. On a
sequential perps pass (3 blocks of 3,000 transactions, no signature checks) the collector took
~48 ms of ~0.5 s (``gc.callbacks``: ~130 young, a dozen middle and two full collections), ~20 ms
with the pause (``bench/gc_ab.py``); on a 10,000-transfer Block-STM block it was ~25%. A block
makes little cyclic garbage (the tracebacks of speculative exceptions), which waits until the
block ends and collection resumes.

``Chain.produce_block`` and ``Chain.replay`` hold the pause around execution and commit, so
``sequential``, the in-process plans and every other executor get the same treatment and the
benchmarks compare like with like (the ``parallel`` workers pause their own collector per
block). The pause is global to the process, hence the counter: nested or concurrent blocks
resume collection only when the last one ends, and only if it was enabled before.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Collection off while the block runs (re-entrant across threads; see the module doc)."""
    global _gc_pausers, _gc_was_enabled
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_was_enabled:
                gc.enable()
