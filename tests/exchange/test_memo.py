"""``LedgerMemo`` is pure: memoised results equal recomputed ones, so no result depends on it.

Every executor shares the memo logic (sequential included), so the differential tests cannot
catch a memo that returns a wrong value: all executors would agree on it. These tests compare a
chain run with the memo against one whose memo tables never hold more than one entry, and check
the decoded accounts it remembers (also those remembered when an account is written, without
decoding) against a fresh decode of their bytes.
"""

from __future__ import annotations

import pytest

from paraexec.chain import Chain, ChainConfig
from paraexec.exchange import ledger
from paraexec.execution import SequentialExecutor
from paraexec.state import MemoryStore
from paraexec.workloads.perps import PerpsWorkload

SIZE = 400


def run(workload: PerpsWorkload, blocks: list[list[bytes]]) -> tuple[Chain, list]:
    chain = Chain.create(MemoryStore(), ChainConfig(workload.chain_id, workload.app_name, workload.genesis_config()))
    results = []
    for height, txs in enumerate(blocks, start=1):
        block, output = chain.produce_block(txs, height, SequentialExecutor())
        results.append((block.header.state_root, output.receipts))
    return chain, results


@pytest.fixture(scope="module")
def blocks_and_workload() -> tuple[PerpsWorkload, list[list[bytes]]]:
    workload = PerpsWorkload(accounts=60, markets=3, seed=7, shock_at=3)
    return workload, [workload.block(height, SIZE) for height in range(1, 5)]


def test_results_do_not_depend_on_the_memo(blocks_and_workload, monkeypatch):
    workload, blocks = blocks_and_workload
    _, with_memo = run(workload, blocks)
    monkeypatch.setattr(ledger, "MEMO_LIMIT", 1)  # every table is emptied before each insert
    _, without = run(workload, blocks)
    assert with_memo == without
    assert any(not r.ok for _, receipts in with_memo for r in receipts)  # rejections happened too
    assert sum(len(receipts) for _, receipts in with_memo) > 4 * SIZE // 2


def test_remembered_accounts_equal_a_fresh_decode(blocks_and_workload):
    workload, blocks = blocks_and_workload
    chain, _ = run(workload, blocks)
    memo = chain.runtime.app.memo
    assert len(memo.accounts) > 50
    for raw, remembered in memo.accounts.items():
        fresh = ledger.load(raw)
        assert remembered.balance == fresh.balance and remembered.sizes == fresh.sizes
        assert list(remembered.positions) == list(fresh.positions)  # same order: sorted by market
        for mid, pos in fresh.positions.items():
            got = remembered.positions[mid]
            assert (got.size, got.funding_index, got.entry_quote) == (pos.size, pos.funding_index, pos.entry_quote)


def test_remembered_margin_inputs_equal_a_recomputation(blocks_and_workload):
    """Each ``inputs`` entry holds the decoded state it was computed from and that state's
    market inputs: price and its time from the state, effective IMF from the market's OI-scaled
    formula."""
    workload, blocks = blocks_and_workload
    chain, _ = run(workload, blocks)
    memo = chain.runtime.app.memo
    assert len(memo.inputs) >= 3
    for key, (state, (market, price, imf, oracle_time)) in memo.inputs.items():
        assert key == id(state)
        assert (price, oracle_time) == (state.oracle.price, state.oracle.time)
        if market.oi_upper_cap <= market.oi_lower_cap:
            assert imf == market.imf_ppm
        else:
            assert imf == market.imf_effective(market.notional_ceil(state.oi_snapshot, price))


def test_markets_with_identical_state_bytes_keep_their_own_inputs():
    """Two markets whose states are byte-for-byte equal share one decoded state object (the
    ``markets`` table is keyed by bytes): each must still get its own market's IMF."""
    from dataclasses import replace

    from paraexec.exchange import keys
    from paraexec.exchange.market import Market
    from paraexec.exchange.queries import _ReadContext
    from paraexec.exchange.records import FundingIndex, MarketState, OraclePrice, encode

    base = Market.from_config(PerpsWorkload(accounts=4, markets=1, seed=1).genesis_config()["markets"][0])
    markets = {0: replace(base, id=0, imf_ppm=50_000), 1: replace(base, id=1, imf_ppm=200_000)}
    raw = encode(MarketState(OraclePrice(base.initial_price, 0), FundingIndex(0, 0), 0))
    state = {keys.market_state(0): raw, keys.market_state(1): raw}
    memo = ledger.LedgerMemo()
    for mid in (0, 1, 0, 1):
        lg = ledger.Ledger(_ReadContext(state.get, 1, 0), markets, memo)
        assert lg._inputs(mid)[2] == markets[mid].imf_ppm
