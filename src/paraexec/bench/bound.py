"""The inherent speedup bound of a block sequence, from the dependency analysis.

``paraexec.execution.dependency.analyze_block`` builds one block's dependency graph from a
sequential run's read and write sets and reports its critical path, so ``speedup_bound(P)`` says
how fast P workers could possibly run that block. A benchmark runs several blocks one after
another, so the bound of the whole run is the time-weighted one:

    bound(P) = sum_b total_cost_b / sum_b (total_cost_b / bound_b(P))

(each block b would take at least ``total_cost_b / bound_b(P)`` cost units on P workers). Hot keys
(the keys that create the most dependency edges) are summed over blocks for the report.

What limits the bound: keys are grouped into classes (``key_class``: ``x/m/*/bk/*`` is every
market's level index), and for the classes behind the most edges of a block the critical path is
recomputed as if their edges did not exist (``DependencyReport.critical_path_without``). The
report shows, per class, the bound that would give, on the analysed core counts and on
unlimited workers (``unlimited``: total cost / critical path, which no worker count beats). It
says which keys an application change (a delta instead of a read-modify-write, one key split
per trader or market) would have to remove for more cores to help, and that more cores cannot
help past the unlimited bound. A class outside a block's top ``LIMIT_CLASSES`` counts no gain
in that block.

The analysis module is written by another part of the project; when it is missing, ``Bounds``
stays empty and the harness reports the bound as unavailable rather than inventing one.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..execution.contract import BlockEnv, Runtime, StateView

Analyzer = Callable[..., Any]


def load_analyzer() -> Analyzer | None:
    """``analyze_block`` from the dependency module, or ``None`` when it does not exist (yet)."""
    try:
        from ..execution import dependency  # type: ignore[attr-defined,unused-ignore]
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.endswith("dependency"):
            return None
        raise
    return getattr(dependency, "analyze_block", None)


_LEAD = re.compile(rb"[a-z_]+(?:/[a-z_]+)*(?:/|$)")  # "x/m/", "b/", "x/insurance" at the start
_SEGMENT = re.compile(rb"/[a-z_]+(?:/[a-z_]+)*(?:/|$)")  # "/px", "/bk/" after binary bytes


def key_label(key: Any, max_hex: int = 6) -> str:
    """A readable label for a state key: its path segments as text, binary parts as ``<hex>``.

    ``b"x/m/\\x00\\x02/px"`` -> ``x/m/<0002>/px``. A segment is lowercase letters ending at a
    ``/`` or at the end of the key, so bytes of a public key that happen to be printable stay
    hex. Long binary parts are cut after ``max_hex`` bytes.
    """
    if not isinstance(key, bytes | bytearray):
        return str(key)
    raw = bytes(key)
    parts: list[str] = []
    binary = bytearray()

    def flush() -> None:
        if binary:
            parts.append(f"<{binary[:max_hex].hex()}{'..' if len(binary) > max_hex else ''}>")
            binary.clear()

    i = 0
    while i < len(raw):
        match = (_LEAD if i == 0 else _SEGMENT).match(raw, i)
        if match and match.end() > i:
            flush()
            parts.append(match.group().decode("ascii"))
            i = match.end()
        else:
            binary.append(raw[i])
            i += 1
    flush()
    return "".join(parts)


_BINARY_PART = re.compile(r"<[0-9a-f]+(?:\.\.)?>")

#: Key classes whose what-if critical path is computed per block (the most edges first).
LIMIT_CLASSES = 8


def key_class(key: Any) -> str:
    """A key's class: its label with every binary part as ``*``, e.g. ``x/m/*/bk/*`` for every
    market's level index of either side, ``n/*`` for every sender's nonce."""
    return _BINARY_PART.sub("*", key_label(key))


def class_limits(report: Any, n: int = LIMIT_CLASSES) -> dict[str, tuple[int, float]]:
    """Per key class: the dependency edges it takes part in, and the block's critical path if
    the edges caused by that class alone did not exist (``critical_path_without``), for the
    ``n`` classes behind the most edges. Empty for a report without that method."""
    what_if = getattr(report, "critical_path_without", None)
    edge_keys = getattr(report, "edge_keys", None)
    if what_if is None or not edge_keys:
        return {}
    classes: dict[Any, str] = {}
    counts: Counter[str] = Counter()
    for keys in edge_keys.values():
        for key in keys:
            if key not in classes:
                classes[key] = key_class(key)
        counts.update({classes[key] for key in keys})
    return {
        cls: (edges, float(what_if(lambda key, cls=cls: classes[key] == cls)))  # type: ignore[misc]
        for cls, edges in counts.most_common(n)
    }


@dataclass
class BlockBound:
    """What one block's dependency report says, reduced to plain numbers."""

    height: int
    txs: int
    total_cost: float
    critical_path: float
    conflict_rate: float
    edges: int
    bounds: dict[int, float]
    #: key class -> (edges it takes part in, critical path without its edges): ``class_limits``
    limits: dict[str, tuple[int, float]] = field(default_factory=dict)


@dataclass
class Bounds:
    """The analysis of every block of a run (empty when no analyzer exists)."""

    available: bool = False
    blocks: list[BlockBound] = field(default_factory=list)
    hot_keys: Counter[str] = field(default_factory=Counter)
    error: str = ""

    def add(self, height: int, txs: int, report: Any, workers: Sequence[int], hot_n: int = 10) -> None:
        edges = report.edges
        n_edges = edges if isinstance(edges, int) else len(edges)
        self.blocks.append(
            BlockBound(
                height=height,
                txs=txs,
                total_cost=float(report.total_cost),
                critical_path=float(
                    report.critical_path if not callable(report.critical_path) else report.critical_path()
                ),
                conflict_rate=float(report.conflict_rate),
                edges=n_edges,
                bounds={w: float(report.speedup_bound(w)) for w in workers},
                limits=class_limits(report),
            )
        )
        for item in report.hot_keys(hot_n):
            key, count = (item[0], item[1]) if isinstance(item, tuple | list) else (item, 1)
            self.hot_keys[key_label(key)] += int(count)
        self.available = True

    def bound(self, workers: int, skip: int = 0) -> float | None:
        """The time-weighted bound of the whole run on ``workers`` workers (see module doc), or of
        its blocks after the first ``skip``."""
        total = lower = 0.0
        for block in self.blocks[skip:]:
            b = block.bounds.get(workers)
            if not b or block.total_cost <= 0:
                continue
            total += block.total_cost
            lower += block.total_cost / b
        if not self.available or lower <= 0:
            return None
        return total / lower

    def unlimited(self) -> float | None:
        """The time-weighted bound on unlimited workers: total cost / critical path, summed
        over blocks. No worker count beats it: the depth of the blocks' dependency graphs."""
        if not self.available:
            return None
        return self._bound_with([b.critical_path for b in self.blocks], None)

    def _bound_with(self, paths: Sequence[float], workers: int | None) -> float | None:
        """The time-weighted bound if the blocks' critical paths were ``paths``: on ``workers``
        workers (each block at least max(cost / workers, path)), or unlimited (``None``)."""
        total = sum(b.total_cost for b in self.blocks)
        lower = sum(
            cp if workers is None else max(b.total_cost / workers, cp) for b, cp in zip(self.blocks, paths, strict=True)
        )
        return total / lower if lower > 0 else None

    def limits(self, workers: Sequence[int]) -> list[dict[str, Any]]:
        """What limits the bound: per key class, its edges and the bound (on each of ``workers``
        and on unlimited workers) if the edges caused by that class alone did not exist. Sorted
        by the unlimited bound that removing the class would give, largest first."""
        classes = {cls for b in self.blocks for cls in b.limits}
        rows: list[tuple[float, int, str, dict[str, float | None]]] = []  # sort key first
        for cls in classes:
            paths = [b.limits[cls][1] if cls in b.limits else b.critical_path for b in self.blocks]
            without = {str(w): self._bound_with(paths, w) for w in workers}
            without["unlimited"] = self._bound_with(paths, None)
            edges = sum(b.limits[cls][0] for b in self.blocks if cls in b.limits)
            rows.append((-(without["unlimited"] or 0.0), -edges, cls, without))
        return [
            {"keys": cls, "edges": -neg_edges, "bound_without": without} for _, neg_edges, cls, without in sorted(rows)
        ]

    def to_json(self, workers: Sequence[int], hot_n: int = 10) -> dict[str, Any]:
        if not self.available:
            return {"available": False, "error": self.error}
        total = sum(b.total_cost for b in self.blocks)
        return {
            "available": True,
            "bound": {str(w): self.bound(w) for w in workers},
            "total_cost": total,
            "critical_path": sum(b.critical_path for b in self.blocks),
            "conflict_rate": sum(b.conflict_rate for b in self.blocks) / max(1, len(self.blocks)),
            "edges": sum(b.edges for b in self.blocks),
            "hot_keys": [[k, c] for k, c in self.hot_keys.most_common(hot_n)],
            "unlimited": self.unlimited(),
            "limits": self.limits(workers),
            "blocks": [
                {
                    "height": b.height,
                    "txs": b.txs,
                    "total_cost": b.total_cost,
                    "critical_path": b.critical_path,
                    "conflict_rate": b.conflict_rate,
                    "edges": b.edges,
                    "bound": {str(w): v for w, v in b.bounds.items()},
                }
                for b in self.blocks
            ],
        }


def analyze(
    analyzer: Analyzer,
    bounds: Bounds,
    runtime: Runtime,
    txs: list[bytes],
    state: StateView,
    env: BlockEnv,
    workers: Sequence[int],
) -> None:
    """Run the analysis of one block (its pre-state is ``state``) and add it to ``bounds``."""
    report = analyzer(runtime, txs, state, env)
    bounds.add(env.height, len(txs), report, workers)
