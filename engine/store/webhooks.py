"""Webhook subscriptions and deliveries of both stores (the port's webhook methods), once, on a backend's
``Database`` with the statements of ``sql_webhooks``.

Deliveries are never inserted here: migration 0008's triggers write them inside the transaction that
appends each matching status event (a transactional outbox). Here they are claimed under a lease
(``claim_deliveries``), settled by the lease holder (``record_delivery_attempt``), listed and redelivered.

Invariants: a delivery is claimed by one holder at a time (an expired lease is claimable again); a
later delivery of a flow is never claimed while an earlier one of that flow and subscription is pending;
deleting a subscription deletes its deliveries in the same transaction, so none is claimed afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from engine.status import FlowStatus
from engine.store import sql_webhooks as sql
from engine.store.database import Connection, Database
from engine.store.rows import Row, utc
from engine.webhooks import (
    Attempt,
    Delivery,
    DeliveryState,
    NewSubscription,
    OwnerKind,
    Subscription,
    WebhookFormat,
)

SCAN_FACTOR = 8  # a claim looks at up to this many due rows per slot to find the ones it may take


def _subscription(conn: Connection, row: Row) -> Subscription:
    return Subscription(
        id=int(row["id"]),
        siret=str(row["siret"]),
        owner_kind=OwnerKind(row["owner_kind"]),
        owner=str(row["owner"]),
        url=str(row["url"]),
        secret=str(row["secret"]),
        statuses=tuple(FlowStatus(code) for code in conn.decode.names(row["statuses"])),
        format=WebhookFormat(row["format"]),
        created_at=conn.decode.time(row["created_at"]),
        created_by=str(row["created_by"]),
    )


def _delivery(conn: Connection, row: Row) -> Delivery:
    time = conn.decode.time

    def opt_time(value: object) -> datetime | None:
        return time(value) if value is not None else None

    previous = row["previous_status"]
    return Delivery(
        id=int(row["id"]),
        subscription_id=int(row["subscription_id"]),
        flow_number=str(row["flow_number"]),
        seq=int(row["seq"]),
        cursor=int(row["cursor"]),
        issuer_siret=str(row["issuer_siret"]),
        depositor=str(row["depositor"]),
        status=FlowStatus(row["status"]),
        previous_status=FlowStatus(previous) if previous is not None else None,
        at=time(row["at"]),
        state=DeliveryState(row["state"]),
        attempts=int(row["attempts"]),
        next_attempt_at=time(row["next_attempt_at"]),
        first_attempt_at=opt_time(row["first_attempt_at"]),
        last_attempt_at=opt_time(row["last_attempt_at"]),
        last_error=str(row["last_error"]) if row["last_error"] is not None else None,
        url=str(row["url"]),
        secret=str(row["secret"]),
        format=WebhookFormat(row["format"]),
    )


class Webhooks:
    """Part of ``engine.store.sql_store.SqlStore``."""

    _db: Database

    async def add_webhook(self, new: NewSubscription) -> Subscription:
        scope = new.scope
        params = {
            "siret": new.siret,
            "owner_kind": new.owner_kind.value,
            "owner": new.owner,
            "scope_issuer": scope.issuer,
            "scope_depositor": scope.depositor,
            "url": new.url,
            "secret": new.secret,
            "statuses": [s.code for s in new.statuses],
            "format": new.format.value,
            "created_at": new.created_at,
            "created_by": new.created_by,
        }
        async with self._db.write() as tx:
            new_id = int(await tx.value(sql.INSERT_SUBSCRIPTION, params))
        return Subscription(**{**new.__dict__, "id": new_id})

    async def list_webhooks(self) -> list[Subscription]:
        async with self._db.read() as conn:
            return [_subscription(conn, row) for row in await conn.rows(sql.LIST_SUBSCRIPTIONS)]

    async def get_webhook(self, subscription_id: int) -> Subscription | None:
        async with self._db.read() as conn:
            rows = await conn.rows(sql.GET_SUBSCRIPTION, {"id": subscription_id})
            return _subscription(conn, rows[0]) if rows else None

    async def delete_webhook(self, subscription_id: int) -> bool:
        async with self._db.write() as tx:
            await tx.execute(sql.DELETE_SUBSCRIPTION_DELIVERIES, {"id": subscription_id})
            return await tx.execute(sql.DELETE_SUBSCRIPTION, {"id": subscription_id}) == 1

    async def claim_deliveries(
        self,
        owner: str,
        *,
        now: datetime,
        lease_s: float,
        limit: int,
        per_subscription: int,
        busy: Sequence[int] = (),
    ) -> list[Delivery]:
        if limit <= 0:
            return []
        due = {
            "now": now,
            "busy": list(busy),
            "scan": limit * SCAN_FACTOR,
            "per_subscription": per_subscription,
            "limit": limit,
        }
        async with self._db.write() as tx:
            ids = [int(row["id"]) for row in await tx.rows(sql.DUE_DELIVERIES, due)]
            if not ids:
                return []
            lease = {"ids": ids, "owner": owner, "expires": utc(now) + timedelta(seconds=lease_s), "now": now}
            leased = [int(row["id"]) for row in await tx.rows(sql.LEASE_DELIVERIES, lease)]
            if not leased:
                return []
            return [_delivery(tx, row) for row in await tx.rows(sql.CLAIMED_DELIVERIES, {"ids": leased})]

    async def record_delivery_attempts(self, owner: str, attempts: Sequence[Attempt]) -> int:
        rows = [
            {
                "id": a.delivery_id,
                "owner": owner,
                "state": a.state.value,
                "at": a.at,
                "next_attempt_at": a.next_attempt_at,
                "error": a.error,
            }
            for a in attempts
        ]
        settled = 0
        if rows:
            async with self._db.write() as tx:  # one transaction (one sync) for a batch of outcomes
                for row in rows:
                    settled += await tx.execute(sql.RECORD_ATTEMPT, row)
        return settled

    async def list_deliveries(
        self, subscription_ids: Sequence[int], *, state: DeliveryState | None = None, limit: int = 100
    ) -> list[Delivery]:
        params = {
            "subscription_ids": list(subscription_ids),
            "state": state.value if state else None,
            "limit": limit,
        }
        async with self._db.read() as conn:
            return [_delivery(conn, row) for row in await conn.rows(sql.LIST_DELIVERIES, params)]

    async def get_delivery(self, delivery_id: int) -> Delivery | None:
        async with self._db.read() as conn:
            rows = await conn.rows(sql.GET_DELIVERY, {"id": delivery_id})
            return _delivery(conn, rows[0]) if rows else None

    async def redeliver(self, delivery_id: int, *, now: datetime) -> bool:
        async with self._db.write() as tx:
            return await tx.execute(sql.REDELIVER, {"id": delivery_id, "now": now}) == 1

    async def purge_settled_deliveries(self, before: datetime) -> int:
        """Delete delivered and dead deliveries last attempted before ``before``; returns how many."""
        async with self._db.write() as tx:
            return await tx.execute(sql.PURGE_SETTLED_DELIVERIES, {"before": before})
