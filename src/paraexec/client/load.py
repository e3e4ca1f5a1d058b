"""``paraexec load``: drive a node over its API at a fixed rate and measure what it sustains.

Open loop toward inclusion: every ``tick`` seconds the generator signs as many transactions as
the target ``rate`` says are due (at most 1,000 a batch) and submits them in one ``submit_txs``
call (the node checks the batch's signatures in a helper process). It never waits for inclusion
before sending more, so a node that cannot include them shows it as a growing mempool, 429s
(``MEMPOOL_FULL``) and rising latency. It does wait for each ``submit_txs`` answer, and re-reads
the nonce of every wallet with a refused transaction (one call each), so a node slow to *admit*,
or a generator slow to sign (on the node's own cores), shows as fewer transactions submitted than
the rate asked for: compare ``submitted`` with rate x duration. ``processes`` > 1 (``run_load``)
runs that many generators side by side, each for its own share of the accounts (so no nonce is
shared) at its share of the rate, so one's wait for its answer does not hold the others back;
their reports merge into one (``LoadReport.merged``).

Inclusion is observed through the ``blocks`` WebSocket subscription (each notification lists
the block's transaction hashes): *inclusion latency* is the time from just before the submit
call to the arrival of the block notification that holds the transaction. A block can arrive
before the submit call's answer (different connections): its hashes are kept a while and matched
when the answer comes. After the drain, transactions that no notification listed (the node drops
notifications for a subscriber that reads too slowly) are looked up with ``get_tx``: committed
ones count as included (``included_unseen``), without a latency. *Sustained tx/s* is
the number of this run's transactions seen committed in notifications, divided by the time from
the first submission to the last such inclusion.

Nonces are tracked per account locally; a refused transaction hands its nonce back (the next
one of that account reuses it), and the account re-reads its nonce from the node.

Workloads (``TxSource``):

- ``transfers``: random transfers among the accounts of ``paraexec init``'s transfers genesis
  (keys ``"{seed}/account/{i}"``);
- ``perps``: the exchange dev genesis (keys ``exchange.genesis.dev_keys(seed_text)``): one
  oracle key moves every market's price by a small random walk each second; the first tenth of
  the traders are makers quoting GTC limit orders 5-60 bps around the oracle price (cancelling
  their oldest when they have too many); the rest are takers sending IOC orders 1% through the
  oracle price, so trades happen; markets are drawn Zipf-like (BTC busiest).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx2

from ..crypto import SigningKey
from .client import Client, RpcClientError, Subscription
from .wallet import Wallet


def wallet_of(key: SigningKey, chain_id: str) -> Wallet:
    """A wallet for an already derived key."""
    return Wallet.from_key(key, chain_id)


class TxSource(Protocol):
    wallets: list[Wallet]

    def next_tx(self, now: float) -> tuple[Wallet, bytes]:
        """The next transaction to send: (signer, wire bytes); consumes the signer's nonce."""
        ...

    def holds_funds(self, account: dict[str, Any]) -> bool:
        """Whether ``get_account``'s answer shows money the workload can spend."""
        ...


class TransfersSource:
    """Random transfers; part ``(k, n)`` sends from every n-th account from the k-th (to any)."""

    def __init__(
        self,
        client: Client,
        chain_id: str,
        accounts: int = 1000,
        seed: int = 0,
        rng_seed: int = 1,
        part: tuple[int, int] = (0, 1),
    ) -> None:
        k, n = part
        everyone = [wallet_of(SigningKey.from_seed_text(f"{seed}/account/{i}"), chain_id) for i in range(accounts)]
        if n > accounts:
            raise ValueError(f"--processes {n} needs --accounts >= {n}, not {accounts}")
        self.wallets = everyone[k::n]
        self.addresses = [w.address for w in everyone]
        self.rng = random.Random(rng_seed if n == 1 else f"{rng_seed}/{k}")

    def holds_funds(self, account: dict[str, Any]) -> bool:
        return int(account.get("balance") or 0) > 0

    def next_tx(self, now: float) -> tuple[Wallet, bytes]:
        src = self.rng.choice(self.wallets)
        return src, src.transfer(self.rng.choice(self.addresses), self.rng.randrange(1, 100))


class PerpsSource:
    """See module docstring (``perps``)."""

    MAX_LIVE = 6

    def __init__(
        self,
        client: Client,
        chain_id: str,
        accounts: int = 100,
        seed_text: str = "paraexec-dev",
        rng_seed: int = 1,
        part: tuple[int, int] = (0, 1),
        prices: list[int] | None = None,
    ) -> None:
        """Part ``(k, n)`` of ``n`` generators: every n-th maker and taker from the k-th; the
        oracle reporter in part 0 only. Every part walks the prices from the same ``prices``
        (read once by ``run_load``) with the same random steps at the same seconds of its run
        (``walk``, its own generator: the other choices draw from ``rng``), so its makers quote
        around the prices part 0 reports, to within the parts' start gap (~0.1 s)."""
        from ..exchange.genesis import dev_keys, oracle_keys
        from ..exchange.market import Market

        k, n = part
        self.rng = random.Random(rng_seed if n == 1 else f"{rng_seed}/{k}")
        self.walk = random.Random(f"{rng_seed}/oracle")
        markets = client.markets()
        self.markets = [Market.from_config(m["params"]) for m in markets]
        self.prices = list(prices) if prices is not None else [int(m["oracle_price"]) for m in markets]
        traders = [wallet_of(key, chain_id) for key in dev_keys(seed_text, accounts)]
        self.oracle = wallet_of(oracle_keys(seed_text)[0], chain_id)
        if accounts < 3:
            raise ValueError(f"perps needs --accounts >= 3 (makers and takers), not {accounts}")
        n_makers = max(2, accounts // 10)  # a tenth, at least 2
        if n > min(n_makers, accounts - n_makers):
            raise ValueError(
                f"--processes {n} needs {n} makers and {n} takers; --accounts {accounts} has {n_makers} makers "
                f"(a tenth, at least 2) and {accounts - n_makers} takers"
            )
        self.makers, self.takers = traders[:n_makers][k::n], traders[n_makers:][k::n]
        self.reports_oracle = k == 0
        self.wallets = [*([self.oracle] if self.reports_oracle else []), *self.makers, *self.takers]
        self.weights = [1 / (i + 1) for i in range(len(self.markets))]
        self.live: dict[tuple[int, int], deque[int]] = {}
        self.client_ids = int(time.time()) % 100_000 * 10_000  # fresh ids per run: old orders may still rest
        self.next_oracle = 0.0
        self.pending_oracle: deque[int] = deque()

    def holds_funds(self, account: dict[str, Any]) -> bool:
        """Bank money to deposit, or collateral already in subaccount 0."""
        sub = account.get("subaccount_0") or {}
        return int(account.get("bank") or 0) > 0 or int(sub.get("balance") or 0) > 0

    def next_tx(self, now: float) -> tuple[Wallet, bytes]:
        from ..exchange.payloads import BUY, IOC, SELL
        from ..workloads.exchange_setup import USDC, limit_subticks, quantums_for_notional

        if now >= self.next_oracle:
            # one step a second of the run, however late this call (after a stall, the missed
            # steps at once: every part then holds the same prices), one round of updates
            while now >= self.next_oracle:
                self.next_oracle += 1.0
                for mid in range(len(self.markets)):
                    step = self.walk.randrange(-1000, 1001)  # at most 0.1% a second
                    self.prices[mid] = max(1, self.prices[mid] * (1_000_000 + step) // 1_000_000)
            if self.reports_oracle:
                self.pending_oracle.extend(m for m in range(len(self.markets)) if m not in self.pending_oracle)
        if self.pending_oracle:
            mid = self.pending_oracle.popleft()
            return self.oracle, self.oracle.oracle_update(mid, self.prices[mid])
        mid = self.rng.choices(range(len(self.markets)), self.weights)[0]
        market, price = self.markets[mid], self.prices[mid]
        self.client_ids += 1
        if self.rng.random() < 0.5:
            index = self.rng.randrange(len(self.makers))
            maker = self.makers[index]
            live = self.live.setdefault((index, mid), deque())
            if len(live) >= self.MAX_LIVE:
                return maker, maker.cancel_order(mid, live.popleft())
            buy = self.rng.random() < 0.5
            offset = self.rng.randrange(5, 61) * 100 * (-1 if buy else 1)  # ppm from the oracle price
            quantums = quantums_for_notional(market, 2_000 * USDC, price)
            subticks = limit_subticks(market, price, offset, buy)
            live.append(self.client_ids)
            return maker, maker.place_order(mid, BUY if buy else SELL, quantums, subticks, client_id=self.client_ids)
        taker = self.rng.choice(self.takers)
        buy = self.rng.random() < 0.5
        quantums = quantums_for_notional(market, 500 * USDC, price)
        subticks = limit_subticks(market, price, 10_000 if buy else -10_000, not buy)
        return taker, taker.place_order(
            mid, BUY if buy else SELL, quantums, subticks, client_id=self.client_ids, time_in_force=IOC
        )


@dataclass
class LoadReport:
    workload: str
    rate: float
    duration_s: float
    submitted: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    included: int = 0
    failed_receipts: int = 0  # included with a failure receipt (e.g. a cancel of a filled order)
    #: included, but in no block notification this client received (``LoadRunner._ask_leftovers``)
    included_unseen: int = 0
    #: notifications the node dropped for this client's subscription (it read too slowly)
    dropped_notifications: int = 0
    blocks: int = 0
    span_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    #: ``time.monotonic()`` of the first submission and of the last inclusion seen (one clock
    #: for every process of a machine: ``merged`` spans parts run side by side)
    first_submit: float = 0.0
    last_inclusion: float = 0.0
    heights: set[int] = field(default_factory=set)  # of the blocks seen (``merged`` counts their union)

    @classmethod
    def merged(cls, parts: list[LoadReport], rate: float) -> LoadReport:
        """One report for generators run side by side against one node (``run_load``)."""
        report = cls(parts[0].workload, rate, parts[0].duration_s)
        for part in parts:
            report.submitted += part.submitted
            report.accepted += part.accepted
            report.rejected.update(part.rejected)
            report.included += part.included
            report.included_unseen += part.included_unseen
            report.dropped_notifications += part.dropped_notifications
            report.failed_receipts += part.failed_receipts
            report.heights |= part.heights
            report.latencies_ms += part.latencies_ms
        report.blocks = len(report.heights)  # each part sees the blocks of its own run
        report.first_submit = min(part.first_submit for part in parts)
        report.last_inclusion = max(part.last_inclusion for part in parts)
        report.span_s = max(0.0, report.last_inclusion - report.first_submit)
        return report

    @property
    def tx_per_s(self) -> float:
        """Inclusions seen in block notifications over their span: the ones found only after the
        drain (``included_unseen``) have no time, so they are left out (a conservative figure)."""
        seen = self.included - self.included_unseen
        return seen / self.span_s if self.span_s > 0 else 0.0

    @property
    def submitted_per_s(self) -> float:
        return self.submitted / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def fell_short(self) -> bool:
        """Whether the generator submitted under 90% of the target (module docstring: it waits
        for every ``submit_txs`` answer and signs on this machine's cores)."""
        return self.submitted < 0.9 * self.rate * self.duration_s

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile of inclusion latency (ms); 0 when nothing was included."""
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        rank = max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 100)) - 1))
        return ordered[rank]

    def summary(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "target_rate": self.rate,
            "duration_s": self.duration_s,
            "submitted": self.submitted,
            "accepted": self.accepted,
            "rejected": dict(self.rejected),
            "included": self.included,
            "included_unseen": self.included_unseen,
            "dropped_notifications": self.dropped_notifications,
            "failed_receipts": self.failed_receipts,
            "blocks": self.blocks,
            "submitted_tx_per_s": round(self.submitted_per_s, 1),
            "sustained_tx_per_s": round(self.tx_per_s, 1),
            "latency_ms": {q: round(self.percentile(q), 1) for q in (50, 90, 99)}
            | {"max": round(max(self.latencies_ms, default=0.0), 1)},
        }


class LoadRunner:
    """Runs one ``TxSource`` against a node (see module docstring)."""

    def __init__(
        self,
        url: str,
        source: TxSource,
        rate: float,
        duration: float,
        tick: float = 0.05,
        drain_s: float = 15.0,
        workload: str = "",
    ) -> None:
        self.url = url
        self.source = source
        self.rate = rate
        self.duration = duration
        self.tick = tick
        self.drain_s = drain_s
        self.report = LoadReport(workload, rate, duration)
        self._sent: dict[str, float] = {}  # tx hash -> submit time (monotonic)
        #: hashes a block notification listed before the answer of the submit call in flight was
        #: recorded (the block can come over the WebSocket before ``submit_txs`` answers over
        #: HTTP): hash -> (arrival, failed). Emptied after each answer: one call is in flight at a
        #: time, and no later transaction can be in a block before it is submitted.
        self._early: dict[str, tuple[float, bool]] = {}
        self._lock = threading.Lock()
        self._first = 0.0
        self._last_inclusion = 0.0
        self._stop = threading.Event()

    def run(self) -> LoadReport:
        client = Client(self.url, timeout=30)
        Wallet.sync_nonces(client, self.source.wallets)
        sub = client.subscribe("blocks")
        watcher = threading.Thread(target=self._watch, args=(sub,), daemon=True)
        watcher.start()
        try:
            self._drive(client)
            deadline = time.monotonic() + self.drain_s
            while time.monotonic() < deadline:
                with self._lock:
                    if not self._sent:
                        break
                time.sleep(0.05)
            self._stop.set()
            watcher.join(5)
            self.report.dropped_notifications = sub.dropped
            self._ask_leftovers(client)
        finally:
            self._stop.set()
            watcher.join(5)
            sub.close()
            client.close()
        self.report.first_submit, self.report.last_inclusion = self._first, self._last_inclusion
        self.report.span_s = max(0.0, self._last_inclusion - self._first)
        return self.report

    def _drive(self, client: Client) -> None:
        report = self.report
        start = time.monotonic()
        self._first = start
        generated = 0
        while (now := time.monotonic()) - start < self.duration:
            due = min(1000, int(self.rate * (now - start + self.tick)) - generated)
            if due > 0:
                batch = [self.source.next_tx(now - start) for _ in range(due)]
                generated += due
                sent_at = time.monotonic()
                try:
                    results = client.submit_many([raw for _, raw in batch])
                except RpcClientError as exc:  # the whole batch refused: counted once, by its code
                    results = [{"error": {"name": f"rpc {exc.code}"}} for _ in batch]
                report.submitted += len(batch)
                resync = set()
                with self._lock:
                    for (wallet, _raw), result in zip(batch, results, strict=True):
                        if "error" in result:
                            report.rejected[result["error"]["name"]] += 1
                            resync.add(id(wallet))
                        else:
                            report.accepted += 1
                            early = self._early.pop(result["hash"], None)
                            if early is None:
                                self._sent[result["hash"]] = sent_at
                            else:  # its block was seen before this answer came
                                self._count_inclusion(sent_at, *early)
                    self._early.clear()  # the rest: other senders' transactions
                refused = []
                for wallet, _ in batch:
                    if id(wallet) in resync:
                        resync.discard(id(wallet))
                        refused.append(wallet)
                if refused:
                    Wallet.sync_nonces(client, refused)
            pause = self.tick - (time.monotonic() - now)
            if pause > 0:
                time.sleep(pause)

    def _watch(self, sub: Subscription) -> None:
        while not self._stop.is_set():
            try:
                topic, block = sub.next_message(timeout=0.5)
            except TimeoutError:
                continue
            except Exception:  # socket closed at shutdown
                return
            arrived = time.monotonic()
            with self._lock:
                self.report.blocks += 1
                self.report.heights.add(block.get("height", -self.report.blocks))
                failed = set(block.get("failed", ()))
                for index, txh in enumerate(block.get("tx_hashes", [])):
                    sent_at = self._sent.pop(txh, None)
                    if sent_at is not None:
                        self._count_inclusion(sent_at, arrived, index in failed)
                    else:  # maybe ours, its submit answer not yet recorded (or another sender's)
                        self._early[txh] = (arrived, index in failed)

    def _count_inclusion(self, sent_at: float, arrived: float, failed: bool) -> None:
        """One of this run's transactions seen in a block (under ``_lock``)."""
        self.report.included += 1
        self.report.failed_receipts += failed
        self.report.latencies_ms.append(max(0.0, arrived - sent_at) * 1000)
        self._last_inclusion = max(self._last_inclusion, arrived)

    def _ask_leftovers(self, client: Client) -> None:
        """After the drain: ask the node where the accepted transactions no block notification
        listed are: the node drops notifications for a subscriber that reads too slowly
        (``dropped_notifications``), and a block may come after the watcher stopped. One committed
        all the same is counted (``included_unseen``), without a latency (its block's arrival is
        unknown), and outside the sustained tx/s."""
        with self._lock:
            left = list(self._sent)
        if not left:
            return
        try:
            answers = client.call_many([("get_tx", {"hash": h}) for h in left])
        except (httpx2.HTTPError, RpcClientError):  # the node is gone: they stay not included
            return
        with self._lock:
            for txh, answer in zip(left, answers, strict=True):
                if isinstance(answer, dict) and answer.get("status") == "committed":
                    if self._sent.pop(txh, None) is None:  # the watcher counted it meanwhile
                        continue
                    receipt = answer.get("receipt") or {}
                    self.report.included += 1
                    self.report.included_unseen += 1
                    self.report.failed_receipts += receipt.get("code", 0) != 0


def make_source(
    client: Client,
    workload: str,
    chain_id: str,
    accounts: int,
    seed: str,
    part: tuple[int, int],
    prices: list[int] | None = None,
) -> TxSource:
    """The workload's ``TxSource`` (part ``part`` of the accounts; perps: walking from
    ``prices``); ``ValueError`` for an unknown workload or too few accounts for the parts."""
    if workload == "perps":
        return PerpsSource(client, chain_id, accounts, seed, part=part, prices=prices)
    if workload == "transfers":
        return TransfersSource(client, chain_id, accounts, int(seed), part=part)
    raise ValueError(f"unknown workload {workload!r} (perps, transfers)")


@dataclass(frozen=True)
class Part:
    """What one generator process of ``run_load`` runs."""

    url: str
    workload: str
    chain_id: str
    accounts: int
    seed: str
    part: tuple[int, int]
    prices: list[int] | None
    rate: float
    duration: float
    drain: float


def _run_part(job: Part) -> LoadReport:
    """One generator process (module level: spawned processes import it). It ends with its
    parent: a load whose parent was killed (SIGTERM, SIGKILL) must not go on loading the node."""
    import multiprocessing as mp

    parent = mp.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()
    with Client(job.url) as client:
        source = make_source(client, job.workload, job.chain_id, job.accounts, job.seed, job.part, job.prices)
    return LoadRunner(job.url, source, job.rate, job.duration, drain_s=job.drain, workload=job.workload).run()


def _exit_with(sentinel: int) -> None:
    from multiprocessing.connection import wait

    wait([sentinel])
    os._exit(1)


def run_load(
    url: str,
    workload: str,
    chain_id: str,
    accounts: int,
    seed: str,
    rate: float,
    duration: float,
    drain: float,
    processes: int,
) -> LoadReport:
    """``rate`` tx/s for ``duration`` s from ``processes`` generator processes side by side, each
    signing and submitting for its own share of the accounts (no nonce is shared) at ``rate /
    processes``, so one's wait for its ``submit_txs`` answer does not hold the others back. The
    first part to fail (or an interrupt here) stops them all, and its exception goes on."""
    import multiprocessing as mp

    prices = None
    if workload == "perps":
        with Client(url) as client:
            prices = [int(m["oracle_price"]) for m in client.markets()]
    jobs = [
        Part(url, workload, chain_id, accounts, seed, (k, processes), prices, rate / processes, duration, drain)
        for k in range(processes)
    ]
    pool = mp.get_context("spawn").Pool(processes)
    try:
        parts = pool.map_async(_run_part, jobs, chunksize=1).get()  # raises at the first failure
    except BaseException:
        pool.terminate()
        raise
    else:
        pool.close()
    finally:
        pool.join()
    return LoadReport.merged(parts, rate)
