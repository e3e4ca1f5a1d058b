"""Prometheus text exposition (format 0.0.4) of the node's counters and gauges.

Rates (tx/s) are computed over the blocks of the last ``RATE_WINDOW_S`` seconds of block time,
so they describe the chain, not the scrape interval. ``executor_speedup`` is the last block's
sum of worker busy time over its execution wall time (1.0 for the sequential executor).
"""

from __future__ import annotations

import time

from ..chain.node import Node

RATE_WINDOW_S = 10


def tx_rate(node: Node, window_s: int = RATE_WINDOW_S) -> float:
    """User transactions committed per second over the last ``window_s`` seconds of wall clock
    (as ``txs_committed_total``: the exchange's per-block market ticks are not counted), by
    each block's commit time (its header time is whole seconds of chain time, which need not
    follow the wall clock)."""
    cutoff = time.time() - window_s
    txs = sum(
        info.user_txs for info in list(node.recent) if info.produced_at is not None and info.produced_at >= cutoff
    )
    return txs / window_s


def render(node: Node, hub_published: int = 0) -> str:
    # the newest block this process produced: blocks read back at start-up carry no statistics
    last = next((info for info in reversed(node.recent) if info.measured), None)
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP paraexec_{name} {help_}")
        lines.append(f"# TYPE paraexec_{name} {kind}")
        for labels, value in samples:
            lines.append(f"paraexec_{name}{labels} {value}")

    metric("height", "gauge", "Height of the last committed block.", [("", node.reader.height)])
    metric("blocks_produced_total", "counter", "Blocks produced by this process.", [("", node.blocks_produced)])
    metric("txs_committed_total", "counter", "User transactions committed by this process.", [("", node.txs_committed)])
    metric(
        "tx_per_second",
        "gauge",
        f"User transactions committed per second over the last {RATE_WINDOW_S}s.",
        [("", round(tx_rate(node), 3))],
    )
    metric(
        "executor_speedup",
        "gauge",
        "Last block's parallelism: worker busy time / execution wall time (1: one core; not a speedup).",
        [("", round(last.speedup or 0, 4) if last else 0)],
    )
    metric(
        "block_exec_seconds",
        "gauge",
        "Last block's execution time.",
        [("", round(last.seconds or 0, 6) if last else 0)],
    )
    metric(
        "re_executions_total",
        "counter",
        "Transaction re-executions by the parallel executor.",
        [("", node.re_executions_total)],
    )
    metric("mempool_txs", "gauge", "Transactions in the mempool.", [("", len(node.mempool))])
    metric("mempool_bytes", "gauge", "Bytes in the mempool.", [("", node.mempool.size_bytes)])
    metric(
        "mempool_admitted_total",
        "counter",
        "Transactions admitted to the mempool.",
        [("", node.mempool.admitted_total)],
    )
    metric("mempool_expired_total", "counter", "Mempool entries expired.", [("", node.mempool.expired_total)])
    metric(
        "mempool_evicted_total",
        "counter",
        "Held-back mempool entries evicted for ready ones.",
        [("", node.mempool.evicted_total)],
    )
    metric(
        "mempool_rejected_total",
        "counter",
        "Admissions refused, by reason.",
        [(f'{{reason="{name}"}}', n) for name, n in sorted(node.mempool.rejections.items())]
        or [('{reason="none"}', 0)],
    )
    metric(
        "signature_fallbacks_total",
        "counter",
        "Admission batches checked on the API thread because a signature helper process failed.",
        [("", 0 if node.signatures is None else node.signatures.fallbacks)],
    )
    metric("ws_messages_total", "counter", "WebSocket notifications published.", [("", hub_published)])
    return "\n".join(lines) + "\n"
