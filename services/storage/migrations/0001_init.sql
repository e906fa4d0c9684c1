-- Initial schema of the storage service: uploads, their rows and scores, the model registry with
-- its champion history, and training runs.
--
-- Every object is created unqualified, i.e. in the first schema of search_path, so the same
-- migration serves production (schema public) and the tests (one schema per test).

-- One row per committed upload. The row is inserted when the upload begins (to reserve its id for
-- the transactions rows) inside the upload's database transaction, and updated to status 1
-- (committed) at commit; an upload that never commits is rolled back, so readers only ever see
-- committed uploads. status 0 exists only inside that open transaction.
CREATE TABLE uploads (
  id            bigserial PRIMARY KEY,
  sha256        text,
  file_name     text NOT NULL DEFAULT '',
  mode          smallint NOT NULL DEFAULT 1,      -- fraud.storage.v1.UploadMode
  status        smallint NOT NULL DEFAULT 0,      -- 0 open, 1 committed (UploadStatus)
  received_at   timestamptz NOT NULL DEFAULT now(),
  committed_at  timestamptz,
  rows          bigint NOT NULL DEFAULT 0,
  rows_rejected bigint NOT NULL DEFAULT 0,
  labelled_rows bigint NOT NULL DEFAULT 0,
  frauds        bigint NOT NULL DEFAULT 0,
  time_min      double precision NOT NULL DEFAULT 0,
  time_max      double precision NOT NULL DEFAULT 0,
  model_version bigint NOT NULL DEFAULT 0,
  bytes         bigint NOT NULL DEFAULT 0,
  summary_json  jsonb,
  CONSTRAINT uploads_committed_has_sha256 CHECK (status = 0 OR sha256 ~ '^[0-9a-f]{64}$')
);
-- Duplicate detection that holds under concurrency: of two transactions committing the same
-- content, the second blocks on the first's index entry and then fails with unique_violation; the
-- service rolls it back and answers duplicate_of. Open uploads (status 0) have no sha256 yet.
CREATE UNIQUE INDEX uploads_sha256_committed ON uploads (sha256) WHERE status = 1;

-- Stored rows. Layout chosen for COPY and scan speed (measured on PostgreSQL 15 with 284,807 rows,
-- binary COPY, PK + time index): V1..V28 as one double precision[] costs the same as 28 separate
-- columns on COPY FROM (0.57-0.82 s vs 0.53-0.91 s) and on a time-ordered COPY TO (0.26-0.28 s vs
-- 0.28-0.29 s), while mapping 1:1 onto the packed row-major TransactionBatch (one array per row
-- instead of 28 column names in every statement). Binary COPY keeps doubles bit-for-bit.
-- There is deliberately NO foreign key to uploads: its per-row trigger more than doubled COPY time
-- (1.24-1.54 s vs 0.53-0.59 s). Integrity holds because the service writes an upload's rows only
-- inside the transaction that inserted the upload row, and nothing deletes uploads.
-- class is NULL for unlabelled rows.
CREATE TABLE transactions (
  upload_id bigint NOT NULL,
  line      bigint NOT NULL,
  time      double precision NOT NULL,
  amount    double precision NOT NULL,
  v         double precision[] NOT NULL,
  class     smallint,
  PRIMARY KEY (upload_id, line),
  CONSTRAINT transactions_v_has_28 CHECK (array_length(v, 1) = 28),
  CONSTRAINT transactions_class_01 CHECK (class IN (0, 1))
);
-- Scans by upload use the primary key; scans by Time range (and in Time order) use this index.
CREATE INDEX transactions_time ON transactions (time);

-- Scores of stored rows by a model version. The primary key serves ListPredictions by line for one
-- (upload, version) and makes RecordPredictions an upsert. No foreign key for the same COPY-speed
-- reason as transactions; RecordPredictions checks that the lines exist.
CREATE TABLE predictions (
  upload_id     bigint NOT NULL,
  line          bigint NOT NULL,
  model_version bigint NOT NULL,
  score         real NOT NULL,
  decision      boolean NOT NULL,
  PRIMARY KEY (upload_id, model_version, line)
);

-- Model registry. manifest is the fraud.common.v1.ModelManifest as proto JSON; lineage repeats its
-- DataLineage for queries.
CREATE SEQUENCE model_version_seq;
CREATE TABLE model_versions (
  version         bigint PRIMARY KEY CHECK (version > 0),
  family          smallint NOT NULL,
  manifest        jsonb NOT NULL,
  artifact_uri    text NOT NULL DEFAULT '',
  artifact_sha256 text NOT NULL DEFAULT '',
  created_at      timestamptz NOT NULL DEFAULT now(),
  run_id          bigint NOT NULL DEFAULT 0,
  lineage         jsonb
);

-- Append-only audit trail of champion changes; the current champion is the latest row (highest
-- id). A trigger refuses UPDATE, DELETE and TRUNCATE.
CREATE TABLE champion_history (
  id               bigserial PRIMARY KEY,
  version          bigint NOT NULL REFERENCES model_versions (version),
  previous_version bigint NOT NULL DEFAULT 0,
  reason           text NOT NULL DEFAULT '',
  actor            text NOT NULL DEFAULT '',
  changed_at       timestamptz NOT NULL DEFAULT now()
);
CREATE FUNCTION champion_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'champion_history is append-only' USING ERRCODE = 'check_violation';
END
$$;
CREATE TRIGGER champion_history_no_update BEFORE UPDATE OR DELETE ON champion_history
  FOR EACH ROW EXECUTE FUNCTION champion_history_append_only();
CREATE TRIGGER champion_history_no_truncate BEFORE TRUNCATE ON champion_history
  FOR EACH STATEMENT EXECUTE FUNCTION champion_history_append_only();

-- Training runs (experiment tracking). detail is the whole fraud.storage.v1.TrainingRun as proto
-- JSON; the other columns repeat what lists and filters need.
CREATE TABLE training_runs (
  id          bigserial PRIMARY KEY,
  status      smallint NOT NULL,
  trigger     text NOT NULL DEFAULT '',
  created_at  timestamptz NOT NULL DEFAULT now(),
  started_at  timestamptz,
  finished_at timestamptz,
  detail      jsonb NOT NULL
);
