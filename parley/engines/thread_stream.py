"""Bridge a blocking audio producer running on an executor thread into an async
iterator, so that engines with synchronous callbacks (espeak-ng, piper) never block
the event loop.

The producer gets a ``sink``: it calls ``sink(chunk)`` for each PCM chunk, and a
``False`` return means the consumer has gone (the iterator was closed, e.g. on
barge-in), so the producer should stop at once. Chunks cross to the loop with
``call_soon_threadsafe`` into an ``asyncio.Queue``; a producer error is raised to the
consumer after the chunks made before it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import Executor

logger = logging.getLogger(__name__)

ChunkSink = Callable[[bytes], bool]
"""Takes one PCM chunk; returns False when the consumer is gone and production should stop."""

_END = None


async def stream_from_thread(
    executor: Executor,
    produce: Callable[[ChunkSink], object],
    *,
    wait_on_close: bool = True,
) -> AsyncGenerator[bytes, None]:
    """Run ``produce(sink)`` on ``executor`` and yield the chunks it passes to ``sink``.

    When the iterator is closed early, the sink starts returning False; a job still
    queued is cancelled, and with ``wait_on_close`` the close waits until a running
    producer has returned (so no thread is left working for a gone consumer).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    gone = threading.Event()

    def post(item: bytes | None) -> bool:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop has closed
            gone.set()
            return False
        return True

    def sink(chunk: bytes) -> bool:
        return not gone.is_set() and post(chunk)

    def job() -> object:
        try:
            return produce(sink)
        finally:
            if not gone.is_set():
                post(_END)

    future = executor.submit(job)
    wrapped = asyncio.wrap_future(future, loop=loop)
    wrapped.add_done_callback(_note_late_failure)
    finished = False
    try:
        while (chunk := await queue.get()) is not _END:
            yield chunk
        finished = True
        await wrapped  # raises the producer's error, if any
    finally:
        if not finished:
            gone.set()
            if not future.cancel() and wait_on_close:
                await asyncio.wait([wrapped])


def _note_late_failure(future: asyncio.Future[object]) -> None:
    # Retrieving the exception here keeps asyncio from logging "never retrieved" when
    # the consumer left early; a consumer still waiting gets it from ``await``.
    if not future.cancelled() and (exc := future.exception()) is not None:
        logger.debug("audio producer ended with %r", exc)
