"""Public test kit: the virtual clock, scripted fake engines, local protocol servers.

``FakeClock`` (``parley.testing.clock``) is the one virtual clock. Submodules:
``fake_openai`` (a local server speaking the OpenAI streaming protocol), ``fake_engines``
(the benchmark's fake STT/LLM/TTS/VAD, from ``parley.engines.fake``), ``voice`` (the
scripted-timeline voice harness), ``speech`` (espeak-made test audio).
"""

from __future__ import annotations

from parley.testing.clock import FakeClock

__all__ = ["FakeClock"]
