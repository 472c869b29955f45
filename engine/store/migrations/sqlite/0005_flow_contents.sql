-- The bytes of small deposits, kept in the database with their flow instead of as blob files: they are
-- then made durable by the deposit's own commit (one fsync for row and bytes). Their flows have
-- blob_key = ''. A separate table keeps the flows table's rows narrow for the monitoring scans.
CREATE TABLE flow_contents (
    flow_number TEXT PRIMARY KEY REFERENCES flows (flow_number),
    content     BLOB NOT NULL
);
