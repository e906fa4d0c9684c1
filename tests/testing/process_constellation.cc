#include "tests/testing/process_constellation.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "httplib.h"

namespace fraud::testing {
namespace fs = std::filesystem;

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    socklen_t len = sizeof(addr);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
  }
  ::close(fd);
  return port;
}

HttpAnswer HttpGet(int port, const std::string& path, absl::Duration timeout) {
  httplib::Client client("127.0.0.1", port);
  const auto usec = absl::ToInt64Microseconds(timeout);
  client.set_connection_timeout(usec / 1000000, usec % 1000000);
  client.set_read_timeout(usec / 1000000, usec % 1000000);
  HttpAnswer answer;
  if (auto res = client.Get(path.c_str())) {
    answer.status = res->status;
    answer.body = res->body;
  }
  return answer;
}

double MetricValue(const std::string& text, const std::string& metric,
                   const std::map<std::string, std::string>& label_filter) {
  double sum = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    if (!absl::StartsWith(line, metric)) continue;
    absl::string_view rest = line.substr(metric.size());
    std::string labels;
    if (!rest.empty() && rest[0] == '{') {
      const size_t close = rest.find('}');
      if (close == absl::string_view::npos) continue;
      labels = std::string(rest.substr(1, close - 1));
      rest = rest.substr(close + 1);
    } else if (rest.empty() || rest[0] != ' ') {
      continue;  // a longer metric name with the same prefix
    }
    bool match = true;
    for (const auto& [k, v] : label_filter) {
      if (!absl::StrContains(labels, absl::StrCat(k, "=\"", v, "\""))) match = false;
    }
    if (!match) continue;
    rest = absl::StripAsciiWhitespace(rest);
    const size_t space = rest.find(' ');
    double value = 0;
    if (absl::SimpleAtod(rest.substr(0, space), &value)) sum += value;
  }
  return sum;
}

// ---- ServiceProcess --------------------------------------------------------------------------

ServiceProcess::ServiceProcess(std::string name, std::string binary, std::vector<std::string> args,
                               std::string log_path, int health_port, Health health,
                               std::vector<std::string> env)
    : name_(std::move(name)),
      binary_(std::move(binary)),
      args_(std::move(args)),
      env_(std::move(env)),
      log_path_(std::move(log_path)),
      health_port_(health_port),
      health_(health) {}

ServiceProcess::~ServiceProcess() {
  if (running()) {
    Kill(SIGKILL);
    (void)Wait(absl::Seconds(10));
  }
}

absl::Status ServiceProcess::Spawn() {
  if (running()) return absl::FailedPreconditionError(absl::StrCat(name_, " is already running"));
  // Everything the child needs is prepared before fork(): after it, only async-signal-safe calls.
  std::vector<std::string> argv_storage;
  argv_storage.push_back(binary_);
  argv_storage.insert(argv_storage.end(), args_.begin(), args_.end());
  std::vector<char*> argv;
  for (std::string& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  // Environment: ours, with env_ entries replacing variables of the same name.
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string key = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const std::string& mine : env_) {
      if (mine.substr(0, mine.find('=')) == key) replaced = true;
    }
    if (!replaced) env_storage.push_back(entry);
  }
  env_storage.insert(env_storage.end(), env_.begin(), env_.end());
  std::vector<char*> envp;
  for (std::string& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  const int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::InternalError(absl::StrCat("cannot open ", log_path_, ": ", std::strerror(errno)));
  }
  {
    const std::string banner = absl::StrCat("==== spawn ", absl::StrJoin(argv_storage, " "), "\n");
    (void)!::write(log_fd, banner.data(), banner.size());
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);
    // The test process may block signals (gRPC, sigwait users): children start with none blocked.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(log_fd);
  pid_ = pid;
  return absl::OkStatus();
}

absl::Status ServiceProcess::Start(absl::Duration timeout) {
  if (absl::Status s = Spawn(); !s.ok()) return s;
  return WaitHealthy(timeout, health_);
}

absl::Status ServiceProcess::WaitHealthy(absl::Duration timeout, Health health) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (!running()) {
      return absl::FailedPreconditionError(
          absl::StrCat(name_, " exited during start-up; log tail:\n", LogTail()));
    }
    const HttpAnswer a = HttpGet(health_port_, "/healthz", absl::Seconds(1));
    if (a.status == 200 || (health == Health::kListening && a.status != 0)) {
      return absl::OkStatus();
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(name_, " not healthy after ", absl::FormatDuration(timeout),
                                                      " (last /healthz status ", a.status,
                                                      "); log tail:\n", LogTail()));
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
}

void ServiceProcess::Kill(int signal) {
  if (pid_ > 0) ::kill(pid_, signal);
}

absl::StatusOr<int> ServiceProcess::Wait(absl::Duration timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError(absl::StrCat(name_, " is not running"));
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      return WEXITSTATUS(status);
    }
    if (r < 0 && errno != EINTR) {
      pid_ = -1;
      return absl::InternalError(absl::StrCat("waitpid: ", std::strerror(errno)));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(name_, " still running after ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

absl::Status ServiceProcess::Restart(absl::Duration timeout) {
  if (running()) {
    Kill(SIGKILL);
    if (absl::StatusOr<int> r = Wait(absl::Seconds(10)); !r.ok()) return r.status();
  }
  return Start(timeout);
}

absl::StatusOr<int> ServiceProcess::Stop(absl::Duration grace) {
  if (!running()) return 0;
  Kill(SIGTERM);
  absl::StatusOr<int> r = Wait(grace);
  if (r.ok()) return r;
  Kill(SIGKILL);
  return Wait(absl::Seconds(10));
}

bool ServiceProcess::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

std::string ServiceProcess::LogTail(int lines) const {
  std::ifstream in(log_path_);
  std::deque<std::string> tail;
  std::string line;
  while (std::getline(in, line)) {
    tail.push_back(line);
    if (static_cast<int>(tail.size()) > lines) tail.pop_front();
  }
  std::string out;
  for (const auto& l : tail) absl::StrAppend(&out, "  ", l, "\n");
  return out;
}

int64_t ServiceProcess::RssBytes() const {
  if (pid_ <= 0) return 0;
  std::ifstream in(absl::StrCat("/proc/", pid_, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "VmRSS:")) {
      int64_t kb = 0;
      std::istringstream(line.substr(6)) >> kb;
      return kb * 1024;
    }
  }
  return 0;
}

std::string ServiceProcess::Metrics() const { return HttpGet(health_port_, "/metrics").body; }

// ---- PgCluster -------------------------------------------------------------------------------

PgCluster::PgCluster(std::string pg_sh, std::string dir, int port)
    : pg_sh_(std::move(pg_sh)),
      dir_(std::move(dir)),
      port_(port),
      uri_(absl::StrCat("postgresql://fraud@127.0.0.1:", port, "/fraud")) {}

absl::Status PgCluster::Run(const std::string& command, std::string* out) const {
  const std::string full = absl::StrCat(command, " 2>&1");
  FILE* p = ::popen(full.c_str(), "r");
  if (p == nullptr) return absl::InternalError(absl::StrCat("popen: ", std::strerror(errno)));
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) text.append(buf, n);
  const int rc = ::pclose(p);
  if (out != nullptr) *out = text;
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("`", command, "` failed (", rc, "): ", text));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<PgCluster>> PgCluster::Start(const std::string& pg_sh) {
  char tmpl[] = "/tmp/fraud-fault-pg.XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp: ", std::strerror(errno)));
  }
  ::chmod(tmpl, 0755);
  absl::Status last;
  // A port that was free may be taken between FreePort() and the server's bind: retry.
  for (int attempt = 0; attempt < 3; ++attempt) {
    const int port = FreePort();
    std::unique_ptr<PgCluster> c(new PgCluster(pg_sh, tmpl, port));
    std::string out;
    last = c->Run(absl::StrCat(pg_sh, " start ", tmpl, " ", port, " --throwaway"), &out);
    if (last.ok()) {
      c->running_ = true;
      return c;
    }
  }
  std::error_code ec;
  fs::remove_all(tmpl, ec);
  return last;
}

PgCluster::~PgCluster() {
  (void)Run(absl::StrCat(pg_sh_, " stop ", dir_));
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

absl::Status PgCluster::Stop() {
  absl::Status s = Run(absl::StrCat(pg_sh_, " stop ", dir_));
  if (s.ok()) running_ = false;
  return s;
}

absl::Status PgCluster::Crash() {
  const char* cmd =
      "pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1); "
      "if [ \"$(id -u)\" = 0 ]; then runuser -u postgres -- \"$pgbin/pg_ctl\" -D %s/data -m immediate "
      "-w stop; else \"$pgbin/pg_ctl\" -D %s/data -m immediate -w stop; fi";
  char buf[2048];
  std::snprintf(buf, sizeof(buf), cmd, dir_.c_str(), dir_.c_str());
  absl::Status s = Run(buf);
  if (s.ok()) running_ = false;
  return s;
}

absl::Status PgCluster::Restart() {
  absl::Status s = Run(absl::StrCat(pg_sh_, " start ", dir_, " ", port_, " --throwaway"));
  if (s.ok()) running_ = true;
  return s;
}

absl::StatusOr<std::string> PgCluster::CreateDatabase(const std::string& name) {
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_') {
      return absl::InvalidArgumentError("database names are [A-Za-z0-9_]");
    }
  }
  absl::Status s =
      Run(absl::StrCat("psql -h 127.0.0.1 -p ", port_, " -U fraud -d fraud -qAt -c 'CREATE DATABASE ",
                       name, " OWNER fraud'"));
  if (!s.ok()) return s;
  return absl::StrCat("postgresql://fraud@127.0.0.1:", port_, "/", name);
}

// ---- ProcessConstellation --------------------------------------------------------------------

ProcessConstellation::ProcessConstellation(ConstellationOptions options)
    : options_(std::move(options)) {
  work_dir_ = options_.work_dir;
  if (work_dir_.empty()) {
    char tmpl[] = "/tmp/fraud-constellation.XXXXXX";
    if (::mkdtemp(tmpl) != nullptr) work_dir_ = tmpl;
    owns_work_dir_ = true;
  }
  std::error_code ec;
  fs::create_directories(inference_model_dir(), ec);
  fs::create_directories(training_model_dir(), ec);
  for (const std::string& name : options_.services) {
    const std::string binary = absl::StrCat(options_.bin_dir, "/fraud-", name);
    if (::access(binary.c_str(), X_OK) != 0) {
      std::fprintf(stderr, "[constellation] %s not built (%s): skipped\n", name.c_str(),
                   binary.c_str());
      continue;
    }
    order_.push_back(name);
    ports_[name] = FreePort();
    metrics_ports_[name] = name == "gateway" ? ports_[name] : FreePort();
  }
  for (const std::string& name : order_) {
    const ServiceProcess::Health health =
        name == "inference" ? ServiceProcess::Health::kListening : ServiceProcess::Health::kReady;
    processes_[name] = std::make_unique<ServiceProcess>(
        name, absl::StrCat(options_.bin_dir, "/fraud-", name), ArgsFor(name),
        absl::StrCat(work_dir_, "/", name, ".log"), metrics_ports_[name], health,
        std::vector<std::string>{absl::StrCat("FRAUD_ADMIN_TOKEN=", options_.admin_token)});
  }
}

ProcessConstellation::~ProcessConstellation() {
  for (auto it = order_.rbegin(); it != order_.rend(); ++it) processes_[*it]->Kill(SIGKILL);
  processes_.clear();
  if (owns_work_dir_ && !work_dir_.empty() && std::getenv("FRAUD_KEEP_LOGS") == nullptr) {
    std::error_code ec;
    fs::remove_all(work_dir_, ec);
  }
}

std::vector<std::string> ProcessConstellation::ArgsFor(const std::string& name) const {
  auto target = [this](const std::string& svc) {
    auto it = ports_.find(svc);
    // A service that is not started gets a port nobody listens on: calls fail UNAVAILABLE.
    return absl::StrCat("127.0.0.1:", it == ports_.end() ? 1 : it->second);
  };
  std::vector<std::string> args = {"--host=127.0.0.1",
                                   absl::StrCat("--port=", ports_.at(name))};
  if (name != "gateway") args.push_back(absl::StrCat("--metrics_port=", metrics_ports_.at(name)));
  if (name == "storage") {
    args.push_back(absl::StrCat("--database_url=", options_.database_url));
  } else if (name == "inference") {
    args.push_back(absl::StrCat("--model_dir=", inference_model_dir()));
    args.push_back(absl::StrCat("--storage_target=", target("storage")));
  } else if (name == "training") {
    args.push_back(absl::StrCat("--model_dir=", training_model_dir()));
    args.push_back(absl::StrCat("--storage_target=", target("storage")));
    args.push_back(absl::StrCat("--inference_target=", target("inference")));
  } else if (name == "ingest") {
    args.push_back(absl::StrCat("--storage_target=", target("storage")));
    args.push_back(absl::StrCat("--inference_target=", target("inference")));
  } else if (name == "gateway") {
    args.push_back(absl::StrCat("--ingest_target=", target("ingest")));
    args.push_back(absl::StrCat("--storage_target=", target("storage")));
    args.push_back(absl::StrCat("--inference_target=", target("inference")));
    args.push_back(absl::StrCat("--training_target=", target("training")));
  }
  if (auto it = options_.extra_flags.find(name); it != options_.extra_flags.end()) {
    args.insert(args.end(), it->second.begin(), it->second.end());
  }
  return args;
}

absl::Status ProcessConstellation::Start() {
  for (const std::string& name : order_) {
    if (absl::Status s = processes_[name]->Start(options_.start_timeout); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ProcessConstellation::WaitModelServing(absl::Duration timeout) {
  return process("inference").WaitHealthy(timeout, ServiceProcess::Health::kReady);
}

absl::Status ProcessConstellation::StartServing(absl::Duration model_timeout) {
  if (absl::Status s = Start(); !s.ok()) return s;
  return WaitModelServing(model_timeout);
}

void ProcessConstellation::Stop(absl::Duration grace) {
  for (auto it = order_.rbegin(); it != order_.rend(); ++it) processes_[*it]->Kill(SIGTERM);
  for (auto it = order_.rbegin(); it != order_.rend(); ++it) {
    ServiceProcess& p = *processes_[*it];
    if (p.running() && !p.Wait(grace).ok()) {
      p.Kill(SIGKILL);
      (void)p.Wait(absl::Seconds(10));
    }
  }
}

ServiceProcess& ProcessConstellation::process(const std::string& name) {
  return *processes_.at(name);
}

std::string ProcessConstellation::target(const std::string& name) const {
  return absl::StrCat("127.0.0.1:", ports_.at(name));
}

int ProcessConstellation::port(const std::string& name) const { return ports_.at(name); }

int ProcessConstellation::metrics_port(const std::string& name) const {
  return metrics_ports_.at(name);
}

std::string BinDir(const std::string& fallback) {
  const char* v = std::getenv("FRAUD_BIN_DIR");
  return v != nullptr && *v != '\0' ? v : fallback;
}

std::string SourceRoot(const std::string& fallback) {
  const char* v = std::getenv("FRAUD_ROOT");
  return v != nullptr && *v != '\0' ? v : fallback;
}

}  // namespace fraud::testing
