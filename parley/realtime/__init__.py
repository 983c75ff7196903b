"""The OpenAI-Realtime-compatible protocol core: a pure wire codec (``wire``), the
session configuration (``session_config``), server event builders (``server_events``)
and the sans-I/O session state machine (``session_state``). Sockets live in
``parley.channels``; docs/REALTIME.md is the conformance table."""
