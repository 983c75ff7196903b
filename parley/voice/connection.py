"""The voice loop's former home; ``channels/voice_turn.py`` still imports ``yes_or_no`` here.

``VoiceConnection`` became ``VoiceSession`` (``parley.voice.session``): a
transport-neutral session with an event sink and an audio output. New code imports
from ``parley.voice.session``, ``parley.voice.io`` and ``parley.voice.responder``.
"""

from __future__ import annotations

from parley.voice.responder import yes_or_no

__all__ = ["yes_or_no"]
