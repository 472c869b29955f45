-- fluxdepot SQLite schema, version 1.
-- Timestamps are ISO 8601 UTC text with microseconds ("2024-01-31T12:00:00.000000+00:00"): fixed width,
-- so text order is time order. Enums are stored as their stable codes/values.

-- One global counter for flow numbers: a row updated inside the create_flow transaction.
CREATE TABLE flow_sequence (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    last_value INTEGER NOT NULL
);
INSERT INTO flow_sequence (id, last_value) VALUES (1, 0);

CREATE TABLE flows (
    seq               INTEGER PRIMARY KEY,            -- the allocated sequence; creation order
    flow_number       TEXT NOT NULL UNIQUE,
    file_name         TEXT NOT NULL,
    syntax            TEXT NOT NULL,
    declared_syntax   INTEGER NOT NULL,
    channel           TEXT NOT NULL,
    issuer_siret      TEXT NOT NULL,
    depositor         TEXT NOT NULL,
    status            TEXT NOT NULL,
    deposited_at      TEXT NOT NULL,
    status_changed_at TEXT NOT NULL,
    sha256            TEXT NOT NULL,
    size_bytes        INTEGER NOT NULL,
    blob_key          TEXT NOT NULL,
    tracking_id       TEXT,
    partner_code      TEXT,
    invoice_count     INTEGER NOT NULL DEFAULT 0,
    integrated_count  INTEGER NOT NULL DEFAULT 0,
    rejected_count    INTEGER NOT NULL DEFAULT 0,
    ruleset_version   TEXT,
    return_flows      TEXT NOT NULL DEFAULT '[]'      -- JSON array of file names, in order written
);
-- Idempotent deposits: one flow per (depositor, tracking id); NULL tracking ids never collide.
CREATE UNIQUE INDEX flows_tracking ON flows (depositor, tracking_id);
-- Search: per issuer, newest first; by status; by date.
CREATE INDEX flows_issuer_deposited ON flows (issuer_siret, deposited_at DESC, flow_number);
CREATE INDEX flows_status ON flows (status);
CREATE INDEX flows_deposited ON flows (deposited_at);

-- Append-only, hash-chained history (engine.audit).
CREATE TABLE status_events (
    flow_number TEXT NOT NULL REFERENCES flows (flow_number),
    seq         INTEGER NOT NULL,
    status      TEXT NOT NULL,
    event       TEXT,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    detail      TEXT,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    PRIMARY KEY (flow_number, seq)
);

CREATE TABLE invoices (
    flow_number       TEXT NOT NULL REFERENCES flows (flow_number),
    idx               INTEGER NOT NULL,
    document          TEXT NOT NULL,
    number            TEXT,
    type_code         TEXT,
    issue_date        TEXT,
    issue_year        TEXT,                            -- first 4 characters of issue_date
    currency          TEXT,
    supplier_id       TEXT,
    supplier_name     TEXT,
    buyer_id          TEXT,
    buyer_name        TEXT,
    service_code      TEXT,
    engagement_number TEXT,
    total_without_vat TEXT,                            -- Decimal as text: exact
    total_with_vat    TEXT,
    amount_due        TEXT,
    guideline         TEXT,
    has_attachment    INTEGER NOT NULL,
    status            TEXT NOT NULL,
    PRIMARY KEY (flow_number, idx)
);
-- Duplicate lookup (integrated_invoice_flows): integrated invoices only.
CREATE INDEX invoices_integrated ON invoices (supplier_id, issue_year, number) WHERE status = 'integrated';

CREATE TABLE findings (
    flow_number   TEXT NOT NULL REFERENCES flows (flow_number),
    invoice_idx   INTEGER,                             -- NULL for a flow-level finding
    position      INTEGER NOT NULL,                    -- order within the flow
    code          TEXT NOT NULL,
    message       TEXT NOT NULL,
    severity      TEXT NOT NULL,
    rule          TEXT,
    business_term TEXT,
    location      TEXT,
    document      TEXT,
    PRIMARY KEY (flow_number, position)
);

-- Work queue: one row per flow that still needs a worker (see engine.store.port invariants).
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,  -- enqueue order
    flow_number      TEXT NOT NULL UNIQUE REFERENCES flows (flow_number),
    available_at     TEXT NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_claim ON jobs (available_at, id) WHERE lease_owner IS NULL;
CREATE INDEX jobs_lease_expiry ON jobs (lease_expires_at) WHERE lease_owner IS NOT NULL;

-- Directory (engine.directory).
CREATE TABLE structures (
    siret                          TEXT PRIMARY KEY,
    name                           TEXT NOT NULL,
    active                         INTEGER NOT NULL,
    is_public                      INTEGER NOT NULL,
    is_provider                    INTEGER NOT NULL,
    service_code_required          INTEGER NOT NULL,
    engagement_required            INTEGER NOT NULL,
    service_or_engagement_required INTEGER NOT NULL
);

CREATE TABLE services (
    siret    TEXT NOT NULL REFERENCES structures (siret) ON DELETE CASCADE,
    code     TEXT NOT NULL,
    label    TEXT NOT NULL,
    active   INTEGER NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (siret, code)
);

CREATE TABLE users (
    login      TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    token_hash TEXT
);

-- Memberships, technical users, partners and profiles name structures and users without foreign keys:
-- a directory file may be imported in pieces, and the directory checks report unknown entries.
CREATE TABLE memberships (
    login TEXT NOT NULL,
    siret TEXT NOT NULL,
    role  TEXT NOT NULL,
    PRIMARY KEY (login, siret)
);
CREATE INDEX memberships_siret ON memberships (siret);

CREATE TABLE technical_users (
    login      TEXT PRIMARY KEY,
    siret      TEXT NOT NULL,
    token_hash TEXT
);

CREATE TABLE partners (
    code          TEXT PRIMARY KEY,
    siret         TEXT NOT NULL,
    password_hash TEXT,
    status_files  INTEGER NOT NULL
);

CREATE TABLE partner_keys (
    code       TEXT NOT NULL REFERENCES partners (code) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    public_key TEXT NOT NULL,
    PRIMARY KEY (code, position)
);

CREATE TABLE partner_rules (
    code   TEXT NOT NULL REFERENCES partners (code) ON DELETE CASCADE,
    syntax   TEXT NOT NULL,
    rule     TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (code, syntax)
);

CREATE TABLE profiles (
    login   TEXT NOT NULL,
    siret   TEXT NOT NULL,
    profile TEXT NOT NULL,
    PRIMARY KEY (login, siret, profile)
);
CREATE INDEX profiles_siret ON profiles (siret, profile);
