"""Channels: I/O around the brain — HTTP/SSE chat, browser voice, telephony, operator."""
