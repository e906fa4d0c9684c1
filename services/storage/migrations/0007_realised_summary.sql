-- Realised metrics from a summary maintained on write (issue 17: GetRealisedMetrics for 30 days x
-- 5 versions over 2.8 M predictions in < 200 ms). Before this, every call joined every stored
-- prediction to its transaction and sorted them (about 10 s at 2.8 M).
--
-- realised_bins holds, per (upload, model version, day of Time, decision, score bin), how many
-- predictions fall there by the current label of their transaction (fraud / legit / unlabelled)
-- and the Time range of those rows. GetRealisedMetrics sums it per (version, day) or
-- (version, upload) and derives everything from the bins: counts, precision and recall exactly;
-- AUPRC and precision@k from the score histogram (see realised_bin below; storage README).
--
-- It is kept equal to a from-scratch aggregation of predictions joined to transactions, in the
-- same database transaction as every write that changes it:
--  - predictions: statement-level triggers (below) with transition tables, so every path that
--    inserts, upserts or deletes predictions (RecordPredictions, live scoring, re-upload
--    adoption and discard) is covered, per statement rather than per row. Exception: StoreUpload
--    builds its new upload's bins in memory (the trigger's join of every COPY batch to its
--    transactions cost 10x the COPY) and inserts them at commit; it sets the transaction-local
--    fraud.realised_deferred = on for its COPYs, which the trigger skips, and off again before
--    its commit statements;
--  - labels: a change of transactions.class moves that row's predictions from the old label
--    state to the new one. Only RecordFeedback changes class after a row is stored; it calls
--    realised_apply() with its changed rows. Any new path that changes class must do the same
--    (a trigger on transactions would need transition tables of the wide rows on every update).
-- Rows are never removed from a (version, upload, day) group except with the whole upload, so
-- min(time_min) / max(time_max) over a group's bins stay exact even when a rescored prediction
-- moves to another bin; bins left empty by a DELETE are removed.

-- The histogram bin of a score in [0, 1]: 1024 bins uniform in logit(score) over [-16, 16)
-- (32 bins per unit of log-odds, i.e. a score ratio of about 3% near 0, its complement near 1;
-- scores at or beyond the ends go to bin 0 and 1023). Monotone in score, so ordering by bin
-- descending is ordering by score with scores of one bin treated as ties.
CREATE FUNCTION realised_bin(score real) RETURNS smallint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT CASE WHEN score <= 0 THEN 0::smallint WHEN score >= 1 THEN 1023::smallint
   ELSE least(1023, greatest(0, floor(32 * ln(score::float8 / (1 - score::float8))) + 512))::smallint
   END $$;

CREATE TABLE realised_bins (
  upload_id     bigint NOT NULL,
  model_version bigint NOT NULL,
  day           bigint NOT NULL,   -- floor(Time / 86400) of the rows
  decision      boolean NOT NULL,
  bin           smallint NOT NULL, -- realised_bin(score)
  frauds        bigint NOT NULL,   -- predictions whose transaction has class 1
  legits        bigint NOT NULL,   -- class 0
  unlabelled    bigint NOT NULL,   -- class NULL
  time_min      double precision NOT NULL,
  time_max      double precision NOT NULL,
  PRIMARY KEY (upload_id, model_version, day, decision, bin)
);

-- The statement that adds `source` to the summary. `source` is a query with the columns
-- (model_version, upload_id, time, score, decision, class, sign): each row adds `sign` (a signed
-- count: +1 / -1 per prediction, or a pre-grouped count) to the bin of its score in the state
-- `class`. Rows are grouped first (one upsert per bin)
-- and upserted in key order, so concurrent writers lock shared bins in the same order.
CREATE FUNCTION realised_apply_sql(source text) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT format($sql$
INSERT INTO realised_bins AS b
  (upload_id, model_version, day, decision, bin, frauds, legits, unlabelled, time_min, time_max)
SELECT upload_id, model_version, floor(time / 86400)::bigint, decision, realised_bin(score),
  COALESCE(sum(sign) FILTER (WHERE class = 1), 0), COALESCE(sum(sign) FILTER (WHERE class = 0), 0),
  COALESCE(sum(sign) FILTER (WHERE class IS NULL), 0), min(time), max(time)
FROM (%s) s GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
ON CONFLICT (upload_id, model_version, day, decision, bin) DO UPDATE SET
  frauds = b.frauds + EXCLUDED.frauds, legits = b.legits + EXCLUDED.legits,
  unlabelled = b.unlabelled + EXCLUDED.unlabelled,
  time_min = least(b.time_min, EXCLUDED.time_min), time_max = greatest(b.time_max, EXCLUDED.time_max)
$sql$, source) $$;

-- Runs realised_apply_sql(source): for callers outside a trigger (RecordFeedback, the backfill).
CREATE FUNCTION realised_apply(source text) RETURNS void LANGUAGE plpgsql AS
$$ BEGIN EXECUTE realised_apply_sql(source); END $$;

-- Predictions changed by one statement: +1 for each new row, -1 for each old row, in the state
-- of its transaction's current class. Transition tables are visible to EXECUTE in this function
-- only, hence no call to realised_apply().
CREATE FUNCTION realised_predictions_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  part constant text := 'SELECT r.model_version, r.upload_id, t.time, r.score, r.decision,'
    ' t.class, %s AS sign FROM %I r JOIN transactions t'
    ' ON t.upload_id = r.upload_id AND t.line = r.line';
BEGIN
  -- StoreUpload's COPYs: the writer builds the new upload's bins in memory and inserts them at
  -- commit (RealisedBinsBuilder), with this setting on for the rest of its transaction.
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
CREATE TRIGGER realised_predictions_insert AFTER INSERT ON predictions
  REFERENCING NEW TABLE AS new_predictions
  FOR EACH STATEMENT EXECUTE FUNCTION realised_predictions_changed();
CREATE TRIGGER realised_predictions_update AFTER UPDATE ON predictions
  REFERENCING OLD TABLE AS old_predictions NEW TABLE AS new_predictions
  FOR EACH STATEMENT EXECUTE FUNCTION realised_predictions_changed();
CREATE TRIGGER realised_predictions_delete AFTER DELETE ON predictions
  REFERENCING OLD TABLE AS old_predictions
  FOR EACH STATEMENT EXECUTE FUNCTION realised_predictions_changed();

-- Backfill from what is stored now.
SELECT realised_apply('SELECT p.model_version, p.upload_id, t.time, p.score, p.decision, t.class,'
                      ' 1 AS sign FROM predictions p JOIN transactions t'
                      ' ON t.upload_id = p.upload_id AND t.line = p.line');
ANALYZE realised_bins;
