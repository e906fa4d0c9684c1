// First start of an empty system: when the registry holds no model, store an initial labelled
// training set through storage's StoreUpload (the project's synthetic generator, or a CSV file
// validated by the CSV reader) unless labelled rows already exist, then start a run that trains
// and publishes version 1, so a new user can upload a file and see scores within minutes.
//
// The synthetic set is the exact CSV `fraudctl generate --rows N --seed S` writes: its sha256 is
// computed over the same bytes, so uploading that file later is recognised as a duplicate.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "fraud/training/v1/training.pb.h"
#include "services/training/clients.h"

namespace fraud::training {

struct BootstrapOptions {
  // Synthetic rows when no CSV is given.
  int64_t rows = 100000;
  uint64_t seed = 42;
  // Labelled CSV file (Time, V1..V28, Amount, Class) to use instead of synthetic rows.
  std::string csv_path;
  // Rows per UploadRows message.
  int batch_rows = 8192;
};

// Stores the initial training set. Returns the upload (or the earlier identical one).
// InvalidArgument when the CSV is invalid or unlabelled (message with the first errors);
// NotFound when it does not exist; storage errors otherwise.
absl::StatusOr<storage_pb::Upload> StoreInitialData(StorageApi& storage,
                                                    const BootstrapOptions& options);

using SubmitRunFn =
    std::function<absl::StatusOr<storage_pb::TrainingRun>(const training::v1::StartRunRequest&)>;

// When the registry is empty: stores initial data if no labelled row exists and submits a run
// with trigger "bootstrap". Returns the submitted run's id, or 0 when the registry already holds
// a model. Storage errors are returned (the caller retries while storage starts up).
absl::StatusOr<int64_t> MaybeBootstrap(StorageApi& storage, const BootstrapOptions& options,
                                       const SubmitRunFn& submit,
                                       const std::map<std::string, std::string>& run_params = {});

// MaybeBootstrap at server start, retried while it fails (storage still starting, a full queue):
// waits `first_backoff`, doubling up to `max_backoff`, until it succeeds or `stopping` is notified.
// A bad --bootstrap_csv (InvalidArgument, NotFound) does not get better by retrying and ends it.
// Returns the last attempt's result (Cancelled when stopped before any attempt succeeded).
absl::StatusOr<int64_t> BootstrapWithRetry(StorageApi& storage, const BootstrapOptions& options,
                                           const SubmitRunFn& submit,
                                           const absl::Notification& stopping,
                                           absl::Duration first_backoff = absl::Seconds(1),
                                           absl::Duration max_backoff = absl::Seconds(30));

}  // namespace fraud::training
