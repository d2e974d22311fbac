// Helpers for integration tests against the local control plane that CTest's `cluster` fixture
// started (test/cluster/cluster.sh): running kubectl as a user would, running the operator binary
// as a child process, fresh namespaces per test, and waiting for a condition with a deadline.
//
// Not thread-safe; each test drives one scenario from its own thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace repl::test {

// How much slower the code under test runs in this build: 1, or 3 in a sanitizer build (ASan and
// TSan instrument every memory access; LeakSanitizer scans the heap at exit). The time bounds tests
// assert are multiplied by it; the figures they print are not.
#ifndef REPL_SANITIZER_SLOWDOWN
#define REPL_SANITIZER_SLOWDOWN 1
#endif
inline constexpr int kSlowdown = REPL_SANITIZER_SLOWDOWN;
// The same for memory: TSan's shadow memory takes several times what the program does.
#ifndef REPL_SANITIZER_MEMORY
#define REPL_SANITIZER_MEMORY 1
#endif
inline constexpr int kMemoryOverhead = REPL_SANITIZER_MEMORY;

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs argv[0] (looked up in PATH) with `input` on stdin; captures stdout and stderr.
CommandResult run(const std::vector<std::string>& argv, const std::string& input = "");

// The admin kubeconfig of the test cluster ($REPL_TEST_KUBECONFIG).
std::string admin_kubeconfig();
// The kubeconfig of "nobody", a token-authenticated user without rights.
std::string nobody_kubeconfig();

// kubectl against the test cluster as admin.
CommandResult kubectl(const std::vector<std::string>& args, const std::string& input = "");
// kubectl with another kubeconfig.
CommandResult kubectl_with(const std::string& kubeconfig, const std::vector<std::string>& args,
                           const std::string& input = "");

// What is wrong with `ns` compared with what its Repls imply, "" when nothing: each Repl has exactly
// its four children (Deployment, Service and NetworkPolicy <id>, Ingress <id>-ingress), each owned
// by it (its uid, as controller), no other object of ours is there, and each status is current
// (observedGeneration = generation, a phase).
std::string desired_state_diff(const std::string& ns, const std::string& kubeconfig = admin_kubeconfig());
// Waits for the exact desired state; returns how long it took (fails the test after `timeout`).
std::chrono::milliseconds converge(const std::string& ns, std::chrono::milliseconds timeout,
                                   const std::string& kubeconfig = admin_kubeconfig());
// helm (the one on PATH, built by test/cluster/build.sh) with the same kubeconfig.
CommandResult helm(const std::vector<std::string>& args);

// Creates a namespace with a unique name starting with `prefix`; returns its name.
// Six random characters of [a-z0-9].
std::string random_suffix();
std::string fresh_namespace(const std::string& prefix);

// Calls `done` every 50 ms until it returns true or `timeout` (times kSlowdown) passes; returns
// its last answer.
bool eventually(std::chrono::milliseconds timeout, const std::function<bool()>& done);

// A mkdtemp directory under /tmp, removed with everything in it on destruction.
struct TempDir {
  std::filesystem::path path;
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

// The whole content of a file ("" when it cannot be read).
std::string read_file(const std::filesystem::path& path);

// kubectl get -o jsonpath=<path> for one object; empty when it does not exist.
std::string jsonpath(const std::string& ns, const std::string& object, const std::string& path);

// A control plane of its own (beside the fixture's), for tests that restart or stop its API
// server. The Repl CRD is installed; it is taken down on destruction, also when a REQUIRE fails.
class PrivateCluster {
 public:
  PrivateCluster();
  ~PrivateCluster();
  PrivateCluster(const PrivateCluster&) = delete;
  PrivateCluster& operator=(const PrivateCluster&) = delete;

  const std::string& dir() const { return dir_; }
  const std::string& kubeconfig() const { return kubeconfig_; }
  CommandResult kubectl(const std::vector<std::string>& args, const std::string& input = "") const;
  // Runs test/cluster/cluster.sh COMMAND on this cluster (restart-apiserver, stop-apiserver, ...).
  CommandResult cluster_sh(const std::string& command) const;
  // Takes it down now; returns cluster.sh's result.
  CommandResult down();

 private:
  std::string dir_;
  std::string kubeconfig_;
};

// The repl-operator binary's arguments against `kubeconfig`, as the tests run it, then `extra_args`.
std::vector<std::string> operator_argv(const std::string& kubeconfig,
                                       const std::vector<std::string>& extra_args);

// The repl-operator binary as a child process, logging (debug level) to a file. Stopped with
// SIGTERM on destruction; if the test has a failed assertion by then, the end of its log is printed.
class OperatorProcess {
 public:
  explicit OperatorProcess(std::vector<std::string> extra_args);
  // Any binary of ours, logging to a file, with exactly these arguments (argv[0] included).
  static std::unique_ptr<OperatorProcess> spawn(std::vector<std::string> argv);
  ~OperatorProcess();
  OperatorProcess(const OperatorProcess&) = delete;
  OperatorProcess& operator=(const OperatorProcess&) = delete;

  pid_t pid() const { return pid_; }
  std::string log() const;
  // "host:port" it serves `what` ("metrics" or "health"; "" for the shim's one server) on, from its
  // log; empty until it does.
  std::string served_addr(const std::string& what) const;
  // GET `path` from the metrics or health server; the body, and the status code in *status.
  std::string get(const std::string& what, const std::string& path, int* status = nullptr) const;
  // The sum of the series of a metric in /metrics whose labels include the given ones, e.g.
  // metric("repl_operator_api_requests_total{verb=\"PATCH\"}").
  double metric(const std::string& series) const;
  // Count of log lines containing `needle`.
  int count_log(const std::string& needle) const;
  // The "ts" of the first log line containing `needle` stamped at or after `since`.
  std::optional<std::chrono::system_clock::time_point> logged_at(
      const std::string& needle, std::chrono::system_clock::time_point since) const;
  // Sends SIGTERM and waits; returns the exit status (as from waitpid's WEXITSTATUS, or -1).
  int stop();
  // Waits, without a signal, for the process to end by itself (at most `timeout`); its exit status,
  // or -1 (still running, or ended by a signal).
  int wait_exit(std::chrono::milliseconds timeout);
  // SIGKILL: no chance to release anything.
  void kill_hard();
  // SIGSTOP / SIGCONT: the process freezes with its connections open, as under a long GC pause.
  void pause();
  void resume();

 private:
  struct Spawn {};
  OperatorProcess(Spawn, std::vector<std::string> argv);
  pid_t pid_ = -1;
  std::string log_path_;
};

// The repl-shim binary on a free loopback port, against the test cluster.
std::unique_ptr<OperatorProcess> start_shim(std::vector<std::string> extra_args);

// A fresh namespace with the operator and the shim both limited to it; `url` is the shim's.
struct OperatorAndShim {
  std::string ns;
  std::unique_ptr<OperatorProcess> op;
  std::unique_ptr<OperatorProcess> shim;
  std::string url;
  explicit OperatorAndShim(const std::string& prefix, std::vector<std::string> operator_args = {},
                           std::vector<std::string> shim_args = {});
};

struct HttpResult {
  int status = 0;
  std::string body;
  std::string headers;  // the response's header block, as received
};
// The path of `program` on PATH; fails the test (naming scripts/deps.sh) when it is not installed.
std::string which(const std::string& program);

// A static file server for `dir` on a free loopback port (python3 -m http.server), stopped on
// destruction. Its origin is http://127.0.0.1:<port>.
struct StaticServer {
  std::unique_ptr<OperatorProcess> process;
  std::string origin;
  explicit StaticServer(const std::string& dir);
};

// One HTTP request with curl. `headers` like {"Content-Type: application/json"}.
HttpResult http(const std::string& method, const std::string& url, const std::string& body = "",
                const std::vector<std::string>& headers = {});

}  // namespace repl::test
