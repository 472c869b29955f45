-- Webhooks (engine.webhooks): subscriptions to status changes, and their deliveries as a transactional
-- outbox. A delivery row is written by the trigger below, inside the transaction that appends the status
-- event (whichever process writes it: the deposits' writer child or the flows' writer thread), so a
-- change that is committed has its deliveries committed with it.

-- ``scope_issuer`` / ``scope_depositor``: the flows the owner may see (engine.permissions.Visibility of
-- a structure: its issuer SIRET; of a technical user or partner: what it deposited). ``statuses``: a
-- JSON array of status codes, [] for every status.
CREATE TABLE webhook_subscriptions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    siret           TEXT NOT NULL,                      -- the structure it belongs to (who manages it)
    owner_kind      TEXT NOT NULL,                      -- structure | technical | partner
    owner           TEXT NOT NULL,                      -- SIRET, technical login or partner code
    scope_issuer    TEXT,
    scope_depositor TEXT,
    url             TEXT NOT NULL,
    secret          TEXT NOT NULL,                      -- the HMAC key: needed in clear to sign
    statuses        TEXT NOT NULL,
    format          TEXT NOT NULL,                      -- fluxdepot | afnor
    created_at      TEXT NOT NULL,
    created_by      TEXT NOT NULL
);
CREATE INDEX webhook_subscriptions_siret ON webhook_subscriptions (siret);

-- One row per (matching status event, subscription). ``state``: pending (to send, or retrying),
-- delivered, dead (gave up after retry_for_s; redeliverable). A lease (owner, expiry) marks a row being
-- sent; an expired lease is claimable again.
CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id  INTEGER NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    flow_number      TEXT NOT NULL,
    seq              INTEGER NOT NULL,                  -- the event's seq in the flow's history
    cursor           INTEGER NOT NULL,                  -- the event's position in the feed
    issuer_siret     TEXT NOT NULL,
    depositor        TEXT NOT NULL,
    status           TEXT NOT NULL,
    previous_status  TEXT,
    at               TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending',
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    first_attempt_at TEXT,
    last_attempt_at  TEXT,
    last_error       TEXT,
    lease_owner      TEXT,
    lease_expires_at TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, id) WHERE state = 'pending';
-- Order per flow and subscription: a delivery waits while an earlier one of its flow is pending.
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (subscription_id, flow_number, seq)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries (subscription_id, state, id);
-- Settled deliveries past [retention] webhooks_days are purged hourly (PURGE_SETTLED_DELIVERIES).
CREATE INDEX webhook_deliveries_settled ON webhook_deliveries (last_attempt_at) WHERE state <> 'pending';

-- The outbox: event_feed rows are written by status_events' trigger (0002) with the flow's issuer and
-- depositor. With no subscription the WHEN clause is one look at an empty table.
CREATE TRIGGER event_feed_webhooks AFTER INSERT ON event_feed
WHEN EXISTS (SELECT 1 FROM webhook_subscriptions)
BEGIN
    INSERT INTO webhook_deliveries (subscription_id, flow_number, seq, cursor, issuer_siret, depositor, status,
                                    previous_status, at, next_attempt_at)
    SELECT s.id, NEW.flow_number, NEW.seq, NEW.id, NEW.issuer_siret, NEW.depositor, NEW.status,
           (SELECT p.status FROM status_events p WHERE p.flow_number = NEW.flow_number AND p.seq = NEW.seq - 1),
           NEW.at, NEW.at
    FROM webhook_subscriptions s
    WHERE (s.scope_issuer = NEW.issuer_siret OR s.scope_depositor = NEW.depositor)
      AND (s.statuses = '[]' OR EXISTS (SELECT 1 FROM json_each(s.statuses) WHERE value = NEW.status))
    ORDER BY s.id;
END;
