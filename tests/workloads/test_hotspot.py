"""The hot-spot workload: deterministic from its seed, and its hot ratio really sets who is touched."""

import pytest

from paraexec.apps.transfers import Transfer
from paraexec.chain import Chain, ChainConfig
from paraexec.codec import decode
from paraexec.execution import SequentialExecutor
from paraexec.state import MemoryStore
from paraexec.transaction import Payload, decode_signed
from paraexec.workloads.hotspot import HotspotWorkload


def parties(workload: HotspotWorkload, txs: list[bytes]) -> list[tuple[bytes, bytes]]:
    out = []
    for raw in txs:
        tx = decode_signed(raw, workload.chain_id)
        payload = decode(tx.payload, Payload)
        out.append((tx.sender, decode(bytes(payload.body), Transfer).to))
    return out


def test_same_seed_same_blocks_and_other_seed_differs():
    a = HotspotWorkload(accounts=40, hot_ratio=0.5, seed=7)
    b = HotspotWorkload(accounts=40, hot_ratio=0.5, seed=7)
    c = HotspotWorkload(accounts=40, hot_ratio=0.5, seed=8)
    assert a.block(1, 30) == b.block(1, 30)
    assert a.block(2, 30) == b.block(2, 30)
    assert a.block(1, 30) != HotspotWorkload(accounts=40, hot_ratio=0.5, seed=7).block(2, 30)
    assert HotspotWorkload(accounts=40, hot_ratio=0.5, seed=7).block(1, 30) != c.block(1, 30)


@pytest.mark.parametrize("hot_ratio", [0.0, 1.0])
def test_hot_ratio_extremes_select_only_hot_or_only_cold(hot_ratio):
    w = HotspotWorkload(accounts=50, hot_ratio=hot_ratio, hot_accounts=3, seed=1)
    hot = {k.public_key for k in w.keys[:3]}
    touched = {key for pair in parties(w, w.block(1, 60)) for key in pair}
    if hot_ratio == 1.0:
        assert touched <= hot
    else:
        assert not touched & hot


def test_middle_hot_ratio_mixes_hot_and_cold():
    w = HotspotWorkload(accounts=200, hot_ratio=0.5, hot_accounts=2, seed=3)
    hot = {k.public_key for k in w.keys[:2]}
    picks = [key for pair in parties(w, w.block(1, 200)) for key in pair]
    share = sum(key in hot for key in picks) / len(picks)
    assert 0.35 < share < 0.65  # 400 draws at p=0.5: fixed seed, so this is deterministic


def test_blocks_execute_successfully_and_nonces_continue():
    w = HotspotWorkload(accounts=20, hot_ratio=0.8, seed=2)
    store = MemoryStore()
    config = ChainConfig(w.chain_id, w.app_name, w.genesis_config())
    chain = Chain.create(store, config)
    for height in (1, 2):
        _, output = chain.produce_block(w.block(height, 25), height, SequentialExecutor())
        assert all(r.ok for r in output.receipts), [r.error for r in output.receipts if not r.ok]


def test_defaults_and_bad_parameters():
    assert HotspotWorkload(accounts=1000).hot_accounts == 10
    with pytest.raises(ValueError):
        HotspotWorkload(accounts=10, hot_ratio=1.5)
    with pytest.raises(ValueError):
        HotspotWorkload(accounts=1)
    with pytest.raises(ValueError):
        HotspotWorkload(accounts=5, hot_accounts=5)


def test_declared_access_lists_keep_the_same_draws():
    from paraexec.apps.transfers import balance_key

    plain = HotspotWorkload(accounts=30, hot_ratio=0.5, seed=5)
    declared = HotspotWorkload(accounts=30, hot_ratio=0.5, seed=5, declare_access=True)
    txs = declared.block(1, 20)
    assert parties(plain, plain.block(1, 20)) == parties(declared, txs)
    for raw, (src, dst) in zip(txs, parties(declared, txs), strict=True):
        access = decode_signed(raw, declared.chain_id).access
        assert access is not None and set(access.writes) == {balance_key(src), balance_key(dst)}
