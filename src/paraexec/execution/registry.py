"""Executors by name, for the CLI, the node and the benchmarks."""

from __future__ import annotations

from collections.abc import Callable

from .contract import Executor, StateView


def _sequential(workers: int) -> Executor:
    from .sequential import SequentialExecutor

    return SequentialExecutor(workers)


EXECUTORS: dict[str, Callable[[int], Executor]] = {"sequential": _sequential}

#: The most workers the command line builds an executor with: ``parallel`` starts one process
#: per worker (a fresh interpreter, ~0.2 s of CPU each), so a mistyped count would spend
#: minutes starting processes; no machine we measure comes near it.
MAX_WORKERS = 256


def register(name: str, factory: Callable[[int], Executor]) -> None:
    EXECUTORS[name] = factory


def make_executor(name: str, workers: int = 1) -> Executor:
    _load_optional()
    try:
        factory = EXECUTORS[name]
    except KeyError:
        raise ValueError(f"unknown executor {name!r}; known: {sorted(EXECUTORS)}") from None
    return factory(workers)


def executor_names() -> list[str]:
    _load_optional()
    return sorted(EXECUTORS)


def _load_optional() -> None:
    """Import the executor modules that register themselves (they may not all exist yet)."""
    import importlib

    for module in ("blockstm", "parallel", "access_list", "adaptive"):
        try:
            importlib.import_module(f"{__package__}.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{module}":
                raise


def start_executor(executor: Executor, state: StateView) -> None:
    """Start an executor's worker processes before its first block (``parallel``, ``adaptive``:
    their ``start``), so that block's time and latency do not include their spawning."""
    start = getattr(executor, "start", None)
    if start is not None:
        start(state)
