"""The JSON-RPC methods: thin adapters from the node (mempool, chain reader) to JSON.

Reads run on API threads through ``ChainReader`` (one LMDB read transaction each, lock-free),
so no method ever waits for block production. Every byte string is hex. Ranges and sizes are
bounded (``MAX_*``) so one request cannot make the node do unbounded work.

Exchange methods (markets, books, subaccounts) call ``paraexec.exchange.queries`` with the
snapshot's ``get`` / ``items``; on another application they answer -32601-like "not available".
"""

from __future__ import annotations

import importlib
from collections import Counter, OrderedDict
from typing import Any

import msgspec

from .. import codec
from ..chain.node import BlockInfo, Node
from ..errors import InvalidTransaction, MalformedTransaction, OversizeTransaction
from ..transaction import MAX_TX_BYTES, tx_hash
from .jsonrpc import METHOD_NOT_FOUND, Registry, RpcError, invalid_params, jsonable, parse_hex

MAX_BATCH_TXS = 1000
MAX_EVENT_BLOCKS = 100
MAX_RECENT = 256
MAX_BOOK_DEPTH = 100


class NoParams(msgspec.Struct, forbid_unknown_fields=True):
    pass


class SubmitTx(msgspec.Struct, forbid_unknown_fields=True):
    tx: str


class SubmitTxs(msgspec.Struct, forbid_unknown_fields=True):
    txs: list[str]


class ByHash(msgspec.Struct, forbid_unknown_fields=True):
    hash: str


class ByAddress(msgspec.Struct, forbid_unknown_fields=True):
    address: str


class GetBlock(msgspec.Struct, forbid_unknown_fields=True):
    height: int | None = None  # None: latest
    txs: bool = False


class ByHeight(msgspec.Struct, forbid_unknown_fields=True):
    height: int


class GetEvents(msgspec.Struct, forbid_unknown_fields=True):
    from_height: int
    to_height: int | None = None
    name: str | None = None


class Recent(msgspec.Struct, forbid_unknown_fields=True):
    count: int = 50


class HotKeys(msgspec.Struct, forbid_unknown_fields=True):
    height: int | None = None
    top: int = 10
    blocks: int = 1


class GetBook(msgspec.Struct, forbid_unknown_fields=True):
    market_id: int
    depth: int = 20


class GetSubaccount(msgspec.Struct, forbid_unknown_fields=True):
    owner: str
    number: int = 0


class GetTrades(msgspec.Struct, forbid_unknown_fields=True):
    market_id: int | None = None
    count: int = 50


#: Event names that are trades (the exchange emits one per match).
FILL_EVENTS = frozenset({"Fill", "fill", "Trade", "trade", "OrderFill", "Match"})


def receipt_json(receipt: Any) -> dict[str, Any]:
    return {
        "ok": receipt.ok,
        "code": receipt.code,
        "error": receipt.error,
        "events": [{"name": e.name, "attrs": jsonable(e.attrs)} for e in receipt.events],
    }


def block_info_json(info: BlockInfo, with_hashes: bool = True) -> dict[str, Any]:
    out = {
        "height": info.height,
        "hash": info.hash.hex(),
        "time": info.time,
        "txs": info.txs,
        "user_txs": info.user_txs,
        "ok": info.ok,
        "exec_ms": None if info.seconds is None else round(info.seconds * 1000, 3),
        "commit_ms": None if info.commit_seconds is None else round(info.commit_seconds * 1000, 3),
        "speedup": None if info.speedup is None else round(info.speedup, 3),
        "re_executions": info.re_executions,
        "executor": info.executor,
        "workers": info.workers,
        "mempool": info.mempool_size,
        "produced_at": None if info.produced_at is None else round(info.produced_at, 3),
    }
    if with_hashes:
        out["tx_hashes"] = [h.hex() for h in info.tx_hashes]
        out["failed"] = info.failed
    return out


class Methods:
    """Builds the registry for one node. Keeps small caches (hot keys per block)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.reader = node.reader
        self.chain_config = node.chain_config
        self.runtime = node.chain.runtime
        self._hot_cache: OrderedDict[int, list[tuple[bytes, int]]] = OrderedDict()
        self._query_config: Any = None  # exchange.queries.QueryConfig, parsed at the first query
        self.registry = Registry()
        add = self.registry.add
        add("status", NoParams, self.status)
        add("error_codes", NoParams, self.error_codes)
        add("submit_tx", SubmitTx, self.submit_tx)
        add("submit_txs", SubmitTxs, self.submit_txs)
        add("get_tx", ByHash, self.get_tx)
        add("get_nonce", ByAddress, self.get_nonce)
        add("get_account", ByAddress, self.get_account)
        add("get_block", GetBlock, self.get_block)
        add("get_receipts", ByHeight, self.get_receipts)
        add("get_events", GetEvents, self.get_events)
        add("get_recent_blocks", Recent, self.get_recent_blocks)
        add("get_hot_keys", HotKeys, self.get_hot_keys)
        add("get_markets", NoParams, self.get_markets)
        add("get_book", GetBook, self.get_book)
        add("get_subaccount", GetSubaccount, self.get_subaccount)
        add("get_trades", GetTrades, self.get_trades)

    # -- node ------------------------------------------------------------------------------

    def status(self, _: NoParams) -> dict[str, Any]:
        """Chain id, application, height, root, mempool and executor settings."""
        node = self.node
        height = self.reader.height
        block = self.reader.block(height)
        cfg = node.config
        return {
            "chain_id": self.chain_config.chain_id,
            "app": self.chain_config.app,
            "height": height,
            "state_root": block.header.state_root.hex() if block else None,
            "block_time": cfg.block_time,
            "max_block_txs": cfg.max_block_txs,
            "executor": cfg.executor,
            "workers": cfg.workers,
            "mempool": {"txs": len(node.mempool), "bytes": node.mempool.size_bytes, "max_txs": cfg.mempool.max_txs},
            "producing": node.running,
            "error": repr(node.error) if node.error else None,
        }

    def error_codes(self, _: NoParams) -> dict[str, str]:
        """Every stable transaction error code and its name (core, mempool and the chain's app)."""
        codes: dict[int, str] = {}
        pending: list[type[InvalidTransaction]] = [InvalidTransaction]
        while pending:  # every subclass loaded in this process: the app's module imported its own
            cls = pending.pop()
            codes.setdefault(cls.code, cls.name)
            pending.extend(cls.__subclasses__())
        return {str(k): v for k, v in sorted(codes.items())}

    # -- transactions ----------------------------------------------------------------------

    def submit_tx(self, p: SubmitTx) -> dict[str, Any]:
        """Admit one signed transaction (hex wire bytes); returns its hash."""
        raw = self._raw_tx(p.tx)
        result = self.node.mempool.admit(raw)
        if result.error is not None:
            raise result.error
        return {"hash": result.hash.hex(), "known": result.known}

    def submit_txs(self, p: SubmitTxs) -> dict[str, Any]:
        """Admit a batch (signatures checked in parallel); one result per transaction, in order.
        An item that is not hex or too large gets its own error (``hash`` null), as a transaction
        the mempool refuses does: one bad item does not refuse the others. An item already
        pending answers ``"known": true`` beside its hash."""
        if len(p.txs) > MAX_BATCH_TXS:
            raise invalid_params(f"at most {MAX_BATCH_TXS} transactions per call")
        items: list[bytes | InvalidTransaction] = []
        for text in p.txs:
            try:
                items.append(self._raw_tx(text))
            except RpcError as exc:  # too large to read, or not hex: as a block would refuse it
                refused = OversizeTransaction if exc.code == OversizeTransaction.code else MalformedTransaction
                items.append(refused(exc.message))
        admitted = iter(self.node.mempool.admit_many([item for item in items if isinstance(item, bytes)]))
        results: list[dict[str, Any]] = []
        for item in items:
            txh: str | None
            error: InvalidTransaction | None
            known = False
            if isinstance(item, InvalidTransaction):
                txh, error = None, item
            else:
                r = next(admitted)
                txh, error, known = r.hash.hex(), r.error, r.known
            result: dict[str, Any] = {"hash": txh}
            if error is not None:
                result["error"] = {"code": error.code, "name": error.name, "message": error.message}
            elif known:  # already pending (this call or an earlier one), as submit_tx answers
                result["known"] = True
            results.append(result)
        return {"results": results}

    @staticmethod
    def _raw_tx(text: str) -> bytes:
        if len(text) > 2 * MAX_TX_BYTES + 2:
            raise RpcError(3, f"transaction larger than {MAX_TX_BYTES} bytes", {"name": "OVERSIZE"})
        return parse_hex(text, "tx")

    def get_tx(self, p: ByHash) -> dict[str, Any]:
        """Where a transaction is: committed (height, index, receipt), pending, or unknown.
        Only user transactions are indexed: the system transactions an application appends to a
        block (listed in ``get_block``'s ``tx_hashes`` after its ``user_txs``; the exchange's
        market ticks, the same bytes every block) answer unknown."""
        txh = parse_hex(p.hash, "hash", 32)
        found = self.reader.find_tx(txh)
        if found is not None:
            height, index = found
            receipts = self.reader.receipts(height) or []
            receipt = receipts[index] if index < len(receipts) else None
            return {
                "hash": txh.hex(),
                "status": "committed",
                "height": height,
                "index": index,
                "receipt": receipt_json(receipt) if receipt is not None else None,
            }
        if self.node.mempool.get(txh) is not None:
            return {"hash": txh.hex(), "status": "pending"}
        return {"hash": txh.hex(), "status": "unknown"}

    # -- state -----------------------------------------------------------------------------

    def get_nonce(self, p: ByAddress) -> dict[str, int]:
        """Committed nonce and next usable nonce (counting ready transactions in the mempool)."""
        address = parse_hex(p.address, "address", 32)
        return {"committed": self.reader.nonce_of(address), "next": self.node.mempool.pending_nonce(address)}

    def get_account(self, p: ByAddress) -> dict[str, Any]:
        """An account: nonce, and the application's view (balance; exchange subaccounts)."""
        address = parse_hex(p.address, "address", 32)
        out: dict[str, Any] = {"address": address.hex(), "nonce": self.reader.nonce_of(address)}
        if self.chain_config.app == "transfers":
            from ..apps.transfers import balance_key

            out["balance"] = codec.decode_int(self.reader.get(balance_key(address)))
        elif self.chain_config.app == "exchange":
            from ..exchange import keys as xkeys

            with self.reader.snapshot() as view:
                out["bank"] = codec.decode_int(view.get(xkeys.bank(address)))
                out["subaccount_0"] = jsonable(self._exchange(view).subaccount(address, 0))
        return out

    # -- blocks ----------------------------------------------------------------------------

    def get_block(self, p: GetBlock) -> dict[str, Any]:
        """A block header, its tx hashes (and wire txs when ``txs``); latest when no height."""
        height = self.reader.height if p.height is None else p.height
        block = self.reader.block(height) if height >= 0 else None
        if block is None:
            raise invalid_params(f"no block at height {height}")
        h = block.header
        out: dict[str, Any] = {
            "height": h.height,
            "hash": block.hash.hex(),
            "parent_hash": h.parent_hash.hex(),
            "time": h.time,
            "txs_root": h.txs_root.hex(),
            "state_root": h.state_root.hex(),
            "tx_hashes": [tx_hash(raw).hex() for raw in block.txs],
        }
        if p.txs:
            out["txs"] = [raw.hex() for raw in block.txs]
        return out

    def get_receipts(self, p: ByHeight) -> list[dict[str, Any]]:
        """The receipts of block ``height``, in block order."""
        receipts = self.reader.receipts(p.height) if p.height >= 0 else None
        if receipts is None:
            raise invalid_params(f"no block at height {p.height}")
        return [receipt_json(r) for r in receipts]

    def get_events(self, p: GetEvents) -> list[dict[str, Any]]:
        """Events of blocks ``from_height..to_height`` (at most 100 blocks), optionally by name."""
        top = self.reader.height
        end = p.to_height if p.to_height is not None else min(top, p.from_height + MAX_EVENT_BLOCKS - 1)
        if p.from_height < 0 or end - p.from_height >= MAX_EVENT_BLOCKS:
            raise invalid_params(f"from_height must be >= 0 and the range at most {MAX_EVENT_BLOCKS} blocks")
        end = min(end, top)
        out = []
        for height in range(p.from_height, end + 1):
            for index, receipt in enumerate(self.reader.receipts(height) or []):
                for event in receipt.events:
                    if p.name is None or event.name == p.name:
                        out.append(
                            {"height": height, "index": index, "name": event.name, "attrs": jsonable(event.attrs)}
                        )
        return out

    def get_recent_blocks(self, p: Recent) -> list[dict[str, Any]]:
        """The last ``count`` blocks (newest last) with the execution stats of this node's process.

        Blocks committed before the node (re)started come from the store, with the stats
        (``exec_ms``, ``commit_ms``, ``speedup``, ``re_executions``, ``executor``, ``workers``,
        ``mempool``) ``null``: they were measurements of the process that produced them.
        """
        if not 0 <= p.count <= MAX_RECENT:
            raise invalid_params(f"count must be in 0..{MAX_RECENT}")
        recent = list(self.node.recent)[-p.count :] if p.count else []
        return [block_info_json(info, with_hashes=False) for info in recent]

    def get_hot_keys(self, p: HotKeys) -> dict[str, Any]:
        """Keys touched by more than one transaction of a block (from the runtime's key hints),
        summed over the last ``blocks`` blocks up to ``height`` (default: the latest).

        Two transactions that hint the same key may conflict; the hottest keys are where a
        parallel executor pays re-executions or serialisation.
        """
        if not 1 <= p.top <= 100 or not 1 <= p.blocks <= 50:
            raise invalid_params("top must be in 1..100 and blocks in 1..50")
        height = self.reader.height if p.height is None else p.height
        if not 0 <= height <= self.reader.height:
            raise invalid_params(f"no block at height {height}")
        total: Counter[bytes] = Counter()
        for h in range(max(0, height - p.blocks + 1), height + 1):
            total.update(dict(self._block_hot_keys(h)))
        return {
            "height": height,
            "blocks": p.blocks,
            "keys": [{"key": _key_label(k), "txs": n} for k, n in total.most_common(p.top)],
        }

    def _block_hot_keys(self, height: int) -> list[tuple[bytes, int]]:
        counts = self._hot_cache.get(height)
        if counts is None:
            block = self.reader.block(height)
            counter: Counter[bytes] = Counter()
            for raw in block.txs if block is not None else []:
                counter.update(set(self.runtime.hint_keys(self.runtime.prepare(raw))))
            counts = [(k, n) for k, n in counter.most_common(100) if n > 1]
            self._hot_cache[height] = counts
            while len(self._hot_cache) > 256:
                self._hot_cache.popitem(last=False)
        return counts

    # -- exchange --------------------------------------------------------------------------

    def _exchange(self, view: Any) -> Any:
        """An ``exchange.queries.StateReader`` over one snapshot (exchange chains only)."""
        if self.chain_config.app != "exchange":
            raise RpcError(METHOD_NOT_FOUND, f"not available: the chain runs the {self.chain_config.app!r} app")
        queries = importlib.import_module("paraexec.exchange.queries")
        if self._query_config is None:  # parsed once: the config never changes
            self._query_config = queries.QueryConfig(self.chain_config.app_config)
        return queries.StateReader(view.get, view.items, self._query_config, view.height)

    def get_markets(self, _: NoParams) -> list[dict[str, Any]]:
        """Every market: parameters, oracle price, funding, open interest."""
        with self.reader.snapshot() as view:
            reader = self._exchange(view)
            return [
                {"market_id": mid, "ticker": reader.markets[mid].ticker, **jsonable(reader.market(mid))}
                for mid in sorted(reader.markets)
            ]

    def get_book(self, p: GetBook) -> dict[str, Any]:
        """Order book depth of one market: ``[subticks, quantums, orders]`` levels, best first."""
        if not 1 <= p.depth <= MAX_BOOK_DEPTH:
            raise invalid_params(f"depth must be in 1..{MAX_BOOK_DEPTH}")
        with self.reader.snapshot() as view:
            reader = self._exchange(view)
            if p.market_id not in reader.markets:
                raise invalid_params(f"no market {p.market_id}")
            return {"market_id": p.market_id, **jsonable(reader.book(p.market_id, p.depth))}

    def get_subaccount(self, p: GetSubaccount) -> dict[str, Any]:
        """A subaccount: balance, positions, TNC/IMR/MMR, liquidation price per position."""
        owner = parse_hex(p.owner, "owner", 32)
        if not 0 <= p.number <= 127:
            raise invalid_params("number must be in 0..127")
        with self.reader.snapshot() as view:
            return dict(jsonable(self._exchange(view).subaccount(owner, p.number)))

    def get_trades(self, p: GetTrades) -> list[dict[str, Any]]:
        """The latest fills of the recent blocks (newest last; see ``get_recent_blocks``)."""
        if not 1 <= p.count <= 500:
            raise invalid_params("count must be in 1..500")
        return recent_trades(self.node, p.market_id, p.count)


def recent_trades(node: Node, market_id: int | None, count: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for info in reversed(list(node.recent)):
        for index, name, attrs in reversed(info.events):
            if name in FILL_EVENTS and (market_id is None or market_of(attrs) == market_id):
                out.append({"height": info.height, "time": info.time, "index": index, **jsonable(attrs)})
                if len(out) >= count:
                    return out[::-1]
    return out[::-1]


def market_of(attrs: dict[str, Any]) -> int | None:
    """The market an event is about (the exchange names the attribute ``market``)."""
    market = attrs.get("market", attrs.get("market_id"))
    return market if isinstance(market, int) else None


def _key_label(key: bytes) -> str:
    """A readable label: the printable prefix up to its last '/', then hex (keys are prefix + bytes)."""
    run = 0
    while run < min(len(key), 24) and 0x20 < key[run] < 0x7F:
        run += 1
    cut = key.rfind(b"/", 0, run) + 1
    return key[:cut].decode() + key[cut:].hex()
