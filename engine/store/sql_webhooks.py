"""Named SQL of the webhooks (``engine.store.webhooks``): subscriptions, and the deliveries the migration 0008
triggers write in the transaction of each matching status event.

A claim is three statements in one write transaction: pick the due deliveries (``DUE_DELIVERIES``: at
most ``per_subscription`` per subscription, none of a subscription in ``busy``, none while an earlier one
of the same flow and subscription is pending), lease those still free (``LEASE_DELIVERIES``, skipping rows
another daemon holds locked on PostgreSQL), and read them back with their subscription.
"""

from __future__ import annotations

from engine.store.sql import Predicate, Statement, Where, both, per_dialect

# A delivery with what its sending needs of its subscription.
_DELIVERY = """SELECT d.id, d.subscription_id, d.flow_number, d.seq, d.cursor, d.issuer_siret, d.depositor,
       d.status, d.previous_status, d.at, d.state, d.attempts, d.next_attempt_at, d.first_attempt_at,
       d.last_attempt_at, d.last_error, s.url, s.secret, s.format
FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id"""
_IDS_SQLITE = Predicate("d.id IN (SELECT value FROM json_each(:ids))")
_IDS_POSTGRES = Predicate("d.id = ANY (:ids::bigint[])")
# Pending and due, not leased (or its lease expired), and not while an earlier one of its flow and
# subscription is pending (per flow, order is kept).
_DUE = (
    Predicate("d.state = 'pending' AND d.next_attempt_at <= :now"),
    Predicate("(d.lease_owner IS NULL OR d.lease_expires_at < :now)"),
    Predicate(
        "NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.subscription_id = d.subscription_id"
        " AND e.flow_number = d.flow_number AND e.state = 'pending' AND e.seq < d.seq)"
    ),
)

INSERT_SUBSCRIPTION = both("""
INSERT INTO webhook_subscriptions (siret, owner_kind, owner, scope_issuer, scope_depositor, url, secret, statuses,
                                   format, created_at, created_by)
VALUES (:siret, :owner_kind, :owner, :scope_issuer, :scope_depositor, :url, :secret, :statuses, :format,
        :created_at, :created_by)
RETURNING id
""")

LIST_SUBSCRIPTIONS = both(
    """SELECT id, siret, owner_kind, owner, url, secret, statuses, format, created_at, created_by
FROM webhook_subscriptions ORDER BY id"""
)

GET_SUBSCRIPTION = both(
    """SELECT id, siret, owner_kind, owner, url, secret, statuses, format, created_at, created_by
FROM webhook_subscriptions WHERE id = :id"""
)

# The deliveries go first: on SQLite the writers' connections may run without foreign keys enforced.
DELETE_SUBSCRIPTION_DELIVERIES = both("""DELETE FROM webhook_deliveries WHERE subscription_id = :id""")

DELETE_SUBSCRIPTION = both("""DELETE FROM webhook_subscriptions WHERE id = :id""")

# The due deliveries, oldest first, at most :per_subscription per subscription among the first :scan.
DUE_DELIVERIES = per_dialect(
    """
SELECT id FROM (
    SELECT c.id, c.next_attempt_at,
           ROW_NUMBER() OVER (PARTITION BY c.subscription_id ORDER BY c.next_attempt_at, c.id) AS rank
    FROM (
        SELECT d.id, d.subscription_id, d.next_attempt_at
        FROM webhook_deliveries d""",
    (*_DUE, Predicate("d.subscription_id NOT IN (SELECT value FROM json_each(:busy))")),
    (*_DUE, Predicate("NOT (d.subscription_id = ANY (:busy::bigint[]))")),
    """
        ORDER BY d.next_attempt_at, d.id
        LIMIT :scan
    ) c
) r
WHERE rank <= :per_subscription
ORDER BY next_attempt_at, id
LIMIT :limit
""",
)

LEASE_DELIVERIES = Statement(
    sqlite="""
UPDATE webhook_deliveries SET lease_owner = :owner, lease_expires_at = :expires
WHERE id IN (SELECT value FROM json_each(:ids))
  AND state = 'pending' AND (lease_owner IS NULL OR lease_expires_at < :now)
RETURNING id
""",
    postgres="""
UPDATE webhook_deliveries SET lease_owner = :owner, lease_expires_at = :expires
WHERE id IN (
    SELECT id FROM webhook_deliveries
    WHERE id = ANY (:ids::bigint[]) AND state = 'pending' AND (lease_owner IS NULL OR lease_expires_at < :now)
    FOR UPDATE SKIP LOCKED
)
RETURNING id
""",
)

CLAIMED_DELIVERIES = per_dialect(_DELIVERY, (_IDS_SQLITE,), (_IDS_POSTGRES,), "\nORDER BY d.id")

# An attempt's outcome, by the lease holder only: delivered (``state`` delivered), another try at
# ``next_attempt_at`` (pending), or dead.
RECORD_ATTEMPT = both("""
UPDATE webhook_deliveries
SET state = :state, attempts = attempts + 1, next_attempt_at = COALESCE(:next_attempt_at, next_attempt_at),
    first_attempt_at = COALESCE(first_attempt_at, :at), last_attempt_at = :at, last_error = :error,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = :id AND lease_owner = :owner AND state = 'pending'
""")

# A subscription's deliveries, newest first, in one state or all (:state NULL).
LIST_DELIVERIES = per_dialect(
    _DELIVERY,
    (
        Predicate("d.subscription_id IN (SELECT value FROM json_each(:subscription_ids))"),
        Predicate("d.state = :state", ("state",)),
    ),
    (
        Predicate("d.subscription_id = ANY (:subscription_ids::bigint[])"),
        Predicate("(:state::text IS NULL OR d.state = :state::text)", ("state",)),
    ),
    "\nORDER BY d.id DESC\nLIMIT :limit",
)

GET_DELIVERY = both(Where(_DELIVERY, (Predicate("d.id = :id"),)))

# Send again from scratch: pending now, its retry window starting at its next first attempt.
REDELIVER = both("""
UPDATE webhook_deliveries
SET state = 'pending', attempts = 0, next_attempt_at = :now, first_attempt_at = NULL, last_error = NULL,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = :id AND state <> 'pending'
""")

# Retention: delivered and dead deliveries whose last attempt is older than :before.
PURGE_SETTLED_DELIVERIES = both("""
DELETE FROM webhook_deliveries WHERE state <> 'pending' AND last_attempt_at < :before
""")
