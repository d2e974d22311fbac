#include "integration/support.hpp"

#include <fcntl.h>
#include <poll.h>
#include <rapidjson/document.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

// For the listener below (Catch's reporter interfaces).
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

extern char** environ;

namespace repl::test {
namespace {

// Whether any assertion of the running test case failed, CHECK included: then the operator's log
// is worth printing.
bool g_test_failed = false;

struct FailureListener : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testCaseStarting(const Catch::TestCaseInfo& info) override {
    g_test_failed = false;
    TestEventListenerBase::testCaseStarting(info);
  }
  bool assertionEnded(const Catch::AssertionStats& stats) override {
    if (!stats.assertionResult.isOk()) g_test_failed = true;
    return TestEventListenerBase::assertionEnded(stats);
  }
};
CATCH_REGISTER_LISTENER(FailureListener)

// A child that exits before reading all its stdin must fail that write, not kill the test binary.
const bool g_sigpipe_ignored = [] {
  signal(SIGPIPE, SIG_IGN);
  return true;
}();

std::vector<char*> c_argv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  for (const auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace

TempDir::TempDir() {
  char tmpl[] = "/tmp/repl-test.XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  path = tmpl;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path, ignored);
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

CommandResult run(const std::vector<std::string>& argv, const std::string& input) {
  // No Catch assertion in here: tests call this from threads of their own, and Catch2's
  // assertions (even passing ones) are not thread-safe. A failure is the result's.
  const auto failed = [&argv](const char* what) {
    return CommandResult{-1, "", argv[0] + ": " + what + ": " + std::strerror(errno)};
  };
  // Close-on-exec: a child spawned by another thread at the same moment must not inherit these
  // ends (it would hold this child's stdin open, and this child would wait for EOF forever).
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0) return failed("pipe2");
  if (pipe2(out, O_CLOEXEC) != 0) {
    for (int fd : in) close(fd);
    return failed("pipe2");
  }
  if (pipe2(err, O_CLOEXEC) != 0) {
    for (int fd : {in[0], in[1], out[0], out[1]}) close(fd);
    return failed("pipe2");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]})
    posix_spawn_file_actions_addclose(&actions, fd);
  pid_t pid = -1;
  auto args = c_argv(argv);
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  if (rc != 0) {
    for (int fd : {in[1], out[0], err[0]}) close(fd);
    errno = rc;
    return failed("posix_spawnp");
  }

  // Feed stdin and drain stdout/stderr together, so a large output never blocks the child.
  CommandResult result;
  std::size_t written = 0;
  if (input.empty()) close(in[1]);
  std::vector<pollfd> fds = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  if (!input.empty()) fds.push_back({in[1], POLLOUT, 0});
  int open_reads = 2;
  char buf[65536];
  while (open_reads > 0 || fds.size() > 2) {
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;  // cannot happen with these descriptors; the child is still waited for below
    }
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      if (i == 2) {
        const ssize_t n = write(in[1], input.data() + written, input.size() - written);
        if (n > 0) written += static_cast<std::size_t>(n);
        if (n <= 0 || written == input.size()) {
          close(in[1]);
          fds.pop_back();
        }
        continue;
      }
      const ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_reads;
      } else {
        (i == 0 ? result.out : result.err).append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  for (const auto& p : fds) {
    if (p.fd >= 0) close(p.fd);  // only after the loop was left early
  }
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string admin_kubeconfig() {
  const char* path = std::getenv("REPL_TEST_KUBECONFIG");
  if (path == nullptr || *path == '\0') {
    FAIL("REPL_TEST_KUBECONFIG is not set: run the integration tests through ctest (make test)");
  }
  return path;
}

std::string nobody_kubeconfig() {
  const std::string admin = admin_kubeconfig();
  return admin.substr(0, admin.rfind('/')) + "/nobody.kubeconfig";
}

CommandResult kubectl_with(const std::string& kubeconfig, const std::vector<std::string>& args,
                           const std::string& input) {
  std::vector<std::string> argv = {"kubectl", "--kubeconfig", kubeconfig};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, input);
}

CommandResult kubectl(const std::vector<std::string>& args, const std::string& input) {
  return kubectl_with(admin_kubeconfig(), args, input);
}

std::string desired_state_diff(const std::string& ns, const std::string& kubeconfig) {
  const auto r = kubectl_with(
      kubeconfig, {"get", "-n", ns, "repls,deployments,services,ingresses,networkpolicies", "-o", "json"});
  if (r.exit_code != 0) return "kubectl get failed: " + r.err;
  rapidjson::Document d;
  d.Parse(r.out.c_str());
  if (!d.IsObject() || !d["items"].IsArray()) return "kubectl answered no list";
  std::map<std::string, std::string> repl_uids;  // name -> uid
  std::string problems;
  for (const auto& item : d["items"].GetArray()) {
    if (std::string(item["kind"].GetString()) != "Repl") continue;
    const auto& meta = item["metadata"];
    const std::string name = meta["name"].GetString();
    repl_uids[name] = meta["uid"].GetString();
    const auto status = item.FindMember("status");
    if (status == item.MemberEnd() || !status->value.HasMember("observedGeneration") ||
        status->value["observedGeneration"].GetInt64() != meta["generation"].GetInt64() ||
        !status->value.HasMember("phase")) {
      problems += "Repl " + name + ": status not current; ";
    }
  }
  std::set<std::string> want, have;
  for (const auto& [name, uid] : repl_uids) {
    for (const std::string& child :
         {"Deployment/" + name, "Service/" + name, "NetworkPolicy/" + name, "Ingress/" + name + "-ingress"}) {
      want.insert(child + "@" + uid);
    }
  }
  for (const auto& item : d["items"].GetArray()) {
    const std::string kind = item["kind"].GetString();
    if (kind == "Repl") continue;
    const auto& meta = item["metadata"];
    const std::string name = meta["name"].GetString();
    std::string owner = "(none)";
    if (meta.HasMember("ownerReferences")) {
      for (const auto& ref : meta["ownerReferences"].GetArray()) {
        if (ref.HasMember("controller") && ref["controller"].GetBool()) owner = ref["uid"].GetString();
      }
    }
    if (!have.insert(kind + "/" + name + "@" + owner).second)
      problems += "duplicate " + kind + "/" + name + "; ";
  }
  for (const auto& w : want) {
    if (!have.contains(w)) problems += "missing " + w + "; ";
  }
  for (const auto& h : have) {
    if (!want.contains(h)) problems += "orphan " + h + "; ";
  }
  return problems;
}

std::chrono::milliseconds converge(const std::string& ns, std::chrono::milliseconds timeout,
                                   const std::string& kubeconfig) {
  const auto start = std::chrono::steady_clock::now();
  std::string diff;
  const bool ok = eventually(timeout, [&] {
    diff = desired_state_diff(ns, kubeconfig);
    return diff.empty();
  });
  INFO(diff);
  REQUIRE(ok);
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
}

CommandResult helm(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"helm", "--kubeconfig", admin_kubeconfig()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv);
}

std::string random_suffix() {
  static std::mt19937_64 rng(std::random_device{}());
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s;
  for (int i = 0; i < 6; ++i) s.push_back(kChars[rng() % (sizeof kChars - 1)]);
  return s;
}

std::string fresh_namespace(const std::string& prefix) {
  const std::string ns = prefix + "-" + random_suffix();
  const auto r = kubectl({"create", "namespace", ns});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return ns;
}

bool eventually(std::chrono::milliseconds timeout, const std::function<bool()>& done) {
  // Sanitizer builds run several times slower: what must happen gets that much longer.
  const auto deadline = std::chrono::steady_clock::now() + timeout * kSlowdown;
  while (true) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

std::string jsonpath(const std::string& ns, const std::string& object, const std::string& path) {
  const auto r = kubectl({"get", "-n", ns, object, "-o", "jsonpath=" + path});
  return r.exit_code == 0 ? r.out : std::string();
}

namespace {
const std::string kClusterSh = std::string(REPL_SOURCE_DIR) + "/test/cluster/cluster.sh";
}  // namespace

PrivateCluster::PrivateCluster() {
  char tmpl[] = "/tmp/repl-private-cluster.XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  dir_ = tmpl;
  // With the CRD from the start, as in a real cluster: the garbage collector knows Repls at once.
  const auto up =
      run({kClusterSh, "up", dir_, "--crds", std::string(REPL_SOURCE_DIR) + "/crd/repls.peetcode.com.yaml"});
  INFO(up.err);
  REQUIRE(up.exit_code == 0);
  kubeconfig_ = up.out.substr(0, up.out.find('\n'));
}

PrivateCluster::~PrivateCluster() {
  if (!dir_.empty()) down();
}

CommandResult PrivateCluster::kubectl(const std::vector<std::string>& args, const std::string& input) const {
  return kubectl_with(kubeconfig_, args, input);
}

CommandResult PrivateCluster::cluster_sh(const std::string& command) const {
  return run({kClusterSh, command, dir_});
}

CommandResult PrivateCluster::down() {
  auto r = run({kClusterSh, "down", dir_});
  dir_.clear();
  return r;
}

std::vector<std::string> operator_argv(const std::string& kubeconfig,
                                       const std::vector<std::string>& extra_args) {
  // Ports 0: tests run several operators at once; served_addr() finds the port in the log.
  std::vector<std::string> argv = {REPL_OPERATOR_BIN,
                                   "--kubeconfig",
                                   kubeconfig,
                                   "--log-level",
                                   "debug",
                                   "--templates",
                                   std::string(REPL_SOURCE_DIR) + "/templates",
                                   "--metrics-addr",
                                   "127.0.0.1:0",
                                   "--health-addr",
                                   "127.0.0.1:0"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  return argv;
}

OperatorProcess::OperatorProcess(std::vector<std::string> extra_args)
    : OperatorProcess(Spawn{}, operator_argv(admin_kubeconfig(), extra_args)) {}

std::unique_ptr<OperatorProcess> OperatorProcess::spawn(std::vector<std::string> argv) {
  return std::unique_ptr<OperatorProcess>(new OperatorProcess(Spawn{}, std::move(argv)));
}

OperatorProcess::OperatorProcess(Spawn, std::vector<std::string> argv) {
  char tmpl[] = "/tmp/repl-daemon-log.XXXXXX";
  const int fd = mkstemp(tmpl);
  REQUIRE(fd >= 0);
  log_path_ = tmpl;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fd, 1);
  posix_spawn_file_actions_adddup2(&actions, fd, 2);
  auto args = c_argv(argv);
  const int rc = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fd);
  REQUIRE(rc == 0);
}

std::unique_ptr<OperatorProcess> start_shim(std::vector<std::string> extra_args) {
  std::vector<std::string> argv = {REPL_SHIM_BIN, "--kubeconfig", admin_kubeconfig(), "--log-level",
                                   "debug",       "--listen",     "127.0.0.1:0"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  return OperatorProcess::spawn(std::move(argv));
}

OperatorAndShim::OperatorAndShim(const std::string& prefix, std::vector<std::string> operator_args,
                                 std::vector<std::string> shim_args)
    : ns(fresh_namespace(prefix)) {
  operator_args.insert(operator_args.end(), {"--namespace", ns});
  op = std::make_unique<OperatorProcess>(operator_args);
  shim_args.insert(shim_args.end(), {"--namespace", ns});
  shim = start_shim(shim_args);
  std::string addr;
  REQUIRE(eventually(std::chrono::seconds(10), [&] { return !(addr = shim->served_addr("")).empty(); }));
  url = "http://" + addr;
  // As a load balancer would: no traffic before the shim says it is ready.
  REQUIRE(eventually(std::chrono::seconds(10), [&] { return http("GET", url + "/readyz").status == 200; }));
}

HttpResult http(const std::string& method, const std::string& url, const std::string& body,
                const std::vector<std::string>& headers) {
  std::vector<std::string> argv = {"curl",           "-s",         "-S", "-X", method, "-D", "-", "-w",
                                   "\n%{http_code}", "--max-time", "60"};
  for (const auto& h : headers) argv.insert(argv.end(), {"-H", h});
  if (!body.empty()) argv.insert(argv.end(), {"--data-binary", "@-"});
  argv.push_back(url);
  const auto r = run(argv, body);
  HttpResult out;
  const auto nl = r.out.rfind('\n');
  if (nl == std::string::npos) return out;
  out.status = std::atoi(r.out.c_str() + nl + 1);
  const std::string response = r.out.substr(0, nl);
  const auto split = response.find("\r\n\r\n");
  out.headers = response.substr(0, split);
  out.body = split == std::string::npos ? "" : response.substr(split + 4);
  return out;
}

OperatorProcess::~OperatorProcess() {
  stop();
  if (g_test_failed || std::uncaught_exceptions() > 0) {
    const std::string text = log();
    const std::size_t keep = 6000;
    std::cerr << "---- operator log (end) ----\n"
              << (text.size() > keep ? text.substr(text.size() - keep) : text) << "----\n";
  }
  unlink(log_path_.c_str());
}

int OperatorProcess::wait_exit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  int status = 0;
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return -1;
}

int OperatorProcess::stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  // Give it 10 s to finish in-flight work, then make sure it is gone.
  for (int i = 0; i < 200; ++i) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return -1;
}

void OperatorProcess::pause() { kill(pid_, SIGSTOP); }
void OperatorProcess::resume() { kill(pid_, SIGCONT); }

void OperatorProcess::kill_hard() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

std::string OperatorProcess::served_addr(const std::string& what) const {
  const std::string needle = "\"msg\":\"serving" + (what.empty() ? "" : " " + what) + "\",\"addr\":\"";
  const std::string text = log();
  const auto at = text.find(needle);
  if (at == std::string::npos) return "";
  const auto begin = at + needle.size();
  return text.substr(begin, text.find('"', begin) - begin);
}

std::string OperatorProcess::get(const std::string& what, const std::string& path, int* status) const {
  std::string addr;
  eventually(std::chrono::seconds(5), [&] { return !(addr = served_addr(what)).empty(); });
  REQUIRE_FALSE(addr.empty());
  const auto r = run({"curl", "-s", "-w", "\n%{http_code}", "http://" + addr + path});
  REQUIRE(r.exit_code == 0);
  const auto nl = r.out.rfind('\n');
  if (status != nullptr) *status = std::stoi(r.out.substr(nl + 1));
  return r.out.substr(0, nl);
}

double OperatorProcess::metric(const std::string& series) const {
  std::istringstream in(get("metrics", "/metrics"));
  double sum = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    const std::string name = line.substr(0, space);
    // "name" alone, or "name{...}" whose labels contain every label given in `series`.
    const auto brace = series.find('{');
    const std::string want_name = series.substr(0, brace);
    if (name.substr(0, name.find('{')) != want_name) continue;
    bool match = true;
    if (brace != std::string::npos) {
      std::string labels = series.substr(brace + 1, series.size() - brace - 2);
      std::istringstream parts(labels);
      for (std::string part; std::getline(parts, part, ',');)
        match = match && name.find(part) != std::string::npos;
    }
    if (match) sum += std::stod(line.substr(space + 1));
  }
  return sum;
}

std::string OperatorProcess::log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<std::chrono::system_clock::time_point> OperatorProcess::logged_at(
    const std::string& needle, std::chrono::system_clock::time_point since) const {
  std::istringstream in(log());
  for (std::string line; std::getline(in, line);) {
    if (line.find(needle) == std::string::npos) continue;
    // {"ts":"2026-11-26T00:05:56.986Z",...
    const auto at = line.find("\"ts\":\"");
    if (at == std::string::npos) continue;
    std::tm tm{};
    int millis = 0;
    if (sscanf(line.c_str() + at + 6, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &millis) != 7) {
      continue;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const auto t = std::chrono::system_clock::from_time_t(timegm(&tm)) + std::chrono::milliseconds(millis);
    if (t >= since) return t;
  }
  return std::nullopt;
}

int OperatorProcess::count_log(const std::string& needle) const {
  std::istringstream in(log());
  int n = 0;
  for (std::string line; std::getline(in, line);) n += line.find(needle) != std::string::npos;
  return n;
}

std::string which(const std::string& program) {
  const auto r = run({"sh", "-c", "command -v " + program});
  std::string path = r.out.substr(0, r.out.find('\n'));
  INFO(program << " is not installed (scripts/deps.sh installs it)");
  REQUIRE((r.exit_code == 0 && !path.empty()));
  return path;
}

StaticServer::StaticServer(const std::string& dir) {
  // The interpreter itself, not a wrapper script: stopping the server signals this very process.
  const auto python = run({which("python3"), "-c", "import sys; print(sys.executable)"});
  REQUIRE(python.exit_code == 0);
  process = OperatorProcess::spawn({python.out.substr(0, python.out.find('\n')), "-u", "-m", "http.server",
                                    "0", "--bind", "127.0.0.1", "--directory", dir});
  // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
  const std::regex serving(R"(Serving HTTP on 127\.0\.0\.1 port (\d+))");
  std::string port;
  REQUIRE(eventually(std::chrono::seconds(30), [&] {
    const std::string log = process->log();
    std::smatch m;  // refers into `log`: read it before `log` goes
    if (!std::regex_search(log, m, serving)) return false;
    port = m[1].str();
    return true;
  }));
  origin = "http://127.0.0.1:" + port;
}

}  // namespace repl::test
