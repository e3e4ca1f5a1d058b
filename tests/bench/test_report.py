"""The HTML report: self-contained, every plot present, and it renders in headless Chromium."""

from __future__ import annotations

import re

import pytest

from paraexec.bench.harness import BenchConfig, run_bench
from paraexec.bench.report import render_report, write_report

from ..browser import CHROMIUM, CHROMIUM_ARGS, HAVE_CHROMIUM, NO_CHROMIUM


@pytest.fixture(scope="module")
def sweep_result():
    bench = BenchConfig(
        workload="hotspot",
        points=[{"accounts": 30, "hot_ratio": 0.1}, {"accounts": 30, "hot_ratio": 0.9}],
        block_size=20,
        blocks=2,
        executors=["sequential"],
        workers=[1, 2],
        repeat=1,
    )
    return run_bench(bench)


def test_report_is_self_contained_with_every_section(sweep_result):
    page = render_report(sweep_result)
    assert "http://" not in page and "https://" not in page  # nothing fetched from anywhere
    images = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,', page)
    titles = " | ".join(images)
    wanted = [
        "speedup vs cores",
        "speedup vs contention (hot_ratio)",
        "re-executions per transaction",
        "per-worker timeline",
    ]
    analysis = sweep_result["points"][0]["analysis"]
    if analysis["available"]:
        wanted.append("hottest conflict keys")
        assert analysis["limits"] and analysis["unlimited"] > 0
        assert "<h2>What limits the bound</h2>" in page
        assert f"<code>{analysis['limits'][0]['keys']}</code>" in page
    for title in wanted:
        assert title in titles
    assert 'id="results"' in page
    assert sweep_result["machine"]["cpu_model"] in page


def test_failures_are_shown(sweep_result):
    broken = {**sweep_result, "ok": False, "failures": ["sequential x1: block 2 root aa != bb"]}
    page = render_report(broken)
    assert "FAILURES" in page and "block 2 root aa" in page


def test_single_point_has_no_contention_plot(sweep_result):
    one = {**sweep_result, "points": sweep_result["points"][:1]}
    assert "speedup vs contention" not in render_report(one)


def test_report_renders_in_headless_chromium(sweep_result, tmp_path):
    if not HAVE_CHROMIUM:
        pytest.skip(NO_CHROMIUM)
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    path = write_report(sweep_result, tmp_path / "report.html")
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.goto(path.resolve().as_uri())
            page.wait_for_function("window.reportReady !== undefined", timeout=20_000)
            ready = page.evaluate("window.reportReady")
            shot = page.screenshot(full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert ready["images"] >= 5 and ready["broken"] == 0
    assert len(shot) > 10_000  # a real page, not a blank one


def test_gantt_uses_executor_timeline_when_present(sweep_result):
    import copy

    from paraexec.bench.report import gantt

    point = copy.deepcopy(sweep_result["points"][0])
    g = point["results"][0]["gantt"]
    g["worker_busy"] = [0.002, 0.003]
    g["timeline"] = [[0, 0.0, 0.001, "exec"], [1, 0.0005, 0.003, "exec"], [0, 0.0015, 0.002, "validate"]]
    fig = gantt(point)
    assert fig is not None
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["w0", "w1"]
    assert "ms since block start" in ax.get_xlabel()
    assert "<img" in render_report({**sweep_result, "points": [point]})


def test_gantt_draws_an_in_process_block_on_the_coordinator_and_prefers_a_timeline(sweep_result):
    """A block ``parallel`` ran in-process (workers idle) is the coordinator's; and of an
    executor's rows, one with a recorded timeline is drawn rather than the largest worker count."""
    import copy

    from paraexec.bench.report import gantt

    point = copy.deepcopy(sweep_result["points"][0])
    first = point["results"][0]
    first["gantt"]["worker_busy"] = [0.0, 0.0]
    first["gantt"]["timeline"] = None
    fig = gantt({**point, "results": [first]})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["coord"] and "in-process" in ax.get_xlabel()
    timed = copy.deepcopy(first)
    timed["workers"] = 1
    timed["gantt"]["timeline"] = [[-1, 0.0, 0.001, "exec"], [0, 0.0, 0.002, "verify"]]
    wide = {**first, "workers": 4}
    fig = gantt({**point, "results": [wide, timed]})
    assert fig.axes[0].get_title().startswith(f"{first['executor']} x1")


def test_executor_notes_are_listed(sweep_result):
    import copy

    result = copy.deepcopy(sweep_result)
    result["points"][0]["results"][0]["notes"] = ["sequential: small block <500 txs"]
    page = render_report(result)
    assert "Executor notes" in page and "sequential: small block &lt;500 txs" in page


def test_results_show_cores_and_old_files_without_them_still_render(sweep_result):
    import copy

    page = render_report(sweep_result)
    assert "<th>cores</th>" in page
    old = copy.deepcopy(sweep_result)  # a JSON file written before rows carried "cores"
    for point in old["points"]:
        for r in point["results"]:
            del r["cores"]
    assert 'id="results"' in render_report(old)


def test_notes_that_differ_only_in_numbers_are_grouped(sweep_result):
    import copy

    from paraexec.bench.report import note_groups

    notes = [
        "48 signatures checked ahead; ran in-process",
        "64 signatures checked ahead; ran in-process",
        "64 signatures checked ahead; measured 0.85x of in-process",
    ]
    assert note_groups(notes) == [
        ("48 signatures checked ahead", 2),  # two distinct texts, one kind
        ("ran in-process", 1),
        ("measured 0.85x of in-process", 1),
    ]
    result = copy.deepcopy(sweep_result)
    result["points"][0]["results"][0]["notes"] = notes
    page = render_report(result)
    assert page.count("signatures checked ahead") == 1 and "(and 1 more like it)" in page


def test_one_point_is_named_once_not_in_every_row(sweep_result):
    one = {**sweep_result, "points": sweep_result["points"][:1]}
    label = "accounts=30, hot_ratio=0.1"
    page = render_report(one)
    assert page.count(label) >= 1 and f"<td>{label}</td>" not in page and "<th>point</th>" not in page
    assert f"Parameters: <code>{label}</code>" in page
    two = render_report(sweep_result)  # a sweep keeps the column: rows of different points
    assert f"<td>{label}</td>" in two and "<th>point</th>" in two
    assert '<div class="wide"><table id="results">' in two  # a wide table scrolls inside the page


def test_system_transactions_beyond_the_block_size_are_stated(sweep_result):
    import copy

    assert "system transactions" not in render_report(sweep_result)  # hotspot: blocks of --block-size
    result = copy.deepcopy(sweep_result)
    config = result["config"]
    for point in result["points"]:
        for r in point["results"]:
            r["txs"] = (config["block_size"] + 3) * config["blocks"]  # as perps with 3 markets
    page = render_report(result)
    assert f"{config['block_size'] + 3:,} a block" in page and "3 system transactions" in page
