-- Delayed labels as an overlay (issue 17 target: feedback for 284,807 labels within the time of
-- `psql \copy` of the same id,label file). Until now every feedback label rewrote its ~300-byte
-- transactions row (UPDATE, no HOT: new primary-key and time-index entries) and appended one
-- label_events row (bigserial + index): 12-15x and 5-6x the floor on their own (bench/README).
--
-- From here on:
--  - transactions.class is the label the row came with in its upload and is never updated;
--  - label_overlay holds the label each line has now, one byte per line in chunks of 1024 lines
--    (0 / 1 the label, 254 a row without a label, 255 nothing: the row's transactions.class
--    holds). 284,807 lines are ~280 rows of 1 KB (stored inline, uncompressed: below the TOAST
--    threshold). StoreUpload writes a new upload's whole line map at commit (uploads.line_map =
--    true: then every stored row has a byte and 255 means no row has that line), so feedback on
--    it reads the overlay alone (1 byte a row) to know which lines exist and their labels.
--    Feedback on other uploads (stored before 0009, the live-scoring upload) reads the rows'
--    class and sets bytes as it changes labels. FeedbackWriter reads, changes and writes back
--    whole chunks under its advisory lock;
--  - current_transactions is what every reader of a label reads: the transactions with
--    class = the overlay's label where it has one. Its LEFT JOIN is on the overlay's primary
--    key, so queries that do not read class drop it (join removal);
--  - history is one label_batches row per feedback stream (actor, time, its distinct sources and
--    notes) and one label_changes row per (upload, chunk) the stream changed, holding the
--    changed rows as packed 8-byte records (below), so 284,807 changes are ~280 rows of ~8 KB
--    instead of 284,807 rows with their own index entries. Source, note and `at` take 16 more
--    bytes a change only in chunks where some change does not have the stream's defaults. The
--    view label_events decodes them into one row per change with the columns the old table had;
--  - the realised summary (0007) follows the overlay: the prediction triggers read the current
--    label through current_transactions, and FeedbackWriter moves the changed rows' predictions
--    between label states itself, as before.
--
-- A database migrated from 0003-0008 keeps its labels where feedback left them (in
-- transactions.class, which then already is the current label; the overlay starts empty) and
-- its label_events rows become label_batches / label_changes below, with review dispositions
-- pointing at the new event ids.

CREATE TABLE label_overlay (
  upload_id bigint NOT NULL,
  chunk     bigint NOT NULL,   -- line >> 10
  labels    bytea NOT NULL,    -- byte (line & 1023): 0, 1, 254 (unlabelled) or 255 (nothing)
  PRIMARY KEY (upload_id, chunk),
  CONSTRAINT label_overlay_1024 CHECK (length(labels) = 1024)
);
-- Whether label_overlay holds a byte for every stored row of the upload (uploads committed by
-- StoreUpload from 0009 on). A constant default: adding it rewrites nothing.
ALTER TABLE uploads ADD COLUMN line_map boolean NOT NULL DEFAULT false;

-- The stored transactions with their current label.
CREATE VIEW current_transactions AS
SELECT t.upload_id, t.line, t.time, t.amount, t.v, t.transaction_id,
  CASE WHEN o.labels IS NULL THEN t.class
       ELSE CASE get_byte(o.labels, (t.line & 1023)::int) WHEN 255 THEN t.class WHEN 254 THEN NULL
            ELSE get_byte(o.labels, (t.line & 1023)::int)::smallint END
  END AS class
FROM transactions t
LEFT JOIN label_overlay o ON o.upload_id = t.upload_id AND o.chunk = t.line >> 10;

-- One row per feedback stream that changed at least one label. sources and notes are the
-- stream's distinct values, which the records name by 0-based index; a change without attrs
-- (below) has source 0, note 0 and `at` = recorded_at.
CREATE TABLE label_batches (
  id          bigserial PRIMARY KEY,
  actor       text NOT NULL DEFAULT '',
  recorded_at timestamptz NOT NULL DEFAULT now(),
  sources     text[] NOT NULL,
  notes       text[] NOT NULL
);
-- The changes of one batch in one (upload, chunk of 1024 lines), in line order, as big-endian
-- records. changes, 8 bytes a change:
--   bytes 0-1   uint16 line & 1023
--   byte  2     label (0 / 1)
--   byte  3     previous label (0 / 1, 255 = the row was unlabelled)
--   bytes 4-7   int32 the row's number in its stream (1-based)
-- attrs, NULL when every change of the row has the batch's defaults, else 16 bytes a change in
-- the same order:
--   bytes 0-3   int32 index into the batch's sources
--   bytes 4-7   int32 index into the batch's notes
--   bytes 8-15  int64 `at` in microseconds since the Unix epoch (int64 min: recorded_at)
-- An event's id is (batch id << 32) | row: ordered as the changes arrived, across batches and
-- within one.
CREATE TABLE label_changes (
  upload_id bigint NOT NULL,
  chunk     bigint NOT NULL,
  batch_id  bigint NOT NULL,
  changes   bytea NOT NULL,
  attrs     bytea,
  PRIMARY KEY (upload_id, chunk, batch_id),
  CONSTRAINT label_changes_records CHECK (length(changes) > 0 AND length(changes) % 8 = 0
    AND (attrs IS NULL OR length(attrs) = 2 * length(changes)))
);
-- Uncompressed: the records are written once and read rarely; compressing every write costs
-- more than the bytes it saves.
ALTER TABLE label_changes ALTER COLUMN changes SET STORAGE EXTERNAL;
ALTER TABLE label_changes ALTER COLUMN attrs SET STORAGE EXTERNAL;
CREATE TRIGGER label_batches_no_update BEFORE UPDATE OR DELETE ON label_batches
  FOR EACH ROW EXECUTE FUNCTION refuse_change_of_append_only();
CREATE TRIGGER label_batches_no_truncate BEFORE TRUNCATE ON label_batches
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change_of_append_only();
CREATE TRIGGER label_changes_no_update BEFORE UPDATE OR DELETE ON label_changes
  FOR EACH ROW EXECUTE FUNCTION refuse_change_of_append_only();
CREATE TRIGGER label_changes_no_truncate BEFORE TRUNCATE ON label_changes
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change_of_append_only();

-- The big-endian signed integer of `len` bytes at 0-based offset `pos` of `b`.
CREATE FUNCTION label_record_int(b bytea, pos int, len int) RETURNS bigint
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT CASE len WHEN 4 THEN ('x' || encode(substring(b FROM pos + 1 FOR 4), 'hex'))::bit(32)::int::bigint
   ELSE ('x' || encode(substring(b FROM pos + 1 FOR 8), 'hex'))::bit(64)::bigint END $$;

-- One change's record and its attrs as bytes (the layouts above), for the conversion below.
CREATE FUNCTION label_record(line bigint, label smallint, previous smallint, row_number bigint)
  RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT int2send((line & 1023)::smallint) || int2send(((label << 8) | COALESCE(previous, 255))::smallint)
   || int4send(row_number::int) $$;
CREATE FUNCTION label_record_attrs(source_index int, note_index int, at_us bigint)
  RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT int4send(source_index) || int4send(note_index) || int8send(at_us) $$;

-- ---- Conversion of the 0003 table ----
-- One batch per (recorded_at, actor) (one feedback stream's transaction), in the order of its
-- first event; rows numbered by event id within it.
CREATE TEMP TABLE legacy_events ON COMMIT DROP AS
SELECT e.*, dense_rank() OVER (ORDER BY first_id) AS batch,
  row_number() OVER (PARTITION BY first_id ORDER BY e.id) AS pos
FROM (SELECT *, min(id) OVER (PARTITION BY recorded_at, actor) AS first_id FROM label_events) e;
INSERT INTO label_batches (id, actor, recorded_at, sources, notes)
SELECT batch, min(actor), min(recorded_at), array_agg(DISTINCT source ORDER BY source),
  array_agg(DISTINCT note ORDER BY note)
FROM legacy_events GROUP BY batch;
SELECT setval('label_batches_id_seq', COALESCE(max(id), 0) + 1, false) FROM label_batches;
INSERT INTO label_changes (upload_id, chunk, batch_id, changes, attrs)
SELECT e.upload_id, e.line >> 10, e.batch,
  string_agg(label_record(e.line, e.label, e.previous_label, e.pos), ''::bytea
             ORDER BY e.line, e.pos),
  string_agg(label_record_attrs(array_position(b.sources, e.source) - 1,
                                array_position(b.notes, e.note) - 1,
                                (extract(epoch FROM e.at) * 1000000)::bigint), ''::bytea
             ORDER BY e.line, e.pos)
FROM legacy_events e JOIN label_batches b ON b.id = e.batch
GROUP BY e.upload_id, e.line >> 10, e.batch;
ALTER TABLE review_dispositions DISABLE TRIGGER review_dispositions_no_update;
UPDATE review_dispositions d SET label_event_id = (e.batch << 32) | e.pos
FROM legacy_events e WHERE e.id = d.label_event_id;
ALTER TABLE review_dispositions ENABLE TRIGGER review_dispositions_no_update;
DROP TABLE label_events;

-- Every change, decoded: the columns the label_events table had (previous_label NULL = the row
-- was unlabelled) plus chunk and batch_id. Filter on upload_id and chunk (line >> 10) to read
-- one transaction's history through the primary key.
CREATE VIEW label_events AS
SELECT (c.batch_id << 32) | label_record_int(c.changes, r.k * 8 + 4, 4) AS id,
  c.upload_id, c.chunk,
  (c.chunk << 10) + get_byte(c.changes, r.k * 8) * 256 + get_byte(c.changes, r.k * 8 + 1) AS line,
  get_byte(c.changes, r.k * 8 + 2)::smallint AS label,
  NULLIF(get_byte(c.changes, r.k * 8 + 3), 255)::smallint AS previous_label,
  b.sources[COALESCE(label_record_int(c.attrs, r.k * 16, 4), 0) + 1] AS source,
  b.notes[COALESCE(label_record_int(c.attrs, r.k * 16 + 4, 4), 0) + 1] AS note,
  b.actor,
  COALESCE(timestamptz 'epoch' + NULLIF(label_record_int(c.attrs, r.k * 16 + 8, 8),
                                        -9223372036854775808) * interval '1 microsecond',
           b.recorded_at) AS at,
  b.recorded_at, c.batch_id
FROM label_changes c
JOIN label_batches b ON b.id = c.batch_id
CROSS JOIN LATERAL generate_series(0, length(c.changes) / 8 - 1) AS r(k);

-- The prediction triggers of 0007 read the current label.
CREATE OR REPLACE FUNCTION realised_predictions_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  part constant text := 'SELECT r.model_version, r.upload_id, t.time, r.score, r.decision,'
    ' t.class, %s AS sign FROM %I r JOIN current_transactions t'
    ' ON t.upload_id = r.upload_id AND t.line = r.line';
BEGIN
  IF current_setting('fraud.realised_deferred', true) = 'on' THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN
    EXECUTE realised_apply_sql(format(part, 1, 'new_predictions'));
  ELSIF TG_OP = 'UPDATE' THEN
    EXECUTE realised_apply_sql(format(part, 1, 'new_predictions') || ' UNION ALL '
                               || format(part, -1, 'old_predictions'));
  ELSE
    EXECUTE realised_apply_sql(format(part, -1, 'old_predictions'));
    DELETE FROM realised_bins b WHERE b.frauds = 0 AND b.legits = 0 AND b.unlabelled = 0
      AND b.upload_id IN (SELECT DISTINCT upload_id FROM old_predictions);
  END IF;
  RETURN NULL;
END
$$;
