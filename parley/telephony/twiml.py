"""Webhook answers in TwiML (Twilio) and TeXML (Telnyx's TwiML dialect): pure strings.

``connect_stream`` answers a call with a bidirectional media stream
(``<Connect><Stream url>`` with ``<Parameter>``s, which come back in the stream's
``start`` message); ``say_and_hang_up`` refuses a call politely.
"""

from __future__ import annotations

from collections.abc import Mapping
from xml.sax.saxutils import escape, quoteattr

XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>'


def connect_stream(
    url: str, parameters: Mapping[str, str], attributes: Mapping[str, str] | None = None
) -> str:
    """``<Response><Connect><Stream url=…>`` with one ``<Parameter>`` per item."""
    attrs = "".join(f" {name}={quoteattr(value)}" for name, value in (attributes or {}).items())
    params = "".join(
        f"<Parameter name={quoteattr(name)} value={quoteattr(value)}/>"
        for name, value in parameters.items()
    )
    return (
        f"{XML_HEAD}<Response><Connect><Stream url={quoteattr(url)}{attrs}>"
        f"{params}</Stream></Connect></Response>"
    )


def say_and_hang_up(text: str) -> str:
    return f"{XML_HEAD}<Response><Say>{escape(text)}</Say><Hangup/></Response>"


def stream_url(public_url: str, path: str) -> str:
    """``wss://host/path`` from the configured public URL (``ws://`` for plain http)."""
    scheme, _, rest = public_url.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest.rstrip('/')}{path}"
