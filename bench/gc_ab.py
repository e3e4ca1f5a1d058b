"""A/B of the GC pause around each block (``execution/gc_pause.py``): sequential passes with it on and off.

    .venv/bin/python bench/gc_ab.py perps-noverify 12     # or transfers, transfers-noverify, perps, replay; pass pairs

The workload's blocks (the `bench/run_all.sh` parameters, from `bench/probe.py`) run with `sequential` on fresh
LMDB stores, alternately with the pause (as shipped) and without it (``Chain`` given a no-op context), in the
order on/off, off/on, ... so slow drifts of a noisy machine hit both alike. Printed: the median pass seconds and
the median seconds spent in the cyclic collector per pass (``gc.callbacks``). A diagnostic, not a benchmark.
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import sys
import time

from paraexec.bench import harness
from paraexec.chain import chain as chain_module
from paraexec.execution import SequentialExecutor
from paraexec.execution.gc_pause import gc_paused

sys.path.insert(0, "bench")
from probe import setup  # noqa: E402

_gc = {"total": 0.0, "started": 0.0}


def _time_collections(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc["started"] = time.perf_counter()
    else:
        _gc["total"] += time.perf_counter() - _gc["started"]


def main(name: str, pairs: int) -> None:
    config, blocks, bench, seconds = setup(name, 1)
    executor = SequentialExecutor()
    passes: dict[str, list[float]] = {"on": [], "off": []}
    collector: dict[str, list[float]] = {"on": [], "off": []}

    def one_pass() -> float:
        return sum(
            b.seconds for b in harness.timed_run(config, blocks, executor, bench, "ab", None, "ab", seconds).blocks
        )

    one_pass()  # warm-up
    gc.callbacks.append(_time_collections)
    for i in range(pairs):
        for mode in ("on", "off") if i % 2 == 0 else ("off", "on"):
            chain_module.gc_paused = gc_paused if mode == "on" else contextlib.nullcontext  # type: ignore[assignment]
            _gc["total"] = 0.0
            passes[mode].append(one_pass())
            collector[mode].append(_gc["total"])
    chain_module.gc_paused = gc_paused  # type: ignore[assignment]
    for mode in ("on", "off"):
        print(
            f"{name} GC pause {mode:3}: pass {statistics.median(passes[mode]):.3f} s, "
            f"in the collector {1000 * statistics.median(collector[mode]):.0f} ms (medians of {pairs})"
        )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8)
