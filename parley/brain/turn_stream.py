"""``TurnStream``: one turn running under the session's turn lock.

Theory of operation. A channel asks the ``Brain`` for a turn and gets a
``TurnStream``. ``await stream.start()`` checks the session and takes the turn
lock *before* anything is streamed, so a refusal (busy, ended, wrong channel,
already started) is an exception the channel can turn into an HTTP status. The
turn body then runs in its own task and puts events on a queue; the channel
iterates the stream. Nothing is queued behind a running turn.

The stream owns the lock: it renews it while the body runs, and if the lock is
lost — it expired while this worker stalled, or another worker took it — the body
is *cancelled* (``error{turn_lock_lost}``, ``turn_end{error}``): a turn never writes
without the lock. Persistence belongs to the body's ``TurnRecorder``: whatever
happens to the consumer (a closed browser tab, a barge-in), ``cancel()`` cancels
the body task, whose handlers store what was generated — or what the user
actually heard — and the ``finally`` releases the lock.

The stream knows the store (to load the session), the lock and the worker's
registry of running turns — not the ``Brain`` that made it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from parley.brain import errors
from parley.brain.recorder import TurnRecorder
from parley.events import Error, Event, TurnEnd
from parley.sessions.lease import TurnLock
from parley.sessions.records import Session
from parley.sessions.store import Store

log = logging.getLogger(__name__)

Check = Callable[[Session], Awaitable[None]]


@dataclass
class TurnProgress:
    """Mutable facts about the running turn, shared by the body and ``cancel``."""

    session: Session
    channel: str
    recorder: TurnRecorder
    heard: str | None = None  # set by ``cancel``: the assistant text the user heard

    # what the voice channel reports after a barge-in: the message as it was kept
    @property
    def truncated(self) -> bool:
        return self.recorder.truncated

    @property
    def last_message_id(self) -> str | None:
        return self.recorder.last.id if self.recorder.last is not None else None

    @property
    def last_message_text(self) -> str:
        return self.recorder.last.text if self.recorder.last is not None else ""


Body = Callable[[TurnProgress], AsyncIterator[Event]]
RunningTurns = dict[str, "TurnStream"]
_END = object()


class TurnStream:
    def __init__(
        self,
        store: Store,
        lock: TurnLock,
        running: RunningTurns,
        session_id: str,
        channel: str,
        body: Body,
        checks: tuple[Check, ...] = (),
        *,
        preface: Callable[[], Awaitable[list[Event] | None]] | None = None,
        when_busy: Callable[[], list[Event]] | None = None,
    ) -> None:
        self._store = store
        self.lock = lock
        self._running = running
        self.session_id = session_id
        self.channel = channel
        self._body = body
        self._checks = checks
        self._preface = preface
        self._when_busy = when_busy
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._lock_lost = False
        self.state: TurnProgress | None = None
        self.ended_status: str | None = None

    # --- start -------------------------------------------------------------------

    async def start(self) -> None:
        """Check the session and take the lock, or raise ``TurnRejected``."""
        if self._preface is not None:
            session = await self._load()
            for check in self._checks:
                await check(session)
            early = await self._preface()
            if early is not None:  # answered without running a turn (e.g. a lost approval)
                self._answer(early)
                return
        if not await self.lock.acquire():
            if self._when_busy is not None:
                self._answer(self._when_busy())
                return
            raise errors.session_busy()
        try:
            session = await self._load()  # checked under the lock
            for check in self._checks:
                await check(session)
        except BaseException:
            await self.lock.release()
            raise
        recorder = TurnRecorder(self._store, session.id, self.channel)
        self.state = TurnProgress(session=session, channel=self.channel, recorder=recorder)
        self._running[self.session_id] = self
        self._task = asyncio.create_task(self._run(self.state), name=f"turn-{self.session_id}")
        self.lock.keep_alive(self._on_lock_lost)

    def _answer(self, events: list[Event]) -> None:
        for ev in events:
            self._queue.put_nowait(ev)
        self._queue.put_nowait(_END)

    async def _load(self) -> Session:
        session = await self._store.get_session(self.session_id)
        if session is None:
            raise errors.session_not_found()
        if session.status != "active":
            raise errors.session_ended()
        return session

    def _on_lock_lost(self) -> None:
        """Fencing: a turn that no longer holds the lock stops at once."""
        log.warning("turn lock of %s was lost; cancelling the turn", self.session_id)
        self._lock_lost = True
        if self._task is not None and not self._task.done():
            self._task.cancel()

    # --- run ---------------------------------------------------------------------

    async def _run(self, state: TurnProgress) -> None:
        try:
            async for event in self._body(state):
                if isinstance(event, TurnEnd):
                    self.ended_status = event.status
                self._queue.put_nowait(event)
        except asyncio.CancelledError:
            if not self._lock_lost:
                self.ended_status = self.ended_status or "interrupted"
                raise
            self.ended_status = "error"
            self._queue.put_nowait(
                Error("turn_lock_lost", "the turn lost the session's lock and was stopped")
            )
            self._queue.put_nowait(TurnEnd("error"))
        except Exception:
            log.exception("turn of session %s crashed", self.session_id)
            self._queue.put_nowait(Error("internal_error", "the turn failed unexpectedly"))
            self._queue.put_nowait(TurnEnd("error"))
            self.ended_status = "error"
        finally:
            await self.lock.release()
            if self._running.get(self.session_id) is self:
                del self._running[self.session_id]
            self._queue.put_nowait(_END)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            assert isinstance(item, Event)
            yield item

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def wait(self) -> None:
        """Wait until the body has finished (and the lock is released)."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._task)

    # --- stop --------------------------------------------------------------------

    def abandon(self) -> None:
        """The consumer went away (e.g. an HTTP client disconnected): stop the turn.
        The body stores what was generated and releases the lock on its own."""
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def cancel(self, heard: str | None = None) -> None:
        """Stop the turn (barge-in). ``heard`` is the assistant text the user actually
        heard; the stored assistant message is truncated to it and marked interrupted,
        also when generation had already finished."""
        state = self.state
        if state is None:
            return
        if self._task is not None and not self._task.done():
            state.heard = heard
            self._task.cancel()
            await self.wait()
        if heard is not None:
            await state.recorder.truncate(heard)
