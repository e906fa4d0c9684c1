#include "tests/testing/in_process_storage.h"

#include <utility>
#include <vector>

#include "services/common/core/status_macros.h"
#include "services/storage/migrations.h"

namespace fraud::testing {

absl::StatusOr<std::unique_ptr<InProcessStorage>> InProcessStorage::Start(
    const InProcessStorageOptions& options) {
  std::unique_ptr<InProcessStorage> s(new InProcessStorage());
  storage::PgPoolOptions pool_options;
  pool_options.conninfo = options.conninfo;
  pool_options.size = options.pool_size;
  s->pool_ = std::make_unique<storage::PgPool>(pool_options);
  FRAUD_RETURN_IF_ERROR(storage::ApplyMigrations(*s->pool_, storage::EmbeddedMigrations()));
  s->store_ = std::make_unique<storage::PgStore>(s->pool_.get());
  s->service_ = std::make_unique<storage::StorageService>(s->pool_.get(), s->store_.get());
  s->service_->SetReady(true);
  s->server_ = std::make_unique<InProcessServer>(std::vector<grpc::Service*>{s->service_.get()},
                                                 options.server_name, options.max_threads,
                                                 options.port);
  FRAUD_RETURN_IF_ERROR(s->server_->Start());
  return s;
}

void InProcessStorage::Shutdown(absl::Duration grace) {
  if (server_ != nullptr) server_->Shutdown(grace);
}

InProcessStorage::~InProcessStorage() { Shutdown(); }

}  // namespace fraud::testing
