"""Publish/subscribe from the producer thread to WebSocket connections on the event loop.

The producer must never wait for a client, so ``publish`` only schedules work on the loop
(``call_soon_threadsafe``) and returns. Each connection has a bounded queue of notifications; a
connection that falls ``QUEUE_SIZE`` notifications behind loses the overflow and is told so where
the gap is, after the messages it kept (``{"method": "lagged", "params": {"dropped": n}}``, n
counting every loss so far), rather than growing memory or slowing anyone else. ``publish_lazy``
defers building a message (a book snapshot, say) until the loop sees there is a subscriber, and
builds it off the loop's thread.

Answers to the calls a client makes over its socket are never dropped: they have their own small
queue (``ANSWERS_SIZE``), which the connection's reader waits on when it is full, so a client that
calls without reading only stops its own calls being read; and they are sent before any queued
notification, so a client lagging on notifications still gets its answers promptly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

QUEUE_SIZE = 256
ANSWERS_SIZE = 16
TOPICS = ("blocks", "fills", "book")


class Subscriber:
    """One connection's outgoing messages: notifications (``queue``, bounded, lossy) and answers
    to its calls (``answers``, bounded, lossless). Used on the event loop's thread only (``offer``
    from the hub's fan-out, ``answer`` from the connection's reader, ``next`` from its sender)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self.answers: asyncio.Queue[Any] = asyncio.Queue(ANSWERS_SIZE)
        self.topics: set[str] = set()
        self.dropped = 0
        self._gap = False  # messages were lost after the last one queued: a notice is owed
        self._ready = asyncio.Event()  # set whenever something was queued for ``next``

    def offer(self, message: dict[str, Any]) -> None:
        """Queue the notification ``message`` without waiting: when the queue is full it is lost
        and counted. The first message queued after a loss is preceded by the ``lagged`` notice,
        so the notice marks the gap; it needs room for both, else this message is lost too."""
        free = QUEUE_SIZE - self.queue.qsize()
        if free < (2 if self._gap else 1):
            self.dropped += 1
            self._gap = True
            return
        if self._gap:
            self.queue.put_nowait(self._notice())
        self.queue.put_nowait(message)
        self._ready.set()

    async def answer(self, message: Any) -> None:
        """Queue the answer to one of the client's calls, waiting while ``ANSWERS_SIZE`` answers
        are unsent: the caller (the connection's reader) then stops reading calls, so a client
        that calls without reading stalls itself, never the hub, and costs bounded memory."""
        await self.answers.put(message)
        self._ready.set()

    async def next(self) -> Any:
        """The next message to send, waiting for one (see ``next_nowait``)."""
        while (message := self.next_nowait()) is None:
            self._ready.clear()  # nothing is queued: no await since looking, so no wake-up is missed
            await self._ready.wait()
        return message

    def next_nowait(self) -> Any:
        """The next message to send, or None: an answer first (a lagging reader must not wait
        behind its backlog for the answer to its own call), else the oldest notification, else
        the ``lagged`` notice still owed."""
        if not self.answers.empty():
            return self.answers.get_nowait()
        if not self.queue.empty():
            return self.queue.get_nowait()
        return self.gap_notice()

    def unsubscribe(self, topics: list[str]) -> None:
        """Stop ``topics`` and drop their notifications still queued: the answer to
        ``unsubscribe`` goes ahead of the queue, so none of them may follow it (nor come after a
        later ``subscribe`` to the same topic), and they no longer take room from other topics."""
        self.topics.difference_update(topics)
        queued = [self.queue.get_nowait() for _ in range(self.queue.qsize())]
        for message in queued:
            if not _notification_of(message, topics):
                self.queue.put_nowait(message)

    def gap_notice(self) -> dict[str, Any] | None:
        """The ``lagged`` notice still owed once the queue has drained (no message was offered
        after the loss to carry it), or None."""
        return self._notice() if self._gap and self.queue.empty() else None

    def _notice(self) -> dict[str, Any]:
        self._gap = False
        return {"jsonrpc": "2.0", "method": "lagged", "params": {"dropped": self.dropped}}


def _notification_of(message: dict[str, Any], topics: list[str]) -> bool:
    params = message.get("params")
    return message.get("method") == "subscription" and isinstance(params, dict) and params.get("topic") in topics


class Hub:
    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.subscribers: set[Subscriber] = set()
        self.published = 0
        self._building: set[asyncio.Future[None]] = set()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def has_subscribers(self, topic: str) -> bool:
        return any(topic in s.topics for s in self.subscribers)

    def publish(self, topic: str, message: Any) -> None:
        """From any thread: deliver ``message`` to ``topic``'s subscribers.

        ``message`` may be a zero-argument callable: it is then called on the loop, and only
        when someone subscribes to ``topic`` (cheap messages; use ``publish_lazy`` for costly ones).
        """
        self._schedule(self._fanout, topic, message)

    def publish_lazy(self, topic: str, build: Callable[[], Any]) -> None:
        """From any thread: if anyone listens to ``topic``, build the message in a thread and deliver it."""
        self._schedule(self._build_and_fanout, topic, build)

    def _schedule(self, fn: Callable[[str, Any], None], topic: str, arg: Any) -> None:
        loop = self.loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(fn, topic, arg)
        except RuntimeError:  # the loop closed (API shut down): nobody is listening any more
            pass

    def _build_and_fanout(self, topic: str, build: Callable[[], Any]) -> None:
        if not self.has_subscribers(topic):
            return

        async def run() -> None:
            message = await asyncio.to_thread(build)
            if message is not None:
                self._fanout(topic, message)

        # the loop keeps only a weak reference to a task: hold it until done, and log a build
        # that failed (else it is collected mid-flight, or its error surfaces only as "Task
        # exception was never retrieved")
        task = asyncio.ensure_future(run())
        self._building.add(task)
        task.add_done_callback(self._built)

    def _built(self, task: asyncio.Future[None]) -> None:
        self._building.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("building a published message failed", exc_info=task.exception())

    def _fanout(self, topic: str, message: Any) -> None:
        if not self.has_subscribers(topic):
            return
        if callable(message):
            message = message()
        self.published += 1
        note = {"jsonrpc": "2.0", "method": "subscription", "params": {"topic": topic, "result": message}}
        for sub in self.subscribers:
            if topic in sub.topics:
                sub.offer(note)
