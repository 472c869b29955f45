-- fluxdepot PostgreSQL schema, version 1 (scale-out: several daemons share this database).
-- Times are timestamptz (UTC in, UTC out); enums are stored as their stable codes/values; decimals as
-- exact text (as on SQLite, so a report reads back exactly what was parsed).

-- Flow numbers: one database sequence, shared by every daemon; a value is never handed out twice
-- (a rolled-back deposit burns its value, which is fine: numbers are unique, not dense).
CREATE SEQUENCE flow_seq AS bigint MINVALUE 1 NO CYCLE;

CREATE TABLE flows (
    seq               bigint PRIMARY KEY,               -- the allocated sequence; creation order
    flow_number       text NOT NULL UNIQUE,
    file_name         text NOT NULL,
    syntax            text NOT NULL,
    declared_syntax   boolean NOT NULL,
    channel           text NOT NULL,
    issuer_siret      text NOT NULL,
    depositor         text NOT NULL,
    status            text NOT NULL,
    deposited_at      timestamptz NOT NULL,
    status_changed_at timestamptz NOT NULL,
    sha256            text NOT NULL,
    size_bytes        bigint NOT NULL,
    blob_key          text NOT NULL,
    tracking_id       text,
    partner_code      text,
    invoice_count     integer NOT NULL DEFAULT 0,
    integrated_count  integer NOT NULL DEFAULT 0,
    rejected_count    integer NOT NULL DEFAULT 0,
    ruleset_version   text,
    return_flows      text[] NOT NULL DEFAULT '{}'       -- file names, in the order written
);
-- Idempotent deposits: one flow per (depositor, tracking id); NULL tracking ids never collide.
CREATE UNIQUE INDEX flows_tracking ON flows (depositor, tracking_id);
-- Search: per issuer, newest first (the keyset order); by depositor (technical users, partners).
CREATE INDEX flows_issuer_deposited ON flows (issuer_siret, deposited_at DESC, flow_number DESC);
CREATE INDEX flows_depositor_deposited ON flows (depositor, issuer_siret, deposited_at DESC, flow_number DESC);
-- Oldest flow per non-final status (Dashboard), per issuer.
CREATE INDEX flows_status_changed ON flows (status, status_changed_at);
CREATE INDEX flows_deposited ON flows (deposited_at);
CREATE INDEX flows_sha256 ON flows (sha256);
-- Return flows still to write (EDI flows in a final status without a return flow yet).
CREATE INDEX flows_pending_return ON flows (seq)
    WHERE channel = 'EDI' AND cardinality(return_flows) = 0
      AND status IN ('IN_INCIDENTE', 'IN_REJETE', 'IN_INTEGRE', 'IN_INTEGRE_PARTIEL');

-- The event feed's cursor: one row, updated as the last statement of every transaction that appends
-- status events. Its row lock serialises those appends until COMMIT, so cursors grow in commit order
-- across every daemon (see engine.store.postgres_status).
CREATE TABLE feed_counter (
    id          integer PRIMARY KEY CHECK (id = 1),
    last_cursor bigint NOT NULL
);
INSERT INTO feed_counter (id, last_cursor) VALUES (1, 0);

-- Append-only, hash-chained history (engine.audit); ``cursor`` is the global feed position.
CREATE TABLE status_events (
    flow_number text NOT NULL REFERENCES flows (flow_number),
    seq         integer NOT NULL,
    status      text NOT NULL,
    event       text,
    at          timestamptz NOT NULL,
    actor       text NOT NULL,
    detail      text,
    prev_hash   text NOT NULL,
    hash        text NOT NULL,
    cursor      bigint NOT NULL UNIQUE,
    PRIMARY KEY (flow_number, seq)
);

CREATE TABLE invoices (
    flow_number       text NOT NULL REFERENCES flows (flow_number),
    idx               integer NOT NULL,
    document          text NOT NULL,
    number            text,
    type_code         text,
    issue_date        text,
    issue_year        text,                              -- first 4 characters of issue_date
    currency          text,
    supplier_id       text,
    supplier_name     text,
    buyer_id          text,
    buyer_name        text,
    service_code      text,
    engagement_number text,
    total_without_vat text,                              -- Decimal as text: exact
    total_with_vat    text,
    amount_due        text,
    guideline         text,
    has_attachment    boolean NOT NULL,
    status            text NOT NULL,
    PRIMARY KEY (flow_number, idx)
);
-- An invoice is integrated once, whichever daemon judged it: two daemons judging two flows that carry
-- the same invoice at the same time cannot both integrate it (the second verdict fails and is redone).
CREATE UNIQUE INDEX invoices_integrated ON invoices (supplier_id, issue_year, number)
    WHERE status = 'integrated';

CREATE TABLE findings (
    flow_number   text NOT NULL REFERENCES flows (flow_number),
    invoice_idx   integer,                               -- NULL for a flow-level finding
    position      integer NOT NULL,                      -- order within the flow
    code          text NOT NULL,
    message       text NOT NULL,
    severity      text NOT NULL,
    rule          text,
    business_term text,
    location      text,
    document      text,
    PRIMARY KEY (flow_number, position)
);

-- Work queue: one row per flow that still needs a worker (see engine.store.port invariants).
CREATE TABLE jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- enqueue order
    flow_number      text NOT NULL UNIQUE REFERENCES flows (flow_number),
    available_at     timestamptz NOT NULL,
    lease_owner      text,
    lease_expires_at timestamptz,
    attempts         integer NOT NULL DEFAULT 0
);
CREATE INDEX jobs_claim ON jobs (available_at, id) WHERE lease_owner IS NULL;
CREATE INDEX jobs_lease_expiry ON jobs (lease_expires_at) WHERE lease_owner IS NOT NULL;

-- Directory (engine.directory).
CREATE TABLE structures (
    siret                          text PRIMARY KEY,
    name                           text NOT NULL,
    active                         boolean NOT NULL,
    is_public                      boolean NOT NULL,
    is_provider                    boolean NOT NULL,
    service_code_required          boolean NOT NULL,
    engagement_required            boolean NOT NULL,
    service_or_engagement_required boolean NOT NULL
);

CREATE TABLE services (
    siret    text NOT NULL REFERENCES structures (siret) ON DELETE CASCADE,
    code     text NOT NULL,
    label    text NOT NULL,
    active   boolean NOT NULL,
    position integer NOT NULL,
    PRIMARY KEY (siret, code)
);

CREATE TABLE users (
    login        text PRIMARY KEY,
    name         text NOT NULL,
    token_hash   text,
    token_lookup text UNIQUE
);

-- Memberships, technical users, partners and profiles name structures and users without foreign keys:
-- a directory file may be imported in pieces, and the directory checks report unknown entries.
CREATE TABLE memberships (
    login text NOT NULL,
    siret text NOT NULL,
    role  text NOT NULL,
    PRIMARY KEY (login, siret)
);
CREATE INDEX memberships_siret ON memberships (siret);

CREATE TABLE technical_users (
    login        text PRIMARY KEY,
    siret        text NOT NULL,
    token_hash   text,
    token_lookup text UNIQUE
);

CREATE TABLE partners (
    code          text PRIMARY KEY,
    siret         text NOT NULL,
    password_hash text,
    status_files  boolean NOT NULL
);

CREATE TABLE partner_keys (
    code       text NOT NULL REFERENCES partners (code) ON DELETE CASCADE,
    position   integer NOT NULL,
    public_key text NOT NULL,
    PRIMARY KEY (code, position)
);

CREATE TABLE partner_rules (
    code     text NOT NULL REFERENCES partners (code) ON DELETE CASCADE,
    syntax   text NOT NULL,
    rule     text NOT NULL,
    position integer NOT NULL,
    PRIMARY KEY (code, syntax)
);

CREATE TABLE profiles (
    login   text NOT NULL,
    siret   text NOT NULL,
    profile text NOT NULL,
    PRIMARY KEY (login, siret, profile)
);
CREATE INDEX profiles_siret ON profiles (siret, profile);
