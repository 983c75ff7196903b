"""The OpenAI-Realtime-compatible protocol core.

Pure (no asyncio, no clock, no sockets): the wire codec (``wire``, ``validate``), the
session configuration (``session_config``), server event builders (``server_events``),
the session state machine (``session_state`` with ``input_audio``,
``response_lifecycle``, ``response``, ``conversation``, ``actions``) and the upgrade
credential forms (``auth``). ``access`` is the one module with I/O: client secrets in
the coordinator, checked against the injected clock. Sockets live in
``parley.channels.realtime_ws`` / ``realtime_http``; docs/REALTIME.md is the
conformance table.
"""
