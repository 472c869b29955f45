-- The outbox asks for EDI flows in a final status whose integration report is not written yet. The
-- partial index of 0001 (no return flow at all) no longer matched that question once a CPPStatut file
-- could be recorded before the report, and the query scanned every flow ever deposited. A flag set when
-- the report's name is recorded (postgres_sql.ADD_RETURN_FLOW) lets the index hold exactly the pending
-- flows again.
ALTER TABLE flows ADD COLUMN report_written boolean NOT NULL DEFAULT false;

UPDATE flows SET report_written = true
WHERE channel = 'EDI'
  AND EXISTS (
      SELECT 1 FROM unnest(return_flows) AS r(name)
      WHERE r.name LIKE 'FSO%' AND r.name LIKE '%\_' || flow_number || '.xml'
  );

DROP INDEX flows_pending_return;
-- The status list is engine.status.FINAL_STATUSES; postgres_admin.PENDING_RETURN_FLOWS repeats these terms,
-- as the planner needs to use a partial index (a test checks the query plan).
CREATE INDEX flows_pending_return ON flows (seq)
    WHERE channel = 'EDI' AND partner_code IS NOT NULL AND NOT report_written
      AND status IN ('IN_INCIDENTE', 'IN_INTEGRE', 'IN_INTEGRE_PARTIEL', 'IN_REJETE');
