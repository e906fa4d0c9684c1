-- Operating points (issue 17 item 4): the decision threshold a model version serves with when an
-- admin sets one (as a threshold, an alert budget per day or a fraction of transactions); without
-- one the manifest's threshold applies. Append-only audit trail like champion_history: the
-- current operating point of a version is its latest row (highest id); the trigger function of
-- migration 0003 refuses UPDATE, DELETE and TRUNCATE.
CREATE TABLE operating_point_history (
  id                      bigserial PRIMARY KEY,
  version                 bigint NOT NULL REFERENCES model_versions (version),
  -- fraud.storage.v1.OperatingPointKind: 1 threshold, 2 alerts per day, 3 fraction.
  kind                    smallint NOT NULL CHECK (kind IN (1, 2, 3)),
  requested_value         double precision NOT NULL,
  threshold               double precision NOT NULL CHECK (threshold >= 0 AND threshold <= 1),
  previous_threshold      double precision NOT NULL,
  reason                  text NOT NULL CHECK (reason <> ''),
  actor                   text NOT NULL CHECK (actor <> ''),
  changed_at              timestamptz NOT NULL DEFAULT now(),
  -- What the what-if showed when the change was made (0 = not computed).
  expected_alerts_per_day double precision NOT NULL DEFAULT 0,
  expected_precision      double precision NOT NULL DEFAULT 0,
  expected_recall         double precision NOT NULL DEFAULT 0,
  evaluated_rows          bigint NOT NULL DEFAULT 0,
  evaluated_days          double precision NOT NULL DEFAULT 0
);
CREATE INDEX operating_point_history_version ON operating_point_history (version, id);
CREATE TRIGGER operating_point_history_no_update BEFORE UPDATE OR DELETE ON operating_point_history
  FOR EACH ROW EXECUTE FUNCTION refuse_change_of_append_only();
CREATE TRIGGER operating_point_history_no_truncate BEFORE TRUNCATE ON operating_point_history
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change_of_append_only();
