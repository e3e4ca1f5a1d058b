"""The sequential executor on hand-checked blocks (it is the spec: test it directly)."""

from paraexec import codec
from paraexec.execution import BlockEnv, SequentialExecutor
from paraexec.execution.synthetic import DELTA, FAIL_IF, INDIRECT, READ, WRITE, SyntheticRuntime, encode_tx, key_of
from paraexec.state import MemoryStore, commitment

ENV = BlockEnv(1, 1)


def run(txs, state=None):
    state = state or MemoryStore()
    return SequentialExecutor().execute_block(SyntheticRuntime(10), txs, state, ENV)


def test_later_transaction_sees_earlier_write():
    out = run([encode_tx([(WRITE, 1, 5)]), encode_tx([(READ, 1, 0), (WRITE, 2, 0)])])
    assert codec.decode_int(out.write_set[key_of(1)]) == 5
    assert codec.decode_int(out.write_set[key_of(2)]) == 5
    assert [r.ok for r in out.receipts] == [True, True]


def test_deltas_sum_without_reads_and_resolve_on_read():
    out = run([encode_tx([(DELTA, 3, 2)]), encode_tx([(DELTA, 3, 5)]), encode_tx([(READ, 3, 0), (WRITE, 4, 0)])])
    assert codec.decode_int(out.write_set[key_of(3)]) == 7
    assert codec.decode_int(out.write_set[key_of(4)]) == 7


def test_business_failure_rolls_back_only_that_transaction():
    # key 5 reads 0, 0 % 3 == 0 -> the second transaction fails after writing key 6
    out = run([encode_tx([(WRITE, 7, 1)]), encode_tx([(WRITE, 6, 9), (FAIL_IF, 5, 3)])])
    assert out.receipts[1].code == 100 and not out.receipts[1].ok
    assert key_of(6) not in out.write_set
    assert key_of(7) in out.write_set


def test_indirect_write_targets_key_named_by_value():
    out = run([encode_tx([(WRITE, 0, 3)]), encode_tx([(INDIRECT, 0, 1)])])
    assert codec.decode_int(out.write_set[key_of(3)]) == 1


def test_root_matches_accumulating_final_state():
    store = MemoryStore()
    out = run([encode_tx([(WRITE, 1, 5), (WRITE, 2, 6)])], store)
    expected = commitment.accumulate((k, v) for k, v in out.write_set.items() if v is not None)
    assert out.accumulator == expected
    assert out.state_root == commitment.root_of(expected)


def test_malformed_synthetic_transaction_gets_failure_receipt():
    out = run([b"\xc1garbage"])
    assert out.receipts[0].code == 2
    assert out.write_set == {}
