"""Dependency analysis on hand-built blocks whose graphs and critical paths are known."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paraexec.execution import BlockEnv, SequentialExecutor
from paraexec.execution.dependency import analyze_block
from paraexec.execution.synthetic import DELTA, FAIL_IF, READ, SPIN, WRITE, SyntheticRuntime, encode_tx, key_of
from paraexec.state import MemoryStore

ENV = BlockEnv(1, 1)
RUNTIME = SyntheticRuntime(10)


def analyze(txs, cost=None):
    return analyze_block(RUNTIME, txs, MemoryStore(), ENV, cost)


def test_chain_of_five_dependent_txs_has_bound_one():
    # each tx reads the key the previous one wrote
    txs = [encode_tx([(READ, i, 0), (WRITE, i + 1, 1)]) for i in range(5)]
    report = analyze(txs, cost=[1.0] * 5)  # given costs count as execution: the bound is 1.0
    assert report.edges == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert report.critical_path_length == 5
    assert report.speedup_bound(1) == pytest.approx(1.0)
    assert report.speedup_bound(4) == pytest.approx(1.0)
    measured = analyze(txs)  # measured: only execution is on the chain, decoding can overlap it
    assert all(0 < p < c for p, c in zip(measured.prepare_costs, measured.costs, strict=True))
    assert measured.critical_path == pytest.approx(sum(measured.costs) - sum(measured.prepare_costs))
    assert 1.0 < measured.speedup_bound(4) == pytest.approx(measured.total_cost / measured.critical_path)
    assert report.conflict_rate == pytest.approx(4 / 5)


def test_independent_txs_are_bounded_by_workers():
    txs = [encode_tx([(READ, i, 0), (WRITE, i, 1)]) for i in range(8)]
    report = analyze(txs, cost=[1.0] * 8)
    assert report.edges == []
    assert report.conflict_rate == 0.0
    assert report.critical_path == 1.0 and report.total_cost == 8.0
    assert report.speedup_bound(1) == 1.0
    assert report.speedup_bound(2) == 2.0
    assert report.speedup_bound(8) == 8.0
    assert report.speedup_bound(16) == 8.0  # depth-bound: one tx cannot be split


def test_critical_path_is_cost_weighted():
    # 0 -> 1 -> 3 (costs 1, 5, 1) and 2 alone (cost 2): critical path 7, total 9
    txs = [
        encode_tx([(WRITE, 0, 1)]),
        encode_tx([(READ, 0, 0), (WRITE, 1, 1)]),
        encode_tx([(WRITE, 2, 1)]),
        encode_tx([(READ, 1, 0)]),
    ]
    report = analyze(txs, cost=[1.0, 5.0, 2.0, 1.0])
    assert report.edges == [(0, 1), (1, 3)]
    assert report.critical_path == 7.0
    assert report.total_cost == 9.0
    assert report.speedup_bound(2) == pytest.approx(9 / 7)
    assert report.finish == [1.0, 6.0, 2.0, 7.0]


def test_critical_path_without_a_class_of_keys_drops_only_the_edges_it_alone_causes():
    # 0 -> 1 through key 0; 1 -> 2 through keys 1 and 2; 2 -> 3 through key 1; 4 alone
    txs = [
        encode_tx([(WRITE, 0, 1)]),
        encode_tx([(READ, 0, 0), (WRITE, 1, 1), (WRITE, 2, 1)]),
        encode_tx([(READ, 1, 0), (READ, 2, 0), (WRITE, 1, 2)]),
        encode_tx([(READ, 1, 0)]),
        encode_tx([(WRITE, 9, 1)]),
    ]
    report = analyze(txs, cost=[1.0, 2.0, 3.0, 4.0, 5.0])
    assert report.critical_path == 10.0
    assert report.critical_path_without(lambda key: False) == 10.0
    assert report.critical_path_without(lambda key: key == key_of(0)) == 9.0  # 1 -> 2 -> 3
    assert report.critical_path_without(lambda key: key == key_of(2)) == 10.0  # key 1 keeps 1 -> 2
    assert report.critical_path_without(lambda key: key in (key_of(1), key_of(2))) == 5.0  # 0 -> 1; 3; 4
    assert report.critical_path_without(lambda key: True) == 5.0  # the costliest transaction alone
    assert report.critical_path == 10.0 and report.finish[3] == 10.0  # the report is unchanged


def test_only_the_latest_writer_is_a_dependency():
    txs = [encode_tx([(WRITE, 0, 1)]), encode_tx([(WRITE, 0, 2)]), encode_tx([(READ, 0, 0)])]
    report = analyze(txs, cost=[1.0] * 3)
    assert report.edges == [(1, 2)]  # write-after-write is not a dependency


def test_write_after_read_is_not_a_dependency():
    txs = [encode_tx([(READ, 0, 0)]), encode_tx([(WRITE, 0, 5)])]
    assert analyze(txs, cost=[1.0, 1.0]).edges == []


def test_unread_deltas_create_no_edges_and_read_deltas_do():
    txs = [
        encode_tx([(WRITE, 3, 10)]),  # 0: base value of key 3
        encode_tx([(DELTA, 3, 1)]),  # 1: delta, nobody depends on 0 for it
        encode_tx([(DELTA, 3, 2)]),  # 2
        encode_tx([(READ, 3, 0)]),  # 3: sees 10 + 1 + 2: depends on 0, 1 and 2
        encode_tx([(DELTA, 3, 4)]),  # 4: no read, no edge
    ]
    report = analyze(txs, cost=[1.0] * 5)
    assert report.edges == [(0, 3), (1, 3), (2, 3)]
    assert report.delta_sets[1] == frozenset({key_of(3)})
    assert report.read_sets[1] == frozenset()
    assert report.hot_keys(1) == [(key_of(3), 3)]


def test_hot_keys_rank_keys_by_edges_caused():
    txs = [encode_tx([(WRITE, 0, 1), (WRITE, 1, 1)])]
    txs += [encode_tx([(READ, 0, 0)]) for _ in range(3)]
    txs += [encode_tx([(READ, 1, 0)])]
    report = analyze(txs, cost=[1.0] * 5)
    assert report.hot_keys(2) == [(key_of(0), 3), (key_of(1), 1)]
    assert report.conflict_rate == pytest.approx(4 / 5)


def test_rolled_back_writes_are_not_writes_but_reads_stay_reads():
    # tx 0 writes key 1 then fails (key 5 reads 0): its write is rolled back
    txs = [encode_tx([(WRITE, 1, 7), (FAIL_IF, 5, 3)]), encode_tx([(READ, 1, 0)])]
    report = analyze(txs, cost=[1.0, 1.0])
    assert not report.output.receipts[0].ok
    assert report.write_sets[0] == frozenset()
    assert report.read_sets[0] == frozenset({key_of(5)})
    assert report.edges == []


def test_measured_costs_are_positive_and_follow_work():
    txs = [encode_tx([(SPIN, 0, 20_000)]), encode_tx([(WRITE, 1, 1)])]
    report = analyze(txs)
    assert all(c > 0 for c in report.costs)
    assert report.costs[0] > report.costs[1]


def test_cost_length_must_match():
    with pytest.raises(ValueError):
        analyze([encode_tx([(WRITE, 0, 1)])], cost=[1.0, 2.0])


def test_empty_block():
    report = analyze([])
    assert report.edges == [] and report.conflict_rate == 0.0 and report.speedup_bound(4) == 1.0


ops = st.lists(
    st.tuples(st.sampled_from([READ, WRITE, DELTA, FAIL_IF]), st.integers(0, 5), st.integers(1, 5)),
    min_size=1,
    max_size=5,
)


@given(st.lists(ops, min_size=0, max_size=12))
def test_analysis_output_is_the_sequential_result_and_edges_respect_order(blocks):
    txs = [encode_tx(o) for o in blocks]
    report = analyze(txs, cost=[1.0] * len(txs))
    expected = SequentialExecutor().execute_block(RUNTIME, txs, MemoryStore(), ENV)
    assert report.output.same_result(expected)
    for i, j in report.edges:
        assert i < j
        keys = report.edge_keys[(i, j)]
        assert all(k in report.read_sets[j] for k in keys)
        assert all(k in report.write_sets[i] | report.delta_sets[i] for k in keys)
    assert 1.0 <= report.speedup_bound(4) <= 4.0
    assert report.critical_path >= max(report.costs, default=0.0)


class CountingRuntime(SyntheticRuntime):
    def __init__(self, universe: int) -> None:
        super().__init__(universe)
        self.executions = 0

    def execute(self, prepared, ctx):
        self.executions += 1
        return super().execute(prepared, ctx)


def test_measured_costs_time_each_tx_repeatedly_without_changing_the_result():
    txs = [encode_tx([(READ, 0, 0), (WRITE, 0, 1), (DELTA, 1, 2)]) for _ in range(4)]
    runtime = CountingRuntime(10)
    report = analyze_block(runtime, txs, MemoryStore(), ENV, timings=3)
    assert runtime.executions == 12
    expected = SequentialExecutor().execute_block(RUNTIME, txs, MemoryStore(), ENV)
    assert report.output.same_result(expected)
    assert report.edges == [(0, 1), (1, 2), (2, 3)]
    runtime.executions = 0
    analyze_block(runtime, txs, MemoryStore(), ENV, cost=[1.0] * 4, timings=3)
    assert runtime.executions == 4  # given costs: nothing to time
