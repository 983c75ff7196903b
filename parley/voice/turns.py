"""``VoiceTurns``: the one place the voice session meets the brain and its turn lock.

A voice session starts turns (a user turn, an approval decision, the opening turn),
waits for the session's turn lock while another channel holds it, and asks which
approval is pending. All of that goes through this adapter, so a different turn
owner (a lock service, a remote brain) is one class to re-point, not a voice-loop
change. A turn is a ``TurnStream``: ``start()`` (raises ``TurnRejected``), iterate
its events, ``cancel(heard)``.
"""

from __future__ import annotations

from parley.brain.core import Brain, UserInput
from parley.brain.draft import DraftReply, start_draft
from parley.brain.turn_stream import TurnStream
from parley.events import AssistantMessage

__all__ = ["DraftReply", "TurnStream", "UserInput", "VoiceTurns"]


class VoiceTurns:
    """Turns of one session on one channel, run by ``brain``."""

    def __init__(self, brain: Brain, session_id: str, channel: str) -> None:
        self.brain = brain
        self.session_id = session_id
        self.channel = channel

    @property
    def lock_ttl_s(self) -> float:
        """How long a held turn lock can stay held (the longest wait for it)."""
        return self.brain.lock_ttl_s

    def user_turn(self, user: UserInput) -> TurnStream:
        return self.brain.user_turn(self.session_id, user)

    def drafted_turn(self, user: UserInput, draft: DraftReply) -> TurnStream:
        """A user turn whose first model call uses ``draft`` if it matches."""
        return self.brain.user_turn(self.session_id, user, draft=draft)

    def draft(self, text: str) -> DraftReply:
        """Start a preemptive reply to ``text``: nothing stored, sent or locked."""
        return start_draft(self.brain.store, self.brain.runtime_for, self.session_id, text)

    def initial_turn(self) -> TurnStream:
        return self.brain.initial_turn(self.session_id, self.channel)

    def decide(self, tool_call_id: str, approved: bool, by: str) -> TurnStream:
        return self.brain.decide(
            self.session_id, tool_call_id, approved, decided_by=by, channel=self.channel
        )

    async def lock_free(self) -> bool:
        """No turn of this session runs anywhere (the turn lock is free)."""
        return await self.brain.coordinator.lock_owner(f"turn:{self.session_id}") is None

    async def pending_approval(self) -> str | None:
        """The tool call id of the newest approval still waiting, if any."""
        pending = await self.brain.store.list_approvals(self.session_id, "pending")
        return pending[-1].tool_call_id if pending else None

    @staticmethod
    def kept_message(turn: TurnStream) -> AssistantMessage | None:
        """After a cancel: the assistant message as truncated to what was heard."""
        state = turn.state
        if state is not None and state.truncated and state.last_message_id is not None:
            return AssistantMessage(state.last_message_id, state.last_message_text, True)
        return None
