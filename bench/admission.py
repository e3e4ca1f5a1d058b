"""Mempool admission beside a busy block producer: signatures on threads vs helper processes.

    .venv/bin/python bench/admission.py [ROUNDS]

A node admits transactions on its API threads while its producer thread executes blocks. The
admission of ``BATCH`` perps transactions (the `bench/run_all.sh` perps workload's, signed;
decode, payload check, signatures, the pool's stateful checks) is timed three ways per round,
each with a fresh ``Mempool``: on two threads (``crypto.verify_many``, ``paraexec node
--verify-processes 0``) with the process otherwise idle; on two threads while another thread
executes the perps blocks with ``sequential`` back to back (a producer under load, in-memory
store, signatures already checked as a node's are); and with a ``SignatureChecker`` of one
helper process (``--verify-processes 1``, the node's default) beside the same producer. Printed:
the median seconds of each and the admitted transactions per second. A diagnostic of the
mechanism, not a node benchmark: ``paraexec load`` against a node measures that.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time

from paraexec.bench.harness import BenchConfig, ChainConfig, generate_blocks, make_workload, timed_run
from paraexec.chain.mempool import Mempool, MempoolConfig
from paraexec.chain.verifier import SignatureChecker
from paraexec.execution.registry import make_executor

BATCH = 2000


class Producer:
    """A thread executing the perps blocks with ``sequential``, over and over, until stopped."""

    def __init__(self, config: ChainConfig, blocks: list[list[bytes]]) -> None:
        self.config, self.blocks = config, blocks
        self.stop = threading.Event()
        self.passes = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        executor = make_executor("sequential", 1)
        bench = BenchConfig(workload="perps", store="memory", verify_signatures=False)
        while not self.stop.is_set():
            timed_run(self.config, self.blocks, executor, bench, "admission", None, "admission")
            self.passes += 1

    def __enter__(self) -> Producer:
        self.thread.start()
        time.sleep(0.5)  # into its first pass: the genesis is behind it
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def admit(config: ChainConfig, txs: list[bytes], checker: SignatureChecker | None) -> float:
    runtime = config.runtime_spec(verify_signatures=False).build()
    pool = Mempool(
        config.chain_id,
        lambda sender: 0,
        MempoolConfig(max_txs=10 * BATCH, max_per_sender=BATCH, max_nonce_ahead=BATCH),
        decode_payload=runtime.decode_payload,
        checker=None if checker is None else checker.verify_many,
    )
    started = time.perf_counter()
    results = pool.admit_many(txs)
    seconds = time.perf_counter() - started
    refused = [r.error for r in results if r.error is not None]
    if refused:
        raise SystemExit(f"{len(refused)} transactions refused, e.g. {refused[0]!r}")
    return seconds


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    workload = make_workload("perps", seed=0, accounts=1000, markets=8, shock_at=2)
    config = ChainConfig(workload.chain_id, workload.app_name, workload.genesis_config())
    blocks = generate_blocks(workload, 3, 3000)
    txs = [tx for block in blocks for tx in block][:BATCH]
    checker = SignatureChecker(1)
    checker.start()
    times: dict[str, list[float]] = {
        "threads, idle process": [],
        "threads, beside producer": [],
        "helper process, beside producer": [],
    }
    try:
        for _ in range(rounds):
            times["threads, idle process"].append(admit(config, txs, None))
            with Producer(config, blocks):
                times["threads, beside producer"].append(admit(config, txs, None))
                times["helper process, beside producer"].append(admit(config, txs, checker))
    finally:
        checker.close()
    print(f"admission of {len(txs)} signed perps transactions, median of {rounds} rounds")
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"  {name:34} {median:7.3f} s  {len(txs) / median:8,.0f} tx/s  (all: {', '.join(f'{v:.3f}' for v in values)})"
        )


if __name__ == "__main__":
    main()
