"""uvicorn's WebSocket protocol with watermark flow control instead of a pause per message.

uvicorn's websockets-sansio protocol pauses reading from the socket after *every*
received message and resumes once the application has taken it. A voice client
sends 50 audio frames a second, so every 20 ms frame cost two extra event-loop
reader changes (``pause_reading`` / ``resume_reading``), per connection. Here
reading pauses only when ``HIGH_WATER`` messages are waiting for the application
(a stuck consumer still applies back-pressure, bounded at ``HIGH_WATER`` frames of
at most ``ws_max_size`` each) and resumes, as before, once the queue is empty.

``uvicorn_ws_options()`` gives the ``ws=`` argument for ``uvicorn.Config`` (the
sansio protocol needs uvicorn >= 0.35).
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

HIGH_WATER = 64  # queued messages before the socket stops being read


def uvicorn_ws_options() -> dict[str, Any]:
    """The ``ws=`` argument for ``uvicorn.Config`` / ``uvicorn.run``."""
    return {"ws": WatermarkWSProtocol}


class WatermarkWSProtocol(WebSocketsSansIOProtocol):
    """Pauses reading at ``HIGH_WATER`` queued messages, not after every one."""

    def send_receive_event_to_app(self) -> None:
        paused = self.read_paused
        self.read_paused = True  # keeps the base class from pausing after this message
        try:
            super().send_receive_event_to_app()
        finally:
            self.read_paused = paused
        if not paused and self.queue.qsize() >= HIGH_WATER:
            self.read_paused = True
            self.transport.pause_reading()
