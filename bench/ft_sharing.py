"""Why ``blockstm`` does not scale on free-threaded CPython: writes to shared containers.

Two threads each do the same loop of dict and list writes, either on containers of their own
or on one pair both threads write (each thread its own keys and list slots: nothing is logically
shared), against one thread doing one loop. On a free-threaded build (3.14t, the 2-vCPU box,
twenty-seventh session, ten runs) their own containers gave 1.20-1.88x the throughput of one thread
(the box's two vCPUs vary) and shared ones 0.82-1.15x, in every run below their own: every write to a
shared dict or list takes the object's lock and moves its cache lines and reference counts between
cores. Block-STM's multi-version memory and scheduler lists are such
containers, written by every thread for every transaction.

    python3.14t bench/ft_sharing.py
"""

from __future__ import annotations

import sys
import threading
import time

N = 1_000_000


class Box:
    def __init__(self) -> None:
        self.d: dict[int, int] = {}
        self.values = [0] * 2048


def work(box: Box, thread: int) -> None:
    """Thread ``thread`` writes its own dict keys and list slots: on shared containers the two
    threads touch the same objects, never the same entries."""
    d, values, base = box.d, box.values, thread * 1024
    for i in range(N):
        k = base + (i & 1023)
        d[k] = i
        values[k] = d.get(k, 0)


def run(threads: int, shared: bool) -> float:
    boxes = [Box()] * threads if shared else [Box() for _ in range(threads)]
    workers = [threading.Thread(target=work, args=(boxes[j], j)) for j in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - started


def main() -> None:
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    print(f"Python {sys.version.split()[0]}, GIL {'on' if gil else 'off'}")
    for shared in (False, True):
        one = min(run(1, shared) for _ in range(5))
        two = min(run(2, shared) for _ in range(5))
        kind = "one pair both threads write" if shared else "each thread its own"
        print(f"{kind}: 1 thread {one:.3f} s, 2 threads (twice the work) {two:.3f} s: throughput x{2 * one / two:.2f}")


if __name__ == "__main__":
    main()
