"""``TurnRecorder``: everything one turn writes to the store, and nothing else.

The turn body (``brain/core.py``) decides *what* happened; the recorder persists it.
Writes are shielded: a cancelled turn (barge-in, a closed tab, a lost lock) still
finishes the write it started, so the history never misses a row the client saw.

Crash safety. An assistant reply is stored *while it streams*: a draft row is created
at the first delta, marked ``interrupted``, and rewritten at each sentence end; when
the reply completes the row gets its full text and loses the mark. A worker killed
mid-reply therefore leaves the reply cut where it was, marked ``interrupted`` —
never a user message followed by nothing. Draft writes run in order on one
background chain, so streaming never waits for the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from parley.sessions.records import Message, Role
from parley.sessions.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")
SENTENCE_ENDS = (".", "!", "?", "\n", "。", "！", "？")


async def persist(write: Awaitable[T]) -> T:
    """Run a store write to completion even if the turn is cancelled meanwhile."""
    return await asyncio.shield(write)


async def to_the_end(work: Awaitable[T]) -> T:
    """Like ``persist``, but a cancelled caller also waits for the work to finish
    (so its effects are visible to ``cancel``) before the cancellation goes on."""
    job = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        await job
        raise


def ends_sentence(delta: str) -> bool:
    """Whether a streamed delta closes a sentence (a point to save the draft)."""
    stripped = delta.rstrip(" \"')]")
    return stripped.endswith(SENTENCE_ENDS)


class TurnRecorder:
    """The writes of one turn in one session, and the turn's view of the history."""

    def __init__(self, store: Store, session_id: str, channel: str) -> None:
        self.store = store
        self.session_id = session_id
        self.channel = channel
        self.history: list[Message] | None = None  # loaded once, then kept current
        self.partial: list[str] = []  # text of the reply being streamed
        self.last: Message | None = None  # the last assistant message stored
        self.truncated = False  # the stored reply was already cut to what was heard
        self._draft: Message | None = None
        self._chain: asyncio.Future[None] | None = None

    async def load_history(self) -> list[Message]:
        """The session's messages, loaded once per turn; the turn holds the lock, so
        nobody else writes them meanwhile."""
        if self.history is None:
            self.history = await self.store.list_messages(self.session_id)
        return self.history

    def _note(self, message: Message) -> Message:
        if self.history is not None:
            self.history.append(message)
        return message

    def _replace(self, old: Message, new: Message) -> None:
        if self.history is not None:
            for i, msg in enumerate(self.history):
                if msg.id == old.id:
                    self.history[i] = new

    async def add(
        self,
        role: Role,
        text: str,
        blocks: list[dict[str, Any]],
        *,
        interrupted: bool = False,
    ) -> Message:
        message = await persist(
            self.store.add_message(
                self.session_id,
                role,
                text,
                blocks=blocks,
                channel=self.channel,
                interrupted=interrupted,
            )
        )
        return self._note(message)

    async def close_dangling_user_message(self) -> None:
        """A previous turn died before any reply was stored (its worker was killed):
        record an empty interrupted reply, so two user messages never follow each other."""
        history = await self.load_history()
        if history and history[-1].role == "user":
            await self.add("assistant", "", [], interrupted=True)

    # --- the streamed reply -----------------------------------------------------------

    def begin_reply(self) -> None:
        self.partial = []
        self._draft = None

    def on_delta(self, text: str) -> None:
        """A delta of the reply: create the draft at the first, save it at sentence ends."""
        self.partial.append(text)
        if self._draft is None and len(self.partial) == 1:
            self._then(self._create_draft)
        elif ends_sentence(text):
            self._then(self._save_draft)

    def _then(self, write: Callable[[], Awaitable[None]]) -> None:
        previous = self._chain

        async def run() -> None:
            if previous is not None:
                with contextlib.suppress(Exception):
                    await previous
            try:
                await write()
            except Exception:
                log.exception("saving the reply draft of %s failed", self.session_id)

        self._chain = asyncio.ensure_future(run())

    async def _create_draft(self) -> None:
        text = "".join(self.partial)
        self._draft = await self.store.add_message(
            self.session_id,
            "assistant",
            text,
            blocks=[{"type": "text", "text": text}],
            channel=self.channel,
            interrupted=True,
        )

    async def _save_draft(self) -> None:
        if self._draft is None:
            return
        text = "".join(self.partial)
        blocks = [{"type": "text", "text": text}]
        await self.store.update_message(self._draft.id, text=text, blocks=blocks)

    async def _settled(self) -> Message | None:
        """Wait (shielded) for the draft writes; the draft row, if one was made."""
        if self._chain is not None:
            await asyncio.shield(self._chain)
        return self._draft

    async def finish_reply(self, text: str, blocks: list[dict[str, Any]]) -> Message:
        """The reply is complete: its final text and blocks, no longer interrupted."""
        return await to_the_end(self._finish_reply(text, blocks))

    async def _finish_reply(self, text: str, blocks: list[dict[str, Any]]) -> Message:
        draft = await self._settled()
        self.partial = []
        if draft is None:
            message = await self.add("assistant", text, blocks)
        else:
            await persist(
                self.store.update_message(draft.id, text=text, blocks=blocks, interrupted=False)
            )
            message = dataclasses.replace(draft, text=text, blocks=blocks, interrupted=False)
            self._note(message)
        self._draft = None
        self.last = message
        return message

    async def cut_reply(self, heard: str | None) -> None:
        """The turn was stopped mid-reply: keep what was heard (or generated), marked
        interrupted. Nothing new was generated: ``truncate`` cuts the last message."""
        await to_the_end(self._cut_reply(heard))

    async def _cut_reply(self, heard: str | None) -> None:
        draft = await self._settled()
        generated = "".join(self.partial)
        self.partial = []
        if not generated:
            return
        text = heard if heard is not None else generated
        blocks = [{"type": "text", "text": text}] if text else []
        if draft is None:
            self.last = await self.add("assistant", text, blocks, interrupted=True)
        else:
            await persist(
                self.store.update_message(draft.id, text=text, blocks=blocks, interrupted=True)
            )
            self.last = dataclasses.replace(draft, text=text, blocks=blocks, interrupted=True)
            self._note(self.last)
        self._draft = None
        self.truncated = True

    async def truncate(self, heard: str) -> None:
        """Cut the last stored reply to what the user heard (a barge-in after the
        reply was complete); keeps its tool calls."""
        last = self.last
        if self.truncated or last is None or heard == last.text:
            return
        blocks = [{"type": "text", "text": heard}] if heard else []
        blocks += [b for b in last.blocks if b.get("type") != "text"]
        await self.store.update_message(last.id, text=heard, blocks=blocks, interrupted=True)
        self.last = dataclasses.replace(last, text=heard, blocks=blocks, interrupted=True)
        self.truncated = True
