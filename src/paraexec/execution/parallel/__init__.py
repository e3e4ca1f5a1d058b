"""The multi-process parallel executor: Block-STM semantics over long-lived worker processes.

Why processes: on a GIL build threads give nothing for pure-Python transactions, while
long-lived processes fed batches do; a pipe round trip costs about one transaction, so nothing
here sends one message per transaction. Each message is written as one frame (length header and
payload in a single write): with the header written separately, a reader woken by it waited a
scheduler tick (4-8 ms) for the payload whenever processes outnumbered cores. Modules: ``executor`` (the coordinator),
``pipeline`` (its scheduling and finality bookkeeping), ``worker`` (the process side),
``mvmemory`` (a worker's multi-version memory), ``messages`` (the protocol), ``transport``
(processes and pipes behind a small interface), ``precheck`` (the next block's signature checks
on idle workers), ``verify_stream`` (a block run in-process has its own signatures checked on the
workers while it runs), ``affinity`` (which worker gets each transaction under key affinity, and
what it waits for), ``old_hashes`` and ``pending_root`` (an in-process block's root hashed on the
idle workers).

Algorithm (one block of n transactions, P workers, wave W):

    assignment   by position: the block is cut into chunks of W/P transactions; chunk k
                 belongs to worker k mod P. Or by key affinity, once a block by position
                 wasted enough work on re-executions: the coordinator peeks every transaction
                 (decode without the signature check, ~2 us) for its affinity key (the
                 application's first hint: an order's market, a transfer's sender) and places
                 keys, largest first, on the least loaded worker, so transactions of one market
                 run in order on one worker and never conflict with each other across workers;
                 chunks are then each worker's transactions within windows of W positions, W
                 chosen so a chunk is ~2 ms of work (heavy orders: small chunks, few
                 transactions in flight). Under affinity the other hint keys still cross
                 workers (a market maker's nonce and subaccount: it quotes every market), as do
                 the writes of barriers (``runtime.barrier``: oracle prices, read by every
                 cross-margined account), so each transaction names the latest lower
                 transaction of another worker that shares a hint key with it, and every other
                 worker's latest barrier (``hinted_needs``); a chunk is cut before a
                 transaction that needs one inside its own span and is sent only after the
                 workers it follows replied to the messages that ran what it needs. A schedule,
                 not a correctness condition: validation still checks every read. Waits are
                 invisible to the contention fallback, so the schedule is modelled first
                 (``Pipeline.makespan``) and affinity refused when it promises too little.
                 ``Setup``
                 hands every worker all its transactions at once, and a worker prepares them
                 (decode, signature check: the expensive, conflict-free part) whenever it
                 would otherwise wait for a message, then the next block's signatures
                 (``precheck``, sent with ``Setup`` when the next block is announced).
    speculation  a worker is sent its next chunk as soon as it replies, while the chunk
                 starts inside the window [lo, lo + 2W) (lo = first non-final transaction).
                 Each message makes the worker, in order:
                   1. merge the other workers' effects it has not seen yet into its
                      multi-version memory (key -> writes by txn_idx; deltas kept unresolved);
                   2. validate its own executed, non-final transactions: a transaction is valid
                      when every (key, value) in its read set still resolves to that value just
                      below it (value-based validation; only keys with an entry changed below
                      the transaction since the last validation are re-resolved, and
                      transactions at or below the lowest changed entry are skipped);
                   3. re-execute the invalid ones, then execute the new chunk, in index order,
                      each on top of every effect it knows;
                   4. reply with the lowest own invalid txn_idx and its effects as bytes, which
                      the coordinator forwards to the other workers without decoding them.
    commit       prefix commit: a transaction is final when it and every lower one ran or
                 passed a validation having seen the current incarnation of every lower
                 transaction. ``pipeline`` derives this from each worker's last report and
                 which effect blobs it had seen (see its docstring): a freshly executed range
                 is final as soon as no lower execution it had not seen exists (no second
                 message just to validate it), and a re-executed transaction whose write set
                 changed never leaves a stale reader final.
    finish       when lo = n, each worker resolves the final value of its share of the written
                 keys (by the key's last byte mod P), hashes them into a state-commitment
                 delta against committed state, and returns its receipts; the coordinator
                 merges dictionaries, adds the deltas and interleaves the receipt lists. The
                 committed (old) values of a worker's share are hashed ahead, whenever it
                 would otherwise wait for a message (after preparing its transactions), so
                 ``finish`` mostly hashes only the new values.

Progress: the lowest non-final transaction reads only final values when it is re-executed, so
it validates in its worker's next message; the block always ends. Deltas (``TxContext.add``)
stay unresolved in the memory and are folded in index order when a key is read or finalised
(exactly as ``sequential.apply_effects`` folds them, so a fold that raises there raises here),
so transactions adding to one hot key conflict only with those that read it. A speculative run
that raises is that incarnation's output (no writes); if it turns out final, the block is re-run
in-process so the genuine exception propagates as in ``sequential``.

Why affinity is not always on: measured on the 2-core box, 10,000 signed transfers over 1,000
accounts re-executed 14% by position and 7% by affinity, but the coordinator's peeking (serial,
before any worker starts) cost more than the saved work (0.30 s vs 0.32 s a block); perps
orders (~120 us each) re-executed ~50% by position (the contention fallback ran them
in-process) and 12-14% by affinity with 15-transaction chunks: 1.2x sequential (fifth
session, AMD box: 15% by affinity, 1-4% following the hints, but the saved work became waits:
1.19-1.25x, against ~1.5x for the same blocks in-process, so the modelled schedule now refuses
it there). A block whose
affinity key is one hot key (one market: the replay workload) cannot be balanced, so it stays
by position, and after a contended block it runs in-process.

Contention: once a block's executions reach its sample size (1,000, or a third of a smaller
block, at least 128) and more than 30% of them were re-executions, the coordinator stops
speculating, takes the final prefix from the workers and runs the rest of the block
in-process; the next blocks (8, doubling up to 64 while probes keep failing) then run in-process
directly, after which parallel execution is probed again. A block by position that conflicts so
much makes the next one try key affinity first, without a pause (unless one key would load one
worker: then the pause starts at once). Whatever runs in-process checks its
signatures with the workers while it runs (``verify_stream``: the helpers take batches from
the front while they lead and from the end once the coordinator catches up, which checks the
batches in between itself; on ``workers`` threads first when the workers are not up or the
block is small: ``execution/prepare.py``, PyNaCl releases the GIL), executing one
transaction after another, while the otherwise idle workers then check the announced next
block's signatures (``precheck``) and, for a large write set, hash the root (``Hash``).

Speed (the time guard, ``execution/plan_clock.py``): re-executions say whether speculation
conflicts, not whether it pays. A block of 500+ transactions therefore goes to the workers only
while they are measured faster per transaction than blocks run in-process (measured first, each
plan re-measured now and then, the wait doubling while the workers keep losing). On the 2-core
box the in-process plan (signatures and the root's hashing on the workers) measured faster on
every benchmark workload; ``parallel-workers`` is this executor without the guard.

Between blocks: when the producer announces the next block (``announce``, from
``Chain.produce_block``'s ``upcoming``), idle workers check its signatures during the current
block's serial part; the verdicts (per exact wire bytes, positive only) are collected before the
next block and its verified transactions skip the ed25519 check (``prepare_checked``).

State: workers read committed state straight from the LMDB directory (opened read-only,
refreshed per block, checked against the coordinator's height and accumulator) when the store is
an ``LmdbStore``; for any other ``StateView`` they ask the coordinator (served reads: correct,
slow). A runtime without ``spec`` runs in-process (``stats.note`` says so). A worker that dies is
detected as EOF on its pipe: every worker is replaced and the block re-run from the start, so a
crash never changes the result (after 3 attempts the block runs in-process). A speculative
incarnation that never ends (code only safe on consistent state, run on a snapshot no sequential
run sees: nothing changes under it in its process) is detected as silence: when no awaited
worker answers within ``STALL_TIMEOUT`` (30 s) the workers are replaced, the block runs
in-process and parallel execution pauses as after a contended block.
"""

from ..registry import register
from .executor import ParallelExecutor

register("parallel", lambda workers: ParallelExecutor(workers))
#: The worker plan without the time guard (it still falls back on contention): for benchmarks
#: that show what speculative execution on the workers achieves where ``parallel`` itself runs
#: the blocks in-process because that measured faster.
register("parallel-workers", lambda workers: ParallelExecutor(workers, time_guard=False))

__all__ = ["ParallelExecutor"]
