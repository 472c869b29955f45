"""The store's webhook contract (``engine.store.webhooks`` and migration 0008's triggers), on SQLite and on
PostgreSQL (when ``FLUXDEPOT_TEST_PG_URL`` is set or a local server can be started, see ``tests.pg``)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from engine.status import FlowEvent, FlowStatus
from engine.store.port import Store
from engine.webhooks import Attempt, DeliveryState, NewSubscription, OwnerKind, WebhookFormat
from tests.integration.test_store_contract import SUPPLIER, T0, StoreFactory, factory, new_flow, store

__all__ = ["factory", "store"]  # the contract's fixtures: a store per backend

S = FlowStatus
E = FlowEvent
LATER = T0 + timedelta(hours=1)


def subscription(
    kind: OwnerKind = OwnerKind.STRUCTURE, owner: str = SUPPLIER, statuses: tuple[FlowStatus, ...] = ()
) -> NewSubscription:
    return NewSubscription(
        siret=SUPPLIER,
        owner_kind=kind,
        owner=owner,
        url="http://127.0.0.1:9/hook",
        secret="s3cret",
        statuses=statuses,
        format=WebhookFormat.FLUXDEPOT,
        created_at=T0,
        created_by="user:alice",
    )


async def claim(store: Store, owner: str = "d1", **kw: object) -> list[int]:
    args: dict[str, object] = {"now": LATER, "lease_s": 30.0, "limit": 10, "per_subscription": 10} | kw
    return [d.id for d in await store.claim_deliveries(owner, **args)]  # type: ignore[arg-type]


async def test_no_subscription_no_delivery(store: Store) -> None:
    """Without subscriptions, deposits and status changes write no delivery."""
    flow = await store.create_flow(new_flow(1))
    await store.transition(flow.flow_number, S.RECEIVED, E.TRANSPORT_CHECKED, actor="w", at=T0)
    assert await claim(store) == []


async def test_matching_changes_become_ordered_deliveries(store: Store) -> None:
    """Each status event a subscription wants becomes one delivery in the event's transaction (deposit
    included), carrying the previous status and cursor; statuses it does not want and flows of another
    scope give none; a later delivery of a flow is claimable only once the earlier one is settled."""
    sub = await store.add_webhook(subscription())
    picky = await store.add_webhook(subscription(statuses=(S.PROCESSED_SE_CPP,)))
    other = await store.add_webhook(subscription(OwnerKind.TECHNICAL, "someone_else"))
    assert [s.id for s in await store.list_webhooks()] == [sub.id, picky.id, other.id]
    flow = await store.create_flow(new_flow(1))
    await store.transition(flow.flow_number, S.RECEIVED, E.TRANSPORT_CHECKED, actor="w", at=T0)

    first = await store.claim_deliveries("d1", now=LATER, lease_s=30, limit=10, per_subscription=10)
    assert [(d.subscription_id, d.status, d.previous_status) for d in first] == [
        (sub.id, S.RECEIVED, None),
        (picky.id, S.PROCESSED_SE_CPP, S.RECEIVED),
    ]
    assert first[0].url == "http://127.0.0.1:9/hook" and first[0].secret == "s3cret"
    assert await claim(store, "d2") == []  # leased; the second change of sub waits for the first
    assert await store.record_delivery_attempts("d1", [Attempt(first[0].id, LATER, None, None)])
    (second,) = await store.claim_deliveries("d2", now=LATER, lease_s=30, limit=10, per_subscription=10)
    assert (second.status, second.previous_status, second.seq) == (S.PROCESSED_SE_CPP, S.RECEIVED, 2)
    assert second.cursor > first[0].cursor


async def test_technical_scope_is_what_it_deposited(store: Store) -> None:
    """A technical user's subscription receives the flows it deposited, not its structure's others."""
    mine = await store.add_webhook(subscription(OwnerKind.TECHNICAL, "TECH_1"))
    await store.create_flow(new_flow(1, depositor="tech:TECH_1"))
    await store.create_flow(new_flow(2, depositor="tech:TECH_2"))
    claimed = await store.claim_deliveries("d1", now=LATER, lease_s=30, limit=10, per_subscription=10)
    assert [(d.subscription_id, d.depositor) for d in claimed] == [(mine.id, "tech:TECH_1")]


async def test_retry_dead_and_redeliver(store: Store) -> None:
    """A failed attempt waits for its next attempt time; a dead one is listed as dead and comes back when
    redelivered; only the lease holder settles an attempt."""
    sub = await store.add_webhook(subscription())
    await store.create_flow(new_flow(1))
    (d,) = await store.claim_deliveries("d1", now=LATER, lease_s=30, limit=10, per_subscription=10)
    assert not await store.record_delivery_attempts("intruder", [Attempt(d.id, LATER, None, None)])
    retry_at = LATER + timedelta(seconds=60)
    assert await store.record_delivery_attempts("d1", [Attempt(d.id, LATER, retry_at, "HTTP 500")])
    assert await claim(store) == []
    (again,) = await store.claim_deliveries("d1", now=retry_at, lease_s=30, limit=10, per_subscription=10)
    assert (again.attempts, again.first_attempt_at, again.last_error) == (1, LATER, "HTTP 500")
    assert await store.record_delivery_attempts("d1", [Attempt(d.id, retry_at, None, "HTTP 500")])
    (dead,) = await store.list_deliveries([sub.id], state=DeliveryState.DEAD)
    assert (dead.id, dead.attempts) == (d.id, 2)
    assert await store.redeliver(d.id, now=retry_at)
    assert not await store.redeliver(d.id, now=retry_at)  # pending already
    assert await claim(store, now=retry_at) == [d.id]


async def test_expired_lease_is_claimable_again(store: Store) -> None:
    """A delivery whose holder died (lease expired) is claimed by another."""
    await store.add_webhook(subscription())
    await store.create_flow(new_flow(1))
    (d,) = await claim(store, "dead-daemon", lease_s=5.0)
    assert await claim(store, "d2") == []
    assert await claim(store, "d2", now=LATER + timedelta(seconds=6)) == [d]


async def test_per_subscription_cap_and_busy(store: Store) -> None:
    """A claim takes at most ``per_subscription`` deliveries of one subscription and none of a busy one,
    so one slow receiver cannot take every slot."""
    slow = await store.add_webhook(subscription())
    for i in range(5):
        await store.create_flow(new_flow(i))
    assert len(await claim(store, per_subscription=2)) == 2
    assert await claim(store, "d2", busy=[slow.id]) == []


async def test_settled_deliveries_are_purged_after_retention_pending_ones_never(store: Store) -> None:
    """The retention purge deletes delivered and dead deliveries last attempted before the date, and
    neither a pending one nor a recent one."""
    sub = await store.add_webhook(subscription())
    for i in range(3):
        await store.create_flow(new_flow(i))
    delivered, dead, pending = await store.claim_deliveries("d1", now=LATER, lease_s=30, limit=10, per_subscription=10)
    await store.record_delivery_attempts(
        "d1", [Attempt(delivered.id, LATER, None, None), Attempt(dead.id, LATER, None, "HTTP 500")]
    )
    assert await store.purge_settled_deliveries(LATER) == 0  # not older than the date
    assert await store.purge_settled_deliveries(LATER + timedelta(days=31)) == 2
    left = await store.list_deliveries([sub.id])
    assert [d.id for d in left] == [pending.id] and left[0].state is DeliveryState.PENDING


async def test_purging_a_flow_purges_its_deliveries(store: Store) -> None:
    """``purge_flows`` (retention of flows) takes the flows' deliveries along."""
    sub = await store.add_webhook(subscription())
    flow = await store.create_flow(new_flow(1))
    await store.transition(
        flow.flow_number,
        S.RECEIVED,
        (E.TRANSPORT_CHECKED, E.QUEUED, E.CLAIMED, E.ALL_INTEGRATED),
        actor="w",
        at=T0,
    )
    assert len(await store.list_deliveries([sub.id])) == 5
    purged, _ = await store.purge_flows(LATER + timedelta(days=1))
    assert purged == 1
    assert await store.list_deliveries([sub.id]) == []


async def test_deleting_a_subscription_deletes_its_deliveries(store: Store) -> None:
    """Once a subscription is deleted none of its deliveries is claimed, and later changes make none."""
    sub = await store.add_webhook(subscription())
    flow = await store.create_flow(new_flow(1))
    assert await store.delete_webhook(sub.id)
    assert not await store.delete_webhook(sub.id)
    await store.transition(flow.flow_number, S.RECEIVED, E.TRANSPORT_CHECKED, actor="w", at=T0)
    assert await claim(store) == []
    assert await store.get_webhook(sub.id) is None


async def test_two_claimers_never_share_a_delivery(factory: StoreFactory) -> None:
    """Two stores on one database (two daemons) claiming at once get disjoint deliveries."""
    a, b = await factory.open(), await factory.open()
    try:
        await a.add_webhook(subscription())
        for i in range(20):
            await a.create_flow(new_flow(i))
        ids: list[int] = []
        for _ in range(20):  # rounds of concurrent claims until every delivery is taken
            got = await asyncio.gather(*(claim(s, f"d{k}", limit=3) for k, s in enumerate([a, b] * 4)))
            ids += [i for batch in got for i in batch]
            if len(ids) >= 20:
                break
        assert len(ids) == len(set(ids)) == 20
    finally:
        await a.close()
        await b.close()
