"""The transfer board: every live transfer, shared by all workers through the coordinator.

Each transfer is one JSON value at ``transfer:{id}`` with a TTL (a lease): the worker
that holds the caller renews it; if that worker dies the value expires, and the
transfer reads as ``failed`` (``error``) everywhere. Every change is a
compare-and-set on the exact value read, so of two workers (or two operators
pressing Accept) acting on one transfer only the first succeeds; the other gets
``IllegalTransition`` from the state it finds. Each change is published as a
``transfer`` event on the caller's session channel and on ``operators``.
An index (``transfers``) lists the ids that may still be live, for the console.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, replace

from parley.clock import Clock
from parley.handoff.state import IllegalTransition, Status, Timeouts, Transfer
from parley.sessions.coordinator import Coordinator

INDEX_KEY = "transfers"
OPERATORS_CHANNEL = "operators"
CAS_ATTEMPTS = 20


def _encode(transfer: Transfer) -> str:
    return json.dumps({**asdict(transfer), "status": transfer.status.value})


def _decode(raw: str) -> Transfer:
    data = json.loads(raw)
    return Transfer(**{**data, "status": Status(data["status"])})


class TransferBoard:
    def __init__(
        self,
        coordinator: Coordinator,
        clock: Clock,
        timeouts: Timeouts | None = None,
        lease_s: float = 15.0,
    ) -> None:
        self.coordinator = coordinator
        self.clock = clock
        self.timeouts = timeouts or Timeouts()
        self.lease_s = lease_s

    @staticmethod
    def _key(transfer_id: str) -> str:
        return f"transfer:{transfer_id}"

    async def open(
        self, session_id: str, reason: str, target: str, transfer_id: str | None = None
    ) -> Transfer:
        transfer = Transfer(
            id=transfer_id or f"tr_{uuid.uuid4().hex[:16]}",
            session_id=session_id,
            reason=reason,
            target=target,
            since=self.clock.monotonic(),
        )
        await self.coordinator.set(self._key(transfer.id), _encode(transfer), self.lease_s)
        await self._index(add=(transfer.id, session_id))
        await self._publish(transfer)
        return transfer

    async def get(self, transfer_id: str) -> Transfer | None:
        """The transfer, or None if it is not live (unknown, or its lease ran out)."""
        raw = await self.coordinator.get(self._key(transfer_id))
        return _decode(raw) if raw is not None else None

    async def apply(self, transfer_id: str, event: str, *, human: str | None = None) -> Transfer:
        """Move the transfer on by ``event``, atomically; publishes the change."""
        key = self._key(transfer_id)
        for _ in range(CAS_ATTEMPTS):
            raw = await self.coordinator.get(key)
            if raw is None:
                raise IllegalTransition(f"transfer {transfer_id} is not live")
            new = _decode(raw).apply(event, self.clock.monotonic(), human=human)
            ttl = self.lease_s if not new.final else 60.0
            if await self.coordinator.compare_and_set(key, raw, _encode(new), ttl):
                if new.final:
                    await self._index(remove=transfer_id)
                await self._publish(new)
                return new
        raise IllegalTransition(f"transfer {transfer_id}: too many concurrent changes")

    async def renew(self, transfer_id: str) -> bool:
        """Extend the lease (the caller's worker, while it lives). False if gone."""
        key = self._key(transfer_id)
        raw = await self.coordinator.get(key)
        if raw is None:
            return False
        return await self.coordinator.compare_and_set(key, raw, raw, self.lease_s)

    async def live(self, lost_out: list[Transfer] | None = None) -> list[Transfer]:
        """Every transfer that is not final. One whose lease ran out (its worker died)
        is dropped and announced as ``failed`` (``error``) to its session and the
        console — by one worker only — and added to ``lost_out``."""
        out = []
        for transfer_id, session_id in (await self._ids()).items():
            transfer = await self.get(transfer_id)
            if transfer is None:
                await self._index(remove=transfer_id)
                claim = f"transfer_lost:{transfer_id}"
                if not await self.coordinator.set_if_absent(claim, "1", 3600.0):
                    continue  # another worker announced it
                gone = lost(transfer_id, session_id)
                await self._publish(gone)
                if lost_out is not None:
                    lost_out.append(gone)
            elif not transfer.final:
                out.append(transfer)
        return out

    async def sweep(self) -> list[Transfer]:
        """Apply the timeouts that are due; returns the transfers that changed (and the
        lost ones this worker announced)."""
        changed: list[Transfer] = []
        for transfer in await self.live(changed):
            event = transfer.expired(self.clock.monotonic(), self.timeouts)
            if event is None:
                continue
            try:
                changed.append(await self.apply(transfer.id, event))
            except IllegalTransition:
                continue  # another worker moved it first
        return changed

    async def _publish(self, transfer: Transfer) -> None:
        wire = {**transfer.wire(), "session_id": transfer.session_id}
        await self.coordinator.publish(f"session:{transfer.session_id}", wire)
        await self.coordinator.publish(OPERATORS_CHANNEL, wire)

    async def _ids(self) -> dict[str, str]:
        """Transfer id → session id of every transfer that may still be live."""
        raw = await self.coordinator.get(INDEX_KEY)
        return dict(json.loads(raw)) if raw else {}

    async def _index(
        self, *, add: tuple[str, str] | None = None, remove: str | None = None
    ) -> None:
        for _ in range(CAS_ATTEMPTS):
            raw = await self.coordinator.get(INDEX_KEY)
            ids: dict[str, str] = dict(json.loads(raw)) if raw else {}
            new = {k: v for k, v in ids.items() if k != remove}
            if add is not None:
                new[add[0]] = add[1]
            if new == ids or await self.coordinator.compare_and_set(
                INDEX_KEY, raw, json.dumps(new)
            ):
                return


def lost(transfer_id: str, session_id: str) -> Transfer:
    """How a transfer whose lease ran out reads: failed with ``error``."""
    stub = Transfer(transfer_id, session_id, reason="", target="")
    return replace(stub, status=Status.FAILED, failure="error")
