"""``TurnStream``: one turn running under the session's turn lock.

Theory of operation. A channel asks the ``Brain`` for a turn and gets a
``TurnStream``. ``await stream.start()`` checks the session and takes the turn
lock *before* anything is streamed, so a refusal (busy, ended, wrong channel,
already started) is an exception the channel can turn into an HTTP status. The
turn body then runs in its own task and puts events on a queue; the channel
iterates the stream. The body owns persistence: whatever happens to the consumer
(a closed browser tab, a barge-in), ``cancel()`` cancels the body task, whose
handlers store what was generated — or what the user actually heard — and the
``finally`` releases the lock. Nothing is queued behind a running turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from parley.brain import errors
from parley.events import Event, TurnEnd
from parley.sessions.records import Message, Session

if TYPE_CHECKING:
    from parley.brain.core import Brain

log = logging.getLogger(__name__)

Check = Callable[[Session], Awaitable[None]]


@dataclass
class TurnState:
    """Mutable facts about the running turn, shared by the body and ``cancel``."""

    session: Session
    channel: str
    heard: str | None = None
    partial: list[str] = field(default_factory=list)
    last_message_id: str | None = None
    last_message_text: str = ""
    last_message_blocks: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False  # the body already stored what was heard
    history: list[Message] | None = None  # loaded once, then appended to by the turn

    def note(self, message: Message) -> None:
        """A message this turn stored: keep the in-memory history current."""
        if self.history is not None:
            self.history.append(message)

    def remember(self, message_id: str, text: str, blocks: list[dict[str, Any]]) -> None:
        self.last_message_id = message_id
        self.last_message_text = text
        self.last_message_blocks = blocks


Body = Callable[[TurnState], AsyncIterator[Event]]
_END = object()


class TurnStream:
    def __init__(
        self,
        brain: Brain,
        session_id: str,
        channel: str,
        body: Body,
        checks: tuple[Check, ...] = (),
        *,
        preface: Callable[[], Awaitable[list[Event] | None]] | None = None,
        when_busy: Callable[[], list[Event]] | None = None,
    ) -> None:
        self._brain = brain
        self.session_id = session_id
        self.channel = channel
        self._body = body
        self._checks = checks
        self._preface = preface
        self._when_busy = when_busy
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._owner = uuid.uuid4().hex
        self._lock_key = f"turn:{session_id}"
        self.state: TurnState | None = None
        self.ended_status: str | None = None

    # --- start -------------------------------------------------------------------

    async def start(self) -> None:
        """Check the session and take the lock, or raise ``TurnRejected``."""
        coord = self._brain.coordinator
        if self._preface is not None:
            session = await self._load()
            for check in self._checks:
                await check(session)
            early = await self._preface()
            if early is not None:  # answered without running a turn (e.g. a lost approval)
                self._answer(early)
                return
        ttl = self._brain.lock_ttl_s
        if not await coord.acquire_lock(self._lock_key, self._owner, ttl):
            if self._when_busy is not None:
                self._answer(self._when_busy())
                return
            raise errors.session_busy()
        try:
            session = await self._load()  # checked under the lock
            for check in self._checks:
                await check(session)
        except BaseException:
            await coord.release_lock(self._lock_key, self._owner)
            raise
        self.state = TurnState(session=session, channel=self.channel)
        self._brain.active[self.session_id] = self
        self._task = asyncio.create_task(self._run(self.state), name=f"turn-{self.session_id}")
        self._refresher = asyncio.create_task(self._refresh_lock(ttl))

    def _answer(self, events: list[Event]) -> None:
        for ev in events:
            self._queue.put_nowait(ev)
        self._queue.put_nowait(_END)

    async def _load(self) -> Session:
        session = await self._brain.store.get_session(self.session_id)
        if session is None:
            raise errors.session_not_found()
        if session.status != "active":
            raise errors.session_ended()
        return session

    async def _refresh_lock(self, ttl: float) -> None:
        while True:
            await asyncio.sleep(ttl / 3)
            if not await self._brain.coordinator.refresh_lock(self._lock_key, self._owner, ttl):
                log.warning("turn lock of %s was lost", self.session_id)
                return

    # --- run ---------------------------------------------------------------------

    async def _run(self, state: TurnState) -> None:
        try:
            async for event in self._body(state):
                if isinstance(event, TurnEnd):
                    self.ended_status = event.status
                self._queue.put_nowait(event)
        except asyncio.CancelledError:
            self.ended_status = self.ended_status or "interrupted"
            raise
        except Exception:
            log.exception("turn of session %s crashed", self.session_id)
            from parley.events import Error

            self._queue.put_nowait(Error("internal_error", "the turn failed unexpectedly"))
            self._queue.put_nowait(TurnEnd("error"))
            self.ended_status = "error"
        finally:
            if self._refresher is not None:
                self._refresher.cancel()
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    self._brain.coordinator.release_lock(self._lock_key, self._owner)
                )
            if self._brain.active.get(self.session_id) is self:
                del self._brain.active[self.session_id]
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
        if heard is None or state.truncated or state.last_message_id is None:
            return
        if heard != state.last_message_text:
            blocks = [{"type": "text", "text": heard}] if heard else []
            blocks += [b for b in state.last_message_blocks if b.get("type") != "text"]
            await self._brain.store.update_message(
                state.last_message_id, text=heard, blocks=blocks, interrupted=True
            )
            state.last_message_text = heard
            state.truncated = True
