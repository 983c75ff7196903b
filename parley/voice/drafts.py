"""``PreemptiveReplies``: carries out ``Preemption``'s decisions for one voice session.

The session tells it what turn-taking saw (a pause opened with these words, the caller
spoke on, the turn ended, its final transcript); ``Preemption``
(``parley.voice.preemptive``) decides, and this class starts and cancels the
``DraftReply``s (``parley.brain.draft``) and hands the matching one to the user turn.
A dropped draft is cancelled and forgotten: nothing of it was stored, sent or spoken.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from parley.config import VoiceSpec
from parley.voice.preemptive import DropDraft, Preemption, PreemptionAction, StartDraft, UseDraft
from parley.voice.turns import DraftReply, VoiceTurns

log = logging.getLogger(__name__)

__all__ = ["PreemptiveReplies", "preemption_enabled"]


def preemption_enabled(spec: VoiceSpec) -> bool:
    """``voice.preemptive_generation``: ``auto`` (the default) is on with smart turn
    detection and off with ``silence``; ``true`` / ``false`` decide for both."""
    if spec.preemptive_generation == "auto":
        return spec.turn_detection == "smart"
    return bool(spec.preemptive_generation)


class PreemptiveReplies:
    """Drafts of one session (see the module docstring). ``blocked()`` is true while
    no draft may start (a spoken approval answer is awaited)."""

    def __init__(
        self,
        turns: VoiceTurns,
        enabled: bool,
        blocked: Callable[[], bool],
        after_secs: float = 0.0,
    ) -> None:
        self.turns = turns
        self.plan = Preemption(enabled)
        self.after_secs = after_secs  # voice.draft_after_secs: silence before a draft
        self._blocked = blocked
        self.draft: DraftReply | None = None
        self.started = self.used = self.dropped = 0  # counts, for logs and tests

    def pause_started(self, transcript: str) -> None:
        if self.plan.enabled:
            self._apply(self.plan.pause_started(transcript, blocked=self._blocked()))

    def pause_cancelled(self) -> None:
        self._apply(self.plan.pause_cancelled())

    def turn_ended(self) -> None:
        self._apply(self.plan.turn_ended())

    def take(self, final: str) -> DraftReply | None:
        """The draft for the ended turn whose final transcript is ``final``, if any."""
        return self._apply(self.plan.final(final))

    def close(self) -> None:
        self._apply(self.plan.pause_cancelled())

    def _apply(self, actions: list[PreemptionAction]) -> DraftReply | None:
        used = None
        for action in actions:
            if isinstance(action, StartDraft):
                self.started += 1
                self.draft = self.turns.draft(action.text)
            elif isinstance(action, DropDraft) and self.draft is not None:
                self.dropped += 1
                self.draft.cancel()
                self.draft = None
            elif isinstance(action, UseDraft):
                self.used += 1
                used, self.draft = self.draft, None
        if actions:
            log.debug("preemption %s: %s", self.plan.state.value, actions)
        return used
