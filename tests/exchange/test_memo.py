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
