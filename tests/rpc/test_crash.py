"""Kill -9 the node under load, again and again: committed receipts survive, the chain continues,
and ``paraexec replay`` reproduces every root.

Each round: start the node, let a submitter thread flood it with transfers while the main thread
records every committed block (hash) and receipt it observes through the API, then SIGKILL the
node mid-load (often mid-block: blocks are small and frequent). After the restart every recorded
block hash and every recorded transaction (height, index, receipt) must read back the same.
"""

from __future__ import annotations

import threading
import time

from paraexec.client import Client, Wallet

from .nodeproc import CHAIN_ID, NodeProcess, cli, init_chain

ROUNDS = 10
#: Upper bound of each wait below: the waits end as soon as what they wait for holds.
DEADLINE = 120.0


class Submitter(threading.Thread):
    def __init__(self, url: str, wallets: list[Wallet]) -> None:
        super().__init__(daemon=True)
        self.client = Client(url, timeout=5)
        self.wallets = wallets
        self.stop = threading.Event()
        self.submitted = 0
        #: what ended the thread other than ``stop``: expected once the node is killed, a failure before
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                raws = []
                for w in self.wallets:
                    w.sync_nonce(self.client)
                    raws += [w.transfer(self.wallets[0].address, 1) for _ in range(4)]
                self.submitted += sum("error" not in r for r in self.client.submit_many(raws))
        except Exception as exc:
            # httpx2.HTTPError or OSError once the node is killed under us (that is the point);
            # anything before the kill fails the test (``is_alive``), which then shows it
            self.error = exc
        finally:
            self.client.close()


def observe(client: Client, seen: dict[int, str], receipts: dict[str, tuple[int, int, dict]], upto: int) -> None:
    for height in range(max(seen, default=0) + 1, upto + 1):
        block = client.block(height)
        seen[height] = block["hash"]
        for index, (txh, receipt) in enumerate(zip(block["tx_hashes"], client.receipts(height), strict=True)):
            receipts[txh] = (height, index, receipt)


def test_kill_9_under_load_ten_times(tmp_path):
    data = tmp_path / "chain"
    keys = init_chain(data, accounts=8)
    wallets = [Wallet.from_key(k, CHAIN_ID) for k in keys]
    seen: dict[int, str] = {}
    receipts: dict[str, tuple[int, int, dict]] = {}
    for round_ in range(ROUNDS):
        node = NodeProcess(data, block_time=0.05, max_block_txs=25).start()
        try:
            with Client(node.url) as client:
                # everything committed before the last crash is still there, unchanged
                height = client.height()
                assert height >= max(seen, default=0)
                for h, block_hash in seen.items():
                    if h % 7 == 0 or h == max(seen):
                        assert client.block(h)["hash"] == block_hash
                for txh, (h, index, receipt) in receipts.items():
                    answer = client.tx(txh)
                    assert (answer["status"], answer["height"], answer["index"]) == ("committed", h, index)
                    assert answer["receipt"] == receipt
                before = len(receipts)
                submitter = Submitter(node.url, wallets)
                submitter.start()
                deadline = time.monotonic() + DEADLINE
                while (
                    len(receipts) < before + 30 + 5 * round_ or not submitter.submitted
                ) and time.monotonic() < deadline:
                    assert submitter.is_alive(), f"the submitter died before the kill: {submitter.error!r}"
                    observe(client, seen, receipts, client.height())
                    time.sleep(0.02)
                assert submitter.is_alive(), f"the submitter died before the kill: {submitter.error!r}"
                assert submitter.submitted > 0, "the node admitted nothing"
                assert len(receipts) >= before + 30, "the node committed nothing under load"
                time.sleep(0.013 * round_)  # vary where in the block loop the kill lands
        finally:
            node.kill()  # SIGKILL
        submitter.stop.set()
        submitter.join(10)
    assert sum(r[2]["ok"] for r in receipts.values()) > 200
    with (
        NodeProcess(data, block_time=0.05) as node,
        Client(node.url) as client,
    ):  # the chain continues after the last kill
        height = client.height()
        assert height >= max(seen)
        for h in (max(seen), *(h for h in seen if h % 5 == 0)):
            assert client.block(h)["hash"] == seen[h]
        deadline = time.monotonic() + DEADLINE
        while client.height() <= height and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.height() > height
        node.stop()
    cli(["replay", "--data", str(data)])  # raises on any root or receipt mismatch
