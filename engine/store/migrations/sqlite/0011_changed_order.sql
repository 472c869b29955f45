-- The AFNOR Flow Service's search (updatedAfter pages, sql_monitoring.SEARCH_CHANGED) reads flows oldest
-- change first: ORDER BY status_changed_at, flow_number. No index had that order, so the first page sorted
-- every visible flow: at 200,000 flows (bench.http) p50 7.1 ms / p99 33 ms for a user following 5 issuers,
-- p50 155 ms for an operator; with these two indexes p50 1.2-1.6 ms. The first serves whoever sees
-- everything (and updatedAfter alone), the second a caller limited to some issuers (one range per issuer,
-- merged in order). Their cost, measured on SQLite in alternate runs (bench.writer): the deposits'
-- writer +12% CPU per flow (batch 1: 0.58-0.70 -> 0.67-0.74 ms; batch 16: 0.128-0.139 -> 0.145-0.163 ms),
-- +3 to +7 WAL pages per transaction.
CREATE INDEX flows_changed ON flows (status_changed_at, flow_number);
CREATE INDEX flows_issuer_changed ON flows (issuer_siret, status_changed_at, flow_number);
