-- The outbox asks for EDI flows in a final status whose integration report is not written yet. That was
-- a test on each flow's return_flows JSON, which no index can serve: every drain scanned every flow ever
-- deposited (~0.4 s per drain at 1,000,000 flows in bench.search, and the outbox drains after every
-- verdict). A flag set when the report's name is recorded (sqlite_sql.ADD_RETURN_FLOW) lets a partial
-- index hold exactly the pending flows.
ALTER TABLE flows ADD COLUMN report_written INTEGER NOT NULL DEFAULT 0;

UPDATE flows SET report_written = 1
WHERE channel = 'EDI'
  AND EXISTS (
      SELECT 1 FROM json_each(flows.return_flows)
      WHERE json_each.value GLOB ('FSO*_' || flows.flow_number || '.xml')
  );

-- The status list is engine.status.FINAL_STATUSES. sqlite_outbox.PENDING_RETURN_FLOWS repeats these terms
-- and names this index (INDEXED BY): should they ever differ, the query fails instead of scanning.
CREATE INDEX flows_report_pending ON flows (seq)
    WHERE channel = 'EDI' AND partner_code IS NOT NULL AND report_written = 0
      AND status IN ('IN_INCIDENTE', 'IN_INTEGRE', 'IN_INTEGRE_PARTIEL', 'IN_REJETE');
