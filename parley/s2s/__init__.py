"""Speech-to-speech upstreams (Gemini Live, OpenAI Realtime) for ``brain: realtime``; see docs/S2S.md."""
