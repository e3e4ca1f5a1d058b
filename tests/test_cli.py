"""The CLI refuses bad input cleanly and round-trips a small chain (run -> replay -> inspect)."""

from __future__ import annotations

import os

import lmdb
from typer.testing import CliRunner

from paraexec.cli import app

runner = CliRunner()


def text(result) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def error_text(result) -> str:
    """A refusal's message, which goes to stderr (stdout stays for results)."""
    return " ".join(result.stderr.split())


def test_unknown_executor_or_workload_exits_2_without_creating_a_store(tmp_path):
    data = tmp_path / "chain"
    for args in (
        ["run", "--data", str(data), "--executor", "nope"],
        ["run", "--data", str(data), "--workload", "nope"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "unknown" in error_text(result)
    assert not data.exists()


def test_bad_files_stores_and_arguments_get_a_message_not_a_traceback(tmp_path):
    """Each case exits with its code and a message naming the problem; none raises out of the
    command, and a refused ``init`` or ``run`` leaves no store behind."""
    genesis = {
        "unknown-app.json": '{"chain_id": "x", "app": "nope", "app_config": {}}',
        "not-an-object.json": "[1]",
        "bad-json.json": "{bad",
        "missing-fields.json": '{"chain_id": "x"}',
        # types are checked before anything is written (a string time made an unreadable block 0)
        "time-as-string.json": '{"chain_id": "x", "app": "transfers", "app_config": {}, "genesis_time": "0"}',
        "time-as-bool.json": '{"chain_id": "x", "app": "transfers", "app_config": {}, "genesis_time": true}',
        "time-fractional.json": '{"chain_id": "x", "app": "transfers", "app_config": {}, "genesis_time": 1.5}',
        "chain-id-number.json": '{"chain_id": 7, "app": "transfers", "app_config": {}}',
        "config-a-list.json": '{"chain_id": "x", "app": "transfers", "app_config": []}',
        # the exchange's clocks (oracle, funding) start at its own genesis time: it must be the chain's
        "exchange-clock-apart.json": '{"chain_id": "x", "app": "exchange", "app_config": {}, "genesis_time": 1700000000}',
    }
    for name, body in genesis.items():
        (tmp_path / name).write_text(body)
    (tmp_path / "a-file").write_text("")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "data.mdb").write_text("not lmdb")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "data.mdb").write_bytes(b"")
    foreign = tmp_path / "foreign"  # another program's LMDB, copied without its lock file
    env = lmdb.open(str(foreign), max_dbs=2)
    with env.begin(write=True, db=env.open_db(b"theirs")) as txn:
        txn.put(b"k", b"v")
    env.close()
    (foreign / "lock.mdb").unlink()
    chain = str(tmp_path / "chain")
    assert runner.invoke(app, ["init", "--data", chain]).exit_code == 0
    cases = [
        *[(["init", "--genesis", str(tmp_path / name)], 2, "genesis") for name in [*genesis, "missing.json"]],
        (["init", "--data", str(tmp_path / "a-file")], 1, "cannot open the chain store"),
        (["init", "--genesis", str(tmp_path / "missing.json"), "--accounts", "500"], 2, "a --genesis file says"),
        (["init", "--markets", "0"], 2, "'--markets'"),
        (["inspect", "--data", str(tmp_path / "nowhere")], 1, "holds no chain"),
        (["replay", "--data", str(empty)], 1, "holds no chain"),
        (["replay", "--data", str(corrupt)], 1, "cannot open the chain store"),
        (["inspect", "--data", str(foreign)], 1, "cannot open the chain store"),
        (["replay", "--data", str(foreign)], 1, "cannot open the chain store"),
        (["inspect", "--data", chain, "--height", "99"], 1, "no block at height 99"),
        (["inspect", "--data", chain, "--height", "-1"], 1, "no block at height -1"),
        (["inspect", "--data", chain, "--account", "zz"], 2, "not hex"),
        (["inspect", "--data", chain, "--account", " " + "ab" * 32], 2, "not hex"),
        (["inspect", "--data", chain, "--account", "00"], 2, "32-byte public key"),
        (["run", "--workload", "perps", "--markets", "100000"], 2, "outside 0..65535"),
        (["run", "--workload", "hotspot", "--hot-ratio", "5"], 2, "hot_ratio"),
        (["run", "--workload", "replay", "--data-file", str(tmp_path)], 2, "not found"),
        # counts and times a command would spend minutes on, or overflow a timer with
        (["run", "--executor", "parallel", "--workers", "100000"], 2, "'--workers'"),
        (["node", "--block-time", "1e12"], 2, "'--block-time'"),
        (["run", "--workload", "perps", "--shock-at", "-3"], 2, "'--shock-at'"),
        (["run", "--accounts", "1000000000"], 2, "'--accounts'"),
        (["node", "--block-time", "nan"], 2, "'--block-time'"),  # nan fails the bounds' check too
        (["load", "--rpc", "127.0.0.1:9", "--duration", "nan"], 2, "'--duration'"),
        (["load", "--rpc", "127.0.0.1:9", "--accounts", "-3"], 2, "'--accounts'"),
        (["load", "--rpc", "127.0.0.1:9", "--rate", "inf"], 2, "'--rate'"),
    ]
    for args, code, message in cases:
        if "--data" not in args and args[0] != "load":  # load talks to a node, it has no store
            args = [*args, "--data", str(tmp_path / "refused")]
        result = runner.invoke(app, args)
        assert result.exit_code == code and message in error_text(result), (args, result.output, result.exception)
        assert isinstance(result.exception, SystemExit), (args, result.exception)
    assert not (tmp_path / "refused").exists()
    assert sorted(os.listdir(foreign)) == ["data.mdb"]  # a read-only command wrote nothing there


def test_inspect_shows_a_dev_traders_bank_and_subaccount(tmp_path):
    from paraexec.client import Wallet
    from paraexec.exchange.genesis import DEV_BANK_BALANCE

    data = str(tmp_path / "chain")
    assert runner.invoke(app, ["init", "--data", data]).exit_code == 0
    result = runner.invoke(app, ["inspect", "--data", data, "--account", Wallet.dev(0).address.hex()])
    assert result.exit_code == 0 and f"bank={DEV_BANK_BALANCE} nonce=0" in text(result), result.output
    assert '"positions": []' in result.output
    assert "failed" not in result.output  # the account alone, not the blocks' table after it


def test_init_sizes_the_dev_chain(tmp_path):
    """`init --accounts/--markets`: the traders a load test above the default 100 needs are
    funded, and only those; the markets are there for `load` to quote."""
    from paraexec.client import Wallet
    from paraexec.exchange.genesis import DEV_BANK_BALANCE

    data = str(tmp_path / "chain")
    assert runner.invoke(app, ["init", "--data", data, "--accounts", "150", "--markets", "6"]).exit_code == 0
    for index, funded in [(149, True), (150, False)]:
        result = runner.invoke(app, ["inspect", "--data", data, "--account", Wallet.dev(index).address.hex()])
        assert result.exit_code == 0 and (f"bank={DEV_BANK_BALANCE} nonce=0" in text(result)) == funded, result.output
    from paraexec.chain import Chain
    from paraexec.state import LmdbStore

    store = LmdbStore(data)
    try:
        markets = Chain.open(store).config.app_config["markets"]
    finally:
        store.close()
    assert [m["id"] for m in markets] == list(range(6))


def test_run_on_another_chain_says_what_to_change(tmp_path):
    dev = str(tmp_path / "dev")
    assert runner.invoke(app, ["init", "--data", dev]).exit_code == 0
    for workload in ("transfers", "perps"):  # perps: the same chain id and app as the dev chain, another genesis
        args = ["run", "--data", dev, "--workload", workload, "--accounts", "10", "--block-size", "5", "--blocks", "1"]
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and f"than this {workload} workload's" in error_text(result)
        assert "makes its own chain, so use a fresh --data" in error_text(result)
    own = str(tmp_path / "own")
    args = ["run", "--data", own, "--block-size", "5", "--blocks", "1"]
    assert runner.invoke(app, [*args, "--accounts", "10"]).exit_code == 0
    result = runner.invoke(app, [*args, "--accounts", "12"])
    assert result.exit_code == 1 and "the options of the `run` that made it" in error_text(result)


def test_run_replay_inspect_round_trip(tmp_path, monkeypatch):
    import paraexec.cli as climod

    data = str(tmp_path / "chain")
    monkeypatch.setattr(climod, "SLOW_ACCOUNTS", 10)  # as --accounts 50,000 would: the wait is announced
    result = runner.invoke(app, ["run", "--data", data, "--accounts", "10", "--block-size", "20", "--blocks", "2"])
    assert result.exit_code == 0, result.output
    assert "deriving 10 account keys" in text(result)
    monkeypatch.setattr(climod, "SLOW_ACCOUNTS", 12)  # below it, nothing is said
    result = runner.invoke(app, ["replay", "--data", data])
    assert result.exit_code == 0 and "every root and receipt matches" in text(result)
    result = runner.invoke(app, ["inspect", "--data", data, "--height", "2"])
    assert result.exit_code == 0 and "txs=20" in text(result) and "more receipts" not in text(result)
    result = runner.invoke(app, ["inspect", "--data", data, "--height", "2", "--receipts", "5"])
    assert result.exit_code == 0 and "15 more receipts (--receipts 0: all)" in text(result)
    result = runner.invoke(app, ["inspect", "--data", data])  # the last blocks
    assert result.exit_code == 0 and "height" in text(result) and "failed" in text(result)
    # a different workload on the same store is refused, not mixed in
    result = runner.invoke(app, ["run", "--data", data, "--accounts", "11", "--blocks", "1"])
    assert result.exit_code == 1 and "than this transfers workload's" in text(result) and "deriving" not in text(result)


def test_replay_reports_a_chain_that_does_not_verify(tmp_path, monkeypatch):
    """A mismatch is what replay exists to find: one line and exit 1, not a traceback."""
    from paraexec.chain import Chain, ReplayMismatch

    data = str(tmp_path / "chain")
    assert (
        runner.invoke(app, ["run", "--data", data, "--accounts", "10", "--block-size", "20", "--blocks", "2"]).exit_code
        == 0
    )
    replay = Chain.replay

    def lying(self, executor, scratch=None):
        for k, item in enumerate(replay(self, executor, scratch)):
            if k == 1:
                raise ReplayMismatch("block 2: root 00 != stored")
            yield item

    monkeypatch.setattr(Chain, "replay", lying)
    result = runner.invoke(app, ["replay", "--data", data])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "does not verify: block 2: root 00 != stored (1 blocks verified before it)" in error_text(result)


def test_run_announces_each_next_block_and_continues_a_chain(tmp_path, monkeypatch):
    """``run`` produces every block knowing the next one (the last knows none), the same blocks
    as without the announcement; a second ``run`` on the store continues its nonces."""
    from paraexec.chain import Chain

    seen: list[tuple[list[bytes], list[bytes] | None]] = []
    produce = Chain.produce_block

    def recording(self, txs, time, executor, upcoming=None):
        seen.append((list(txs), None if upcoming is None else list(upcoming)))
        return produce(self, txs, time, executor, upcoming)

    monkeypatch.setattr(Chain, "produce_block", recording)
    data = str(tmp_path / "chain")
    args = ["run", "--data", data, "--accounts", "10", "--block-size", "20", "--blocks", "3"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert [u for _, u in seen] == [seen[1][0], seen[2][0], None]
    second = runner.invoke(app, [*args[:-1], "2"])  # nonces continue from the chain
    assert second.exit_code == 0 and len(seen) == 5
    lines = [line.split() for r in (first, second) for line in r.output.splitlines()]
    rows = [
        row for row in lines if len(row) == 8 and row[0].isdigit() and row[1].isdigit()
    ]  # height txs ok system s tx/s re-exec root
    assert [row[0] for row in rows] == ["1", "2", "3", "4", "5"]
    assert all(row[1] == row[2] == "20" and row[3] == "0" for row in rows)  # every transfer valid: nonces right
    result = runner.invoke(app, ["replay", "--data", data])
    assert result.exit_code == 0 and "every root and receipt matches" in text(result)


def test_run_refuses_a_directory_another_producer_holds_and_follows_a_nodes_clock(tmp_path, monkeypatch):
    """One producer per directory (``run`` takes the node's lock); on a chain a node extended
    with wall-clock block times, ``run`` stamps its blocks no earlier than their parent."""
    import time

    import paraexec.cli as climod
    from paraexec.chain import Chain
    from paraexec.chain.node import lock_data_dir
    from paraexec.execution.sequential import SequentialExecutor
    from paraexec.state import LmdbStore

    data = tmp_path / "chain"
    args = ["run", "--data", str(data), "--accounts", "10", "--block-size", "20", "--blocks", "1"]
    assert runner.invoke(app, args).exit_code == 0
    held = lock_data_dir(data)
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "another producer" in error_text(result)
    monkeypatch.setattr(climod, "SLOW_ACCOUNTS", 10)  # refused before the keys' derivation is announced
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "another producer" in error_text(result) and "deriving" not in result.output
    held.close()
    store = LmdbStore(data)  # a node's block: wall-clock time, far after the workload's clock
    chain = Chain.open(store)
    now = int(time.time())
    chain.produce_block([], now, SequentialExecutor())
    store.close()
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    store = LmdbStore(data)
    assert Chain.open(store).block(3).header.time == now
    store.close()


def test_bench_commit_writes_its_measurement_as_json(tmp_path):
    import json

    out = tmp_path / "commit.json"
    args = ["bench-commit", "--state-keys", "2000", "--block-txs", "200", "--repeat", "1", "--json", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["state_keys"] == 2000 and record["processes"] == 2 and record["written_keys"] > 0
    assert record["commit_us_per_key"] > 0 and record["total_us_per_key_np"] > 0 and record["machine"]["cpu_count"]
    refused = runner.invoke(app, [*args[:-1], str(tmp_path)])  # a directory: refused before measuring
    assert refused.exit_code == 2 and "cannot write" in error_text(refused)


def test_run_on_a_broken_recording_fails_before_the_store_or_says_what_it_committed(tmp_path):
    """A file that is not a recording is refused before anything is created (its first event is
    read up front); one cut short mid-run stops the run with a message naming the file and what
    this run committed before the break."""
    import gzip

    garbage = tmp_path / "garbage.gz"
    garbage.write_bytes(bytes(range(256)) * 20)
    empty = tmp_path / "empty.gz"
    empty.write_bytes(gzip.compress(b""))
    for recording, message in ((garbage, "not a complete gzip recording"), (empty, "holds no events")):
        data = tmp_path / f"chain-{recording.stem}"
        args = ["run", "--data", str(data), "--workload", "replay", "--data-file", str(recording), "--blocks", "1"]
        result = runner.invoke(app, [*args, "--accounts", "10", "--block-size", "5"])  # deposits only
        assert result.exit_code == 2 and message in error_text(result), result.output
        assert not data.exists()
    trade = '1 {"stream": "x", "data": {"e": "trade", "p": "100.5", "q": "0.002", "m": true}}\n'
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(trade.encode() * 20_000)[:400])  # a few hundred trades, then cut
    args = ["run", "--data", str(tmp_path / "chain"), "--workload", "replay", "--data-file", str(cut)]
    result = runner.invoke(app, [*args, "--accounts", "10", "--block-size", "100", "--blocks", "50"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    text = error_text(result)
    assert "cut.gz: not a complete gzip recording" in text and "blocks of this run committed before it" in text
    committed = int(text.split("(")[-1].split(" blocks of this run")[0])
    assert committed >= 1 and f"the chain is at height {committed}" in text
