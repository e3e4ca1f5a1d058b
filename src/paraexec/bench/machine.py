"""What a benchmark ran on: numbers without their machine are not comparable.

Recorded in every JSON result: platform, CPU model, logical cores (and how many this process
may use), memory, Python version and build (whether the GIL is enabled on free-threaded
builds).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else whatever ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def machine_info() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    gil = getattr(sys, "_is_gil_enabled", None)
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "node": platform.node(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "memory_bytes": memory_bytes(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "gil_enabled": True if gil is None else bool(gil()),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _proc_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user + system CPU seconds) of a live process, from /proc (Linux)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds used so far by one live process (``None`` where /proc is not
    available or the process is gone)."""
    stat = _proc_stat(pid)
    return None if stat is None else stat[1]


def process_tree_cpu() -> float | None:
    """CPU seconds (user + system) used so far by this process, its threads and its live
    descendants (an executor's worker processes), or ``None`` where /proc is not available.

    The difference of two readings is the CPU a benchmark pass used on every core. A worker
    that exited between them takes its CPU with it (a replaced worker's is not counted).
    """
    me = os.getpid()
    if _proc_stat(me) is None:
        return None  # not Linux
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None:
                children.setdefault(stat[0], []).append(int(entry))
                cpu[int(entry)] = stat[1]
    total, todo = time.process_time(), list(children.get(me, []))  # this process: finer than /proc's ticks
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo.extend(children.get(pid, []))
    return total
