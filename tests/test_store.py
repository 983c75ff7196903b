"""SqlStore against real SQLite and PostgreSQL: round trips, races, migrations."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from parley.sessions import Approval, SqlStore, TransferRecord, make_store
from parley.sessions.sql_migrate import head_revision
from parley.sessions.sql_schema import metadata, sessions
from parley.testing import FakeClock
from tests.plugins.stores import sqlite_url


async def new_session(store: SqlStore, resume_token: str = "resume-1") -> str:
    session = await store.create_session(
        agent="receptionist",
        token_hash="hash",
        resume_token=resume_token,
        template_vars={"name": "Ada", "nested": {"n": [1, 2]}},
        metadata={"ip": "127.0.0.1"},
        expires_at=datetime(2030, 1, 1, tzinfo=UTC),
    )
    return session.id


def pending(session_id: str, tool_call_id: str = "call_1") -> Approval:
    return Approval(
        session_id=session_id,
        tool_call_id=tool_call_id,
        name="refund",
        arguments={"amount": 12.5, "items": ["a", "b"]},
        status="pending",
        prompt="Refund 12.50?",
    )


# sessions ---------------------------------------------------------------------


async def test_session_round_trip(store: SqlStore) -> None:
    created = await store.create_session(
        agent="receptionist",
        token_hash="hash",
        resume_token="tok",
        template_vars={"name": "Ada", "nested": {"n": [1, 2]}},
        metadata={"ip": "127.0.0.1"},
        expires_at=datetime(2030, 1, 1, 12, tzinfo=UTC),
        channel="voice",
    )
    assert len(created.id) == 32 and created.status == "active"
    loaded = await store.get_session(created.id)
    assert loaded == created
    assert loaded.template_vars == {"name": "Ada", "nested": {"n": [1, 2]}}
    assert loaded.current_channel == "voice" and loaded.agent_state == {}
    assert loaded.created_at is not None and loaded.created_at.tzinfo is not None
    assert loaded.expires_at == datetime(2030, 1, 1, 12, tzinfo=UTC)
    assert await store.get_session("nope") is None


async def test_resume_token_lookup(store: SqlStore) -> None:
    first = await new_session(store, "token-a")
    second = await new_session(store, "token-b")
    found = await store.get_session_by_resume_token("token-b")
    assert found is not None and found.id == second
    assert await store.get_session_by_resume_token("token-c") is None
    assert await store.get_session_by_resume_token("") is None
    await store.update_session(first, resume_token="token-a2")
    assert await store.get_session_by_resume_token("token-a") is None
    rotated = await store.get_session_by_resume_token("token-a2")
    assert rotated is not None and rotated.id == first


async def test_update_session(store: SqlStore) -> None:
    sid = await new_session(store)
    updated = await store.update_session(
        sid, agent_state={"step": 2, "slots": {"date": None}}, current_channel="phone"
    )
    assert updated is not None
    assert updated.agent_state == {"step": 2, "slots": {"date": None}}
    assert updated.current_channel == "phone"
    assert updated.template_vars == {"name": "Ada", "nested": {"n": [1, 2]}}
    reloaded = await store.get_session(sid)
    assert reloaded == updated
    assert await store.update_session("missing", current_channel="chat") is None
    with pytest.raises(ValueError, match="token_hash"):
        await store.update_session(sid, token_hash="x")
    with pytest.raises(ValueError, match="status"):
        await store.update_session(sid, status="paused")
    with pytest.raises(ValueError, match="naive"):
        await store.update_session(sid, expires_at=datetime(2030, 1, 1))


async def test_end_session_only_once(store: SqlStore) -> None:
    sid = await new_session(store)
    assert await store.end_session(sid, "user_hangup") is True
    assert await store.end_session(sid, "timeout") is False
    ended = await store.get_session(sid)
    assert ended is not None
    assert (ended.status, ended.end_reason) == ("ended", "user_hangup")
    assert ended.ended_at is not None and ended.ended_at.tzinfo is not None
    assert await store.end_session("missing", "x") is False


async def test_concurrent_end_session_has_one_winner(store: SqlStore) -> None:
    sid = await new_session(store)
    results = await asyncio.gather(*(store.end_session(sid, f"r{i}") for i in range(10)))
    assert results.count(True) == 1
    ended = await store.get_session(sid)
    assert ended is not None and ended.end_reason == f"r{results.index(True)}"


async def test_timestamps_come_from_the_clock(db_url: str) -> None:
    clock = FakeClock(wall=datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC))
    store = SqlStore(db_url, clock)
    await store.start()
    try:
        sid = await new_session(store)
        clock.advance(2.5)
        message = await store.add_message(sid, "user", "hi")
        await store.end_session(sid, "done")
        session = await store.get_session(sid)
        [stored] = await store.list_messages(sid)
    finally:
        await store.close()
    assert session is not None
    assert session.created_at == datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
    assert session.ended_at == session.created_at + timedelta(seconds=2.5)
    assert stored.created_at == message.created_at == session.ended_at


# messages ---------------------------------------------------------------------


async def test_messages_keep_order_seq_and_blocks(store: SqlStore) -> None:
    sid = await new_session(store)
    other = await new_session(store, "other")
    call = {"type": "tool_call", "id": "c1", "name": "lookup", "arguments": {"q": "x", "n": 3}}
    await store.add_message(sid, "user", "hello")
    await store.add_message(other, "user", "elsewhere")
    assistant = await store.add_message(sid, "assistant", "", blocks=[call], channel="voice")
    result = {"type": "tool_result", "tool_call_id": "c1", "name": "lookup", "status": "ok"}
    await store.add_message(sid, "tool", "done", blocks=[{**result, "result": {"ok": True}}])
    listed = await store.list_messages(sid)
    assert [(m.seq, m.role) for m in listed] == [(1, "user"), (2, "assistant"), (3, "tool")]
    assert listed[1] == assistant
    assert listed[1].tool_calls() == [call] and listed[1].channel == "voice"
    assert listed[2].tool_result() == {**result, "result": {"ok": True}}
    assert [m.seq for m in await store.list_messages(other)] == [1]
    assert await store.list_messages("missing") == []


async def test_update_message(store: SqlStore) -> None:
    sid = await new_session(store)
    message = await store.add_message(sid, "assistant", "Hello there, how can I help")
    await store.update_message(message.id, text="Hello there", interrupted=True)
    [stored] = await store.list_messages(sid)
    assert (stored.text, stored.interrupted, stored.blocks) == ("Hello there", True, [])
    await store.update_message(message.id, blocks=[{"type": "text", "text": "Hello there"}])
    [stored] = await store.list_messages(sid)
    assert stored.text == "Hello there" and stored.blocks[0]["text"] == "Hello there"
    with pytest.raises(LookupError, match="no message"):
        await store.update_message("missing", text="x")
    with pytest.raises(LookupError, match="no message"):
        await store.update_message("missing")


async def test_count_messages_by_role(store: SqlStore) -> None:
    sid = await new_session(store)
    for role in ("user", "assistant", "user", "tool", "assistant", "user"):
        await store.add_message(sid, role, role)  # type: ignore[arg-type]
    assert await store.count_messages(sid) == 6
    assert await store.count_messages(sid, ("user",)) == 3
    assert await store.count_messages(sid, ("user", "assistant")) == 5
    assert await store.count_messages(sid, ("system",)) == 0
    assert await store.count_messages("missing") == 0


async def test_add_message_rejects_bad_input(store: SqlStore) -> None:
    sid = await new_session(store)
    with pytest.raises(LookupError, match="no session 'missing'"):
        await store.add_message("missing", "user", "hi")
    with pytest.raises(ValueError, match="unknown message role 'robot'"):
        await store.add_message(sid, "robot", "hi")  # type: ignore[arg-type]
    assert await store.count_messages(sid) == 0


async def test_concurrent_add_message_gets_consecutive_seqs(db_url: str) -> None:
    # Two stores = two engines/connection pools, as two workers would have.
    first, second = SqlStore(db_url), SqlStore(db_url)
    await first.start()
    await second.start()
    try:
        sid = await new_session(first)
        adds = [(first if i % 2 else second).add_message(sid, "user", f"m{i}") for i in range(40)]
        added = await asyncio.gather(*adds)
        listed = await first.list_messages(sid)
    finally:
        await first.close()
        await second.close()
    assert sorted(m.seq for m in added) == list(range(1, 41))
    assert [m.seq for m in listed] == list(range(1, 41))
    assert {m.id: m.seq for m in listed} == {m.id: m.seq for m in added}


# approvals --------------------------------------------------------------------


async def test_approval_round_trip_and_claim(store: SqlStore) -> None:
    sid = await new_session(store)
    await store.create_approval(pending(sid, "call_1"))
    await store.create_approval(pending(sid, "call_2"))
    got = await store.get_approval(sid, "call_1")
    assert got is not None and got.arguments == {"amount": 12.5, "items": ["a", "b"]}
    assert got.status == "pending" and got.prompt == "Refund 12.50?" and got.created_at
    assert len(await store.list_approvals(sid, "pending")) == 2

    won, record = await store.claim_approval(sid, "call_1", "approved", "user", "ok")
    assert won is True and record is not None
    assert (record.status, record.decided_by, record.reason) == ("approved", "user", "ok")
    assert record.decided_at is not None
    lost, winner = await store.claim_approval(sid, "call_1", "denied", "operator")
    assert lost is False and winner == record

    assert [a.tool_call_id for a in await store.list_approvals(sid, "pending")] == ["call_2"]
    assert [a.tool_call_id for a in await store.list_approvals(sid, "approved")] == ["call_1"]
    assert len(await store.list_approvals(sid)) == 2
    assert await store.claim_approval(sid, "call_9", "approved", "user") == (False, None)
    assert await store.get_approval(sid, "call_9") is None


async def test_approval_bad_input(store: SqlStore) -> None:
    sid = await new_session(store)
    await store.create_approval(pending(sid))
    with pytest.raises(ValueError, match="already exists"):
        await store.create_approval(pending(sid))
    with pytest.raises(LookupError, match="no session"):
        await store.create_approval(pending("missing"))
    with pytest.raises(ValueError, match="can only be claimed"):
        await store.claim_approval(sid, "call_1", "pending", "user")
    assert len(await store.list_approvals(sid)) == 1


async def test_concurrent_claim_has_exactly_one_winner(db_url: str) -> None:
    stores = [SqlStore(db_url), SqlStore(db_url)]
    for s in stores:
        await s.start()
    try:
        sid = await new_session(stores[0])
        await stores[0].create_approval(pending(sid))
        claims = [
            stores[i % 2].claim_approval(
                sid, "call_1", "approved" if i % 3 else "denied", f"worker-{i}"
            )
            for i in range(24)
        ]
        results = await asyncio.gather(*claims)
    finally:
        for s in stores:
            await s.close()
    winners = [record for won, record in results if won]
    assert len(winners) == 1
    [winner] = winners
    assert winner is not None and winner.status in ("approved", "denied")
    assert all(record == winner for _, record in results)


# transfers --------------------------------------------------------------------


async def test_transfer_save_and_update(store: SqlStore) -> None:
    sid = await new_session(store)
    transfer = TransferRecord(
        id="t1", session_id=sid, status="dialing", target="+15550100", data={"leg": "a"}
    )
    await store.save_transfer(transfer)
    first = await store.get_transfer("t1")
    assert first is not None and first.status == "dialing" and first.data == {"leg": "a"}
    assert first.created_at is not None and first.updated_at is not None
    transfer.status, transfer.data = "bridged", {"leg": "b", "n": [1]}
    await store.save_transfer(transfer)
    second = await store.get_transfer("t1")
    assert second is not None and (second.status, second.data) == (
        "bridged",
        {"leg": "b", "n": [1]},
    )
    assert second.created_at == first.created_at
    assert await store.get_transfer("t2") is None
    with pytest.raises(LookupError, match="no session"):
        await store.save_transfer(TransferRecord(id="t3", session_id="missing", status="x"))


# lifecycle and migrations -----------------------------------------------------


async def test_start_twice_and_restart_keep_schema_and_data(db_url: str) -> None:
    store = make_store(db_url)
    await store.start()
    await store.start()
    assert await store.schema_revision() == head_revision()
    sid = await new_session(store)
    await store.close()
    await store.close()

    again = SqlStore(db_url)
    await again.start()
    try:
        assert await again.schema_revision() == head_revision()
        assert await again.get_session(sid) is not None
    finally:
        await again.close()


async def test_concurrent_first_starts_migrate_once(db_url: str) -> None:
    stores = [SqlStore(db_url) for _ in range(3)]
    await asyncio.gather(*(s.start() for s in stores))
    try:
        assert [await s.schema_revision() for s in stores] == [head_revision()] * 3
    finally:
        for s in stores:
            await s.close()


async def test_migrations_match_the_query_tables(store: SqlStore) -> None:
    def diff(conn: sa.Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))

    assert await store._read(diff) == []


async def test_not_started_and_bad_urls(tmp_path: Path) -> None:
    store = SqlStore(sqlite_url(tmp_path))
    with pytest.raises(RuntimeError, match="not started"):
        await store.get_session("x")
    with pytest.raises(ValueError, match="unsupported database URL scheme 'mysql'"):
        SqlStore("mysql://localhost/db")
    with pytest.raises(ValueError, match="unsupported"):
        SqlStore("postgresql://localhost/db")


async def test_sqlite_creates_parent_dir_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "parley.db"
    store = SqlStore(f"sqlite+aiosqlite:///{path}")
    await store.start()
    try:
        mode, timeout = await store._read(
            lambda conn: (
                conn.exec_driver_sql("PRAGMA journal_mode").scalar(),
                conn.exec_driver_sql("PRAGMA busy_timeout").scalar(),
            )
        )
    finally:
        await store.close()
    assert path.exists()
    assert mode == "wal" and timeout == 30000


async def test_a_failed_write_rolls_back_and_the_store_goes_on(store: SqlStore) -> None:
    sid = await new_session(store)
    approval = Approval(sid, "call-1", "book_table", {}, "pending", "Book?")
    await store.create_approval(approval)

    def half_then_fail(conn: sa.Connection) -> None:
        conn.execute(sa.update(sessions).where(sessions.c.id == sid).values(agent="changed"))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await store._write(half_then_fail)
    with pytest.raises(ValueError, match="already exists"):
        await store.create_approval(approval)
    message = await store.add_message(sid, "user", "still here")
    session = await store.get_session(sid)
    assert session is not None and session.agent == "receptionist"
    assert message.seq == 1 and [m.text for m in await store.list_messages(sid)] == ["still here"]


@pytest.mark.parametrize("scheme", ["sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"])
async def test_sqlite_url_spellings(tmp_path: Path, scheme: str) -> None:
    store = SqlStore(f"{scheme}:///{tmp_path / 'p.db'}")
    await store.start()
    try:
        sid = await new_session(store)
        assert (await store.add_message(sid, "user", "hi")).seq == 1
    finally:
        await store.close()


async def test_the_start_up_warm_up_leaves_nothing_behind(store: SqlStore) -> None:
    assert await store.get_session("parley-warm-up") is None
    assert await store.list_messages("parley-warm-up") == []
    sid = await new_session(store)
    assert (await store.add_message(sid, "user", "first")).seq == 1


async def test_in_memory_sqlite_keeps_its_data_for_the_store_lifetime() -> None:
    store = SqlStore("sqlite://")
    await store.start()
    try:
        sid = await new_session(store)
        await store.add_message(sid, "user", "hi")
        assert [m.text for m in await store.list_messages(sid)] == ["hi"]
    finally:
        await store.close()
