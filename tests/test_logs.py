"""The per-session logging context reaches tasks spawned inside a session."""

from __future__ import annotations

import asyncio
import logging

from parley.events import SessionWarning
from parley.logs import FORMAT, SessionFilter, bind_session, session_context


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(session_id)s %(message)s"))
        self.addFilter(SessionFilter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def test_every_line_of_a_session_and_its_tasks_names_it() -> None:
    log = logging.getLogger("parley.test_logs")
    lines = Lines()
    log.addHandler(lines)
    log.setLevel(logging.INFO)
    try:

        async def serve(session_id: str) -> None:
            bind_session(session_id)
            log.info("serving")
            await asyncio.create_task(asyncio.to_thread(log.info, "in a thread"))
            await asyncio.create_task(spawned())

        async def spawned() -> None:
            log.info("in a task")

        await asyncio.gather(serve("s-1"), serve("s-2"))
        log.info("outside")
        with session_context("s-3"):
            log.info("in a block")
        log.info("after")
    finally:
        log.removeHandler(lines)
    assert sorted(lines.lines[:6]) == sorted(
        f"{sid} {what}"
        for sid in ("s-1", "s-2")
        for what in ("serving", "in a thread", "in a task")
    )
    assert lines.lines[6:] == ["- outside", "s-3 in a block", "- after"]
    assert "%(session_id)s" in FORMAT


def test_the_warning_event_keeps_its_wire_name() -> None:
    assert SessionWarning("time_limit", 60).to_wire() == {
        "type": "warning",
        "reason": "time_limit",
        "seconds_left": 60,
    }
