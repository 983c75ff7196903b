"""The listening socket of ``parley serve`` makes asyncio turn Nagle off on every
connection (TCP_NODELAY). With Nagle on, a small frame sent right after another waits
for the client's delayed ACK (~40 ms on Linux): measured as 40–48 ms added to a voice
answer's first audio (bench/RESULTS.md, speech-to-speech)."""

from __future__ import annotations

import asyncio
import socket

from parley.startup_checks import bind


async def test_accepted_connections_have_nagle_off() -> None:
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    listening = bind("127.0.0.1", 0)
    server = await asyncio.start_server(handle, sock=listening)
    async with server:
        port = listening.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(seen, 5.0) == 1
        writer.close()
