"""The HTML report of a benchmark result: one self-contained file, plots embedded as PNG.

Sections, each drawn from the harness JSON (``harness.run_bench``) and nothing else, so a report
can be re-rendered from a saved JSON file (``render_report(json.load(...))``):

- the machine and the exact command (numbers without their machine mean nothing);
- the results table: workers and the cores they keep busy (``harness.cores_used``: a
  ``parallel`` or ``adaptive`` coordinator executes too), median seconds, tx/s, speedup vs
  sequential, inherent bound on those cores, share of the bound reached, re-executions, rounds,
  root check (rows of JSON files older than ``cores`` show their ``workers``, at which their
  bound was taken); with one sweep point its parameters are named once above the tables, which
  then leave out the point column;
- what each executor said about its blocks, its notes grouped where they differ only in numbers;
- speedup by the cores each row kept busy against the inherent bound on that many cores (one
  panel per sweep point; each point labelled with its worker count; both axes in powers of two
  once the bound reaches 8 cores, so a 2-core machine's points are not squeezed into a corner);
- speedup vs contention (accounts, hot ratio or markets) when the sweep has several points;
- re-executions per transaction;
- a per-worker timeline (Gantt) of one block: from ``ExecStats.timeline`` spans
  ``(worker, start, end, label)`` when the executor records them (``parallel`` does: setup,
  prepare, execute, validate, hash, finish per worker, and the coordinator's setup and merge;
  gaps are waiting), else from ``ExecStats.worker_busy`` (busy time per worker, drawn from 0,
  next to the block's wall time);
- the hottest conflict keys from the dependency analysis.

Plots use matplotlib's Agg backend (no display needed). A few lines of inline script only mark
the page ready once every image decoded, which the headless-browser test checks.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .harness import RESULT_COLUMNS, parallel_share, quartile_range, steady_cell  # noqa: E402

REFERENCE = "sequential"


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(fig: Figure, alt: str) -> str:
    src = f"data:image/png;base64,{_png(fig)}"
    caption = html.escape(alt)
    return f'<figure><img alt="{caption}" src="{src}"><figcaption>{caption}</figcaption></figure>'


def _ok(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in results if not r.get("error")]


def _label(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "default"


def _executors(results: list[dict[str, Any]]) -> list[str]:
    seen: list[str] = []
    for r in results:
        if r["executor"] not in seen:
            seen.append(r["executor"])
    return seen


def _cores(row: dict[str, Any]) -> int:
    """The cores a row kept busy (``harness.cores_used``; its workers in JSON older than that)."""
    return int(row.get("cores", row["workers"]))


def speedup_vs_workers(point: dict[str, Any]) -> Figure:
    """Achieved speedup per executor against the inherent bound and ideal linear scaling, by
    the cores each row kept busy: ``parallel`` with one worker runs on two (its coordinator
    executes too), so it is drawn at 2, beside the bound for two cores, not the one-core bound."""
    results = _ok(point["results"])
    bound = point.get("analysis", {}).get("bound") or {}
    cores = sorted({_cores(r) for r in results} | {1} | {int(w) for w in bound})
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in _executors(results):
        rows = sorted((r for r in results if r["executor"] == name), key=lambda r: (_cores(r), r["workers"]))
        rows = [r for r in rows if r.get("speedup") is not None]
        xs, ys = [_cores(r) for r in rows], [r["speedup"] for r in rows]
        if name == REFERENCE:
            ax.axhline(ys[0] if ys else 1.0, color="grey", linewidth=1, label="sequential")
        elif xs:
            # worker counts capped at the machine's cores share an x: points, not a zigzag line
            style = "-" if len(set(xs)) == len(xs) else "none"
            bars = ax.errorbar(xs, ys, yerr=_quartile_spread(rows), marker="o", capsize=3, linestyle=style, label=name)
            for r, x, y in zip(rows, xs, ys, strict=True):
                ax.annotate(
                    f"x{r['workers']}",
                    (x, y),
                    textcoords="offset points",
                    xytext=(5, 3),
                    fontsize=7,
                    color=bars[0].get_color(),
                )
    bxs = [c for c in cores if bound.get(str(c)) is not None]
    if bxs:
        ax.plot(bxs, [bound[str(c)] for c in bxs], "k--", marker="x", label="inherent bound")
    ax.plot(cores, cores, ":", color="lightgrey", label="linear")
    ax.set_xlabel("cores kept busy (xN: workers; parallel, adaptive: workers + 1)")
    ax.set_ylabel("speedup vs sequential")
    if max(cores) >= 8:  # the bound on 4-16 cores beside a 2-core machine's points: 1, 2, 4... evenly apart
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:g}"))
    ax.set_xticks(cores, [str(c) for c in cores])
    ax.set_title(f"speedup vs cores ({_label(point['params'])})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _quartile_spread(rows: list[dict[str, Any]]) -> list[list[float]]:
    """Error bars from each row's speedup to its paired quartiles (0 where there are none)."""
    below, above = [], []
    for r in rows:
        if r.get("speedup") is None:
            continue
        q = r.get("speedup_quartiles") or [r["speedup"], r["speedup"]]
        below.append(max(0.0, r["speedup"] - q[0]))
        above.append(max(0.0, q[1] - r["speedup"]))
    return [below, above]


def speedup_vs_contention(points: list[dict[str, Any]], param: str) -> Figure:
    """Speedup at each executor's largest worker count as the contention parameter varies."""
    fig, ax = plt.subplots(figsize=(6, 4))
    xs_all = [p["params"][param] for p in points]
    names = [n for n in _executors(_ok([r for p in points for r in p["results"]])) if n != REFERENCE]
    for name in names:
        xs, ys = [], []
        for p in points:
            rows = [r for r in _ok(p["results"]) if r["executor"] == name and r.get("speedup") is not None]
            if rows:
                best = max(rows, key=lambda r: r["workers"])
                xs.append(p["params"][param])
                ys.append(best["speedup"])
        if xs:
            ax.plot(xs, ys, marker="o", label=f"{name} (max workers)")
    bxs, bys = [], []
    for p in points:
        bound = p.get("analysis", {}).get("bound") or {}
        if bound:
            top = max(bound, key=int)
            if bound[top] is not None:
                bxs.append(p["params"][param])
                bys.append(bound[top])
    if bxs:
        ax.plot(bxs, bys, "k--", marker="x", label="inherent bound (most cores analysed)")
    ax.axhline(1.0, color="grey", linewidth=1)
    if param == "accounts" and min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 20:
        ax.set_xscale("log")
    ax.set_xlabel(param)
    ax.set_ylabel("speedup vs sequential")
    ax.set_title(f"speedup vs contention ({param})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def re_executions(points: list[dict[str, Any]]) -> Figure:
    """Re-executions per transaction, one bar per (point, executor, workers)."""
    labels, values = [], []
    for p in points:
        for r in _ok(p["results"]):
            point = f"{_label(p['params'])}\n" if len(points) > 1 else ""
            labels.append(f"{point}{r['executor']} x{r['workers']}")
            values.append(r["re_executions_per_tx"])
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(labels)), 4))
    ax.bar(range(len(values)), values, color="tab:orange")
    ax.set_xticks(range(len(values)), labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("re-executions per transaction")
    ax.set_ylim(bottom=0)  # a count: all zero must not draw a negative axis
    ax.set_title("re-executions per transaction")
    ax.grid(axis="y", alpha=0.3)
    return fig


#: Timeline colours by span label (``ExecStats.timeline``); white gaps are waiting.
SPAN_COLORS = {
    "setup": "tab:purple",
    "prepare": "tab:olive",
    "execute": "tab:blue",
    "validate": "tab:cyan",
    "hash": "tab:green",
    "precheck": "tab:pink",  # the next block's signatures, in the waits
    "finish": "tab:orange",
    "merge": "tab:red",
    "in-process": "tab:brown",
}


def _parameters(points: list[dict[str, Any]]) -> str:
    """The one sweep point's parameters, which its tables then leave out (``_table``)."""
    if len(points) != 1:
        return ""
    return f"<p>Parameters: <code>{html.escape(_label(points[0]['params']))}</code></p>"


def _block_sizes(points: list[dict[str, Any]], config: dict[str, Any]) -> str:
    """How many transactions a pass timed, where that is more than ``--block-size`` a block: the
    chain appends system transactions (perps: one market tick per market), and tx/s counts them."""
    size, blocks = config.get("block_size"), config.get("blocks")
    lines = []
    for p in points:
        rows = [r for r in _ok(p["results"]) if r.get("txs")]
        if not rows or not size or not blocks or rows[0]["txs"] <= size * blocks:
            continue
        txs = rows[0]["txs"]
        where = f" ({_label(p['params'])})" if len(points) > 1 else ""
        lines.append(
            f"<p>Transactions{html.escape(where)}: {txs:,} a pass over {blocks} blocks, {txs / blocks:,.0f} a block: "
            f"{size:,} of the workload's (<code>--block-size</code>) and {txs / blocks - size:,.0f} system "
            "transactions the chain appends to each block (the exchange: one market tick per market); tx/s counts them all.</p>"
        )
    return "".join(lines)


def _data_files(points: list[dict[str, Any]]) -> str:
    """The recordings a replay read (its default file when none was named on the command line)."""
    files = sorted({p["data_file"] for p in points if p.get("data_file")})
    return "".join(f"<p>Market data replayed: <code>{html.escape(f)}</code></p>" for f in files)


def gantt(point: dict[str, Any]) -> Figure | None:
    """Per-worker timeline of one block for each executor: at its largest worker count that
    recorded a timeline, else at its largest (a block run in-process is drawn on the coordinator's
    lane: its workers were idle, which empty worker lanes would not say)."""
    rows = []
    for name in _executors(_ok(point["results"])):
        candidates = [r for r in _ok(point["results"]) if r["executor"] == name and r.get("gantt")]
        timed = [r for r in candidates if r["gantt"].get("timeline")]
        if timed or candidates:
            rows.append(max(timed or candidates, key=lambda r: r["workers"]))
    if not rows:
        return None
    lanes_total = sum(max(1, len(r["gantt"]["worker_busy"])) + bool(r["gantt"].get("timeline")) for r in rows)
    fig, axes = plt.subplots(len(rows), 1, figsize=(8, 1.0 * len(rows) + 0.35 * lanes_total), squeeze=False)
    for ax, r in zip(axes[:, 0], rows, strict=True):
        g = r["gantt"]
        wall = g["seconds"] * 1000
        if g.get("timeline"):
            lanes = sorted({int(span[0]) for span in g["timeline"]})
            seen: dict[str, Any] = {}
            for span in g["timeline"]:
                lane = lanes.index(int(span[0]))
                label = str(span[3]) if len(span) > 3 else "busy"
                color = SPAN_COLORS.get(label, "tab:gray")
                bar = ax.broken_barh([(span[1] * 1000, (span[2] - span[1]) * 1000)], (lane - 0.4, 0.8), color=color)
                seen.setdefault(label, bar)
            ax.set_yticks(range(len(lanes)), ["coord" if w < 0 else f"w{w}" for w in lanes])
            ax.legend(seen.values(), seen.keys(), fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
            xlabel = "ms since block start (red: block wall time, commit and root included)"
        elif not any(g["worker_busy"]):  # run in-process: the coordinator executed it, no worker did
            ax.broken_barh([(0, wall)], (-0.4, 0.8), color="tab:gray")
            ax.set_yticks([0], ["coord"])
            xlabel = "ms: executed in-process by the coordinator, workers not executing (red: block wall time)"
        else:
            busy = g["worker_busy"]
            for lane, seconds in enumerate(busy):
                ax.broken_barh([(0, seconds * 1000)], (lane - 0.4, 0.8), color="tab:blue")
            ax.set_yticks(range(len(busy)), [f"w{i}" for i in range(len(busy))])
            xlabel = "busy ms per worker (red: block wall time)"
        ax.axvline(wall, color="red", linestyle="--", linewidth=1)
        ax.set_title(
            f"{r['executor']} x{r['workers']}: block {g['height']} ({g['txs']} txs), wall {wall:.1f} ms", fontsize=9
        )
        ax.set_xlabel(xlabel, fontsize=8)
    fig.tight_layout()
    return fig


def hot_keys(point: dict[str, Any]) -> Figure | None:
    keys = point.get("analysis", {}).get("hot_keys") or []
    if not keys:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(keys) + 1))
    names = [k for k, _ in keys][::-1]
    counts = [c for _, c in keys][::-1]
    ax.barh(range(len(keys)), counts, color="tab:red")
    ax.set_yticks(range(len(keys)), names, fontsize=8, family="monospace")
    ax.set_xlabel("dependency edges caused (all blocks)")
    ax.set_title(f"hottest conflict keys ({_label(point['params'])})")
    return fig


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _table(
    head: tuple[str, ...], rows: list[tuple[str, list[str]]], points: list[dict[str, Any]], table_id: str = ""
) -> str:
    """One table from its header and rows of ``(row class, cells)``, each row's first cell the
    sweep point's label (escaped HTML cells). With one point that column is left out: the
    parameters are shown once above the tables. Wrapped so a wide table scrolls inside the page
    instead of widening it."""
    skip = 1 if len(points) == 1 else 0
    header = "".join(f"<th>{h}</th>" for h in head[skip:])
    body = "".join(f"<tr{_class(cls)}>" + "".join(cells[skip:]) + "</tr>" for cls, cells in rows)
    ident = f' id="{table_id}"' if table_id else ""
    return f'<div class="wide"><table{ident}><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table></div>'


def _class(cls: str) -> str:
    return f' class="{cls}"' if cls else ""


def _td(text: Any, cls: str = "") -> str:
    """A cell holding ``text`` (escaped)."""
    return f"<td{_class(cls)}>{html.escape(str(text))}</td>"


#: The command line's columns (``harness.RESULT_COLUMNS``), with the executions and re-executions.
_SPLIT = RESULT_COLUMNS.index("re-exec/tx")
_RESULTS_HEAD = ("point", *RESULT_COLUMNS[:_SPLIT], "executions", "re-exec", *RESULT_COLUMNS[_SPLIT:])


def _results_table(points: list[dict[str, Any]]) -> str:
    rows = []
    for p in points:
        for r in p["results"]:
            cores = str(r.get("cores", r["workers"]))
            if r.get("error"):
                cells = [_label(p["params"]), r["executor"], str(r["workers"]), cores, f"error: {r['error']}"]
                cells += [""] * (len(_RESULTS_HEAD) - len(cells) - 1) + ["x"]
                rows.append(("bad", [_td(c) for c in cells]))
                continue
            cells = [
                _label(p["params"]),
                r["executor"],
                str(r["workers"]),
                cores,
                _fmt(r["seconds_median"], ".4f"),
                _fmt(r["tx_per_s"], ",.0f"),
                _fmt(r.get("speedup"), ".2f"),
                quartile_range(r.get("speedup_quartiles"), r.get("speedup_paired_median")),
                _fmt(r.get("bound"), ".2f"),
                _fmt(r.get("bound_efficiency"), ".0%"),
                steady_cell(r),
                _fmt(r.get("cpu_seconds_median"), ".3f"),
                _fmt(r.get("cpu_ceiling"), ".2f"),
                str(r["executions"]),
                str(r["re_executions"]),
                _fmt(r["re_executions_per_tx"], ".3f"),
                str(r["rounds"]),
                parallel_share(r),
                "match" if r["roots_match"] else "DIFFER",
            ]
            rows.append(("" if r["roots_match"] else "bad", [_td(c) for c in cells]))
    return _table(_RESULTS_HEAD, rows, points, "results")


#: What a note's numbers are replaced by to tell notes that differ only in counts apart from others.
_NUMBER = re.compile(r"\d[\d,.]*")


def note_groups(notes: list[str]) -> list[tuple[str, int]]:
    """An executor's distinct block notes split into their clauses (``"; "``) and grouped where
    they differ only in numbers: ``(first such clause, how many variants)``, commonest first.

    Each block's note is kept once per distinct text (``harness``), and most of them differ only
    in counts ("48 signatures checked ahead", "64 signatures checked ahead"): listed as they come
    they repeat the same few things in a long run-on line."""
    groups: dict[str, list[str]] = {}
    for note in notes:
        for clause in note.split("; "):
            groups.setdefault(_NUMBER.sub("#", clause), []).append(clause)
    ordered = sorted(groups.values(), key=lambda g: -len(g))  # stable: first seen first among equals
    return [(clauses[0], len(set(clauses))) for clauses in ordered]


def _notes_list(points: list[dict[str, Any]]) -> str:
    """What each executor said about its blocks (adaptive's choice and reason, wave sizes...),
    grouped (``note_groups``): the first few kinds of clause, each with one example."""
    items = []
    for p in points:
        for r in _ok(p["results"]):
            groups = note_groups(r.get("notes") or [])
            if not groups:
                continue
            clauses = [
                html.escape(text) + (f" <i>(and {n - 1} more like it)</i>" if n > 1 else "")
                for text, n in groups[:NOTE_KINDS]
            ]
            if len(groups) > NOTE_KINDS:
                clauses.append(f"<i>{len(groups) - NOTE_KINDS} other kind(s) of note in the JSON</i>")
            who = f"{r['executor']} x{r['workers']}" + (f", {_label(p['params'])}" if len(points) > 1 else "")
            inner = "".join(f"<li>{c}</li>" for c in clauses)
            items.append(f"<li><b>{html.escape(who)}</b><ul>{inner}</ul></li>")
    return f"<ul>{''.join(items)}</ul>" if items else "<p>none</p>"


#: Kinds of note shown per executor row (``_notes_list``).
NOTE_KINDS = 6


def _analysis_table(points: list[dict[str, Any]]) -> str:
    rows = []
    for p in points:
        a = p.get("analysis", {})
        label = _td(_label(p["params"]))
        if not a.get("available"):
            rows.append(("", [label, f"<td colspan=6>unavailable: {html.escape(a.get('error', ''))}</td>"]))
            continue
        bounds = ", ".join(f"{w}: {_fmt(b, '.2f')}" for w, b in a["bound"].items())
        cells = [
            a["edges"],
            f"{a['conflict_rate']:.1%}",
            f"{a['critical_path'] * 1000:.2f} ms",
            f"{a['total_cost'] * 1000:.2f} ms",
            bounds,
            _fmt(a.get("unlimited"), ".2f"),
        ]
        rows.append(("", [label, *map(_td, cells)]))
    head = (
        "point",
        "edges",
        "conflict rate",
        "critical path",
        "total cost",
        "bound by cores",
        "bound, unlimited workers",
    )
    return _table(head, rows, points)


_LIMITS_TEXT = (
    "Keys grouped by class (binary parts as *: x/m/*/bk/* is every market's price-level index). For the "
    "classes behind the most dependency edges, the bound if the edges they alone cause did not exist, "
    "i.e. what an application change that removed them (a delta instead of a read-modify-write, one key "
    "split per trader or market) would allow at most. On unlimited workers the bound is total cost / "
    "critical path: more cores cannot go past it."
)


def _limits_table(points: list[dict[str, Any]]) -> str:
    """Per key class: the bound if that class's edges did not exist (``bound.Bounds.limits``)."""
    rows = []
    for p in points:
        a = p.get("analysis", {})
        for r in (a.get("limits") or [])[:6] if a.get("available") else []:
            without = r["bound_without"]
            by_cores = ", ".join(f"{w}: {_fmt(b, '.2f')}" for w, b in without.items() if w != "unlimited")
            cells = [
                _td(_label(p["params"])),
                f"<td><code>{html.escape(r['keys'])}</code></td>",
                _td(r["edges"]),
                _td(by_cores),
                _td(f"{_fmt(without.get('unlimited'), '.2f')} (now {_fmt(a.get('unlimited'), '.2f')})"),
            ]
            rows.append(("", cells))
    if not rows:
        return "<p>none</p>"
    head = ("point", "keys", "edges", "bound without them, by cores", "without them, unlimited workers")
    return _table(head, rows, points)


def _outcomes_table(points: list[dict[str, Any]]) -> str:
    """Receipts of the reference (sequential) run: what the workload actually did."""
    rows = []
    for p in points:
        o = p.get("outcomes") or {}
        failed = ", ".join(f"{k}: {v}" for k, v in (o.get("failed") or {}).items()) or "none"
        events = ", ".join(f"{k}: {v}" for k, v in list((o.get("events") or {}).items())[:12]) or "none"
        cells = [_td(_label(p["params"])), _td(o.get("ok", "-")), _td(failed, "l"), _td(events, "l")]
        rows.append(("", cells))
    return _table(("point", "ok", "failed (by error)", "events (by name)"), rows, points)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3} tr.bad td{background:#fdd} td.l{text-align:left}
figure{display:inline-block;margin:0.5em;vertical-align:top} img{max-width:100%}
figcaption{font-size:12px;color:#666;text-align:center} code{background:#f5f5f5;padding:2px 4px}
.ok{color:#070} .fail{color:#b00} .wide{overflow-x:auto;max-width:100%} .wide td{white-space:nowrap} .wide td.l{white-space:normal;min-width:20em}
"""

_SCRIPT = """
(function(){
  var imgs = Array.prototype.slice.call(document.images);
  Promise.all(imgs.map(function(img){ return img.decode ? img.decode() : Promise.resolve(); })).then(function(){
    var broken = imgs.filter(function(img){ return !img.naturalWidth; }).length;
    window.reportReady = {images: imgs.length, broken: broken};
    var text = imgs.length + ' plots rendered' + (broken ? ', ' + broken + ' broken' : '');
    document.getElementById('status').textContent = text;
  });
})();
"""


def render_report(result: dict[str, Any]) -> str:
    """The report as one HTML string (see module docstring)."""
    points = result["points"]
    config = result["config"]
    machine = result["machine"]
    figures = []
    for p in points:
        figures.append(_img(speedup_vs_workers(p), f"speedup vs cores, {_label(p['params'])}"))
    param = points[0].get("contention_param") if points else None
    if (
        param
        and len({json.dumps(p["params"].get(param)) for p in points}) > 1
        and all(param in p["params"] for p in points)
    ):
        figures.append(_img(speedup_vs_contention(points, param), f"speedup vs contention ({param})"))
    figures.append(_img(re_executions(points), "re-executions per transaction"))
    for p in points[:4]:
        fig = gantt(p)
        if fig is not None:
            figures.append(_img(fig, f"per-worker timeline of one block, {_label(p['params'])}"))
        fig = hot_keys(p)
        if fig is not None:
            figures.append(_img(fig, f"hottest conflict keys, {_label(p['params'])}"))
    status = (
        '<p class="ok">every root equals sequential</p>'
        if result.get("ok")
        else '<p class="fail">FAILURES:<br>' + "<br>".join(html.escape(f) for f in result.get("failures", [])) + "</p>"
    )
    machine_rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in machine.items()
    )
    config_rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in config.items()
    )
    command = " ".join(result.get("command") or [])
    signatures = (
        "checked inside execution (end to end)"
        if config.get("verify_signatures")
        else "already verified (execution + commit + root only)"
    )
    conditions = (
        f"Signatures {signatures}; store {config.get('store')}; medians of {config.get('repeat')} repeat(s); "
        "speedups are ratios to the sequential run of the same invocation; cores: the cores a row's executor may "
        "keep busy (parallel and adaptive: workers + 1, their coordinator executes transactions too), capped at "
        "the usable cores; bound: the inherent speedup bound on that many cores, of bound: speedup / bound; blocks 2+: the same for blocks 2..K of each pass (the steady state after block 1's cold start, whose signatures nothing checked ahead); p25-p50-p75: quartiles and median of the per-repeat "
        "ratios (each pass over the sequential pass of the same round), i.e. how much it moved between repeats; "
        "the speedup column is the ratio of the medians, the p50 the median of the paired ratios (drift between "
        "rounds cancels in each pair). The bound's costs are each transaction's execution (signature checks off "
        "the critical path), without the block's commit, encoding and root, which every row's time includes: "
        "where those are a large share of a pass (signatures already verified) the bound is optimistic and "
        "'of bound' reads low; work an executor moves to idle cores (root hashing) can take it past 100%. "
        "CPU s: CPU seconds of the whole pass on every core (coordinator, threads, worker processes); "
        f"CPU ceiling: the speedup that much CPU allows with all {machine.get('cpu_usable')} usable cores busy "
        "(sequential's seconds x cores / CPU s): a speedup close to it means the engine's own CPU cost is the "
        "limit, one well below it means cores sat idle. par. blocks: timed blocks whose transactions two or more "
        "workers executed at once, out of all timed blocks (the rest ran one after another in one place, the "
        "workers at most checking signatures and hashing the root)."
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>paraexec bench: {html.escape(config["workload"])}</title>
<style>{_STYLE}</style></head><body>
<h1>paraexec bench: {html.escape(config["workload"])}</h1>
<p id="status">rendering...</p>
{status}
<p>Command: <code>{html.escape(command)}</code></p>{_parameters(points)}{_block_sizes(points, config)}{_data_files(points)}
<p>{html.escape(conditions)}</p>
<h2>Results</h2>{_results_table(points)}
<h2>Executor notes</h2>{_notes_list(points)}
<h2>Inherent bound (dependency analysis)</h2>{_analysis_table(points)}
<h2>What limits the bound</h2>
<p>{html.escape(_LIMITS_TEXT)}</p>{_limits_table(points)}
<h2>What the workload did (sequential receipts)</h2>{_outcomes_table(points)}
<h2>Plots</h2>{"".join(figures)}
<h2>Machine</h2><table>{machine_rows}</table>
<h2>Configuration</h2><table>{config_rows}</table>
<script>{_SCRIPT}</script>
</body></html>
"""


def write_report(result: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(result), encoding="utf-8")
    return path
