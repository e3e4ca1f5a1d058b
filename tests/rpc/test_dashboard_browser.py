"""Headless Chromium opens the dashboard of a running exchange node and sees blocks, books and
trades arrive."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from paraexec.client import Client
from paraexec.client.load import wallet_of
from paraexec.exchange.genesis import dev_keys
from paraexec.exchange.market import Market
from paraexec.exchange.payloads import BUY, IOC, SELL

from ..browser import CHROMIUM, CHROMIUM_ARGS, HAVE_CHROMIUM, NO_CHROMIUM
from .nodeproc import NodeProcess, init_exchange_chain


@contextmanager
def dashboard(url: str) -> Iterator[tuple[Any, list[str]]]:
    """The node's dashboard open in headless Chromium: (page, the page's script errors so far)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url + "/")
            yield page, errors
        finally:
            browser.close()


def rest_and_hit(url: str, maker, taker, taken_share: int) -> tuple[int, int, dict]:
    """The maker rests a BTC ask of 4 steps at the oracle price; the taker takes 1/``taken_share``
    of it (IOC). Returns (ask size, price, the taker's inclusion)."""
    with Client(url) as client:
        btc = Market.from_config(client.markets()[0]["params"])
        price = btc.price_to_subticks(client.markets()[0]["oracle_price"])
        size = btc.step_base_quantums * 4
        for w in (maker, taker):
            w.sync_nonce(client)
        client.submit_and_wait(maker.place_order(0, SELL, size, price, client_id=1))
        take = taker.place_order(0, BUY, size // taken_share, price, client_id=2, time_in_force=IOC)
        return size, price, client.wait_for(client.submit(take))


@pytest.mark.skipif(not HAVE_CHROMIUM, reason=NO_CHROMIUM)
def test_dashboard_shows_live_blocks_books_and_trades(tmp_path):
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")  # before the node starts
    data = tmp_path / "chain"
    init_exchange_chain(data, accounts=2, markets=2)
    maker, taker = (wallet_of(k, "paraexec-dev") for k in dev_keys(accounts=2))
    with NodeProcess(data, block_time=0.3) as node, dashboard(node.url) as (page, errors):
        page.wait_for_function("document.getElementById('conn').textContent === 'live'", timeout=20_000)
        first = int(page.inner_text("#height"))
        # blocks arrive over the WebSocket: the height advances and rows are added
        page.wait_for_function(
            f"parseInt(document.getElementById('height').textContent) >= {first + 3}", timeout=20_000
        )
        assert page.locator("#blocks tbody tr").count() >= 3
        page.wait_for_function("document.getElementById('markets').textContent.includes('BTC-USD')", timeout=20_000)
        assert "funding (8 h) 0.0000%, predicted 0.0000%" in page.locator("#markets h2").first.inner_text()
        # an order rests (book depth) and a taker hits it (a trade)
        size, price, hit = rest_and_hit(node.url, maker, taker, taken_share=4)
        assert hit["receipt"]["ok"]
        # the book shows the rest of the ask (sizes are displayed in base units; data-q holds quantums)
        page.wait_for_selector(f"#markets table[data-market='0'] td.ask[data-q='{size - size // 4}']", timeout=20_000)
        trade = page.locator("#trades tbody tr").first
        trade.wait_for(timeout=20_000)
        assert trade.locator("td").nth(0).inner_text() == str(hit["height"])
        assert trade.locator("td").nth(1).inner_text() == "BTC-USD"
        assert trade.get_attribute("data-quantums") == str(size // 4)
        assert float(trade.locator("td").nth(2).inner_text()) == pytest.approx(price * 1e-5)  # BTC: 1e-5 $/subtick
        block_row = page.locator(f"#blocks tbody tr[data-height='{hit['height']}'] td").nth(1)
        block_row.wait_for(timeout=20_000)
        assert int(block_row.inner_text()) >= 1
        assert page.inner_text("#speedup").endswith("x")
        assert errors == []


@pytest.mark.skipif(not HAVE_CHROMIUM, reason=NO_CHROMIUM)
def test_dashboard_after_restart_shows_the_stored_history(tmp_path):
    """A restarted node that produces nothing new still shows its recent blocks and trades (read
    back from the store), with the old process's execution stats as "-"."""
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")  # before the node starts
    data = tmp_path / "chain"
    init_exchange_chain(data, accounts=2, markets=2)
    maker, taker = (wallet_of(k, "paraexec-dev") for k in dev_keys(accounts=2))
    with NodeProcess(data, block_time=0.2) as node:
        size, _, hit = rest_and_hit(node.url, maker, taker, taken_share=1)
    assert hit["receipt"]["ok"]
    with NodeProcess(data, block_time=3600, extra=["--no-empty-blocks"]) as node, dashboard(node.url) as (page, errors):
        page.wait_for_function("document.getElementById('conn').textContent === 'live'", timeout=20_000)
        row = page.locator(f"#blocks tbody tr[data-height='{hit['height']}'] td")
        row.nth(6).wait_for(timeout=20_000)
        assert row.nth(3).inner_text() == "-" and row.nth(6).inner_text() == "before restart"
        trade = page.locator("#trades tbody tr").first
        trade.wait_for(timeout=20_000)
        assert trade.locator("td").nth(0).inner_text() == str(hit["height"])
        assert trade.get_attribute("data-quantums") == str(size)
        assert page.inner_text("#mempool") == "0" and page.inner_text("#speedup") == "-"
        assert errors == []


@pytest.mark.skipif(not HAVE_CHROMIUM, reason=NO_CHROMIUM)
def test_dashboard_of_many_markets_shows_the_first_books(tmp_path):
    """A chain of many markets: the dashboard asks for the first books only (it asked every
    market's, one after another, every 2 s: 25 s a round at 1,024 markets) and says how many
    more there are."""
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")  # before the node starts
    data = tmp_path / "chain"
    init_exchange_chain(data, accounts=2, markets=11)
    with NodeProcess(data, block_time=0.5) as node, dashboard(node.url) as (page, errors):
        page.wait_for_function(
            "document.getElementById('markets').textContent.includes('and 3 more markets')", timeout=20_000
        )
        assert page.locator("#markets table").count() == 8
        assert errors == []
