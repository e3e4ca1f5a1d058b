"""Key affinity: which worker gets each transaction of a block, and which transactions of other
workers it should wait for (the ``parallel`` executor's ``affinity`` assignment).

Both are schedules, never correctness conditions: whatever they say, validation still checks
every read, so a wrong hint costs re-executions, not a wrong result. And a hint must never stop
a block: a transaction whose hints cannot be read (it does not decode) goes anywhere, and its
own execution reports what is wrong with it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from ..contract import Runtime

#: An assignment whose busiest worker would get more than ``1 / P + AFFINITY_SLACK`` of the
#: block (one hot market) is not used (``affinity_owner`` returns ``None``).
AFFINITY_SLACK = 0.15


def peek_all(runtime: Runtime, txs: list[bytes]) -> list[Any]:
    """Every transaction decoded without its signature check (``runtime.peek``, else
    ``prepare``); ``None`` where decoding raised (its execution reports what is wrong)."""
    peek = getattr(runtime, "peek", runtime.prepare)
    peeked: list[Any] = []
    for raw in txs:
        try:
            peeked.append(peek(raw))
        except Exception:
            peeked.append(None)
    return peeked


def affinity_owner(
    runtime: Runtime, txs: list[bytes], workers: int, peeked: list[Any] | None = None
) -> list[int] | None:
    """A worker per transaction such that transactions sharing their affinity key (market,
    sender: ``runtime.affinity_key``, else the first hint key) go to one worker; keys are
    placed largest first on the least loaded worker. ``None`` when the busiest worker would get
    more than ``1 / workers + AFFINITY_SLACK`` of the block. ``peeked``: ``peek_all(txs)``."""
    if peeked is None:
        peeked = peek_all(runtime, txs)
    key_of = getattr(runtime, "affinity_key", None)
    if key_of is None:

        def key_of(prepared: Any) -> Any:
            hints = runtime.hint_keys(prepared)
            return hints[0] if hints else None

    keys = [_hint(key_of, p, None) for p in peeked]
    load = [0] * workers
    where: dict[Any, int] = {}
    for key, count in Counter(k for k in keys if k is not None).most_common():
        w = load.index(min(load))
        where[key] = w
        load[w] += count
    owner = []
    for key in keys:
        if key is None:  # fails its stateless checks anyway: anywhere will do
            w = load.index(min(load))
            load[w] += 1
        else:
            w = where[key]
        owner.append(w)
    if max(load) > len(txs) * (1 / workers + AFFINITY_SLACK):
        return None
    return owner


def hinted_needs(runtime: Runtime, peeked: list[Any], owner: list[int]) -> list[tuple[int, ...]]:
    """For each transaction, the lower transactions on other workers it should run after (a
    schedule, never a correctness condition: validation still checks every read).

    Key affinity keeps one key of each transaction (its market) on one worker; its other hint
    keys (the sender's nonce and subaccount: a market maker quotes every market) and the writes
    of barriers (``runtime.barrier``: oracle prices, which every cross-margined account reads)
    still cross workers. A transaction run before such a predecessor on another worker has
    executed reads its stale value and is re-executed, and everything of its market after it
    with it. So each transaction names the latest earlier transaction of another worker that
    shares one of its hint keys, and the latest barrier of every other worker."""
    barrier_of = getattr(runtime, "barrier", None)
    last: dict[Any, int] = {}
    barriers: dict[int, int] = {}  # worker -> its latest barrier so far
    needs: list[tuple[int, ...]] = []
    for j, prepared in enumerate(peeked):
        w = owner[j]
        ahead = [i for v, i in barriers.items() if v != w]
        if prepared is not None:
            for key in _hint(runtime.hint_keys, prepared, ()):
                i = last.get(key)
                if i is not None and owner[i] != w:
                    ahead.append(i)
                last[key] = j
            if barrier_of is not None and _hint(barrier_of, prepared, False):
                barriers[w] = j
        needs.append(tuple(dict.fromkeys(ahead)))
    return needs


def _hint(hint: Callable[[Any], Any], prepared: Any, default: Any) -> Any:
    """``hint(prepared)``, or ``default`` if it raises or nothing was decoded: a hint must never
    stop a block (the transaction's own execution reports whatever is wrong with it)."""
    if prepared is None:
        return default
    try:
        return hint(prepared)
    except Exception:
        return default
