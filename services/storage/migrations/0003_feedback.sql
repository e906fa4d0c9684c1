-- Delayed labels (RecordFeedback) and realised metrics per model version (GetRealisedMetrics).

-- A caller-assigned id of a stored transaction (filled by scoring calls made with an id), so
-- feedback can name a transaction without knowing its upload and line. Nullable and without a
-- default, so adding it rewrites nothing; unique where set.
ALTER TABLE transactions ADD COLUMN transaction_id text;
CREATE UNIQUE INDEX transactions_transaction_id ON transactions (transaction_id)
  WHERE transaction_id IS NOT NULL;

-- Append-only history of label changes made by feedback. The current label stays in
-- transactions.class (what training scans); every feedback row that set or changed it appends
-- one event with the value it replaced (previous_label NULL = the row was unlabelled). A label
-- equal to the stored class appends nothing (idempotent feedback). Labels that came with the
-- upload itself have no event: the first event's previous_label records them.
CREATE TABLE label_events (
  id             bigserial PRIMARY KEY,
  upload_id      bigint NOT NULL,
  line           bigint NOT NULL,
  label          smallint NOT NULL CHECK (label IN (0, 1)),
  previous_label smallint CHECK (previous_label IN (0, 1)),
  source         text NOT NULL,
  note           text NOT NULL DEFAULT '',
  actor          text NOT NULL DEFAULT '',
  at             timestamptz NOT NULL,
  recorded_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX label_events_row ON label_events (upload_id, line, id);
-- One trigger function for every append-only table (it names the table); champion_history moves
-- to it too, so 0001's table-specific function goes.
CREATE FUNCTION refuse_change_of_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'check_violation';
END
$$;
DROP TRIGGER champion_history_no_update ON champion_history;
DROP TRIGGER champion_history_no_truncate ON champion_history;
DROP FUNCTION champion_history_append_only();
CREATE TRIGGER champion_history_no_update BEFORE UPDATE OR DELETE ON champion_history
  FOR EACH ROW EXECUTE FUNCTION refuse_change_of_append_only();
CREATE TRIGGER champion_history_no_truncate BEFORE TRUNCATE ON champion_history
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change_of_append_only();
CREATE TRIGGER label_events_no_update BEFORE UPDATE OR DELETE ON label_events
  FOR EACH ROW EXECUTE FUNCTION refuse_change_of_append_only();
CREATE TRIGGER label_events_no_truncate BEFORE TRUNCATE ON label_events
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change_of_append_only();

-- No extra index for GetRealisedMetrics: it aggregates every stored prediction (joined to its
-- transaction by the primary keys), and an index on predictions would slow every scored upload's
-- COPY for a query that reads all rows anyway.
