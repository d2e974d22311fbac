// The API shim against the real API server, with the operator running: /start leads to the three
// children, the answers carry the status, users cannot touch each other's Repls, stop / resume /
// delete work, bad input creates nothing, 50 simultaneous /start calls make one Repl, and
// wait=ready is released by the Deployment becoming ready, holds no worker, and ends on a delete;
// a heartbeat storm from wrk writes the Repl at most once per activity interval.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <rapidjson/document.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "integration/support.hpp"
#include "unit/support/jwt_minter.hpp"

using namespace repl::test;
using namespace std::chrono_literals;

namespace {

const std::vector<std::string> kJson = {"Content-Type: application/json"};

struct Setup : OperatorAndShim {
  explicit Setup(const std::string& prefix, std::vector<std::string> shim_args = {})
      : OperatorAndShim(prefix, {}, std::move(shim_args)) {}
  HttpResult post(const std::string& path, const std::string& body) const {
    return http("POST", url + path, body, kJson);
  }
  HttpResult get(const std::string& path) const { return http("GET", url + path); }
  std::string repl_names() const {
    const auto r = kubectl({"get", "repls", "-n", ns, "-o", "jsonpath={.items[*].metadata.name}"});
    REQUIRE(r.exit_code == 0);
    return r.out;
  }
};

std::string start_body(const std::string& user, const std::string& repl) {
  return R"({"userId":")" + user + R"(","replId":")" + repl + R"("})";
}

bool has_children(const std::string& ns, const std::string& id) {
  return kubectl({"get", "-n", ns, "deployment/" + id, "service/" + id, "ingress/" + id + "-ingress"})
             .exit_code == 0;
}

}  // namespace

TEST_CASE(
    "/start creates a Repl that gets its children; users cannot touch each other's; stop, resume, delete",
    "[shim]") {
  Setup s("shim-flow");
  const auto created = s.post("/start", start_body("alice", "alpha"));
  INFO(created.body);
  REQUIRE(created.status == 201);
  CHECK_THAT(created.body, Catch::Contains(R"("replId":"alpha")") && Catch::Contains(R"("userId":"alice")") &&
                               Catch::Contains(R"("ready":false)"));
  REQUIRE(eventually(5s, [&] { return has_children(s.ns, "alpha"); }));

  // Again, same user: 200, and the status the operator wrote, URLs included.
  REQUIRE(eventually(5s, [&] { return jsonpath(s.ns, "repl/alpha", "{.status.phase}") == "Starting"; }));
  const auto again = s.post("/start", start_body("alice", "alpha"));
  CHECK(again.status == 200);
  CHECK_THAT(again.body, Catch::Contains(R"("phase":"Starting")") &&
                             Catch::Contains(R"("ide":"https://alpha.peetcode.com")") &&
                             Catch::Contains(R"("preview":"https://alpha.autogpt-cloud.com")"));
  const auto status = s.get("/repls/alpha");
  CHECK(status.status == 200);
  CHECK_THAT(status.body, Catch::Contains(R"("phase":"Starting")"));
  CHECK(s.get("/repls/nope").status == 404);

  // Another user: 409, and the Repl is untouched.
  const std::string version = jsonpath(s.ns, "repl/alpha", "{.metadata.resourceVersion}");
  const auto stolen = s.post("/start", start_body("mallory", "alpha"));
  CHECK(stolen.status == 409);
  CHECK_THAT(stolen.body, Catch::Contains(R"("error":"conflict")"));
  CHECK(s.post("/stop", start_body("mallory", "alpha")).status == 409);
  CHECK(http("DELETE", s.url + "/repls/alpha?userId=mallory").status == 409);
  CHECK(jsonpath(s.ns, "repl/alpha", "{.metadata.resourceVersion}") == version);
  CHECK(jsonpath(s.ns, "repl/alpha", "{.spec.userId}") == "alice");

  // Stop suspends (objects kept, no replicas); /start resumes.
  const auto stopped = s.post("/stop", start_body("alice", "alpha"));
  CHECK(stopped.status == 200);
  CHECK(eventually(5s, [&] { return jsonpath(s.ns, "deployment/alpha", "{.spec.replicas}") == "0"; }));
  CHECK(eventually(5s, [&] { return jsonpath(s.ns, "repl/alpha", "{.status.phase}") == "Suspended"; }));
  CHECK(s.post("/start", start_body("alice", "alpha")).status == 200);
  CHECK(eventually(5s, [&] { return jsonpath(s.ns, "deployment/alpha", "{.spec.replicas}") == "1"; }));

  // Delete, by the owner.
  const auto deleted = http("DELETE", s.url + "/repls/alpha?userId=alice");
  CHECK(deleted.status == 200);
  CHECK(eventually(5s, [&] { return s.repl_names().empty(); }));
  CHECK(http("DELETE", s.url + "/repls/alpha?userId=alice").status == 404);
}

TEST_CASE("bad input gets a clear 4xx over HTTP and creates nothing", "[shim]") {
  Setup s("shim-bad", {"--max-body-bytes", "4096"});
  struct Case {
    const char* what;
    std::string body;
    std::vector<std::string> headers;
    int status;
    const char* field;  // "" for null
  };
  std::string nested;
  for (int i = 0; i < 50000; ++i) nested += R"({"a":)";
  const std::vector<Case> cases = {
      {"malformed JSON", "{\"userId\":", kJson, 400, ""},
      {"not an object", "[1,2]", kJson, 400, ""},
      {"missing replId", R"({"userId":"u"})", kJson, 400, "replId"},
      {"wrong type", R"({"userId":"u","replId":7})", kJson, 400, "replId"},
      {"unknown field", R"({"userId":"u","replId":"a","image":"evil"})", kJson, 400, "image"},
      {"replId with a shell injection", R"x({"userId":"u","replId":"$(rm -rf /)"})x", kJson, 400, "replId"},
      {"replId with YAML", R"({"userId":"u","replId":"a: {b"})", kJson, 400, "replId"},
      {"replId too long", start_body("u", std::string(64, 'a')), kJson, 400, "replId"},
      {"userId with a newline", R"({"userId":"u\nx","replId":"a"})", kJson, 400, "userId"},
      {"invalid UTF-8", "{\"userId\":\"u\",\"replId\":\"a\xff\"}", kJson, 400, ""},
      {"deeply nested", nested, kJson, 413, ""},
      {"oversized", R"({"userId":")" + std::string(5000, 'u') + R"(","replId":"a"})", kJson, 413, ""},
      {"not JSON", "userId=u&replId=a", {"Content-Type: application/x-www-form-urlencoded"}, 415, ""},
      {"no Content-Type", start_body("u", "a"), {}, 415, ""},
      {"empty body", "", kJson, 400, ""},
      {"a JSON string", R"("start")", kJson, 400, ""},
      {"null", "null", kJson, 400, ""},
      {"missing userId", R"({"replId":"a"})", kJson, 400, "userId"},
      {"userId a number", R"({"userId":42,"replId":"a"})", kJson, 400, "userId"},
      {"userId null", R"({"userId":null,"replId":"a"})", kJson, 400, "userId"},
      {"replId an object", R"({"userId":"u","replId":{"$ne":""}})", kJson, 400, "replId"},
      {"replId uppercase", start_body("u", "Hello"), kJson, 400, "replId"},
      {"replId with a dot", start_body("u", "a.b"), kJson, 400, "replId"},
      {"replId starting with a digit", start_body("u", "1abc"), kJson, 400, "replId"},
      {"replId with a quote", R"({"userId":"u","replId":"a\"b"})", kJson, 400, "replId"},
      {"replId with unicode", start_body("u", "r\u00e9pl"), kJson, 400, "replId"},
      {"replId a template", start_body("u", "{{ replId }}"), kJson, 400, "replId"},
      {"userId with a slash", start_body("a/b", "a"), kJson, 400, "userId"},
      {"userId too long", start_body(std::string(64, 'u'), "a"), kJson, 400, "userId"},
      {"language with a path", R"({"userId":"u","replId":"a","language":"../../etc"})", kJson, 400,
       "language"},
      {"a label injection in userId", start_body("u,app=evil", "a"), kJson, 400, "userId"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    const auto r = http("POST", s.url + "/start", c.body, c.headers);
    INFO(r.body);
    CHECK(r.status == c.status);
    CHECK_THAT(r.body, Catch::Contains(std::string(R"("field":)") +
                                       (*c.field ? "\"" + std::string(c.field) + "\"" : "null")));
  }
  CHECK(http("GET", s.url + "/start").status == 405);
  CHECK(http("GET", s.url + "/nowhere").status == 404);
  CHECK(s.repl_names().empty());
}

TEST_CASE("50 simultaneous /start calls for one replId create exactly one Repl", "[shim]") {
  Setup s("shim-race");
  std::vector<int> codes(50);
  std::vector<std::thread> callers;
  for (int i = 0; i < 50; ++i) {
    callers.emplace_back([&, i] { codes[i] = s.post("/start", start_body("racer", "contested")).status; });
  }
  for (auto& t : callers) t.join();
  CHECK(std::count(codes.begin(), codes.end(), 201) == 1);
  CHECK(std::count(codes.begin(), codes.end(), 200) == 49);
  CHECK(s.repl_names() == "contested");
}

TEST_CASE(
    "quotas: 50 simultaneous /start calls of one user against a quota of 3 admit exactly 3; a stop frees a "
    "place; with two shims the overshoot stays within the stated bound",
    "[shim]") {
  Setup s("shim-quota", {"--max-repls-per-user", "3"});
  std::vector<int> codes(50);
  std::vector<std::thread> callers;
  for (int i = 0; i < 50; ++i) {
    callers.emplace_back(
        [&, i] { codes[i] = s.post("/start", start_body("greedy", "q" + std::to_string(i))).status; });
  }
  for (auto& t : callers) t.join();
  std::map<int, int> by_code;
  for (int c : codes) ++by_code[c];
  std::ostringstream answers;
  for (const auto& [code, n] : by_code) answers << n << " answered " << code << "; ";
  INFO(answers.str());
  CHECK(std::count(codes.begin(), codes.end(), 201) == 3);
  CHECK(std::count(codes.begin(), codes.end(), 429) == 47);
  const auto listed = kubectl({"get", "repls", "-n", s.ns, "-o", "name"});
  CHECK(std::count(listed.out.begin(), listed.out.end(), '\n') == 3);
  const auto refused = s.post("/start", start_body("greedy", "one-more"));
  CHECK(refused.status == 429);
  CHECK_THAT(refused.body, Catch::Contains("--max-repls-per-user"));
  CHECK(s.post("/start", start_body("other", "theirs")).status == 201);  // another user's quota
  // A stop frees a place once the watch shows it.
  std::string first;
  for (int i = 0; i < 50 && first.empty(); ++i) {
    if (codes[i] == 201) first = "q" + std::to_string(i);
  }
  REQUIRE(s.post("/stop", start_body("greedy", first)).status == 200);
  CHECK(eventually(5s, [&] { return s.post("/start", start_body("greedy", "one-more")).status == 201; }));

  // Two replicas over one namespace: each admits exactly up to the quota on its own, so a burst
  // split over both admits at most 2 x 3 (the README's bound), and once the watches caught up, none.
  auto second = start_shim({"--namespace", s.ns, "--max-repls-per-user", "3"});
  std::string addr;
  REQUIRE(eventually(10s, [&] { return !(addr = second->served_addr("")).empty(); }));
  REQUIRE(eventually(10s, [&] { return http("GET", "http://" + addr + "/readyz").status == 200; }));
  std::vector<int> split(20);
  callers.clear();
  for (int i = 0; i < 20; ++i) {
    callers.emplace_back([&, i] {
      const std::string url = (i % 2 == 0 ? s.url : "http://" + addr) + "/start";
      split[i] = http("POST", url, start_body("pair", "p" + std::to_string(i)), kJson).status;
    });
  }
  for (auto& t : callers) t.join();
  const auto both = std::count(split.begin(), split.end(), 201);
  std::cout << "two shims, quota 3, 20 simultaneous /start of one user: " << both << " admitted\n";
  CHECK(both >= 3);
  CHECK(both <= 6);
  std::this_thread::sleep_for(1s);
  CHECK(http("POST", "http://" + addr + "/start", start_body("pair", "late"), kJson).status == 429);
  CHECK(s.post("/start", start_body("pair", "late")).status == 429);
}

TEST_CASE(
    "rate limit: 30 simultaneous writes of one user against a burst of 5 pass exactly 5, the rest 429 with "
    "Retry-After",
    "[shim]") {
  Setup s("shim-rate", {"--rate-per-minute", "6", "--rate-burst", "5"});
  std::vector<HttpResult> replies(30);
  std::vector<std::thread> callers;
  for (int i = 0; i < 30; ++i) {
    callers.emplace_back(
        [&, i] { replies[i] = s.post("/start", start_body("fast", "f" + std::to_string(i))); });
  }
  for (auto& t : callers) t.join();
  const auto count = [&](int status) {
    return std::count_if(replies.begin(), replies.end(),
                         [status](const HttpResult& r) { return r.status == status; });
  };
  CHECK(count(201) == 5);
  CHECK(count(429) == 25);
  for (const auto& r : replies) {
    if (r.status == 429) CHECK_THAT(r.headers, Catch::Contains("Retry-After: 10"));
  }
  CHECK(s.post("/start", start_body("calm", "c1")).status == 201);  // another user's bucket
}

TEST_CASE("?wait=ready holds the request until the Repl is Ready", "[shim]") {
  Setup s("shim-wait");
  REQUIRE(s.post("/start", start_body("waiter", "patient")).status == 201);
  REQUIRE(eventually(5s, [&] { return has_children(s.ns, "patient"); }));

  // Nothing becomes ready here: the wait ends at its timeout with ready false.
  const auto started = std::chrono::steady_clock::now();
  const auto timed_out = s.get("/repls/patient?wait=ready&timeout=2s");
  CHECK(timed_out.status == 200);
  CHECK_THAT(timed_out.body, Catch::Contains(R"("ready":false)"));
  CHECK(std::chrono::steady_clock::now() - started >= 2s);

  HttpResult waited;
  std::thread waiter([&] { waited = s.get("/repls/patient?wait=ready&timeout=30s"); });
  std::this_thread::sleep_for(1s);
  const std::string generation = jsonpath(s.ns, "deployment/patient", "{.metadata.generation}");
  const auto patched =
      kubectl({"patch", "-n", s.ns, "deployment/patient", "--subresource=status", "--type=merge", "-p",
               R"({"status":{"replicas":1,"readyReplicas":1,"availableReplicas":1,"observedGeneration":)" +
                   generation + "}}"});
  REQUIRE(patched.exit_code == 0);
  const auto released = std::chrono::steady_clock::now();
  waiter.join();
  CHECK(waited.status == 200);
  CHECK_THAT(waited.body, Catch::Contains(R"("ready":true)") && Catch::Contains(R"("phase":"Ready")"));
  CHECK(std::chrono::steady_clock::now() - released < 10s);
}

TEST_CASE("waits hold no worker: with 2 workers, 12 waits and a /start at once; a delete ends the waits",
          "[shim]") {
  Setup s("shim-waits", {"--workers", "2"});
  REQUIRE(s.post("/start", start_body("waiter", "crowded")).status == 201);
  std::vector<HttpResult> waited(12);
  std::vector<std::thread> waiters;
  for (auto& w : waited) {
    waiters.emplace_back([&s, &w] { w = s.get("/repls/crowded?wait=ready&timeout=30s"); });
  }
  std::this_thread::sleep_for(1500ms);  // every wait is in (each took a worker only for its read)
  const auto before = std::chrono::steady_clock::now();
  CHECK(s.post("/start", start_body("waiter", "another")).status == 201);
  CHECK(s.get("/repls/another").status == 200);
  CHECK(std::chrono::steady_clock::now() - before < 2s);

  // The shared watch sees the deletion: every wait ends at once with 404.
  const auto deleting = std::chrono::steady_clock::now();
  REQUIRE(kubectl({"delete", "repl", "crowded", "-n", s.ns, "--wait=false"}).exit_code == 0);
  for (auto& t : waiters) t.join();
  CHECK(std::chrono::steady_clock::now() - deleting < 10s);
  for (const auto& w : waited) {
    CHECK(w.status == 404);
    CHECK_THAT(w.body, Catch::Contains(R"("error":"not_found")"));
  }
}

TEST_CASE("the shim's health and metrics endpoints; an empty token file is refused", "[shim]") {
  Setup s("shim-ops");
  CHECK(http("GET", s.url + "/healthz").status == 200);
  CHECK(http("GET", s.url + "/readyz").status == 200);
  CHECK(http("GET", s.url + "/repls/absent").status == 404);
  const auto metrics = http("GET", s.url + "/metrics");
  CHECK_THAT(metrics.body, Catch::Contains(R"(repl_shim_requests_total{code="404",route="repl"} 1)") &&
                               Catch::Contains("repl_shim_request_duration_seconds_bucket"));

  // Auth must not be off by accident: an empty token file stops the shim at start.
  auto refused = start_shim({"--namespace", s.ns, "--auth-token-file", "/dev/null"});
  CHECK(eventually(5s, [&] { return refused->count_log("the auth token file is empty") == 1; }));
}

TEST_CASE("with a bearer token, only callers that send it may start Repls", "[shim]") {
  char path[] = "/tmp/repl-shim-token.XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, "s3cret-token\n", 13) == 13);
  close(fd);
  Setup s("shim-auth", {"--auth-token-file", path});
  const std::string body = start_body("carol", "guarded");
  CHECK(http("POST", s.url + "/start", body, kJson).status == 401);
  CHECK(
      http("POST", s.url + "/start", body, {"Content-Type: application/json", "Authorization: Bearer wrong"})
          .status == 401);
  CHECK(http("POST", s.url + "/start", body,
             {"Content-Type: application/json", "Authorization: Bearer s3cret-token2"})
            .status == 401);
  CHECK(s.repl_names().empty());
  CHECK(http("GET", s.url + "/healthz").status == 200);  // probes need no token
  CHECK(http("POST", s.url + "/start", body,
             {"Content-Type: application/json", "Authorization: Bearer s3cret-token"})
            .status == 201);
  CHECK(s.repl_names() == "guarded");
  unlink(path);
}

TEST_CASE("a heartbeat storm from wrk writes the Repl at most once per activity interval", "[shim]") {
  constexpr int kInterval = 5, kSeconds = 20;
  Setup s("shim-storm", {"--activity-interval", std::to_string(kInterval)});
  REQUIRE(s.post("/start", start_body("alice", "storm")).status == 201);
  const std::string started =
      jsonpath(s.ns, "repl/storm", "{.metadata.annotations.peetcode\\.com/last-activity}");
  REQUIRE_FALSE(started.empty());
  // Every change of the Repl as a watch sees it (kubectl's own), with the activity it records: a
  // write of the shim's is a new value (the operator's status writes repeat the last one).
  auto watch = OperatorProcess::spawn(
      {"/usr/bin/env", "kubectl", "--kubeconfig", admin_kubeconfig(), "get", "repl", "storm", "-n", s.ns,
       "--watch-only", "-o", "jsonpath={.metadata.annotations.peetcode\\.com/last-activity}{\"\\n\"}"});
  std::this_thread::sleep_for(1s);  // the watch is open

  TempDir dir;
  std::ofstream(dir.path / "beat.lua") << "wrk.method = 'POST'\n"
                                          "wrk.body = '{\"userId\":\"alice\"}'\n"
                                          "wrk.headers['Content-Type'] = 'application/json'\n";
  const auto storm = run({"wrk", "-t2", "-c16", "-d" + std::to_string(kSeconds) + "s", "-s",
                          (dir.path / "beat.lua").string(), s.url + "/repls/storm/heartbeat"});
  INFO(storm.out << storm.err);
  REQUIRE(storm.exit_code == 0);
  std::smatch m;
  const std::regex total(R"((\d+) requests in)"), rate(R"(Requests/sec:\s+([\d.]+))");
  REQUIRE(std::regex_search(storm.out, m, total));
  const long requests = std::stol(m[1]);
  REQUIRE(std::regex_search(storm.out, m, rate));
  const double per_second = std::stod(m[1]);
  // Every heartbeat answered 200 (wrk names the others).
  CHECK_THAT(storm.out, !Catch::Contains("Non-2xx") && !Catch::Contains("Socket errors"));
  std::this_thread::sleep_for(1s);  // the last write reaches the watch
  watch->stop();

  std::set<std::string> written;
  std::istringstream events(watch->log());
  for (std::string line; std::getline(events, line);) {
    if (!line.empty() && line != started) written.insert(line);
  }
  std::cout << "heartbeat storm: " << requests << " heartbeats in " << kSeconds << " s (" << per_second
            << "/s) for one repl; " << written.size() << " writes of its last activity (interval "
            << kInterval << " s)\n";
  // The rate is the load (printed: it depends on the machine and what else runs), not a verdict.
  CHECK(requests >= 1000);
  // Writes at most once an interval: about kSeconds / kInterval of them, and at least one.
  CHECK(written.size() >= 1);
  CHECK(written.size() <= kSeconds / kInterval + 1);
  CHECK(jsonpath(s.ns, "repl/storm", "{.metadata.annotations.peetcode\\.com/last-activity}") != started);
}

TEST_CASE(
    "idle 5 s: a heartbeat keeps a Repl, silence suspends it (reason Idle), TTL 10 s deletes it through the "
    "finalizer; a heartbeat for a missing repl creates nothing",
    "[shim]") {
  OperatorAndShim s("shim-idle", {"--idle-timeout", "5s", "--ttl-after-suspend", "10s"},
                    {"--activity-interval", "1"});
  const auto post = [&](const std::string& path, const std::string& body) {
    return http("POST", s.url + path, body, kJson);
  };
  REQUIRE(post("/start", start_body("alice", "quiet")).status == 201);
  REQUIRE(eventually(10s, [&] { return has_children(s.ns, "quiet"); }));
  CHECK_THAT(jsonpath(s.ns, "repl/quiet", "{.metadata.finalizers}"),
             Catch::Contains("peetcode.com/final-sync"));
  for (int i = 0; i < 8; ++i) {
    REQUIRE(post("/repls/quiet/heartbeat", R"({"userId":"alice"})").status == 200);
    std::this_thread::sleep_for(1s);
  }
  CHECK(jsonpath(s.ns, "repl/quiet", "{.spec.suspended}") == "false");
  // No node here, so no pod: once idle it is Suspended at once.
  REQUIRE(eventually(20s, [&] { return jsonpath(s.ns, "repl/quiet", "{.spec.suspended}") == "true"; }));
  CHECK_THAT(jsonpath(s.ns, "repl/quiet", "{.metadata.annotations.peetcode\\.com/idle-suspended-at}"),
             Catch::Matches(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"));
  CHECK(eventually(10s, [&] { return jsonpath(s.ns, "repl/quiet", "{.status.phase}") == "Suspended"; }));
  CHECK(jsonpath(s.ns, "repl/quiet", "{.status.conditions[?(@.type==\"Ready\")].reason}") == "Idle");
  // A heartbeat does not resume it (that is /start's job).
  REQUIRE(post("/repls/quiet/heartbeat", R"({"userId":"alice"})").status == 200);
  CHECK(jsonpath(s.ns, "repl/quiet", "{.spec.suspended}") == "true");
  // A heartbeat for a repl that does not exist: 404, and nothing is created.
  CHECK(post("/repls/nobody/heartbeat", R"({"userId":"alice"})").status == 404);
  CHECK(kubectl({"get", "repl", "-n", s.ns, "nobody"}).exit_code != 0);
  // Suspended for 10 s: deleted, and the garbage collector takes its children.
  const auto gone = kubectl({"wait", "-n", s.ns, "--for=delete", "repl/quiet", "--timeout=60s"});
  INFO(gone.err << s.op->log());
  REQUIRE(gone.exit_code == 0);
  CHECK(eventually(30s, [&] { return !has_children(s.ns, "quiet"); }));
  CHECK(kubectl({"get", "deployment,service,ingress", "-n", s.ns, "-o", "name"}).out.empty());
  CHECK(s.op->metric("repl_operator_idle_suspends_total") == 1);
  CHECK(s.op->metric("repl_operator_ttl_deletions_total") == 1);
}

namespace {

// An RSA key made by the openssl CLI, as an identity provider's would be, and tokens it signs
// (also with the CLI): what a real issuer's tokens look like to the shim.
struct OpensslKey {
  std::string kid;
  std::string pem;
  OpensslKey(const TempDir& dir, std::string id)
      : kid(std::move(id)), pem((dir.path / (kid + ".pem")).string()) {
    const auto made =
        run({"openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", pem});
    INFO(made.err);
    REQUIRE(made.exit_code == 0);
  }
  std::string jwk() const {
    const auto modulus = run({"openssl", "rsa", "-in", pem, "-noout", "-modulus"});
    REQUIRE(modulus.exit_code == 0);
    const std::string hex = modulus.out.substr(modulus.out.find('=') + 1,
                                               modulus.out.find_last_not_of("\n") - modulus.out.find('='));
    std::string bytes;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
      bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    return R"({"kty":"RSA","kid":")" + kid + R"(","n":")" + repl::test::base64url(bytes) + R"(","e":"AQAB"})";
  }
  std::string sign(const std::string& header, const std::string& payload) const {
    const std::string input = repl::test::base64url(header) + "." + repl::test::base64url(payload);
    const auto sig = run({"openssl", "dgst", "-sha256", "-sign", pem}, input);
    REQUIRE(sig.exit_code == 0);
    return input + "." + repl::test::base64url(sig.out);
  }
  // A bearer token for `subject` with the given claims beside it, valid for five minutes.
  std::string token(const std::string& subject, const std::string& extra = "") const {
    const auto now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    return sign(R"({"alg":"RS256","typ":"JWT","kid":")" + kid + R"("})",
                R"({"sub":")" + subject + R"(","iss":"https://issuer.test","aud":"repl-shim","exp":)" +
                    std::to_string(now + 300) + extra + "}");
  }
};

void write_jwks(const std::filesystem::path& path, const std::vector<const OpensslKey*>& keys) {
  std::string jwks = R"({"keys":[)";
  for (std::size_t i = 0; i < keys.size(); ++i) jwks += (i ? "," : "") + keys[i]->jwk();
  // Written aside and renamed over, as a Secret's volume swaps its files.
  std::ofstream(path.string() + ".new") << jwks << "]}";
  std::filesystem::rename(path.string() + ".new", path);
}

}  // namespace

TEST_CASE(
    "JWT over HTTP (keys and tokens from the openssl CLI): a user works on its own repls only; hostile "
    "tokens "
    "are 401 and create nothing; a key added to the JWKS file is taken without a restart, one removed is "
    "refused",
    "[shim]") {
  TempDir dir;
  const OpensslKey a(dir, "a"), b(dir, "b");
  const auto jwks = dir.path / "jwks.json";
  write_jwks(jwks, {&a});
  OperatorAndShim s("shim-jwt", {},
                    {"--jwks-file", jwks.string(), "--jwks-poll", "1", "--jwt-issuer", "https://issuer.test",
                     "--jwt-audience", "repl-shim"});
  const auto call = [&](const std::string& method, const std::string& path, const std::string& token,
                        const std::string& body = "") {
    std::vector<std::string> headers = {"Authorization: Bearer " + token};
    if (!body.empty()) headers.push_back("Content-Type: application/json");
    return http(method, s.url + path, body, headers);
  };
  const std::string alice = a.token("alice"), mallory = a.token("mallory");
  const auto created = call("POST", "/start", alice, R"({"replId":"jw"})");
  INFO(created.body);
  REQUIRE(created.status == 201);
  CHECK_THAT(created.body, Catch::Contains(R"("userId":"alice")"));
  CHECK(jsonpath(s.ns, "repl/jw", "{.metadata.annotations.peetcode\\.com/subject}") == "alice");
  CHECK(call("GET", "/repls/jw", alice).status == 200);
  CHECK(call("POST", "/repls/jw/heartbeat", alice).status == 200);
  // Mallory's token is valid, but the repl is not hers; and alice cannot act as bob.
  CHECK(call("GET", "/repls/jw", mallory).status == 404);
  CHECK(call("POST", "/stop", mallory, R"({"replId":"jw"})").status == 409);
  CHECK(call("DELETE", "/repls/jw", mallory).status == 409);
  CHECK(call("POST", "/start", alice, R"({"replId":"jw2","userId":"bob"})").status == 403);
  CHECK(jsonpath(s.ns, "repl/jw", "{.spec.suspended}") == "false");

  const auto now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  const std::string none = repl::test::base64url(R"({"alg":"none"})") + "." +
                           repl::test::base64url(R"({"sub":"eve","exp":)" + std::to_string(now + 300) + "}") +
                           ".";
  const auto public_pem = run({"openssl", "pkey", "-in", a.pem, "-pubout"});
  REQUIRE(public_pem.exit_code == 0);
  const std::string hs_input =
      repl::test::base64url(R"({"alg":"HS256","kid":"a"})") + "." +
      repl::test::base64url(R"({"sub":"eve","iss":"https://issuer.test","aud":"repl-shim",)"
                            R"("exp":)" +
                            std::to_string(now + 300) + "}");
  const std::string confused =
      hs_input + "." + repl::test::base64url(repl::test::hs256(public_pem.out, hs_input));
  for (const std::string& hostile :
       {a.sign(R"({"alg":"RS256","kid":"a"})",
               R"({"sub":"eve","iss":"https://issuer.test","aud":"repl-shim",)"
               R"("exp":)" +
                   std::to_string(now - 120) + "}"),
        a.token("eve", R"(,"nbf":)" + std::to_string(now + 600)),
        a.sign(R"({"alg":"RS256","kid":"a"})",
               R"({"sub":"eve","iss":"https://evil.test","aud":"repl-shim","exp":)" +
                   std::to_string(now + 300) + "}"),
        b.token("eve"), none, a.token("eve").substr(0, 200), std::string(12 * 1024, 'e'),
        // wrong audience, a bad signature, a claim of the wrong type
        a.sign(R"({"alg":"RS256","kid":"a"})",
               R"({"sub":"eve","iss":"https://issuer.test","aud":"other","exp":)" +
                   std::to_string(now + 300) + "}"),
        a.token("eve").substr(0, a.token("eve").size() - 4) + "AAAA",
        a.sign(R"({"alg":"RS256","kid":"a"})",
               R"({"sub":"eve","iss":"https://issuer.test","aud":"repl-shim","exp":"tomorrow"})"),
        // algorithm confusion: HS256 with a's public key (as PEM) as the secret
        confused}) {
    const auto r = call("POST", "/start", hostile, R"({"replId":"evil"})");
    INFO(hostile.substr(0, 80) << ": " << r.status << " " << r.body);
    CHECK(r.status == 401);
  }
  // A 64 KiB token is over the server's 16 KiB for a request's head: 431 before any reading of it.
  CHECK(call("POST", "/start", std::string(64 * 1024, 'e'), R"({"replId":"evil"})").status == 431);
  CHECK(kubectl({"get", "repl", "-n", s.ns, "evil"}).exit_code != 0);

  // Rotation: b added to the file, taken within the poll; then a removed.
  write_jwks(jwks, {&a, &b});
  CHECK(eventually(10s, [&] { return call("GET", "/repls/jw", b.token("alice")).status == 200; }));
  write_jwks(jwks, {&b});
  CHECK(eventually(10s, [&] { return call("GET", "/repls/jw", alice).status == 401; }));
  CHECK(call("POST", "/stop", b.token("alice"), R"({"replId":"jw"})").status == 200);
  CHECK(call("DELETE", "/repls/jw", b.token("alice")).status == 200);
  CHECK(s.shim->count_log("JWT keys read again") >= 2);
}

TEST_CASE("JWT keys from the issuer's JWKS URL (a server on loopback): fetched at start and on refresh",
          "[shim]") {
  TempDir dir;
  const OpensslKey a(dir, "a"), b(dir, "b");
  const auto site = dir.path / "site";
  std::filesystem::create_directories(site / ".well-known");
  write_jwks(site / ".well-known" / "jwks.json", {&a});
  StaticServer issuer(site.string());
  const std::string ns = fresh_namespace("shim-jwks-url");
  auto shim =
      start_shim({"--namespace", ns, "--jwks-url", issuer.origin + "/.well-known/jwks.json", "--jwks-refresh",
                  "1", "--jwt-issuer", "https://issuer.test", "--jwt-audience", "repl-shim"});
  std::string addr;
  REQUIRE(eventually(30s, [&] { return !(addr = shim->served_addr("")).empty(); }));
  const auto start_as = [&](const OpensslKey& key, const std::string& repl) {
    return http("POST", "http://" + addr + "/start", R"({"replId":")" + repl + R"("})",
                {"Content-Type: application/json", "Authorization: Bearer " + key.token("alice")})
        .status;
  };
  CHECK(start_as(a, "by-a") == 201);
  CHECK(start_as(b, "by-b") == 401);
  // The issuer rotates: b is taken at a refresh, without a restart; then a is gone.
  write_jwks(site / ".well-known" / "jwks.json", {&a, &b});
  CHECK(eventually(10s, [&] { return start_as(b, "by-b") == 201; }));
  write_jwks(site / ".well-known" / "jwks.json", {&b});
  CHECK(eventually(10s, [&] { return start_as(a, "by-a-again") == 401; }));
  // The issuer down: the keys fetched before stay.
  issuer.process.reset();
  std::this_thread::sleep_for(2s);
  CHECK(start_as(b, "by-b") == 200);
  CHECK(shim->count_log("the JWKS cannot be read") == 1);
}

TEST_CASE("JWT settings that cannot be safe or cannot work: the shim says so and exits", "[shim]") {
  const std::vector<std::string> checked = {"--jwt-issuer", "https://issuer.test", "--jwt-audience",
                                            "repl-shim"};
  const auto exits_saying = [](std::vector<std::string> args, const std::string& says) {
    auto shim = start_shim(std::move(args));
    INFO(says);
    CHECK(eventually(20s, [&] { return shim->count_log(says) == 1; }));
    // It exits by itself; a SIGTERM now could land while it is already exiting, past its handler.
    CHECK(shim->wait_exit(10s * kSlowdown) == 1);
  };
  auto args = checked;
  args.insert(args.end(), {"--jwks-url", "http://127.0.0.1:1/jwks.json"});
  exits_saying(args, "cannot use the JWKS URL");  // nothing answers
  args = checked;
  args.insert(args.end(), {"--jwks-url", "http://idp.test/jwks.json"});
  exits_saying(args, "the JWKS URL must be https");  // keys over plain HTTP could be anyone's
  exits_saying({"--jwks-url", "https://idp.test/jwks.json"},
               "JWT authentication needs --jwt-issuer and --jwt-audience");
}

// Slowloris, 10,000 idle connections, a 1 GB body trickled in, pipelined requests, half-closed
// sockets (test/integration/hostile_clients.py), all at once, beside a well-behaved client timing
// GET /healthz. The well-behaved one is answered throughout; the hostile ones are cut off by the
// read deadline (3 s here), refused (413) or answered as HTTP says; memory stays bounded; nothing
// is created. The figures are printed (the p99 target is 100 ms on this machine).
TEST_CASE("hostile clients do not stop the shim from serving a well-behaved one, nor create anything",
          "[shim]") {
  const std::string ns = fresh_namespace("shim-hostile");
  auto shim = start_shim({"--namespace", ns, "--read-timeout-ms", "3000"});
  std::string addr;
  REQUIRE(eventually(30s, [&] { return !(addr = shim->served_addr("")).empty(); }));
  const auto colon = addr.rfind(':');
  const auto r =
      run({"python3", std::string(REPL_SOURCE_DIR) + "/test/integration/hostile_clients.py",
           addr.substr(0, colon), addr.substr(colon + 1), std::to_string(shim->pid()), "15", "10000"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  std::cout << "hostile clients: " << r.out << std::flush;
  rapidjson::Document d;
  d.Parse(r.out.c_str());
  REQUIRE(d.IsObject());
  CHECK(d["good_failures"].GetInt() == 0);
  CHECK(d["good_answers"].GetInt() >= 100);
  CHECK(d["slowloris_closed_by_server"].GetInt() == 50);
  CHECK(std::string(d["slow_body_status"].GetString()).rfind("HTTP/1.1 413", 0) == 0);
  CHECK(d["pipelined_answers"].GetInt() == 250);
  CHECK(d["half_closed_answers"].GetInt() == 50);
  CHECK(d["idle_closed_by_server"].GetInt() == 10000);
  CHECK(d["shim_peak_rss_kb"].GetInt() < 256 * 1024 * kMemoryOverhead);  // a bound, far above what it takes
  CHECK(kubectl({"get", "repls", "-n", ns, "-o", "name"}).out.empty());
  CHECK(shim->count_log("accept failed") == 0);  // it had the descriptors for all of them
}

namespace {

double cpu_seconds_of(pid_t pid) {
  std::istringstream stat(read_file("/proc/" + std::to_string(pid) + "/stat"));
  std::string all((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  std::istringstream fields(all.substr(all.rfind(')') + 2));
  std::vector<std::string> f{std::istream_iterator<std::string>(fields),
                             std::istream_iterator<std::string>()};
  return (std::stod(f.at(11)) + std::stod(f.at(12))) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace

// Out of file descriptors, a failed accept leaves the connection in the backlog: accepting again at
// once fails again at once. The shim pauses between attempts (no spinning, one warning), and serves
// again once descriptors are free.
TEST_CASE("a shim out of file descriptors does not spin, and serves again once it has some", "[shim]") {
  const std::string ns = fresh_namespace("shim-emfile");
  auto shim = OperatorProcess::spawn({which("prlimit"), "--nofile=128:128", REPL_SHIM_BIN, "--kubeconfig",
                                      admin_kubeconfig(), "--listen", "127.0.0.1:0", "--namespace", ns,
                                      "--read-timeout-ms", "60000"});
  std::string addr;
  REQUIRE(eventually(30s, [&] { return !(addr = shim->served_addr("")).empty(); }));
  const auto colon = addr.rfind(':');
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(std::stoi(addr.substr(colon + 1))));
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  std::vector<int> held;
  for (int i = 0; i < 300; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    REQUIRE(fd >= 0);
    connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to);
    held.push_back(fd);
  }
  REQUIRE(eventually(10s, [&] { return shim->count_log("accept failed") > 0; }));
  const double before = cpu_seconds_of(shim->pid());
  std::this_thread::sleep_for(5s);
  const double spent = cpu_seconds_of(shim->pid()) - before;
  std::cout << "out of descriptors for 5 s: " << spent << " s of CPU\n";
  CHECK(spent < 0.5);  // a spinning accept loop takes the whole 5 s of a core
  for (const int fd : held) close(fd);
  CHECK(eventually(20s, [&] { return http("GET", "http://" + addr + "/healthz").status == 200; }));
  CHECK(shim->count_log(R"("level":"warn","msg":"http server: accept failed)") == 1);
  CHECK(shim->count_log("accepting again") >= 1);
}
