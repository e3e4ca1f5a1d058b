"""Where a `parallel` pass's time goes: sequential and parallel passes interleaved in one process.

    .venv/bin/python bench/probe.py transfers 6      # or transfers-noverify, perps, replay; the number of pass pairs
    PYTHONPATH=/tmp/old/src .venv/bin/python bench/probe.py perps 8   # the same for another source tree

Each pair runs the workload's blocks once with `sequential` and once with `parallel` x2 (the same
blocks and fresh LMDB stores as `paraexec bench`), so slow drifts of a noisy machine hit both alike.
Printed per workload: the median of the per-pair speedups (and each of them), the median parallel
pass, the seconds the coordinator spent blocked in `WorkerPool.recv` (waiting for verdicts, the
root's hash or a round), how many transactions the coordinator prepared with the full signature
check (`ChainRuntime.prepare`) and with a worker's verdict (`prepare_checked`; the two add up to the
pass's transactions when no signature is checked twice), and the CPU seconds of the coordinator and of each worker process. It
is a diagnostic, not a benchmark: `paraexec bench` is where speedups are reported.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any

from paraexec.bench import harness
from paraexec.bench.machine import process_cpu
from paraexec.chain import ChainConfig
from paraexec.execution import SequentialExecutor
from paraexec.execution import runtime as runtime_module
from paraexec.execution.parallel import ParallelExecutor, transport
from paraexec.workloads import make_workload

#: The `bench/run_all.sh` parameters of each workload: (workload options, block size, blocks).
WORKLOADS: dict[str, tuple[dict[str, Any], int, int]] = {
    "transfers": ({"accounts": 10000}, 10000, 4),
    "transfers-noverify": ({"accounts": 10000}, 10000, 4),  # signatures taken as checked at admission
    "perps": ({"accounts": 1000, "markets": 8, "shock_at": 2}, 3000, 3),
    "replay": ({"accounts": 200}, 3000, 3),
}


class Counters:
    """What the patched methods count while a parallel pass runs (``on``)."""

    on = False
    blocked = 0.0
    full_prepares = 0
    checked_prepares = 0

    @classmethod
    def install(cls) -> None:
        recv = transport.WorkerPool.recv

        def timed_recv(self: Any, index: int) -> bytes:
            started = time.perf_counter()
            try:
                return recv(self, index)
            finally:
                if cls.on:
                    cls.blocked += time.perf_counter() - started

        transport.WorkerPool.recv = timed_recv  # type: ignore[method-assign]
        cls.count_calls("prepare", "full_prepares")
        cls.count_calls("prepare_checked", "checked_prepares")

    @classmethod
    def count_calls(cls, method: str, counter: str) -> None:
        """Count the calls of ``ChainRuntime.<method>`` in ``<counter>`` while ``on``."""
        original = getattr(runtime_module.ChainRuntime, method)

        def counted(self: Any, raw: bytes) -> Any:
            if cls.on:
                setattr(cls, counter, getattr(cls, counter) + 1)
            return original(self, raw)

        setattr(runtime_module.ChainRuntime, method, counted)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux ``/proc``; 0 elsewhere)."""
    return process_cpu(pid) or 0.0


def setup(name: str, workers: int) -> tuple[ChainConfig, list[list[bytes]], harness.BenchConfig, int]:
    """The chain config, signed blocks, bench config and block spacing of ``name`` (a ``WORKLOADS``
    key, ``-noverify`` taking signatures as checked), as `bench/run_all.sh` runs it."""
    options, size, n_blocks = WORKLOADS[name.removesuffix("-noverify")]
    workload = make_workload(name.removesuffix("-noverify"), seed=0, **options)
    config = ChainConfig(workload.chain_id, workload.app_name, workload.genesis_config())
    blocks = harness.generate_blocks(workload, n_blocks, size)
    bench = harness.BenchConfig(
        workload=name,
        points=[options],
        block_size=size,
        blocks=n_blocks,
        executors=["sequential"],
        workers=[workers],
        repeat=1,
        verify_signatures=not name.endswith("-noverify"),
    )
    return config, blocks, bench, int(getattr(workload, "block_seconds", 1))


def main(name: str, pairs: int) -> None:
    config, blocks, bench, seconds = setup(name, 2)
    Counters.install()
    sequential, parallel = SequentialExecutor(), ParallelExecutor(2)

    def run(executor: Any, run_blocks: list[list[bytes]]) -> float:
        result = harness.timed_run(config, run_blocks, executor, bench, "probe", None, "probe", seconds)
        return sum(b.seconds for b in result.blocks)

    run(parallel, blocks[:1])  # boots the workers
    ratios, passes, blocked, full, checked, cpus = [], [], [], [], [], []
    try:
        for _ in range(pairs):
            reference = run(sequential, blocks)
            pids = [os.getpid(), *parallel.worker_pids()]
            before = [cpu_seconds(pid) for pid in pids]
            Counters.on, Counters.blocked, Counters.full_prepares, Counters.checked_prepares = True, 0.0, 0, 0
            took = run(parallel, blocks)
            Counters.on = False
            cpus.append([cpu_seconds(pid) - b for pid, b in zip(pids, before, strict=True)])
            ratios.append(reference / took)
            passes.append(took)
            blocked.append(Counters.blocked)
            full.append(Counters.full_prepares)
            checked.append(Counters.checked_prepares)
    finally:
        parallel.close()
    cpu = [round(statistics.median(c[i] for c in cpus), 3) for i in range(len(cpus[0]))]
    print(
        f"{name}: speedup median {statistics.median(ratios):.2f}x (pairs {' '.join(f'{r:.2f}' for r in ratios)}); "
        f"parallel pass {statistics.median(passes):.3f} s, coordinator blocked {statistics.median(blocked):.3f} s, "
        f"prepares full / with a verdict {statistics.median(full):.0f} / {statistics.median(checked):.0f}, "
        f"CPU s coordinator/workers {cpu}"
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 6)
