-- Model artifacts live in the registry (not on a disk shared by training and inference): the files
-- of a version's artifact directory (manifest + weights), as chunks of at most 1 MiB so that no
-- statement or gRPC message ever holds a whole file. Written once by PutModelArtifact inside one
-- transaction (all-or-nothing), then immutable.
CREATE TABLE model_artifacts (
  version     bigint PRIMARY KEY CHECK (version > 0),
  files       integer NOT NULL CHECK (files > 0),
  total_bytes bigint NOT NULL CHECK (total_bytes >= 0),
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE model_artifact_files (
  version    bigint NOT NULL REFERENCES model_artifacts (version) ON DELETE CASCADE,
  file_index integer NOT NULL CHECK (file_index >= 0),
  name       text NOT NULL,
  size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
  sha256     text NOT NULL,
  PRIMARY KEY (version, file_index),
  UNIQUE (version, name)
);
CREATE TABLE model_artifact_chunks (
  version    bigint NOT NULL,
  file_index integer NOT NULL,
  chunk_no   integer NOT NULL CHECK (chunk_no >= 0),
  data       bytea NOT NULL,
  PRIMARY KEY (version, file_index, chunk_no),
  FOREIGN KEY (version, file_index) REFERENCES model_artifact_files ON DELETE CASCADE
);
-- Weights are dense floats: TOAST compression costs CPU and saves nothing.
ALTER TABLE model_artifact_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
