-- The review queue (ListReviewQueue) and analysts' dispositions (SubmitReview).

-- Append-only record of review dispositions: one row per SubmitReview (a row reviewed twice has
-- two; the latest is its disposition). disposition is fraud.storage.v1.ReviewDisposition
-- (1 fraud, 2 not fraud, 3 unsure). FRAUD / NOT_FRAUD also append a label_events row (source
-- 'review') when they change the label; label_event_id names it (NULL for UNSURE or an
-- unchanged label). A row with any disposition has left the queue.
CREATE TABLE review_dispositions (
  id             bigserial PRIMARY KEY,
  upload_id      bigint NOT NULL,
  line           bigint NOT NULL,
  disposition    smallint NOT NULL CHECK (disposition IN (1, 2, 3)),
  note           text NOT NULL DEFAULT '',
  actor          text NOT NULL DEFAULT '',
  label_event_id bigint,
  at             timestamptz NOT NULL DEFAULT now()
);
-- The queue's "not reviewed yet" probe, one per alert.
CREATE INDEX review_dispositions_row ON review_dispositions (upload_id, line);
CREATE TRIGGER review_dispositions_no_update BEFORE UPDATE OR DELETE ON review_dispositions
  FOR EACH ROW EXECUTE FUNCTION refuse_change_of_append_only();
CREATE TRIGGER review_dispositions_no_truncate BEFORE TRUNCATE ON review_dispositions
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change_of_append_only();

-- The alerts, in queue order (read backwards: upload_id, score, line, model_version all
-- descending). Partial: only flagged predictions (a small share) enter it, so the COPY of a
-- scored upload maintains a few entries instead of one per row, and a queue page reads about
-- page_size entries instead of scanning every prediction.
CREATE INDEX predictions_alerts ON predictions (upload_id, score, line, model_version)
  WHERE decision;
