"""Render `paraexec bench --json` outputs as the markdown tables of bench/RESULTS.md.

python bench/to_markdown.py bench/out/*.json    (the project's .venv/bin/python: it imports paraexec)

"cores" is what the row's executor may keep busy (the coordinator of `parallel`/`adaptive` executes
too, so `parallel x1` uses 2) and "bound" is taken at that many cores. Files written before rows
carried "cores" took the bound at "workers", so they show "cores" = "workers".
"p25-p50-p75": quartiles and median of the per-repeat (paired) ratios; "speedup" is the ratio of medians.
Below each table, per point: the bound on 4, 8 and 16 cores and on unlimited workers, and the key classes whose edges limit
it most (the bound without each), from the dependency analysis.
"blocks 2+" is the steady state of a pass (blocks 2..K, after block 1's cold start): its speedup
and the share of its own bound ("-" in files written before rows carried it).
"""

from __future__ import annotations

import json
import statistics
import sys

from paraexec.bench.commands import bound_limits_line
from paraexec.bench.harness import quartile_range


def paired_median(r: dict) -> float | None:
    """The median of the per-repeat ratios (files written before rows carried it: from the ratios)."""
    runs = r.get("speedup_runs") or []
    return r.get("speedup_paired_median") or (statistics.median(runs) if runs else None)


def table(path: str) -> str:
    data = json.load(open(path))
    m = data["machine"]
    lines = [
        f"`{' '.join(data['command'])}`",
        "",
        f"machine: {m.get('cpu_model')} x{m.get('cpu_count')}, Python {m.get('python')}, GIL {m.get('gil_enabled')};"
        f" elapsed {data['elapsed_s']:.0f} s; roots and receipts equal sequential's: {data['ok']}",
        "",
        "| point | executor | workers | cores | median s | tx/s | speedup | p25-p50-p75 | bound | of bound | blocks 2+ | CPU s | CPU ceiling | re-exec/tx | par. blocks |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for point in data["points"]:
        label = ", ".join(f"{k}={v}" for k, v in point["params"].items())
        for r in point["results"]:
            cores = r.get("cores", r["workers"])
            if r.get("error"):
                lines.append(
                    f"| {label} | {r['executor']} | {r['workers']} | {cores} | error: {r['error'][:60]} | | | | | | | | | | |"
                )
                continue
            cpu, ceiling, q = r.get("cpu_seconds_median"), r.get("cpu_ceiling"), r.get("speedup_quartiles")
            bound, share = r.get("bound"), r.get("bound_efficiency")  # None: the analysis was unavailable
            bound_cells = "- | -" if bound is None or share is None else f"{bound:.2f} | {share:.0%}"
            steady, steady_share = r.get("steady_speedup"), r.get("steady_bound_efficiency")
            steady_cell = (
                "-" if steady is None else f"{steady:.2f}x" + ("" if steady_share is None else f" {steady_share:.0%}")
            )
            lines.append(
                f"| {label} | {r['executor']} | {r['workers']} | {cores} | {r['seconds_median']:.3f} | {r['tx_per_s']:,.0f} |"
                f" {r['speedup']:.2f}x | {quartile_range(q, paired_median(r))} | {bound_cells} | {steady_cell} |"
                f" {'-' if cpu is None else format(cpu, '.3f')} | {'-' if ceiling is None else format(ceiling, '.2f') + 'x'} |"
                f" {r['re_executions_per_tx']:.3f} | {r.get('parallel_blocks', '-')}/{r.get('blocks_timed', '-')} |"
            )
    limits = [line for line in map(bound_limits_line, data["points"]) if line]
    if limits:  # files written before the analysis carried "unlimited" have none
        lines += ["", *(f"- {line}" for line in limits)]
    return "\n".join(lines)


if __name__ == "__main__":
    if not sys.argv[1:] or {"-h", "--help"} & set(sys.argv[1:]):
        print((__doc__ or "").strip())
        sys.exit(0 if sys.argv[1:] else 2)
    print("\n\n".join(table(p) for p in sys.argv[1:]))
