-- Webhooks (engine.webhooks): subscriptions to status changes, and their deliveries as a transactional
-- outbox. A delivery row is written by the statement trigger below, inside the transaction that appends
-- the status events (fluxdepot_flush, 0003), so a change that is committed has its deliveries with it.

-- ``scope_issuer`` / ``scope_depositor``: the flows the owner may see (engine.permissions.Visibility of
-- a structure: its issuer SIRET; of a technical user or partner: what it deposited). ``statuses``: the
-- status codes, empty for every status.
CREATE TABLE webhook_subscriptions (
    id              bigserial PRIMARY KEY,
    siret           text NOT NULL,                      -- the structure it belongs to (who manages it)
    owner_kind      text NOT NULL,                      -- structure | technical | partner
    owner           text NOT NULL,                      -- SIRET, technical login or partner code
    scope_issuer    text,
    scope_depositor text,
    url             text NOT NULL,
    secret          text NOT NULL,                      -- the HMAC key: needed in clear to sign
    statuses        text[] NOT NULL,
    format          text NOT NULL,                      -- fluxdepot | afnor
    created_at      timestamptz NOT NULL,
    created_by      text NOT NULL
);
CREATE INDEX webhook_subscriptions_siret ON webhook_subscriptions (siret);

-- One row per (matching status event, subscription). ``state``: pending (to send, or retrying),
-- delivered, dead (gave up after retry_for_s; redeliverable). A lease (owner, expiry) marks a row being
-- sent; an expired lease is claimable again.
CREATE TABLE webhook_deliveries (
    id               bigserial PRIMARY KEY,
    subscription_id  bigint NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    flow_number      text NOT NULL,
    seq              integer NOT NULL,                  -- the event's seq in the flow's history
    cursor           bigint NOT NULL,                   -- the event's position in the feed
    issuer_siret     text NOT NULL,
    depositor        text NOT NULL,
    status           text NOT NULL,
    previous_status  text,
    at               timestamptz NOT NULL,
    state            text NOT NULL DEFAULT 'pending',
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    first_attempt_at timestamptz,
    last_attempt_at  timestamptz,
    last_error       text,
    lease_owner      text,
    lease_expires_at timestamptz
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, id) WHERE state = 'pending';
-- Order per flow and subscription: a delivery waits while an earlier one of its flow is pending.
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (subscription_id, flow_number, seq)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries (subscription_id, state, id);
-- Settled deliveries past [retention] webhooks_days are purged hourly (PURGE_SETTLED_DELIVERIES).
CREATE INDEX webhook_deliveries_settled ON webhook_deliveries (last_attempt_at) WHERE state <> 'pending';

-- The outbox: once per INSERT into status_events (one per flushed transaction), set-based. With no
-- subscription it is one look at an empty table.
CREATE FUNCTION fluxdepot_webhook_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM webhook_subscriptions) THEN
        INSERT INTO webhook_deliveries (subscription_id, flow_number, seq, cursor, issuer_siret, depositor, status,
                                        previous_status, at, next_attempt_at)
        SELECT s.id, e.flow_number, e.seq, e.cursor, f.issuer_siret, f.depositor, e.status,
               (SELECT p.status FROM status_events p WHERE p.flow_number = e.flow_number AND p.seq = e.seq - 1),
               e.at, e.at
        FROM new_events e
        JOIN flows f ON f.flow_number = e.flow_number
        JOIN webhook_subscriptions s ON s.scope_issuer = f.issuer_siret OR s.scope_depositor = f.depositor
        WHERE cardinality(s.statuses) = 0 OR e.status = ANY (s.statuses)
        ORDER BY e.cursor, s.id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER status_events_webhooks AFTER INSERT ON status_events
REFERENCING NEW TABLE AS new_events
FOR EACH STATEMENT EXECUTE FUNCTION fluxdepot_webhook_outbox();
