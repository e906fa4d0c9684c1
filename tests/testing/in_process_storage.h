// The real storage service for in-process tests: a PgPool on a (per-test) database, the embedded
// schema migrations applied, PgStore + StorageService marked ready, served by an InProcessServer
// on 127.0.0.1:0.
//
//   absl::StatusOr<std::unique_ptr<InProcessStorage>> s =
//       InProcessStorage::Start({conninfo(), /*pool_size=*/16, "storage_it", /*max_threads=*/40});
//   ASSERT_THAT(s, IsOk());
//   storage_ = std::move(*s);
//   ... storage_->channel(), storage_->target(), storage_->pool().in_use() ...
//
// The destructor shuts the server down before it drops the service, store and pool. Thread-safety:
// the accessors may be called from any thread; Shutdown from one thread.
#pragma once

#include <grpcpp/channel.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/storage/pg_pool.h"
#include "services/storage/pg_store.h"
#include "services/storage/storage_service.h"
#include "tests/testing/in_process_server.h"

namespace fraud::testing {

struct InProcessStorageOptions {
  // libpq connection string (PgFixture::conninfo() for the per-test schema).
  std::string conninfo;
  // Connections in the pool.
  int pool_size = 16;
  // ServerOptions::service_name and max_threads of the gRPC server.
  std::string server_name = "storage_test";
  int max_threads = 16;
  // 0 = any free port; a fixed port restarts storage where its clients expect it.
  int port = 0;
};

class InProcessStorage {
 public:
  // Opens the pool, applies storage::EmbeddedMigrations() and starts serving. Errors: those of
  // ApplyMigrations (Unavailable when the database is unreachable, ...) and of the server's Start.
  static absl::StatusOr<std::unique_ptr<InProcessStorage>> Start(
      const InProcessStorageOptions& options);
  ~InProcessStorage();
  InProcessStorage(const InProcessStorage&) = delete;
  InProcessStorage& operator=(const InProcessStorage&) = delete;

  storage::PgPool& pool() { return *pool_; }
  storage::PgStore& store() { return *store_; }
  storage::StorageService& service() { return *service_; }
  InProcessServer& server() { return *server_; }
  std::string target() const { return server_->target(); }
  std::shared_ptr<grpc::Channel> channel() const { return server_->channel(); }
  // Stops the gRPC server (idempotent); the pool stays open until destruction.
  void Shutdown(absl::Duration grace = absl::Seconds(1));

 private:
  InProcessStorage() = default;

  std::unique_ptr<storage::PgPool> pool_;
  std::unique_ptr<storage::PgStore> store_;
  std::unique_ptr<storage::StorageService> service_;
  std::unique_ptr<InProcessServer> server_;
};

}  // namespace fraud::testing
