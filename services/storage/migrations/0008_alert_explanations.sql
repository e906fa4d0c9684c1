-- Reason codes stored for alerts (issue 17 item 6): for a prediction with decision true, the
-- explanation its model version computed when it scored the row (inference Predict with
-- explain), so the review queue and the upload's predictions show why the row was flagged
-- without asking inference again, even when inference is down or serves another version.
--
-- Written by StoreUpload (UploadRows.explanations, in the upload's transaction) and by
-- RecordScoredTransactions (live scoring); read by ListReviewQueue and ListPredictions with a
-- join on the key. Write-once per key: a second explanation for the same (row, version) is
-- ignored (ON CONFLICT DO NOTHING: the same version explains the same features the same way),
-- and a trigger refuses UPDATE and TRUNCATE. DELETE is left to the one path that needs it: a
-- re-upload that hands its predictions to an earlier upload discards its own rows (and their
-- explanations) inside its own transaction.
--
-- Layout: the top-k contributions as two parallel arrays (feature index, contribution). The
-- raw feature value is not repeated: it is the stored transaction's feature (binary COPY keeps
-- doubles exactly, and the writer checks the explanation's value equals the row's), so readers
-- take it from the row they already join. Measured with pg_column_size on a 5-contribution row:
-- arrays 176 bytes, arrays + a value array 240, one packed bytea 128, jsonb 504. Arrays cost 48
-- bytes more than a bytea but stay readable and checkable in SQL (unnest, CHECK), and alerts are
-- ~0.2% of rows (~570 rows, ~100 KB for the 284,807-row file), so size does not decide it.
-- No foreign key, as for predictions (COPY speed; the writers check the rows exist).
CREATE TABLE alert_explanations (
  upload_id     bigint NOT NULL,
  line          bigint NOT NULL,
  model_version bigint NOT NULL,
  bias          double precision NOT NULL,
  margin        double precision NOT NULL,
  rest          double precision NOT NULL,
  -- 0-based feature positions (Time = 0, V1..V28 = 1..28, Amount = 29), largest |contribution|
  -- first, and their signed contributions to the margin (log-odds), same order.
  feature_index smallint[] NOT NULL,
  contribution  double precision[] NOT NULL,
  computed_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (upload_id, model_version, line),
  CONSTRAINT alert_explanations_top_1_30 CHECK (
    array_length(feature_index, 1) BETWEEN 1 AND 30
    AND array_length(contribution, 1) = array_length(feature_index, 1)),
  CONSTRAINT alert_explanations_index_0_29 CHECK (0 <= ALL (feature_index) AND 29 >= ALL (feature_index))
);
CREATE TRIGGER alert_explanations_no_update BEFORE UPDATE ON alert_explanations
  FOR EACH ROW EXECUTE FUNCTION refuse_change_of_append_only();
CREATE TRIGGER alert_explanations_no_truncate BEFORE TRUNCATE ON alert_explanations
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change_of_append_only();
