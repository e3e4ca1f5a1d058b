"""Bad input: every rejection code is exercised, and none changes state beyond the rules."""

from __future__ import annotations

import msgspec
import pytest

from paraexec import codec, errors
from paraexec.execution import SequentialExecutor
from paraexec.execution.runtime import nonce_key
from paraexec.transaction import (
    MAX_TX_BYTES,
    SIGN_DOMAIN,
    Payload,
    SignedTransaction,
    Transaction,
    encode_payload,
    sign,
)

from .helpers import ALICE, BOB, CHAIN_ID, balance, mint, transfer, transfers_chain


def produce(chain, txs):
    block, output = chain.produce_block(txs, chain.height + 1, SequentialExecutor())
    return output


def tamper_signature(raw: bytes) -> bytes:
    signed = codec.decode(raw, SignedTransaction)
    bad = bytes([signed.signature[0] ^ 1]) + signed.signature[1:]
    return codec.encode(SignedTransaction(signed.body, bad))


def unsigned_with_payload(payload: bytes) -> bytes:
    return sign(ALICE, CHAIN_ID, 0, payload)


def padded_envelope(raw: bytes) -> bytes:
    """A valid transaction's envelope with a trailing field (its signature still verifies)."""
    signed = codec.decode(raw, SignedTransaction)
    return codec.encode([signed.body, signed.signature, 0])


def widened_envelope(raw: bytes) -> bytes:
    """The same envelope with its body as msgpack bin16 instead of bin8: same values, other bytes."""
    signed = codec.decode(raw, SignedTransaction)
    sig = signed.signature
    return b"\x92\xc5" + len(signed.body).to_bytes(2, "big") + signed.body + b"\xc4" + bytes([len(sig)]) + sig


def padded_body() -> bytes:
    """A transfer whose signed body carries a sixth field after the access list: the sender's
    own bytes, but not a transaction's shape."""
    payload = codec.encode(Payload("Transfer", msgspec.Raw(codec.encode([BOB.public_key, 1]))))
    body = codec.encode((CHAIN_ID, ALICE.public_key, 0, payload, None, 7))
    return codec.encode(SignedTransaction(body, ALICE.sign(SIGN_DOMAIN + body)))


def chain_id_not_utf8() -> bytes:
    """A transaction whose chain id is a MessagePack string that is not UTF-8 (msgspec raises
    ``UnicodeDecodeError`` for it, not a ``DecodeError``)."""
    body = bytearray(codec.decode(transfer(ALICE, 0, BOB.public_key, 1), SignedTransaction).body)
    body[body.find(CHAIN_ID.encode())] = 0xCE
    return codec.encode(SignedTransaction(bytes(body), bytes(64)))


def deep_payload(depth: int) -> bytes:
    """A payload envelope whose body nests ``depth`` arrays: 1,500 levels fit the payload limit
    and make msgspec's recursive skip of the ``Raw`` body raise ``RecursionError``."""
    return codec.encode(Payload("Transfer", msgspec.Raw(b"\x91" * depth + b"\x00")))


STATELESS_CASES = {
    "chain id not UTF-8": (chain_id_not_utf8(), errors.MalformedTransaction),
    "malformed": (b"\x92\xc4\x01", errors.MalformedTransaction),
    "not msgpack": (b"\xc1\xc1\xc1", errors.MalformedTransaction),
    "oversize": (b"\x92" + b"\x00" * MAX_TX_BYTES, errors.OversizeTransaction),
    "bad signature": (tamper_signature(transfer(ALICE, 0, BOB.public_key, 1)), errors.BadSignature),
    "wrong chain id": (transfer(ALICE, 0, BOB.public_key, 1, chain_id="other-chain"), errors.WrongChainId),
    "unknown payload": (
        unsigned_with_payload(codec.encode(Payload("Nope", msgspec.Raw(codec.encode([1]))))),
        errors.UnknownPayloadType,
    ),
    "malformed payload": (
        unsigned_with_payload(codec.encode(Payload("Transfer", msgspec.Raw(codec.encode(["short", 1]))))),
        errors.MalformedTransaction,
    ),
    "payload not an envelope": (unsigned_with_payload(b"\x01"), errors.MalformedTransaction),
    "deeply nested payload": (unsigned_with_payload(deep_payload(1500)), errors.MalformedTransaction),
    "oversize payload": (unsigned_with_payload(b"\x00" * 3500), errors.OversizeTransaction),
    "padded body": (padded_body(), errors.MalformedTransaction),
    "padded payload": (
        unsigned_with_payload(codec.encode(Payload("Transfer", msgspec.Raw(codec.encode([BOB.public_key, 1, 0]))))),
        errors.MalformedTransaction,
    ),
    "padded envelope": (padded_envelope(transfer(ALICE, 0, BOB.public_key, 1)), errors.MalformedTransaction),
    "re-encoded envelope": (widened_envelope(transfer(ALICE, 0, BOB.public_key, 1)), errors.MalformedTransaction),
}


@pytest.mark.parametrize("name", sorted(STATELESS_CASES))
def test_stateless_rejections_change_nothing(name):
    raw, expected = STATELESS_CASES[name]
    chain = transfers_chain()
    root_before = chain.store.root
    output = produce(chain, [raw])
    assert output.receipts[0].code == expected.code, output.receipts[0]
    assert output.write_set == {}
    assert chain.store.root == root_before
    assert balance(chain, ALICE) == 1000


def test_replayed_and_gapped_nonces_are_refused_without_state_change():
    chain = transfers_chain()
    produce(chain, [transfer(ALICE, 0, BOB.public_key, 10)])
    root = chain.store.root
    output = produce(chain, [transfer(ALICE, 0, BOB.public_key, 10), transfer(ALICE, 5, BOB.public_key, 10)])
    assert [r.code for r in output.receipts] == [errors.ReplayedNonce.code, errors.NonceGap.code]
    assert output.write_set == {}
    assert chain.store.root == root
    assert balance(chain, ALICE) == 990


def test_same_transaction_twice_in_one_block_is_a_replay():
    chain = transfers_chain()
    raw = transfer(ALICE, 0, BOB.public_key, 10)
    output = produce(chain, [raw, raw])
    assert [r.code for r in output.receipts] == [0, errors.ReplayedNonce.code]
    assert balance(chain, ALICE) == 990 and balance(chain, BOB) == 510


@pytest.mark.parametrize(
    ("raw_factory", "code"),
    [
        (lambda: transfer(ALICE, 0, BOB.public_key, 5000), errors.InsufficientBalance.code),
        (lambda: transfer(ALICE, 0, BOB.public_key, 0), errors.InvalidAmount.code),
        (lambda: transfer(ALICE, 0, BOB.public_key, -3), errors.InvalidAmount.code),
        (lambda: mint(ALICE, 0, ALICE.public_key, 100), errors.Unauthorized.code),
    ],
)
def test_business_rejections_only_bump_the_nonce(raw_factory, code):
    chain = transfers_chain()
    output = produce(chain, [raw_factory()])
    assert output.receipts[0].code == code
    assert output.write_set == {nonce_key(ALICE.public_key): codec.encode_int(1)}
    assert balance(chain, ALICE) == 1000 and balance(chain, BOB) == 500


def test_minter_can_mint_and_transfers_move_balances():
    from .helpers import MINTER

    chain = transfers_chain()
    output = produce(chain, [mint(MINTER, 0, BOB.public_key, 7), transfer(BOB, 0, ALICE.public_key, 500)])
    assert all(r.ok for r in output.receipts)
    assert balance(chain, BOB) == 7 and balance(chain, ALICE) == 1500


def test_a_balance_beyond_64_bits_is_a_state_value_like_any_other():
    """State integers are unbounded (``codec.encode_int``): minting and transferring past 2**64
    commits (it used to kill the block, and the node's producer, with an OverflowError)."""
    from .helpers import MINTER

    chain = transfers_chain()
    top = 2**64 - 1
    output = produce(chain, [mint(MINTER, 0, BOB.public_key, top), mint(MINTER, 1, BOB.public_key, top)])
    assert all(r.ok for r in output.receipts)
    output = produce(chain, [transfer(BOB, 0, ALICE.public_key, top)])
    assert output.receipts[0].ok
    assert balance(chain, BOB) == 500 + top and balance(chain, ALICE) == 1000 + top


@pytest.mark.parametrize(
    "value", [0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 2**64, -(2**63) - 1, -(2**71), 2**71, 7 * 2**200, -(2**300)]
)
def test_integer_state_values_round_trip_canonically(value):
    data = codec.encode_int(value)
    assert codec.decode_int(data) == value
    if not -(2**63) <= value < 2**64:  # the fewest bytes that hold it, sign included (-2**71: 9)
        size = next(n for n in range(1, 64) if -(2 ** (8 * n - 1)) <= value < 2 ** (8 * n - 1))
        assert data == codec.encode(msgspec.msgpack.Ext(codec.BIG_INT_EXT, value.to_bytes(size, "big", signed=True)))
    if -(2**63) <= value < 2**64:
        assert data == codec.encode(value)  # MessagePack's own int: every existing state's bytes


def test_non_canonical_integer_encodings_are_refused():
    small_as_ext = codec.encode(msgspec.msgpack.Ext(codec.BIG_INT_EXT, (5).to_bytes(1, "big")))
    padded = codec.encode(msgspec.msgpack.Ext(codec.BIG_INT_EXT, (2**64).to_bytes(12, "big", signed=True)))
    other_ext = codec.encode(msgspec.msgpack.Ext(2, (2**64).to_bytes(9, "big", signed=True)))
    for data in (small_as_ext, padded, other_ext, codec.encode("12")):
        with pytest.raises(msgspec.ValidationError):
            codec.decode_int(data)


def test_error_codes_are_unique_and_stable():
    assert len(errors.ERROR_CODES) == 16
    assert errors.ERROR_CODES[4] == "BAD_SIGNATURE"
    assert errors.ERROR_CODES[6] == "REPLAYED_NONCE"


def test_a_relayed_envelope_keeps_its_id():
    """Only the canonical envelope is valid, so a transaction commits under the id its sender
    computed: a re-encoded copy decodes to the same signed body under another id."""
    from paraexec.transaction import decode_signed, tx_hash

    raw = transfer(ALICE, 0, BOB.public_key, 1)
    widened = widened_envelope(raw)
    assert codec.decode(widened, SignedTransaction) == codec.decode(raw, SignedTransaction)
    with pytest.raises(errors.MalformedTransaction, match="canonical"):
        decode_signed(widened, CHAIN_ID)
    with pytest.raises(errors.MalformedTransaction, match="at most length 2"):  # a trailing field
        decode_signed(padded_envelope(raw), CHAIN_ID)
    assert len({tx_hash(raw), tx_hash(widened), tx_hash(padded_envelope(raw))}) == 3
    assert decode_signed(raw, CHAIN_ID).nonce == 0


def test_signature_covers_the_body_bytes():
    raw = transfer(ALICE, 0, BOB.public_key, 1)
    signed = codec.decode(raw, SignedTransaction)
    tx = codec.decode(signed.body, Transaction)
    forged_body = codec.encode(Transaction(tx.chain_id, tx.sender, tx.nonce, encode_payload_amount(999)))
    forged = codec.encode(SignedTransaction(forged_body, signed.signature))
    chain = transfers_chain()
    assert produce(chain, [forged]).receipts[0].code == errors.BadSignature.code


def encode_payload_amount(amount: int) -> bytes:
    from paraexec.apps.transfers import Transfer

    return encode_payload(Transfer(BOB.public_key, amount))


def test_verify_many_matches_single_verification():
    from paraexec.crypto import verify_many
    from paraexec.transaction import signature_triple

    raws = [transfer(ALICE, i, BOB.public_key, 1) for i in range(100)]
    raws[17] = tamper_signature(raws[17])
    triples = [signature_triple(r) for r in raws]
    assert verify_many(triples, threads=2) == [i != 17 for i in range(100)]


def test_user_bytes_with_the_system_tag_never_enter_a_block():
    from paraexec.execution.runtime import SYSTEM_TAG

    chain = transfers_chain()
    block, output = chain.produce_block(
        [SYSTEM_TAG + b"anything", transfer(ALICE, 0, BOB.public_key, 1)], 1, SequentialExecutor()
    )
    assert len(block.txs) == 1 and output.receipts[0].ok


@pytest.mark.parametrize("depth", [40, 900, 1500])
def test_a_deeply_nested_payload_fails_alike_at_any_stack_depth(depth):
    """Where msgspec gives up on deep nesting depends on the caller's stack, and a receipt
    carries the failure's message: a value nested beyond ``codec.MAX_NESTING`` must fail with
    one message wherever it runs (a worker, a thread, a deeper call), or roots would differ."""
    from paraexec.apps.transfers import TransfersApp
    from paraexec.execution.runtime import ChainRuntime

    runtime = ChainRuntime(TransfersApp(), CHAIN_ID)
    raw = unsigned_with_payload(deep_payload(depth))

    def at_depth(frames: int):
        return runtime.prepare(raw) if frames == 0 else at_depth(frames - 1)

    shallow, deep = runtime.prepare(raw), at_depth(800)
    assert type(shallow.error) is type(deep.error) is errors.MalformedTransaction
    assert str(shallow.error) == str(deep.error)
    assert f"nested deeper than {codec.MAX_NESTING}" in str(shallow.error)


def test_nesting_depth_reads_messagepack_structure_not_bytes():
    """Array headers inside strings and binaries are not nesting; maps count; scans stop early."""
    assert codec.nesting_depth(codec.encode(0)) == 0
    assert codec.nesting_depth(codec.encode([b"\x91" * 100, "\x91" * 40])) == 1
    assert codec.nesting_depth(codec.encode({"a": [[1], {"b": []}]})) == 3
    assert codec.nesting_depth(codec.encode([[0] * 70_000, [[1]]])) == 3  # a wide (array32) list
    assert codec.nesting_depth(b"\x91" * 10_000, limit=5) == 6
    assert codec.nesting_depth(b"\x92\x91") == 2  # ends early: the depth seen so far
