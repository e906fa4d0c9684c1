// Real service processes for the fault tests, the integration tests that run a service binary
// and the service benchmarks (upload, load, footprint, storage): spawns the built binaries
// (build*/bin/fraud-*) on loopback with free ports, waits for their /healthz, kills (SIGKILL,
// SIGTERM) and restarts them; and a dedicated PostgreSQL cluster started through
// deploy/local/pg.sh in a temporary directory, which tests may stop and start at will (never the
// shared FRAUD_TEST_PG_URI cluster). The one place that starts child processes and picks ports
// for tests and benchmarks.
//
//   auto pg = PgCluster::Start(root + "/deploy/local/pg.sh");
//   ConstellationOptions o;
//   o.bin_dir = getenv("FRAUD_BIN_DIR");
//   o.database_url = (*pg)->CreateDatabase("fault1").value();
//   ProcessConstellation c(o);
//   FRAUD_RETURN_IF_ERROR(c.Start());            // storage, inference, training, ingest, gateway
//   c.process("storage").Kill(SIGKILL);
//   FRAUD_RETURN_IF_ERROR(c.process("storage").Restart());
//
// Children get PR_SET_PDEATHSIG=SIGKILL, so a crashed or timed-out test leaves no service behind;
// every process is SIGKILLed in the destructor at the latest. stdout/stderr go to
// <work_dir>/<name>.log (appended across restarts). Loopback only: every service binds
// 127.0.0.1.
//
// Thread-safety: none; drive a constellation from one thread (the test's).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace fraud::testing {

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read, close).
int FreePort();

// GET http://127.0.0.1:port/path. Returns the HTTP status (0 when no answer) and the body.
struct HttpAnswer {
  int status = 0;
  std::string body;
};
HttpAnswer HttpGet(int port, const std::string& path, absl::Duration timeout = absl::Seconds(2));

// Parses Prometheus text and returns the sum of every sample of `metric` whose labels contain all
// of `label_filter` (e.g. {"method", "/fraud.storage.v1.StorageService/StoreUpload"}). 0 when
// absent.
double MetricValue(const std::string& prometheus_text, const std::string& metric,
                   const std::map<std::string, std::string>& label_filter = {});

// One child process with fixed arguments; Restart() reuses them (same ports).
class ServiceProcess {
 public:
  enum class Health {
    kReady,      // /healthz answers 200
    kListening,  // /healthz answers anything (the process is up, maybe not ready)
  };

  // `env` ("NAME=value") is added to the inherited environment: the place for secrets such as
  // FRAUD_ADMIN_TOKEN, which must not appear on a command line (visible in ps, and in the log's
  // spawn banner). A program without /healthz (psql, a --run_once service) takes health_port 0
  // and is driven with Spawn(), Kill() and Wait() only.
  ServiceProcess(std::string name, std::string binary, std::vector<std::string> args,
                 std::string log_path, int health_port, Health health,
                 std::vector<std::string> env = {});
  ~ServiceProcess();
  ServiceProcess(const ServiceProcess&) = delete;
  ServiceProcess& operator=(const ServiceProcess&) = delete;

  // Spawns the binary. FailedPrecondition when it is already running; Internal when fork/exec
  // fails (an exec failure shows as exit code 127 in the log and in Wait()).
  absl::Status Spawn();
  // Spawn() then WaitHealthy().
  absl::Status Start(absl::Duration timeout = absl::Seconds(60));
  // Polls /healthz until it answers as `health` asks; FailedPrecondition (with the log's tail)
  // when the process exits first, DeadlineExceeded on timeout.
  absl::Status WaitHealthy(absl::Duration timeout, Health health);
  absl::Status WaitHealthy(absl::Duration timeout) { return WaitHealthy(timeout, health_); }
  // Sends `signal`; no-op when not running.
  void Kill(int signal);
  // Waits for the process to exit and reaps it: its exit code, or 128 + signal number when a
  // signal ended it; DeadlineExceeded when still running after `timeout`.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  // SIGKILL + reap (if running), then Start() with the same arguments.
  absl::Status Restart(absl::Duration timeout = absl::Seconds(60));
  // SIGTERM, wait up to `grace`, then SIGKILL. Returns the exit status as Wait() does.
  absl::StatusOr<int> Stop(absl::Duration grace = absl::Seconds(10));

  // True while the child exists and has not been reaped (reaps it when it has exited).
  bool running();
  pid_t pid() const { return pid_; }
  const std::string& name() const { return name_; }
  int health_port() const { return health_port_; }
  const std::string& log_path() const { return log_path_; }
  // The last `lines` lines of the log.
  std::string LogTail(int lines = 30) const;
  // Resident set size in bytes from /proc/<pid>/status (0 when not running).
  int64_t RssBytes() const;
  // GET /metrics of this process (the health port serves it).
  std::string Metrics() const;

 private:
  std::string name_;
  std::string binary_;
  std::vector<std::string> args_;
  std::vector<std::string> env_;
  std::string log_path_;
  int health_port_;
  Health health_;
  pid_t pid_ = -1;
};

// A PostgreSQL cluster of its own (deploy/local/pg.sh, --throwaway) in a temporary directory.
class PgCluster {
 public:
  // Creates a temporary directory, picks a free port and starts the cluster (~3 s).
  static absl::StatusOr<std::unique_ptr<PgCluster>> Start(const std::string& pg_sh);
  ~PgCluster();  // stops the cluster and removes the directory
  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  // pg_ctl stop -m fast (existing sessions are disconnected), or start it again.
  absl::Status Stop();
  absl::Status Restart();
  // Stop -m immediate: like a crash of the server.
  absl::Status Crash();
  bool running() const { return running_; }

  int port() const { return port_; }
  // postgresql://fraud@127.0.0.1:<port>/fraud
  const std::string& uri() const { return uri_; }
  // Creates database `name` owned by fraud and returns its URI.
  absl::StatusOr<std::string> CreateDatabase(const std::string& name);

 private:
  PgCluster(std::string pg_sh, std::string dir, int port);
  absl::Status Run(const std::string& command, std::string* out = nullptr) const;

  std::string pg_sh_;
  std::string dir_;
  int port_;
  std::string uri_;
  bool running_ = false;
};

// Which services to start and how.
struct ConstellationOptions {
  // Directory of the fraud-* binaries (build*/bin).
  std::string bin_dir;
  // Working directory for logs and models ("" = a new temporary directory, removed at the end).
  std::string work_dir;
  std::string database_url;
  // Admin token given to every service (as FRAUD_ADMIN_TOKEN in its environment).
  std::string admin_token = "fault-test-admin-token";
  // Services to start, in this order (a missing gateway binary is skipped with a note).
  std::vector<std::string> services = {"storage", "inference", "training", "ingest", "gateway"};
  // Extra flags per service name, appended after the standard ones.
  std::map<std::string, std::vector<std::string>> extra_flags;
  absl::Duration start_timeout = absl::Seconds(90);
};

// The constellation: ports are chosen once, so restarts keep every target valid.
class ProcessConstellation {
 public:
  explicit ProcessConstellation(ConstellationOptions options);
  ~ProcessConstellation();  // SIGKILLs everything, removes a temporary work_dir
  ProcessConstellation(const ProcessConstellation&) = delete;
  ProcessConstellation& operator=(const ProcessConstellation&) = delete;

  // Starts the services in order, each waited on (storage/ingest/training/gateway until ready,
  // inference until listening: it is ready only once a model serves).
  absl::Status Start();
  // Waits until inference's /healthz answers 200, i.e. a model serves (with the training
  // service's bootstrap, once version 1 is trained and loaded). FailedPrecondition when inference
  // exits first, DeadlineExceeded after `timeout`; both carry its log's tail.
  absl::Status WaitModelServing(absl::Duration timeout);
  // Start(), then WaitModelServing(model_timeout): the whole constellation ready to score.
  absl::Status StartServing(absl::Duration model_timeout);
  // SIGTERM every service (reverse order), then SIGKILL after `grace`.
  void Stop(absl::Duration grace = absl::Seconds(5));

  bool has(const std::string& name) const { return processes_.count(name) > 0; }
  ServiceProcess& process(const std::string& name);
  // "127.0.0.1:<grpc port>" of a service (the gateway's HTTP port for "gateway").
  std::string target(const std::string& name) const;
  int port(const std::string& name) const;
  int metrics_port(const std::string& name) const;
  const std::string& work_dir() const { return work_dir_; }
  // Each ML service's own model directory (a cache of the registry, as in every deployment: they
  // share no disk).
  std::string inference_model_dir() const { return work_dir_ + "/models/inference"; }
  std::string training_model_dir() const { return work_dir_ + "/models/training"; }
  const ConstellationOptions& options() const { return options_; }
  // Names of the processes, in start order.
  const std::vector<std::string>& names() const { return order_; }

 private:
  std::vector<std::string> ArgsFor(const std::string& name) const;

  ConstellationOptions options_;
  std::string work_dir_;
  bool owns_work_dir_ = false;
  std::map<std::string, int> ports_;
  std::map<std::string, int> metrics_ports_;
  std::vector<std::string> order_;
  std::map<std::string, std::unique_ptr<ServiceProcess>> processes_;
};

// Directory holding the fraud-* binaries: $FRAUD_BIN_DIR, else `fallback`.
std::string BinDir(const std::string& fallback);
// Source root: $FRAUD_ROOT, else `fallback`.
std::string SourceRoot(const std::string& fallback);

}  // namespace fraud::testing
