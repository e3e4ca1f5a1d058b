"""How much work does a CPU second buy on this machine, alone and with a second busy process?

Two readings, per round: one process alone, then two at once, each doing the same ed25519
checks and Python arithmetic. On a quiet machine with two real cores, the lone CPU seconds
repeat within a few percent and the pair's "tax" (their average CPU seconds over the lone one) is
1.00x. On a VM whose vCPUs share a physical core or a busy host, the lone readings wander (the
same work costs more CPU seconds at times) and the tax rises above 1: no parallel plan can beat
``2 / tax`` of sequential then, however little it wastes (``paraexec bench``'s "CPU ceiling" column
shows the effect from inside a run, its ``sequential-aa`` row the wandering). Usage:
``.venv/bin/python bench/cpu_tax.py [ROUNDS]``.
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
import sys
import time

from nacl.signing import SigningKey

CHECKS = 20_000


def work(queue: mp.Queue) -> None:
    key = SigningKey(bytes(32))
    signed = key.sign(b"x" * 100)
    verify = key.verify_key.verify
    started = time.process_time()
    for _ in range(CHECKS):
        verify(signed)
    total = 0
    for i in range(CHECKS * 200):
        total += i * i % 7
    queue.put(time.process_time() - started)


def cpu_seconds(processes: int) -> list[float]:
    queue: mp.Queue = mp.Queue()
    running = [mp.Process(target=work, args=(queue,)) for _ in range(processes)]
    for p in running:
        p.start()
    seconds = [queue.get() for _ in running]
    for p in running:
        p.join()
    return seconds


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    taxes, alones = [], []
    for r in range(rounds):
        alone = cpu_seconds(1)[0]
        alones.append(alone)
        pair = cpu_seconds(2)
        taxes.append(statistics.mean(pair) / alone)
        print(
            f"round {r + 1}: alone {alone:.3f} CPU s, two at once {pair[0]:.3f} / {pair[1]:.3f} -> tax {taxes[-1]:.2f}x"
        )
    print(f"median tax {statistics.median(taxes):.2f}x (range {min(taxes):.2f}-{max(taxes):.2f}x)")
    print(f"lone CPU seconds: {min(alones):.3f}-{max(alones):.3f} (the same work each round)")


if __name__ == "__main__":
    main()
