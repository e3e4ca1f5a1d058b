"""Receipt code 9, VALUE_OUT_OF_RANGE: an application computing an integer its fixed-width
records cannot hold (MessagePack integers: -2**63 .. 2**64 - 1) fails that transaction, and
only that transaction, with everything it wrote rolled back except the nonce bump.

The exchange reaches it for real: bank balances are unbounded state integers
(``codec.encode_int``), but a subaccount's balance is a plain field of its msgspec record, so
a deposit that takes it past 2**64 - 1 raises ``OverflowError`` when the ledger flushes."""

from __future__ import annotations

from paraexec import codec
from paraexec.exchange import keys
from paraexec.exchange.payloads import Deposit
from paraexec.execution.contract import BlockEnv
from paraexec.execution.runtime import nonce_key
from paraexec.execution.sequential import OverlayContext

from .exchange.harness import ALICE, Harness, config

TOP = 2**64 - 1  # the largest balance a subaccount record holds
BANK = 2**70  # a bank balance beyond 64 bits (a state integer: encoded as a big-int extension)


def _harness() -> Harness:
    return Harness(config({ALICE: TOP - 10}, accounts={ALICE.public_key.hex(): BANK}))


def test_a_deposit_overflowing_the_subaccount_record_fails_with_code_9_and_is_rolled_back():
    """Depositing 20 into a subaccount holding 2**64 - 11 would make its balance 2**64 + 9: the
    record cannot encode it, so the transaction fails with VALUE_OUT_OF_RANGE (not a business
    error, not a crashed block), with no events, and the block's writes keep only its nonce
    bump: the bank debit it had already written is undone. The block goes on, and a deposit
    that fits (up to exactly 2**64 - 1) then succeeds."""
    h = _harness()
    sub_key = keys.subaccount(keys.subaccount_id(ALICE.public_key, 0))
    bank_key = keys.bank(ALICE.public_key)
    receipt = h.run(ALICE, Deposit(0, 20))
    assert receipt.code == 9, receipt
    assert receipt.error.startswith("VALUE_OUT_OF_RANGE")
    assert receipt.events == []
    writes = h.last_output.write_set
    assert writes[nonce_key(ALICE.public_key)] == codec.encode_int(1)
    assert bank_key not in writes and sub_key not in writes
    # the rest of the block's write set is the market tick's (market keys only)
    others = set(writes) - {nonce_key(ALICE.public_key)}
    assert all(k.startswith(keys.market_prefix(0)) for k in others), others
    assert h.get_int(bank_key) == BANK and h.balance(ALICE) == TOP - 10

    ok = h.run(ALICE, Deposit(0, 10))
    assert ok.ok, ok.error
    assert h.balance(ALICE) == TOP and h.get_int(bank_key) == BANK - 10


def test_the_overflowing_transaction_writes_only_its_nonce():
    """The same failure seen at the runtime: the transaction's own context ends with exactly
    one write, the nonce bump, no integer deltas and no events (``ctx.rollback`` to the mark
    taken before the application ran)."""
    h = _harness()
    runtime = h.chain.runtime
    ctx = OverlayContext(BlockEnv(h.chain.height + 1, 1), {}, h.chain.store)
    receipt = runtime.execute(runtime.prepare(h.tx(ALICE, Deposit(0, 20))), ctx)
    assert receipt.code == 9 and receipt.events == []
    assert ctx.writes == {nonce_key(ALICE.public_key): codec.encode_int(1)}
    assert ctx.deltas == {} and ctx.events == []
