-- The end of every write transaction in ONE server-side call (engine.store.postgres_status.commit):
-- counter deltas, then the status events under the feed counter's row lock, then pg_notify. The caller
-- stages the payload with set_config('fluxdepot.flush', ..., true) beforehand and sends
-- "SELECT fluxdepot_flush(); COMMIT" as one message, so the hot rows (an issuer's counters, the global
-- feed counter) stay locked only while the server runs this function and commits, never across a round
-- trip to the client.
--
-- Payload (jsonb, every list already sorted by key, so every writer locks counter rows in one order):
--   ft: [[issuer, syntax, status, n]]            flow_totals
--   fd: [[issuer, day, syntax, status, n]]       flow_day_counts
--   et: [[issuer, syntax, code, rule, n]]        error_totals
--   ed: [[issuer, day, syntax, code, rule, n]]   error_day_counts
--   ev: [[flow_number, seq, status, event, at, actor, detail, prev_hash, hash]]   status_events
CREATE FUNCTION fluxdepot_flush() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    p jsonb := current_setting('fluxdepot.flush')::jsonb;
    n_events integer := jsonb_array_length(p -> 'ev');
    base bigint;
BEGIN
    INSERT INTO flow_totals AS t (issuer_siret, syntax, status, n)
    SELECT r ->> 0, r ->> 1, r ->> 2, (r ->> 3)::bigint
    FROM jsonb_array_elements(p -> 'ft') WITH ORDINALITY AS e(r, ord) ORDER BY ord
    ON CONFLICT (issuer_siret, syntax, status) DO UPDATE SET n = t.n + excluded.n;

    INSERT INTO flow_day_counts AS t (issuer_siret, day, syntax, status, n)
    SELECT r ->> 0, (r ->> 1)::date, r ->> 2, r ->> 3, (r ->> 4)::bigint
    FROM jsonb_array_elements(p -> 'fd') WITH ORDINALITY AS e(r, ord) ORDER BY ord
    ON CONFLICT (issuer_siret, day, syntax, status) DO UPDATE SET n = t.n + excluded.n;

    INSERT INTO error_totals AS t (issuer_siret, syntax, code, rule, n)
    SELECT r ->> 0, r ->> 1, r ->> 2, r ->> 3, (r ->> 4)::bigint
    FROM jsonb_array_elements(p -> 'et') WITH ORDINALITY AS e(r, ord) ORDER BY ord
    ON CONFLICT (issuer_siret, syntax, code, rule) DO UPDATE SET n = t.n + excluded.n;

    INSERT INTO error_day_counts AS t (issuer_siret, day, syntax, code, rule, n)
    SELECT r ->> 0, (r ->> 1)::date, r ->> 2, r ->> 3, r ->> 4, (r ->> 5)::bigint
    FROM jsonb_array_elements(p -> 'ed') WITH ORDINALITY AS e(r, ord) ORDER BY ord
    ON CONFLICT (issuer_siret, day, syntax, code, rule) DO UPDATE SET n = t.n + excluded.n;

    IF n_events > 0 THEN
        UPDATE feed_counter SET last_cursor = last_cursor + n_events WHERE id = 1
        RETURNING last_cursor - n_events INTO base;
        INSERT INTO status_events (flow_number, seq, status, event, at, actor, detail, prev_hash, hash, cursor)
        SELECT r ->> 0, (r ->> 1)::integer, r ->> 2, r ->> 3, (r ->> 4)::timestamptz, r ->> 5, r ->> 6,
               r ->> 7, r ->> 8, base + ord
        FROM jsonb_array_elements(p -> 'ev') WITH ORDINALITY AS e(r, ord);
        PERFORM pg_notify('fluxdepot_events', (base + n_events)::text);
    END IF;
END
$$;
