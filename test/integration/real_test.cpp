// End to end on one real node (test/cluster/cluster.sh up --real-node): a kubelet, containerd and
// runc run the pods the operator's templates render, with images built by test/cluster/images.sh:
// the init container runs the real aws CLI against moto's S3 server on the bridge, the reference
// runner serves the workspace over a websocket (3001) and HTTP (3000), Traefik routes by Host, and
// kube-router enforces each Repl's NetworkPolicy. Nothing writes a status by hand; every namespace
// is labelled Pod Security "restricted", as tenant namespaces commonly are.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "common/json.hpp"
#include "integration/support.hpp"

using namespace repl::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kJson = {"Content-Type: application/json"};
const std::string kIdeDomain = "ide.localhost";
const std::string kPreviewDomain = "preview.localhost";

// KEY=VALUE lines of a file the cluster wrote (cluster.env: images, S3, the ingress; s3.env: keys).
std::map<std::string, std::string> env_file(const std::string& name) {
  std::map<std::string, std::string> out;
  std::ifstream in(fs::path(admin_kubeconfig()).parent_path() / name);
  for (std::string line; std::getline(in, line);) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string value = line.substr(eq + 1);
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
      value = value.substr(1, value.size() - 2);
    out[line.substr(0, eq)] = value;
  }
  return out;
}

const std::map<std::string, std::string>& cluster() {
  static const auto env = env_file("cluster.env");
  return env;
}
const std::string& setting(const std::string& key) {
  const auto it = cluster().find(key);
  INFO("cluster.env lacks " << key);
  REQUIRE(it != cluster().end());
  return it->second;
}

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

// The aws CLI on the host, as the platform's own tooling would seed a bucket.
CommandResult aws(const std::vector<std::string>& args, const std::string& input = "") {
  const auto keys = env_file("s3.env");
  std::vector<std::string> argv = {"env",
                                   "AWS_ACCESS_KEY_ID=" + keys.at("AWS_ACCESS_KEY_ID"),
                                   "AWS_SECRET_ACCESS_KEY=" + keys.at("AWS_SECRET_ACCESS_KEY"),
                                   "AWS_DEFAULT_REGION=us-east-1",
                                   "HOME=/tmp",
                                   "aws",
                                   "--endpoint-url",
                                   setting("S3_ENDPOINT")};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, input);
}

void put_object(const std::string& bucket, const std::string& key, const std::string& body) {
  const auto r = aws({"s3", "cp", "-", "s3://" + bucket + "/" + key}, body);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
}

// Makes `ns` a tenant namespace for Repls: Pod Security "restricted", the S3 Secret the init
// container reads, and `bucket` (it may exist from an earlier run).
void repl_namespace(const std::string& ns, const std::string& bucket) {
  REQUIRE(kubectl({"label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted"}).exit_code ==
          0);
  aws({"s3", "mb", "s3://" + bucket});
  const auto keys = env_file("s3.env");
  const auto secret = kubectl({"create", "secret", "generic", "-n", ns, "aws-credentials",
                               "--from-literal=AWS_ACCESS_KEY_ID=" + keys.at("AWS_ACCESS_KEY_ID"),
                               "--from-literal=AWS_SECRET_ACCESS_KEY=" + keys.at("AWS_SECRET_ACCESS_KEY")});
  INFO(secret.err);
  REQUIRE(secret.exit_code == 0);
}

// One namespace (restricted), one bucket, the S3 Secret, an operator and a shim for the test. The
// bucket is the test's own (named like its namespace) unless named: sync sidecars write to it, and
// an earlier run's pods, stopping in their namespace's deletion, may still be pushing to theirs.
struct Real : OperatorAndShim {
  std::string bucket;

  explicit Real(const std::string& prefix, std::vector<std::string> operator_args = {},
                const std::string& bucket_name = "", std::vector<std::string> shim_args = {})
      : Real(prefix, std::move(operator_args),
             bucket_name.empty() ? prefix + "-" + random_suffix() : bucket_name, std::move(shim_args), 0) {}

  // The node has 2 CPUs: what a test leaves running would make the next one's pods unschedulable.
  ~Real() { kubectl({"delete", "namespace", ns, "--wait=false"}); }
  Real(const Real&) = delete;
  Real& operator=(const Real&) = delete;

  Real(const std::string& prefix, std::vector<std::string> operator_args, const std::string& bucket_name,
       std::vector<std::string> shim_args, int)
      : OperatorAndShim(prefix, with_defaults(std::move(operator_args), bucket_name), std::move(shim_args)),
        bucket(bucket_name) {
    repl_namespace(ns, bucket);
  }

  static std::vector<std::string> with_defaults(std::vector<std::string> args, const std::string& bucket) {
    std::vector<std::string> out = {"--init-image",     setting("INIT_IMAGE"),
                                    "--runner-image",   setting("RUNNER_IMAGE"),
                                    "--s3-endpoint",    setting("S3_ENDPOINT"),
                                    "--s3-egress-cidr", "10.88.0.1/32",
                                    "--bucket",         bucket,
                                    "--ide-domain",     kIdeDomain,
                                    "--preview-domain", kPreviewDomain};
    out.insert(out.end(), args.begin(), args.end());
    return out;
  }

  HttpResult start(const std::string& repl, const std::string& language = "python") const {
    return http("POST", url + "/start",
                R"({"userId":"u1","replId":")" + repl + R"(","language":")" + language + R"("})", kJson);
  }
  CommandResult wait_ready(const std::string& repl, const std::string& timeout = "120s") const {
    return kubectl({"wait", "-n", ns, "--for=condition=Ready", "repl/" + repl, "--timeout=" + timeout});
  }
  // A field (status, reason, message) of one of the Repl's conditions.
  std::string condition(const std::string& repl, const std::string& type, const std::string& field) const {
    return jsonpath(ns, "repl/" + repl, "{.status.conditions[?(@.type==\"" + type + "\")]." + field + "}");
  }
  std::string ready(const std::string& repl, const std::string& field) const {
    return condition(repl, "Ready", field);
  }
  std::string synced(const std::string& repl, const std::string& field) const {
    return condition(repl, "Synced", field);
  }
  // The repl's pod names (by the label every pod of a Repl carries).
  std::vector<std::string> pods(const std::string& repl) const {
    const auto r = kubectl({"get", "pods", "-n", ns, "-l", "peetcode.com/repl=" + repl, "-o", "name"});
    std::vector<std::string> out;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) out.push_back(line);
    }
    return out;
  }
  CommandResult exec(const std::string& repl, const std::vector<std::string>& command) const {
    std::vector<std::string> args = {"exec", "-n", ns, "deploy/" + repl, "-c", "runner", "--"};
    args.insert(args.end(), command.begin(), command.end());
    return kubectl(args);
  }
};

// A websocket session through the ingress controller, by Host, open for `hold_s` after its
// requests; first_byte_ms counts from `t0`.
rapidjson::Document websocket(const std::string& host, const std::vector<std::string>& requests,
                              double wait_s,
                              std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now(),
                              double hold_s = 0) {
  // steady_clock is CLOCK_MONOTONIC, Python's time.monotonic() too.
  const double t0_s = std::chrono::duration<double>(t0.time_since_epoch()).count();
  std::vector<std::string> argv = {"/usr/bin/python3",
                                   std::string(REPL_SOURCE_DIR) + "/test/integration/ws_client.py",
                                   "--addr",
                                   setting("INGRESS_ADDR"),
                                   "--host",
                                   host,
                                   "--wait",
                                   std::to_string(wait_s),
                                   "--t0",
                                   std::to_string(t0_s),
                                   "--hold",
                                   std::to_string(hold_s)};
  for (const auto& r : requests) argv.insert(argv.end(), {"--send", r});
  const auto r = run(argv);
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  rapidjson::Document d;
  d.Parse(r.out.c_str());
  REQUIRE(!d.HasParseError());
  return d;
}

// GET / (or a path) through the ingress controller with a Host header.
HttpResult via_ingress(const std::string& host, const std::string& path = "/") {
  return http("GET", "http://" + setting("INGRESS_ADDR") + path, "", {"Host: " + host});
}

// The client's time to its first message; a session that never connected fails the test.
double first_byte_ms(const rapidjson::Document& d) {
  const auto* ms = repl::json::member(d, "first_byte_ms");
  INFO(repl::json::string_at(&d, "error"));
  REQUIRE((ms != nullptr && ms->IsNumber()));
  return ms->GetDouble();
}

// The files a "list" reply (reply `i`) names.
std::set<std::string> listed_files(const rapidjson::Document& d, std::size_t i) {
  const auto* replies = repl::json::member(d, "replies");
  REQUIRE((replies != nullptr && replies->IsArray() && replies->Size() > i));
  const auto* files = repl::json::member((*replies)[static_cast<rapidjson::SizeType>(i)], "files");
  REQUIRE((files != nullptr && files->IsArray()));
  std::set<std::string> out;
  for (const auto& f : files->GetArray()) out.insert(f.GetString());
  return out;
}

std::string reply_field(const rapidjson::Document& d, std::size_t i, const char* field) {
  const auto* replies = repl::json::member(d, "replies");
  if (replies == nullptr || !replies->IsArray() || replies->Size() <= i) return "";
  return repl::json::string_at(&(*replies)[static_cast<rapidjson::SizeType>(i)], field);
}

std::set<std::string> lines(const std::string& text) {
  std::set<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.insert(line);
  }
  return out;
}

}  // namespace

TEST_CASE("real: /start gives a running sandbox with the repl's code, reachable by host through the ingress",
          "[real]") {
  Real s("real-flow");
  // The language's base code, which a new repl starts from; another repl has code of its own.
  put_object(s.bucket, "base/python/main.py", "print('hello from base')\n");
  put_object(s.bucket, "base/python/lib/util.py", "def add(a, b):\n    return a + b\n");
  put_object(s.bucket, "code/other/notes.txt", "other's notes\n");

  const auto started_at = std::chrono::steady_clock::now();
  const auto started = s.start("alpha");
  INFO(started.body);
  REQUIRE(started.status == 201);
  auto first_byte = std::async(std::launch::async, [&] {
    return websocket("alpha." + kIdeDomain, {R"({"op":"list"})", R"({"op":"read","path":"main.py"})"}, 120,
                     started_at);
  });
  const auto waited = s.wait_ready("alpha");
  const double ready_ms = ms_since(started_at);
  INFO(waited.out << waited.err << "\n--- operator ---\n" << s.op->log());
  REQUIRE(waited.exit_code == 0);
  const auto ws = first_byte.get();
  REQUIRE_FALSE(ws.HasMember("error"));
  std::cout << "real node: /start -> Ready " << ready_ms << " ms, /start -> first websocket byte "
            << first_byte_ms(ws) << " ms\n";

  // The pod runs for real: its init container completed, the runner is Running.
  const auto pods = s.pods("alpha");
  REQUIRE(pods.size() == 1);
  CHECK(jsonpath(s.ns, pods[0], "{.status.phase}") == "Running");
  CHECK(jsonpath(s.ns, pods[0], "{.status.initContainerStatuses[0].state.terminated.reason}") == "Completed");
  CHECK_THAT(jsonpath(s.ns, pods[0], "{.status.containerStatuses[0].containerID}"),
             Catch::StartsWith("containerd://"));

  // /workspace holds exactly the repl's code: seeded from base/python/, now also in code/alpha/.
  const auto files = s.exec("alpha", {"find", "/workspace", "-type", "f"});
  INFO(files.err);
  CHECK(lines(files.out) == std::set<std::string>{"/workspace/main.py", "/workspace/lib/util.py"});
  CHECK_THAT(aws({"s3", "ls", "--recursive", "s3://" + s.bucket + "/code/alpha/"}).out,
             Catch::Contains("lib/util.py"));

  // The websocket (IDE host, port 3001) lists and reads the code.
  CHECK(reply_field(ws, 0, "op") == "hello");
  CHECK(listed_files(ws, 1) == std::set<std::string>{"main.py", "lib/util.py"});
  CHECK(reply_field(ws, 2, "content") == "print('hello from base')\n");

  // The preview host reaches the user's app on 3000; an unknown host is 404 at the ingress.
  const auto preview = via_ingress("alpha." + kPreviewDomain, "/lib/util.py");
  CHECK(preview.status == 200);
  CHECK(preview.body == "def add(a, b):\n    return a + b\n");
  CHECK(via_ingress("nobody." + kIdeDomain).status == 404);
  CHECK(via_ingress("alpha.elsewhere.localhost").status == 404);

  // Another repl's host reaches its own pod, never alpha's.
  REQUIRE(s.start("other").status == 201);
  REQUIRE(s.wait_ready("other").exit_code == 0);
  const auto other = websocket("other." + kIdeDomain, {R"({"op":"list"})"}, 30);
  REQUIRE_FALSE(other.HasMember("error"));
  CHECK(listed_files(other, 1) == std::set<std::string>{"notes.txt"});
  CHECK(via_ingress("other." + kPreviewDomain, "/main.py").status == 404);
  CHECK(via_ingress("alpha." + kPreviewDomain, "/notes.txt").status == 404);
}

TEST_CASE(
    "real: the runner holds no credentials, no token, no capabilities, runs under seccomp as the runner uid",
    "[real]") {
  Real s("real-secure");
  put_object(s.bucket, "code/sec/app.py", "print(1)\n");
  REQUIRE(s.start("sec").status == 201);
  const auto waited = s.wait_ready("sec");
  INFO(waited.err << s.op->log());
  REQUIRE(waited.exit_code == 0);

  const auto env = s.exec("sec", {"env"});
  REQUIRE(env.exit_code == 0);
  CHECK_THAT(env.out, !Catch::Contains("AWS_"));
  // (The kubelet always sets the API server's KUBERNETES_SERVICE_* variables, enableServiceLinks or
  // not: the runner may know the address, but holds no token and its NetworkPolicy blocks the way.)
  const auto secrets = s.exec("sec", {"sh", "-c", "ls /var/run/secrets /run/secrets 2>&1; ls -a ~ /tmp"});
  CHECK_THAT(secrets.out, !Catch::Contains("serviceaccount"));
  CHECK_THAT(secrets.out, !Catch::Contains(".aws"));
  const auto status = s.exec("sec", {"cat", "/proc/1/status"});
  REQUIRE(status.exit_code == 0);
  CHECK_THAT(status.out, Catch::Contains("CapEff:\t0000000000000000"));
  CHECK_THAT(status.out, Catch::Contains("CapBnd:\t0000000000000000"));
  CHECK_THAT(status.out, Catch::Contains("Seccomp:\t2"));  // 2: a filter is in force
  CHECK_THAT(status.out, Catch::Contains("NoNewPrivs:\t1"));
  const auto id = s.exec("sec", {"id"});
  CHECK_THAT(id.out, Catch::StartsWith("uid=1000(") && Catch::Contains(" gid=1000("));
  // The files restored from S3 are the runner's to change.
  const auto write = s.exec(
      "sec", {"sh", "-c",
              "echo more >> /workspace/app.py && mkdir /workspace/new && stat -c '%u %g' /workspace/app.py"});
  INFO(write.err);
  CHECK(write.exit_code == 0);
  CHECK(write.out == "1000 1000\n");
}

TEST_CASE("real: what users hit is on the Repl's Ready condition within 10 s, with the real reason",
          "[real]") {
  struct Case {
    std::string name;
    std::vector<std::string> operator_args;
    std::string bucket;  // empty: the test's own
    std::string image;   // spec.image, empty: the default runner
    std::string reason;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"nobucket", {}, "no-such-bucket", "", "InitContainerFailed", "NoSuchBucket"},
      {"badkey", {"--aws-secret", "wrong-keys"}, "", "", "InitContainerFailed", "InvalidAccessKeyId"},
      // The kubelet writes a failed pull into the pod's status only after its fixed 10 s back-off;
      // the operator reports it from the Event the kubelet sends at once.
      {"noimage", {}, "", "localhost/repl:not-built", "ImagePullFailed", "localhost/repl:not-built"},
      {"crash", {}, "", setting("CRASH_IMAGE"), "CrashLoopBackOff", "keeps exiting (last exit code 3)"},
      {"huge",
       {"--runner-cpu-request=16", "--runner-cpu-limit=16"},
       "",
       "",
       "Unschedulable",
       "Insufficient cpu"},
  };
  for (const auto& c : cases) {
    DYNAMIC_SECTION(c.name) {
      Real s("real-fail-" + c.name, c.operator_args, c.bucket.empty() ? "real-fail" : c.bucket);
      if (!c.bucket.empty()) aws({"s3", "rb", "s3://" + c.bucket, "--force"});  // it must not exist
      aws({"s3", "mb", "s3://real-fail"});
      put_object("real-fail", "code/" + c.name + "/main.py", "print(1)\n");
      REQUIRE(kubectl({"create", "secret", "generic", "-n", s.ns, "wrong-keys",
                       "--from-literal=AWS_ACCESS_KEY_ID=AKIAWRONG",
                       "--from-literal=AWS_SECRET_ACCESS_KEY=wrong"})
                  .exit_code == 0);
      const auto t0 = std::chrono::steady_clock::now();
      if (c.image.empty()) {
        REQUIRE(s.start(c.name).status == 201);
      } else {
        const auto applied =
            kubectl({"apply", "-n", s.ns, "-f", "-"},
                    "apiVersion: peetcode.com/v1alpha1\nkind: Repl\nmetadata:\n  name: " + c.name +
                        "\nspec:\n  userId: u1\n  image: " + c.image + "\n");
        INFO(applied.err);
        REQUIRE(applied.exit_code == 0);
      }
      const bool reported = eventually(10s, [&] { return s.ready(c.name, "reason") == c.reason; });
      const double took = ms_since(t0);
      INFO("after " << took << " ms: " << s.ready(c.name, "reason") << ": " << s.ready(c.name, "message")
                    << "\n"
                    << s.op->log());
      CHECK(reported);
      CHECK_THAT(s.ready(c.name, "message"), Catch::Contains(c.message));
      CHECK(s.ready(c.name, "status") == "False");
      std::cout << "real node: " << c.name << " reported as " << c.reason << " after " << took << " ms\n";
    }
  }
}

TEST_CASE(
    "real: suspend stops the pod and the IDE host; resume serves the same code; delete removes everything",
    "[real]") {
  Real s("real-life");
  put_object(s.bucket, "code/life/main.py", "print('kept')\n");
  REQUIRE(s.start("life").status == 201);
  REQUIRE(s.wait_ready("life").exit_code == 0);
  const auto before = websocket("life." + kIdeDomain, {R"({"op":"read","path":"main.py"})"}, 30);
  REQUIRE(reply_field(before, 1, "content") == "print('kept')\n");
  const auto pod = s.pods("life").at(0);

  REQUIRE(http("POST", s.url + "/stop", R"({"userId":"u1","replId":"life"})", kJson).status == 200);
  CHECK(eventually(30s, [&] { return s.pods("life").empty(); }));
  CHECK(eventually(10s, [&] { return jsonpath(s.ns, "repl/life", "{.status.phase}") == "Suspended"; }));
  // No container of that pod is left on the node, and the host no longer reaches a runner.
  CHECK(eventually(10s, [&] {
    return via_ingress("life." + kIdeDomain).status >= 500 || via_ingress("life." + kIdeDomain).status == 404;
  }));
  const auto gone = websocket("life." + kIdeDomain, {}, 0);
  CHECK(gone.HasMember("error"));

  REQUIRE(s.start("life").status == 200);
  REQUIRE(s.wait_ready("life").exit_code == 0);
  CHECK(s.pods("life").at(0) != pod);
  const auto after = websocket("life." + kIdeDomain, {R"({"op":"read","path":"main.py"})"}, 30);
  CHECK(reply_field(after, 1, "content") == "print('kept')\n");

  REQUIRE(http("DELETE", s.url + "/repls/life?userId=u1").status == 200);
  const std::string kinds = "deployments,replicasets,pods,services,ingresses,networkpolicies";
  CHECK(eventually(60s, [&] {
    return kubectl({"get", kinds, "-n", s.ns, "-l", "peetcode.com/repl=life", "-o", "name"}).out.empty();
  }));
  CHECK(eventually(20s, [&] { return via_ingress("life." + kIdeDomain).status == 404; }));
}

namespace {

// An object's content in S3, "" when it is not there.
std::string s3_text(const std::string& bucket, const std::string& key) {
  const auto r = aws({"s3", "cp", "s3://" + bucket + "/" + key, "-"});
  return r.exit_code == 0 ? r.out : "";
}
std::string s3_modified(const std::string& bucket, const std::string& key) {
  return aws({"s3api", "head-object", "--bucket", bucket, "--key", key, "--query", "LastModified", "--output",
              "text"})
      .out;
}
std::string write_op(const std::string& path, const std::string& content) {
  return R"({"op":"write","path":")" + path + R"(","content":")" + content + R"("})";
}
std::string sync_log(const Real& s, const std::string& repl) {
  return kubectl({"logs", "-n", s.ns, "deploy/" + repl, "-c", "sync-workspace"}).out;
}
// The node's pid of a container's main process (from containerd: the test runs on the node).
std::string task_pid(const std::string& ns, const std::string& pod, const std::string& container) {
  const std::string id =
      jsonpath(ns, pod, "{.status.containerStatuses[?(@.name==\"" + container + "\")].containerID}");
  REQUIRE(id.rfind("containerd://", 0) == 0);
  const auto tasks =
      run({"ctr", "--address", "/var/lib/repl-operator/node/containerd.sock", "-n", "k8s.io", "task", "ls"});
  std::istringstream in(tasks.out);
  std::string pid;
  for (std::string t, p; in >> t >> p;) {
    std::string rest;
    std::getline(in, rest);
    if (t == id.substr(13)) pid = p;
  }
  REQUIRE_FALSE(pid.empty());
  return pid;
}

}  // namespace

TEST_CASE(
    "real: the sync sidecar pushes a running repl's edits to S3: only what changed, deletions too, "
    "never from an empty workspace",
    "[real]") {
  Real s("real-push", {"--sync-interval", "2", "--sync-check-interval", "2"});
  put_object(s.bucket, "code/push/main.py", "print(1)\n");
  put_object(s.bucket, "code/push/old.py", "old\n");
  REQUIRE(s.start("push").status == 201);
  const auto waited = s.wait_ready("push");
  INFO(waited.err << s.op->log());
  REQUIRE(waited.exit_code == 0);
  const auto pod = s.pods("push").at(0);
  // The sidecar started after the restore and runs beside the runner; neither holds a problem.
  CHECK(jsonpath(s.ns, pod, "{.status.initContainerStatuses[1].name}") == "sync-workspace");
  CHECK(jsonpath(s.ns, pod, "{.status.initContainerStatuses[1].started}") == "true");
  const std::string unchanged = s3_modified(s.bucket, "code/push/main.py");

  // The IDE writes through the runner's websocket; a file goes from a shell in the runner.
  const auto wrote = websocket("push." + kIdeDomain, {write_op("src/new.py", "print(2)")}, 10);
  REQUIRE(reply_field(wrote, 1, "op") == "write");
  REQUIRE(s.exec("push", {"rm", "/workspace/old.py"}).exit_code == 0);
  CHECK(eventually(20s, [&] { return s3_text(s.bucket, "code/push/src/new.py") == "print(2)"; }));
  CHECK(eventually(20s, [&] { return s3_text(s.bucket, "code/push/old.py").empty(); }));
  // Several pushes later, the file nobody touched was never uploaded again.
  CHECK(s3_modified(s.bucket, "code/push/main.py") == unchanged);
  CHECK(s3_text(s.bucket, "code/push/main.py") == "print(1)\n");

  // A workspace found empty (a lost volume looks the same) is not pushed: S3 keeps the code. (One
  // emptied while a push runs may be pushed, as the user's deletion: so the copy is put back once
  // the sidecar has seen it empty, and must then stay through several more rounds.)
  REQUIRE(s.exec("push", {"sh", "-c", "rm -rf /workspace/* /workspace/.[!.]*"}).exit_code == 0);
  REQUIRE(eventually(
      20s, [&] { return sync_log(s, "push").find("/workspace is empty: not synced") != std::string::npos; }));
  put_object(s.bucket, "code/push/main.py", "print(1)\n");
  put_object(s.bucket, "code/push/src/new.py", "print(2)");
  std::this_thread::sleep_for(7s);  // three rounds of 2 s
  CHECK(s3_text(s.bucket, "code/push/main.py") == "print(1)\n");
  CHECK(s3_text(s.bucket, "code/push/src/new.py") == "print(2)");
  // The operator reads how the pushes go: Synced, and lastSyncTime once one changed something.
  CHECK(eventually(20s, [&] { return s.synced("push", "reason") == "Synced"; }));
  CHECK_THAT(jsonpath(s.ns, "repl/push", "{.status.lastSyncTime}"), Catch::Matches(R"(\d{4}-.*Z)"));
  // A push that fails (the bucket gone) is Synced=False with its line and an Event; Ready stays.
  REQUIRE(s.exec("push", {"sh", "-c", "echo again > /workspace/main.py"}).exit_code == 0);
  REQUIRE(aws({"s3", "rb", "--force", "s3://" + s.bucket}).exit_code == 0);
  REQUIRE(eventually(30s, [&] { return s.synced("push", "status") == "False"; }));
  CHECK(s.synced("push", "reason") == "SyncFailed");
  CHECK_THAT(s.synced("push", "message"), Catch::Contains("NoSuchBucket"));
  CHECK(s.op->metric("repl_operator_sync_failures_total") == 1);
  CHECK(s.ready("push", "status") == "True");
  CHECK_THAT(kubectl({"get", "events", "-n", s.ns, "--field-selector",
                      "involvedObject.kind=Repl,involvedObject.name=push,reason=SyncFailed"})
                 .out,
             Catch::Contains("NoSuchBucket"));
  // The bucket back: the next push succeeds and says so.
  REQUIRE(aws({"s3", "mb", "s3://" + s.bucket}).exit_code == 0);
  CHECK(eventually(30s, [&] { return s.synced("push", "status") == "True"; }));
  CHECK(eventually(20s, [&] { return s3_text(s.bucket, "code/push/main.py") == "again\n"; }));
  // The sidecar holds the keys; the runner still has none, and cannot reach the restore's marker.
  CHECK_THAT(s.exec("push", {"env"}).out, !Catch::Contains("AWS_"));
  CHECK(s.exec("push", {"ls", "/sync-state"}).exit_code != 0);
}

TEST_CASE(
    "real: suspend and delete wait for the final sync: the last edit is in S3, then the Repl is "
    "Suspended (Synced, lastSyncTime) or gone; resume brings it back",
    "[real]") {
  // No periodic push within the test: whatever reaches S3 after the restore is the final sync's.
  Real s("real-final", {"--sync-interval", "3600"});
  put_object(s.bucket, "code/fin/main.py", "print(1)\n");
  REQUIRE(s.start("fin").status == 201);
  REQUIRE(s.wait_ready("fin").exit_code == 0);
  const auto pod = s.pods("fin").at(0);
  REQUIRE(reply_field(websocket("fin." + kIdeDomain, {write_op("last.py", "typed just before the stop")}, 10),
                      1, "op") == "write");
  REQUIRE(s3_text(s.bucket, "code/fin/last.py").empty());

  REQUIRE(http("POST", s.url + "/stop", R"({"userId":"u1","replId":"fin"})", kJson).status == 200);
  // Stopping while the pod is there (the runner stops, then the sidecar's final push); Suspended
  // only once it is gone, and by then the edit is in S3.
  CHECK(eventually(10s, [&] { return jsonpath(s.ns, "repl/fin", "{.status.phase}") == "Stopping"; }));
  REQUIRE(eventually(60s, [&] { return jsonpath(s.ns, "repl/fin", "{.status.phase}") == "Suspended"; }));
  CHECK(s.pods("fin").empty());
  CHECK(s3_text(s.bucket, "code/fin/last.py") == "typed just before the stop");
  CHECK(s.synced("fin", "status") == "True");
  CHECK(s.synced("fin", "reason") == "FinalSyncSucceeded");
  CHECK_THAT(s.synced("fin", "message"), Catch::StartsWith("pod " + pod.substr(pod.find('/') + 1) +
                                                           ": final sync: synced 1 changes of /workspace"));
  CHECK_THAT(jsonpath(s.ns, "repl/fin", "{.status.lastSyncTime}"), Catch::Matches(R"(\d{4}-\d\d-\d\dT.*Z)"));
  const auto table = kubectl({"get", "repls", "-n", s.ns});
  CHECK_THAT(table.out, Catch::Contains("LAST SYNC"));

  // Resume: a new pod restores the edit.
  REQUIRE(s.start("fin").status == 200);
  REQUIRE(s.wait_ready("fin").exit_code == 0);
  CHECK(reply_field(websocket("fin." + kIdeDomain, {R"({"op":"read","path":"last.py"})"}, 10), 1,
                    "content") == "typed just before the stop");

  // Delete: the finalizer holds the Repl until the pod has stopped and pushed.
  REQUIRE(
      reply_field(websocket("fin." + kIdeDomain, {write_op("last.py", "typed just before the delete")}, 10),
                  1, "op") == "write");
  CHECK_THAT(jsonpath(s.ns, "repl/fin", "{.metadata.finalizers}"),
             Catch::Contains("peetcode.com/final-sync"));
  REQUIRE(http("DELETE", s.url + "/repls/fin?userId=u1").status == 200);
  CHECK(eventually(10s, [&] { return jsonpath(s.ns, "repl/fin", "{.status.phase}") == "Stopping"; }));
  const auto gone = kubectl({"wait", "-n", s.ns, "--for=delete", "repl/fin", "--timeout=60s"});
  INFO(gone.err << s.op->log());
  REQUIRE(gone.exit_code == 0);
  CHECK(s3_text(s.bucket, "code/fin/last.py") == "typed just before the delete");
}

TEST_CASE(
    "real: the sidecar's S3 key revoked under a running repl: Synced False with S3's reason while it "
    "runs, and a deletion held (Events) until peetcode.com/force-delete",
    "[real]") {
  Real s("real-revoked", {"--sync-interval", "2", "--sync-check-interval", "2", "--termination-grace-period",
                          "12", "--aws-secret", "revocable-keys"});
  // An S3 user of the test's own, whose key the namespace's Secret holds.
  const std::string user = s.ns;
  REQUIRE(aws({"iam", "create-user", "--user-name", user}).exit_code == 0);
  REQUIRE(aws({"iam", "put-user-policy", "--user-name", user, "--policy-name", "s3", "--policy-document",
               R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]})"})
              .exit_code == 0);
  const auto key = aws({"iam", "create-access-key", "--user-name", user, "--query",
                        "AccessKey.[AccessKeyId,SecretAccessKey]", "--output", "text"});
  INFO(key.err);
  REQUIRE(key.exit_code == 0);
  std::istringstream fields(key.out);
  std::string key_id, secret;
  fields >> key_id >> secret;
  REQUIRE(kubectl({"create", "secret", "generic", "-n", s.ns, "revocable-keys",
                   "--from-literal=AWS_ACCESS_KEY_ID=" + key_id,
                   "--from-literal=AWS_SECRET_ACCESS_KEY=" + secret})
              .exit_code == 0);
  put_object(s.bucket, "code/lost/main.py", "print(1)\n");
  REQUIRE(s.start("lost").status == 201);
  REQUIRE(s.wait_ready("lost").exit_code == 0);
  REQUIRE(s.exec("lost", {"sh", "-c", "echo kept > /workspace/kept.py"}).exit_code == 0);
  REQUIRE(eventually(20s, [&] { return s3_text(s.bucket, "code/lost/kept.py") == "kept\n"; }));

  // The key is revoked: every push now fails, as S3 says, and the repl keeps serving.
  REQUIRE(aws({"iam", "delete-access-key", "--user-name", user, "--access-key-id", key_id}).exit_code == 0);
  REQUIRE(s.exec("lost", {"sh", "-c", "echo typed > /workspace/unsynced.py"}).exit_code == 0);
  REQUIRE(eventually(30s, [&] { return s.synced("lost", "status") == "False"; }));
  CHECK(s.synced("lost", "reason") == "SyncFailed");
  CHECK_THAT(s.synced("lost", "message"), Catch::Contains("InvalidAccessKeyId"));
  CHECK(s.ready("lost", "status") == "True");
  CHECK(s.op->metric("repl_operator_sync_failures_total") == 1);

  // Deleted: the final sync fails too, and holds the Repl.
  REQUIRE(http("DELETE", s.url + "/repls/lost?userId=u1").status == 200);
  REQUIRE(eventually(60s, [&] { return s.synced("lost", "reason") == "FinalSyncFailed"; }));
  CHECK(s.synced("lost", "status") == "False");
  CHECK_THAT(s.synced("lost", "message"),
             Catch::Contains("final sync failed: cannot sync /workspace to s3://"));
  CHECK_THAT(s.synced("lost", "message"), Catch::Contains("InvalidAccessKeyId"));
  CHECK(eventually(30s, [&] { return s.pods("lost").empty(); }));
  CHECK(eventually(10s, [&] { return s.ready("lost", "reason") == "FinalSyncFailed"; }));
  CHECK_THAT(s.ready("lost", "message"), Catch::Contains("peetcode.com/force-delete=true"));
  const auto events = kubectl({"get", "events", "-n", s.ns, "--field-selector",
                               "involvedObject.kind=Repl,involvedObject.name=lost,reason=FinalSyncFailed"});
  CHECK_THAT(events.out, Catch::Contains("InvalidAccessKeyId"));
  CHECK(s.op->metric("repl_operator_final_sync_duration_seconds_count{result=\"failure\"}") == 1);
  // Held: still there a while later, and S3 has what was synced before the key went.
  std::this_thread::sleep_for(3s);
  CHECK(kubectl({"get", "repl", "-n", s.ns, "lost"}).exit_code == 0);
  CHECK(s3_text(s.bucket, "code/lost/kept.py") == "kept\n");
  CHECK(s3_text(s.bucket, "code/lost/unsynced.py").empty());

  REQUIRE(kubectl({"annotate", "-n", s.ns, "repl/lost", "peetcode.com/force-delete=true"}).exit_code == 0);
  const auto gone = kubectl({"wait", "-n", s.ns, "--for=delete", "repl/lost", "--timeout=30s"});
  INFO(gone.err << s.op->log());
  CHECK(gone.exit_code == 0);
  aws({"iam", "delete-user-policy", "--user-name", user, "--policy-name", "s3"});
  aws({"iam", "delete-user", "--user-name", user});
}

TEST_CASE(
    "real: kill -9 of the runner: restarted in its pod with the workspace; a pod lost without its final "
    "sync comes back with everything synced (the Repl's own sync interval)",
    "[real]") {
  Real s("real-kill");
  put_object(s.bucket, "code/kill/main.py", "print(1)\n");
  // The Repl's own sync interval, not the operator's 15 s.
  const auto applied = kubectl({"apply", "-n", s.ns, "-f", "-"},
                               "apiVersion: peetcode.com/v1alpha1\nkind: Repl\nmetadata:\n  name: kill\n"
                               "spec:\n  userId: u1\n  syncIntervalSeconds: 2\n");
  INFO(applied.err);
  REQUIRE(applied.exit_code == 0);
  REQUIRE(s.wait_ready("kill").exit_code == 0);
  const auto pod = s.pods("kill").at(0);
  CHECK(
      jsonpath(
          s.ns, pod,
          "{.spec.initContainers[?(@.name==\"sync-workspace\")].env[?(@.name==\"SYNC_INTERVAL\")].value}") ==
      "2");
  REQUIRE(s.exec("kill", {"sh", "-c", "echo kept > /workspace/kept.py"}).exit_code == 0);
  REQUIRE(eventually(20s, [&] { return s3_text(s.bucket, "code/kill/kept.py") == "kept\n"; }));

  // SIGKILL from the node, as the OOM killer would: the kubelet restarts the runner in the same
  // pod; its workspace volume, and the sidecar, were never gone.
  const std::string runner = task_pid(s.ns, pod, "runner");
  REQUIRE(run({"kill", "-KILL", runner}).exit_code == 0);
  REQUIRE(eventually(60s, [&] {
    return jsonpath(s.ns, pod, "{.status.containerStatuses[?(@.name==\"runner\")].restartCount}") == "1";
  }));
  CHECK(jsonpath(s.ns, pod,
                 "{.status.containerStatuses[?(@.name==\"runner\")].lastState.terminated.exitCode}") ==
        "137");
  REQUIRE(s.wait_ready("kill", "60s").exit_code == 0);
  CHECK(task_pid(s.ns, pod, "runner") != runner);
  CHECK(jsonpath(s.ns, pod, "{.status.initContainerStatuses[?(@.name==\"sync-workspace\")].restartCount}") ==
        "0");
  CHECK(eventually(30s, [&] { return s.exec("kill", {"cat", "/workspace/kept.py"}).out == "kept\n"; }));
  REQUIRE(s.exec("kill", {"sh", "-c", "echo after > /workspace/after.py"}).exit_code == 0);
  REQUIRE(eventually(20s, [&] { return s3_text(s.bucket, "code/kill/after.py") == "after\n"; }));

  // The whole pod lost at once (no grace, no final sync: a node gone): its replacement restores
  // everything that was synced.
  REQUIRE(kubectl({"delete", "-n", s.ns, pod, "--grace-period=0", "--force"}).exit_code == 0);
  REQUIRE(eventually(60s, [&] {
    const auto now = s.pods("kill");
    return now.size() == 1 && now[0] != pod;
  }));
  REQUIRE(s.wait_ready("kill").exit_code == 0);
  // (The Repl may still show the old pod's Ready: the new pod's runner is asked until it answers.)
  CHECK(eventually(60s, [&] { return s.exec("kill", {"cat", "/workspace/kept.py"}).out == "kept\n"; }));
  CHECK(s.exec("kill", {"cat", "/workspace/after.py"}).out == "after\n");
  CHECK(s.ready("kill", "status") == "True");
}

TEST_CASE(
    "real: an idle repl is suspended (its code synced), a heartbeat keeps it running, /start resumes "
    "it, and a suspended one past its TTL is deleted",
    "[real]") {
  Real s("real-idle", {"--idle-timeout", "20s", "--ttl-after-suspend", "15s", "--sync-interval", "3600"}, "",
         {"--activity-interval", "5"});
  put_object(s.bucket, "code/idle/main.py", "print(1)\n");
  REQUIRE(s.start("idle").status == 201);
  REQUIRE(s.wait_ready("idle").exit_code == 0);
  const auto activity = [&] {
    return jsonpath(s.ns, "repl/idle", "{.metadata.annotations.peetcode\\.com/last-activity}");
  };
  const std::string started = activity();
  CHECK_THAT(started, Catch::Matches(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"));
  CHECK_THAT(kubectl({"get", "repls", "-n", s.ns}).out, Catch::Contains("LAST ACTIVE"));
  REQUIRE(
      reply_field(websocket("idle." + kIdeDomain, {write_op("work.py", "unsaved until the idle stop")}, 10),
                  1, "op") == "write");

  // An open tab's heartbeats, every 2 s for 30 s: longer than the idle timeout, and it keeps running.
  for (int i = 0; i < 15; ++i) {
    REQUIRE(http("POST", s.url + "/repls/idle/heartbeat", R"({"userId":"u1"})", kJson).status == 200);
    std::this_thread::sleep_for(2s);
  }
  CHECK(jsonpath(s.ns, "repl/idle", "{.status.phase}") == "Ready");
  CHECK(activity() != started);
  // Another user's heartbeat is refused and changes nothing.
  CHECK(http("POST", s.url + "/repls/idle/heartbeat", R"({"userId":"u2"})", kJson).status == 409);

  // The tab closes: 20 s later the repl is suspended, Idle, after its final sync.
  REQUIRE(eventually(60s, [&] { return jsonpath(s.ns, "repl/idle", "{.status.phase}") == "Suspended"; }));
  CHECK(s.ready("idle", "reason") == "Idle");
  CHECK(jsonpath(s.ns, "repl/idle", "{.spec.suspended}") == "true");
  CHECK(s3_text(s.bucket, "code/idle/work.py") == "unsaved until the idle stop");
  const auto idle_events = kubectl({"get", "events", "-n", s.ns, "--field-selector",
                                    "involvedObject.kind=Repl,involvedObject.name=idle,reason=Idle"});
  CHECK_THAT(idle_events.out, Catch::Contains("suspended"));

  // /start resumes it with the same code.
  REQUIRE(s.start("idle").status == 200);
  REQUIRE(s.wait_ready("idle").exit_code == 0);
  CHECK(reply_field(websocket("idle." + kIdeDomain, {R"({"op":"read","path":"work.py"})"}, 10), 1,
                    "content") == "unsaved until the idle stop");

  // Stopped by its user, then left: 15 s after the stop it is deleted, its code kept in S3.
  REQUIRE(http("POST", s.url + "/stop", R"({"userId":"u1","replId":"idle"})", kJson).status == 200);
  REQUIRE(eventually(60s, [&] { return jsonpath(s.ns, "repl/idle", "{.status.phase}") == "Suspended"; }));
  CHECK(s.ready("idle", "reason") == "Suspended");  // the user's stop, not an idle one
  const auto expired = kubectl({"wait", "-n", s.ns, "--for=delete", "repl/idle", "--timeout=60s"});
  INFO(expired.err << s.op->log());
  REQUIRE(expired.exit_code == 0);
  CHECK(s3_text(s.bucket, "code/idle/work.py") == "unsaved until the idle stop");
  CHECK(s.op->metric("repl_operator_idle_suspends_total") == 1);
  CHECK(s.op->metric("repl_operator_ttl_deletions_total") == 1);
  CHECK(s.op->metric("repl_operator_final_sync_duration_seconds_count{result=\"success\"}") == 2);
  CHECK(s.op->metric("repl_operator_repls{phase=\"Ready\"}") == 0);
}

TEST_CASE(
    "real: an open IDE websocket is activity (the sidecar sees it, no credentials): the repl stays up "
    "without heartbeats, and is suspended for idle once the tab closes",
    "[real]") {
  Real s("real-ws-idle", {"--idle-timeout", "15s", "--sync-interval", "2", "--sync-check-interval", "3"});
  put_object(s.bucket, "code/tab/main.py", "print(1)\n");
  REQUIRE(s.start("tab").status == 201);
  const auto started = std::chrono::steady_clock::now();
  REQUIRE(s.wait_ready("tab").exit_code == 0);
  const auto activity = [&] {
    return jsonpath(s.ns, "repl/tab", "{.metadata.annotations.peetcode\\.com/last-activity}");
  };
  const std::string at_start = activity();
  // The tab holds its websocket for 30 s, twice the idle timeout, and sends no heartbeat.
  auto tab = std::async(std::launch::async, [&] {
    return websocket("tab." + kIdeDomain, {R"({"op":"list"})"}, 30, std::chrono::steady_clock::now(), 30);
  });
  std::this_thread::sleep_for(25s);
  CHECK(jsonpath(s.ns, "repl/tab", "{.spec.suspended}") == "false");
  CHECK(jsonpath(s.ns, "repl/tab", "{.status.phase}") == "Ready");
  CHECK(activity() > at_start);  // RFC 3339 in UTC: ordered as text
  CHECK_THAT(sync_log(s, "tab"), Catch::Contains("sync-workspace: active: 1 IDE connections"));
  REQUIRE_FALSE(tab.get().HasMember("error"));
  // Closed: idle from its last connection on, then suspended.
  REQUIRE(eventually(60s, [&] { return jsonpath(s.ns, "repl/tab", "{.status.phase}") == "Suspended"; }));
  CHECK(s.ready("tab", "reason") == "Idle");
  CHECK(std::chrono::steady_clock::now() - started >= 40s);  // 30 s open, then 15 s idle, less a round
  // The readiness probe's connections (every 2 s) were never taken for a session.
  const std::string log = sync_log(s, "tab");
  CHECK(std::count(log.begin(), log.end(), '\n') < 40);
}

namespace {

// A pod of the test's own, without any NetworkPolicy: the control that shows a blocked connection
// is blocked by a policy, not by routing.
std::string start_probe_pod(const std::string& ns) {
  const auto applied = kubectl({"apply", "-n", ns, "-f", "-"}, R"yaml(apiVersion: v1
kind: Pod
metadata:
  name: probe
spec:
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 0
  securityContext: {runAsNonRoot: true, runAsUser: 1000, seccompProfile: {type: RuntimeDefault}}
  containers:
    - name: probe
      image: )yaml" + setting("RUNNER_IMAGE") + R"yaml(
      imagePullPolicy: Never
      command: [python3, -c, "import time; time.sleep(3600)"]
      securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
)yaml");
  INFO(applied.err);
  REQUIRE(applied.exit_code == 0);
  REQUIRE(kubectl({"wait", "-n", ns, "--for=condition=Ready", "pod/probe", "--timeout=60s"}).exit_code == 0);
  return "pod/probe";
}

// Whether `target` (pod/NAME or deploy/NAME, container `container`) can open a TCP connection to
// ip:port. A blocked connect is refused by a REJECT rule or times out (about 1.1 s, ICMP rate limit):
// both count as blocked; the probe gives it 2.5 s.
bool can_connect(const std::string& ns, const std::string& target, const std::string& container,
                 const std::string& ip, int port) {
  const auto r = kubectl({"exec", "-n", ns, target, "-c", container, "--", "python3", "-c",
                          "import socket,sys\n"
                          "try:\n"
                          "  socket.create_connection(('" +
                              ip + "'," + std::to_string(port) +
                              "),2.5).close(); print('open')\n"
                              "except OSError as e:\n"
                              "  print('blocked', e)\n"});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  return r.out.rfind("open", 0) == 0;
}

// A host of the test's own on the bridge, in a network namespace it makes, at an address of a
// range the NetworkPolicy blocks (link-local, like the metadata service, which is never a target).
// It serves TCP on `port`; the namespace and its link are removed on destruction.
struct BlockedRangeHost {
  static constexpr const char* kNetns = "repl-test-linklocal";
  static constexpr const char* kAddr = "169.254.77.77";
  std::unique_ptr<OperatorProcess> server;
  explicit BlockedRangeHost(int port) {
    run({"ip", "netns", "del", kNetns});
    REQUIRE(run({"ip", "netns", "add", kNetns}).exit_code == 0);
    REQUIRE(run({"ip", "link", "add", "repltest0", "type", "veth", "peer", "name", "eth0", "netns", kNetns})
                .exit_code == 0);
    REQUIRE(run({"ip", "link", "set", "repltest0", "master", "repl0", "up"}).exit_code == 0);
    REQUIRE(run({"ip", "-n", kNetns, "addr", "add", std::string(kAddr) + "/16", "dev", "eth0"}).exit_code ==
            0);
    REQUIRE(run({"ip", "-n", kNetns, "link", "set", "eth0", "up"}).exit_code == 0);
    REQUIRE(run({"ip", "-n", kNetns, "link", "set", "lo", "up"}).exit_code == 0);
    REQUIRE(run({"ip", "-n", kNetns, "route", "add", "10.88.0.0/16", "dev", "eth0"}).exit_code == 0);
    server = OperatorProcess::spawn({"/usr/sbin/ip", "netns", "exec", kNetns, "/usr/bin/python3", "-m",
                                     "http.server", std::to_string(port), "--bind", kAddr});
    REQUIRE(eventually(10s, [&] {
      return run({"ip", "netns", "exec", kNetns, "/usr/bin/python3", "-c",
                  "import socket; socket.create_connection(('" + std::string(kAddr) + "', " +
                      std::to_string(port) + "), 1)"})
                 .exit_code == 0;
    }));
  }
  ~BlockedRangeHost() {
    server.reset();
    run({"ip", "link", "del", "repltest0"});
    run({"ip", "netns", "del", kNetns});
  }
};

// Adds, inside the pod's own network namespace, the route to the blocked range a pod here lacks
// (pods have no default route: nothing from a pod leaves this machine).
void route_to_blocked_range(const std::string& ns, const std::string& pod, const std::string& container) {
  const auto added = run({"nsenter", "-t", task_pid(ns, pod, container), "-n", "ip", "route", "replace",
                          "169.254.0.0/16", "dev", "eth0"});
  INFO(added.err);
  REQUIRE(added.exit_code == 0);
}

}  // namespace

TEST_CASE(
    "real: kube-router enforces each Repl's NetworkPolicy: only the ingress controller gets in, S3 is the "
    "one private way out",
    "[real]") {
  Real s("real-netpol");
  put_object(s.bucket, "code/one/a.txt", "one\n");
  put_object(s.bucket, "code/two/b.txt", "two\n");
  REQUIRE(s.start("one").status == 201);
  REQUIRE(s.start("two").status == 201);
  REQUIRE(s.wait_ready("one").exit_code == 0);
  REQUIRE(s.wait_ready("two").exit_code == 0);
  const std::string two_ip = jsonpath(s.ns, s.pods("two").at(0), "{.status.podIP}");
  const int api_port = std::stoi(setting("API_PORT"));
  const int s3_port = std::stoi(setting("S3_PORT"));

  // A pod with no policy, in a namespace of its own, reaches what the runners may not.
  const std::string plain = fresh_namespace("real-plain");
  struct DeleteAtEnd {
    std::string ns;
    ~DeleteAtEnd() { kubectl({"delete", "namespace", ns, "--wait=false"}); }
  } delete_plain{plain};
  const auto probe = start_probe_pod(plain);
  CHECK(can_connect(plain, probe, "probe", "10.88.0.1", api_port));

  // Out of a runner: not another repl's pod, not the node (its API server), but S3, exactly.
  CHECK_FALSE(can_connect(s.ns, "deploy/one", "runner", two_ip, 3001));
  CHECK_FALSE(can_connect(s.ns, "deploy/one", "runner", "10.88.0.1", api_port));
  CHECK(can_connect(s.ns, "deploy/one", "runner", "10.88.0.1", s3_port));
  // Into a runner: not from a pod outside the ingress controller's namespace; the ingress
  // controller's traffic arrives (through Traefik, by Host).
  CHECK_FALSE(can_connect(plain, probe, "probe", two_ip, 3001));
  CHECK(websocket("two." + kIdeDomain, {R"({"op":"list"})"}, 10).HasMember("replies"));

  // The link-local range (the cloud metadata service's) is excepted in the rendered rule...
  CHECK_THAT(jsonpath(s.ns, "networkpolicy/one", "{.spec.egress[*].to[*].ipBlock.except}"),
             Catch::Contains("169.254.0.0/16"));
  // ...and a host of ours at an address of that range is refused to a runner, reached from the
  // plain pod, both given a route to it.
  BlockedRangeHost host(8099);
  route_to_blocked_range(plain, probe, "probe");
  route_to_blocked_range(s.ns, s.pods("one").at(0), "runner");
  CHECK(can_connect(plain, probe, "probe", BlockedRangeHost::kAddr, 8099));
  CHECK_FALSE(can_connect(s.ns, "deploy/one", "runner", BlockedRangeHost::kAddr, 8099));
}

TEST_CASE(
    "real: a second real node, or a second up on a running cluster's directory, is refused and changes "
    "nothing",
    "[real]") {
  const std::string script = std::string(REPL_SOURCE_DIR) + "/test/cluster/cluster.sh";
  const fs::path mine = fs::path(admin_kubeconfig()).parent_path();
  TempDir elsewhere;
  const auto second = run({script, "up", (elsewhere.path / "c").string(), "--real-node"});
  CHECK(second.exit_code != 0);
  CHECK_THAT(second.err, Catch::Contains("a real node already runs from " + mine.string()));
  CHECK_FALSE(fs::exists(elsewhere.path / "c"));

  const auto again = run({script, "up", mine.string(), "--real-node"});
  CHECK(again.exit_code != 0);
  CHECK_THAT(again.err, Catch::Contains("a cluster already runs in " + mine.string()));
  // The running node is untouched: still Ready, still serving.
  CHECK(kubectl({"wait", "--for=condition=Ready", "node", "--all", "--timeout=10s"}).exit_code == 0);
  CHECK(via_ingress("nobody." + kIdeDomain).status == 404);
}

namespace {

double percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(values.size())));
  return values[std::max<std::size_t>(rank, 1) - 1];
}

std::string series_json(const std::vector<double>& values) {
  std::ostringstream out;
  out << "{\"p50\":" << percentile(values, 50) << ",\"p99\":" << percentile(values, 99) << ",\"series\":[";
  for (std::size_t i = 0; i < values.size(); ++i) out << (i ? "," : "") << values[i];
  out << "]}";
  return out.str();
}

}  // namespace

// For `make bench` (hidden from the test run): $REPL_BENCH_COUNT repls (20) one after another, each
// timed from /start to Ready (kubectl wait) and to the first websocket byte through the ingress,
// then deleted; the figures go to $REPL_BENCH_OUT as JSON.
TEST_CASE("real bench: /start to Ready and to the first websocket byte", "[.real-bench]") {
  const char* out_path = std::getenv("REPL_BENCH_OUT");
  REQUIRE(out_path != nullptr);
  const char* count_env = std::getenv("REPL_BENCH_COUNT");
  const int count = count_env != nullptr ? std::atoi(count_env) : 20;
  REQUIRE(count > 0);
  Real s("real-bench");
  put_object(s.bucket, "base/python/main.py", "print('bench')\n");
  std::vector<double> ready_ms, to_first_byte;
  for (int i = 0; i < count; ++i) {
    const std::string repl = "b" + std::to_string(i);
    const auto t0 = std::chrono::steady_clock::now();
    REQUIRE(s.start(repl).status == 201);
    auto first =
        std::async(std::launch::async, [&] { return websocket(repl + "." + kIdeDomain, {}, 120, t0); });
    REQUIRE(s.wait_ready(repl).exit_code == 0);
    ready_ms.push_back(ms_since(t0));
    const auto ws = first.get();
    REQUIRE_FALSE(ws.HasMember("error"));
    to_first_byte.push_back(first_byte_ms(ws));
    REQUIRE(http("DELETE", s.url + "/repls/" + repl + "?userId=u1").status == 200);
  }
  std::ofstream(out_path) << "{\"count\":" << count << ",\"ready_ms\":" << series_json(ready_ms)
                          << ",\"first_byte_ms\":" << series_json(to_first_byte) << "}\n";
  std::cout << "real node, " << count << " repls: /start -> Ready p50 " << percentile(ready_ms, 50)
            << " ms, p99 " << percentile(ready_ms, 99) << " ms; -> first websocket byte p50 "
            << percentile(to_first_byte, 50) << " ms, p99 " << percentile(to_first_byte, 99) << " ms\n";
}

namespace {

// The Helm chart installed on the real node: the operator and the shim run as pods from the image
// images.sh made of this build's binaries (OPERATOR_IMAGE), in a Pod Security "restricted"
// namespace, reconciling Repls in a second one. Uninstalled, and both namespaces deleted, at the end.
struct ChartOnNode {
  const std::string release = "ro";
  const std::string fullname = "ro-repl-operator";
  std::string sys = fresh_namespace("chart-sys");
  std::string repls = fresh_namespace("chart-repls");
  std::string bucket = repls;
  TempDir dir;

  ChartOnNode() {
    REQUIRE(kubectl({"label", "namespace", sys, "pod-security.kubernetes.io/enforce=restricted"}).exit_code ==
            0);
    repl_namespace(repls, bucket);
    const std::string& image = setting("OPERATOR_IMAGE");
    const auto colon = image.rfind(':');
    REQUIRE(colon != std::string::npos);
    std::ofstream(dir.path / "values.yaml")
        << "image:\n"
        << "  repository: " << image.substr(0, colon) << "\n"
        << "  tag: " << image.substr(colon + 1) << "\n"
        << "  pullPolicy: Never\n"
        << "watchNamespace: " << repls << "\n"
        << "domains: {ide: " << kIdeDomain << ", preview: " << kPreviewDomain << "}\n"
        << "runner:\n"
        << "  image: " << setting("RUNNER_IMAGE") << "\n"
        << "  initImage: " << setting("INIT_IMAGE") << "\n"
        << "s3:\n"
        << "  bucket: " << bucket << "\n"
        << "  endpoint: " << setting("S3_ENDPOINT") << "\n"
        << "  egressCidr: 10.88.0.1/32\n"
        << "tests:\n"
        << "  image: " << setting("INIT_IMAGE") << "\n"
        << "  pullPolicy: Never\n";
  }
  ~ChartOnNode() {
    helm({"uninstall", release, "--namespace", sys, "--wait", "--timeout", "60s"});
    kubectl({"delete", "namespace", sys, repls, "--wait=false"});
  }
  ChartOnNode(const ChartOnNode&) = delete;
  ChartOnNode& operator=(const ChartOnNode&) = delete;

  CommandResult install(const std::vector<std::string>& verb_and_extra) const {
    std::vector<std::string> args = verb_and_extra;
    args.insert(args.begin() + 1,
                {release, std::string(REPL_SOURCE_DIR) + "/charts/repl-operator", "--namespace", sys, "-f",
                 (dir.path / "values.yaml").string(), "--wait", "--timeout", "300s"});
    return helm(args);
  }
  // "name serviceAccount phase ready" per pod of a component (operator or shim).
  std::set<std::string> pods(const std::string& component) const {
    return lines(
        kubectl({"get", "pods", "-n", sys, "-l",
                 "app.kubernetes.io/instance=" + release + ",app.kubernetes.io/component=" + component, "-o",
                 "jsonpath={range .items[*]}{.metadata.name} {.spec.serviceAccountName} {.status.phase} "
                 "{.status.containerStatuses[0].ready}{\"\\n\"}{end}"})
            .out);
  }
  std::string pod_names(const std::string& component) const {
    std::string out;
    for (const auto& p : pods(component)) out += p.substr(0, p.find(' ')) + " ";
    return out;
  }
  // The pod holding the operator's Lease (its identity is <hostname>_<random>, the hostname the pod's).
  std::string leader() const {
    const auto holder = jsonpath(sys, "lease/repl-operator", "{.spec.holderIdentity}");
    return holder.substr(0, holder.find('_'));
  }
  // The shim through its Service: the ClusterIP kube-proxy routes to a ready shim pod.
  std::string shim_url() const {
    return "http://" + jsonpath(sys, "service/" + fullname + "-shim", "{.spec.clusterIP}");
  }
  HttpResult start(const std::string& repl) const {
    return http("POST", shim_url() + "/start",
                R"({"userId":"u1","replId":")" + repl + R"(","language":"python"})", kJson);
  }
  CommandResult wait_ready(const std::string& repl) const {
    return kubectl({"wait", "-n", repls, "--for=condition=Ready", "repl/" + repl, "--timeout=120s"});
  }
  // curl of the shim's /readyz from a throwaway restricted pod in the release namespace with
  // `labels` (the init image has curl): curl's exit code, 0 when the shim answered. It retries for
  // about 8 s: the enforcer admits a new client only once it has seen the pod's address.
  int curl_shim_from_pod(const std::string& name, const std::string& labels) const {
    const auto applied = kubectl({"apply", "-n", sys, "-f", "-"}, R"({"apiVersion":"v1","kind":"Pod",
      "metadata":{"name":")" + name + R"(","labels":{)" + labels + R"(}},
      "spec":{"restartPolicy":"Never","automountServiceAccountToken":false,"terminationGracePeriodSeconds":1,
        "securityContext":{"runAsNonRoot":true,"runAsUser":65532,"seccompProfile":{"type":"RuntimeDefault"}},
        "containers":[{"name":"curl","image":")" + setting("INIT_IMAGE") +
                                                                      R"(","imagePullPolicy":"Never",
          "command":["curl","-sS","-m","3","--retry","8","--retry-delay","1","--retry-connrefused","-o","/dev/null",")" +
                                                                      shim_url() +
                                                                      R"(/readyz"],
          "securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}]}})");
    INFO(applied.err);
    REQUIRE(applied.exit_code == 0);
    std::string code;
    REQUIRE(eventually(60s, [&] {
      code = jsonpath(sys, "pod/" + name, "{.status.containerStatuses[0].state.terminated.exitCode}");
      return !code.empty();
    }));
    kubectl({"delete", "pod", "-n", sys, name, "--wait=false"});
    return std::stoi(code);
  }
};

}  // namespace

TEST_CASE(
    "real chart: helm install runs the operator and the shim as pods; leader failover, the flow through the "
    "shim's "
    "Service, helm test and a rolling helm upgrade that loses no Repl",
    "[real]") {
  ChartOnNode c;
  put_object(c.bucket, "base/python/main.py", "print('hello from the chart')\n");

  const auto t_install = std::chrono::steady_clock::now();
  const auto installed = c.install({"install"});
  INFO(installed.out << installed.err << kubectl({"get", "pods,events", "-n", c.sys}).out);
  REQUIRE(installed.exit_code == 0);
  std::cout << "real chart: helm install --wait took " << ms_since(t_install) / 1000 << " s\n";

  // Two of each, Running and ready, each with its own ServiceAccount (whose token it uses in-cluster).
  const auto operators = c.pods("operator");
  const auto shims = c.pods("shim");
  INFO(kubectl({"get", "pods", "-n", c.sys, "-o", "wide"}).out);
  REQUIRE(operators.size() == 2);
  REQUIRE(shims.size() == 2);
  for (const auto& p : operators) CHECK(p.ends_with(" " + c.fullname + " Running true"));
  for (const auto& p : shims) CHECK(p.ends_with(" " + c.fullname + "-shim Running true"));

  // The shim's own NetworkPolicy, enforced: from the release namespace only a labelled client gets in.
  CHECK(c.curl_shim_from_pod("client", "\"" + c.fullname + "-shim-client\":\"true\"") == 0);
  CHECK(c.curl_shim_from_pod("stranger", "\"app\":\"stranger\"") != 0);

  // The flow, once through the shim's Service: /start -> Ready -> the code is served by host.
  const auto started = c.start("chart-a");
  INFO(started.body);
  REQUIRE(started.status == 201);
  const auto ready = c.wait_ready("chart-a");
  INFO(ready.err << kubectl({"describe", "repl", "-n", c.repls, "chart-a"}).out);
  REQUIRE(ready.exit_code == 0);
  const auto ws = websocket("chart-a." + kIdeDomain, {R"({"op":"list"})"}, 30);
  CHECK(listed_files(ws, 1) == std::set<std::string>{"main.py"});
  const auto preview = via_ingress("chart-a." + kPreviewDomain, "/main.py");
  CHECK(preview.status == 200);
  CHECK(preview.body == "print('hello from the chart')\n");
  const auto got = http("GET", c.shim_url() + "/repls/chart-a?userId=u1");
  INFO(got.body);
  CHECK(got.status == 200);
  CHECK(got.body.find("\"phase\":\"Ready\"") != std::string::npos);

  // One install for every step below (an install takes a minute): each step is a block, not a SECTION.
  {  // The leader's pod is killed: the other replica takes the Lease and reconciles a Repl created meanwhile.
    const std::string old_leader = c.leader();
    REQUIRE(c.pod_names("operator").find(old_leader) != std::string::npos);
    const auto transitions = jsonpath(c.sys, "lease/repl-operator", "{.spec.leaseTransitions}");
    const auto t_kill = std::chrono::steady_clock::now();
    REQUIRE(kubectl({"delete", "pod", "-n", c.sys, old_leader, "--wait=false"}).exit_code == 0);
    const auto meanwhile = c.start("chart-b");
    INFO(meanwhile.body);
    REQUIRE(meanwhile.status == 201);
    std::string new_leader;
    CHECK(eventually(60s, [&] {
      new_leader = c.leader();
      return !new_leader.empty() && new_leader != old_leader;
    }));
    const double takeover_s = ms_since(t_kill) / 1000;
    // The Lease went to a live operator pod: the standby, or the one replacing the deleted pod
    // (whichever asks first once the old leader released it on its way out).
    CHECK(c.pod_names("operator").find(new_leader) != std::string::npos);
    CHECK(jsonpath(c.sys, "lease/repl-operator", "{.spec.leaseTransitions}") != transitions);
    const auto b_ready = c.wait_ready("chart-b");
    INFO(b_ready.err << kubectl({"logs", "-n", c.sys, new_leader}).out);
    CHECK(b_ready.exit_code == 0);
    std::cout << "real chart: leader " << old_leader << " deleted; " << new_leader << " leads after "
              << takeover_s << " s; the Repl created meanwhile Ready after " << ms_since(t_kill) / 1000
              << " s\n";
  }

  {  // helm test: its pod calls the shim's /readyz, creates and deletes a Repl.
    const auto tested = helm({"test", c.release, "--namespace", c.sys, "--logs", "--timeout", "180s"});
    INFO(tested.out << tested.err);
    CHECK(tested.exit_code == 0);
    CHECK(tested.out.find("Phase:          Succeeded") != std::string::npos);
  }

  {  // helm upgrade with changed values rolls every pod, the shim keeps answering, no Repl is lost.
    const auto repl_uid = jsonpath(c.repls, "repl/chart-a", "{.metadata.uid}");
    const auto deploy_uid = jsonpath(c.repls, "deployment/chart-a", "{.metadata.uid}");
    const auto before = c.pod_names("operator") + " " + c.pod_names("shim");
    // The shim's Service, polled through the whole rollout.
    std::atomic<bool> rolling{true};
    auto poll = std::async(std::launch::async, [&] {
      std::pair<int, int> ok_failed{0, 0};
      const auto url = c.shim_url() + "/readyz";
      while (rolling) {
        (http("GET", url).status == 200 ? ok_failed.first : ok_failed.second)++;
        std::this_thread::sleep_for(100ms);
      }
      return ok_failed;
    });
    const auto upgraded = c.install({"upgrade", "--reuse-values", "--set", "logLevel=debug"});
    rolling = false;
    const auto [ok, failed] = poll.get();
    INFO(upgraded.out << upgraded.err);
    REQUIRE(upgraded.exit_code == 0);
    std::cout << "real chart: during helm upgrade the shim's Service answered " << ok << " /readyz, failed "
              << failed << "\n";
    CHECK(failed == 0);
    // Every old pod goes (they may still be terminating when --wait returns), two new ones of each stay.
    std::string after;
    CHECK(eventually(90s, [&] {
      after = c.pod_names("operator") + " " + c.pod_names("shim");
      std::istringstream old_pods(before);
      for (std::string name; old_pods >> name;) {
        if (after.find(name) != std::string::npos) return false;
      }
      return true;
    }));
    INFO("before: " << before << "; after: " << after);
    CHECK(c.pods("operator").size() == 2);
    CHECK(c.pods("shim").size() == 2);
    // The Repl and its Deployment are the same objects, still Ready; the new pods reconcile a new one.
    CHECK(jsonpath(c.repls, "repl/chart-a", "{.metadata.uid}") == repl_uid);
    CHECK(jsonpath(c.repls, "deployment/chart-a", "{.metadata.uid}") == deploy_uid);
    CHECK(c.wait_ready("chart-a").exit_code == 0);
    REQUIRE(c.start("chart-c").status == 201);
    CHECK(c.wait_ready("chart-c").exit_code == 0);
  }
}
