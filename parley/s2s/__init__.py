"""Speech-to-speech upstreams (Gemini Live, OpenAI Realtime) for ``brain: realtime``.

See docs/S2S.md.
"""
