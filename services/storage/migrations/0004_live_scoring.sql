-- Live scoring (RecordScoredTransactions): transactions scored by Predict with a transaction id,
-- outside any upload, are stored so feedback can label them later by transaction_id.
--
-- Data model: they all go into ONE reserved upload, mode 3 (UPLOAD_MODE_LIVE), created by the
-- first RecordScoredTransactions call (not here, so a fresh schema lists no upload) with
-- status 1 (committed), file_name 'live scoring' and an all-zero sha256 (no real file hashes to
-- it, so upload deduplication never matches it). Its rows/labelled_rows/frauds/time_min/time_max
-- counters grow as rows arrive and as feedback labels them, so ListUploads and GetDataStats show
-- it like any upload; its model_version is the latest version that scored a live row. Lines are
-- numbered by live_scoring_line_seq (1, 2, ...; gaps are possible, as a sequence never rolls
-- back). The rows carry no label, so training (labelled rows only) ignores them until feedback
-- labels them. A per-day upload was rejected: realised metrics group by day of Time already,
-- and one upload keeps the lookup to a single unique-index probe.
CREATE UNIQUE INDEX uploads_live_scoring ON uploads (mode) WHERE mode = 3;
CREATE SEQUENCE live_scoring_line_seq;

-- When a row was scored: set by RecordScoredTransactions (the request's scored_at, or now()),
-- NULL for predictions stored with uploads (their upload's committed_at is their time).
-- Nullable without a default, so adding it rewrites nothing.
ALTER TABLE predictions ADD COLUMN scored_at timestamptz;
