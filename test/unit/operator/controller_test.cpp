// The whole controller in virtual time: its watchers LIST and watch a FakeTransport that answers by
// request (method, path) and streams what the test pushes; reconciles run on a real thread pool; the
// queue's backoffs wait on a ManualClock, so a retry happens exactly when the test moves time by the
// backoff, not before. Events in (a Repl, then its Deployment turning ready) -> queue -> reconcile
// -> the four applies and the status out. Every wait is bounded; nothing sleeps.
#include "controller.hpp"

#include <boost/asio/thread_pool.hpp>
#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "unit/support/fake_transport.hpp"
#include "unit/support/json.hpp"
#include "unit/support/quiet_logs.hpp"
#include "unit/support/repl_fixtures.hpp"
#include "unit/support/status_json.hpp"

namespace {

using namespace std::chrono_literals;
using repl::kube::HttpRequest;
using repl::test::PushStream;
using repl::test::string_at;
using Requests = std::vector<HttpRequest>;

const std::string kDeployments = "/apis/apps/v1/deployments";
const std::string kReplPath = "/apis/peetcode.com/v1alpha1/namespaces/team-a/repls/abc123";
const std::vector<std::string> kChildPaths = {
    "/apis/apps/v1/namespaces/team-a/deployments/abc123", "/api/v1/namespaces/team-a/services/abc123",
    "/apis/networking.k8s.io/v1/namespaces/team-a/ingresses/abc123-ingress",
    "/apis/networking.k8s.io/v1/namespaces/team-a/networkpolicies/abc123"};
// Every collection the controller lists and watches (all namespaces).
const std::vector<std::string> kCollections = {"/apis/peetcode.com/v1alpha1/repls",
                                               kDeployments,
                                               "/api/v1/services",
                                               "/apis/networking.k8s.io/v1/ingresses",
                                               "/apis/networking.k8s.io/v1/networkpolicies",
                                               "/api/v1/pods",
                                               "/api/v1/events"};

// A Repl an earlier reconcile gave the operator's finalizer.
const std::string kRepl =
    R"({"apiVersion":"peetcode.com/v1alpha1","kind":"Repl","metadata":{"name":"abc123","namespace":"team-a",)"
    R"("uid":"6f1c2b4e-0d3a-4c55-9e8f-1a2b3c4d5e6f","generation":1,"resourceVersion":"20",)"
    R"("finalizers":["peetcode.com/final-sync"]},"spec":{"userId":"user-42","language":"python"}})";

// The answer to an apply (its content does not matter here: the watch is what fills the caches).
const std::string kApplied = R"({"metadata":{}})";

class NoEvents final : public repl::EventRecorder {
 public:
  void record(const repl::Repl&, repl::EventType, const std::string&, const std::string&) override {}
};

std::size_t count(const Requests& requests, const std::string& method, const std::string& path) {
  std::size_t n = 0;
  for (const auto& r : requests) n += r.method == method && repl::test::path_of(r.target) == path;
  return n;
}
const HttpRequest* last(const Requests& requests, const std::string& method, const std::string& path) {
  const HttpRequest* found = nullptr;
  for (const auto& r : requests)
    if (r.method == method && repl::test::path_of(r.target) == path) found = &r;
  return found;
}

// The controller's options: no reads of sync sidecars' logs unless a test asks (their timer would be
// the first a test waits for), and no watch stall deadline (the fake API sends no bookmarks, so it
// would pass at every jump of virtual time past three minutes).
repl::ControllerOptions options_with(std::chrono::seconds sync_check) {
  repl::ControllerOptions o;
  o.sync_check_interval = sync_check;
  o.watch_stall_timeout = {};
  return o;
}

struct Fixture {
  explicit Fixture(std::chrono::seconds sync_check = 0s)
      : controller{client,
                   reconciler,
                   metrics,
                   clock,
                   pool.get_executor(),
                   pool.get_executor(),
                   options_with(sync_check)} {
    for (const auto& c : kCollections) {
      transport->route("GET", c, 200, R"({"metadata":{"resourceVersion":"10"},"items":[]})");
      streams.push_back(std::make_shared<PushStream>());
      transport->route_stream(c, streams.back());
    }
    for (std::size_t i = 1; i < kChildPaths.size(); ++i)
      transport->route("PATCH", kChildPaths[i], 200, kApplied);
    transport->route("PATCH", kReplPath + "/status", 200, kApplied);
  }
  ~Fixture() {
    controller.stop();
    transport->cancel_all();  // ends the watch streams, as main() does
    if (runner.joinable()) runner.join();
    pool.join();
  }
  void start() {
    runner = std::thread([this] { controller.run(); });
  }
  void push(const std::string& collection, const std::string& type, const std::string& object) {
    for (std::size_t i = 0; i < kCollections.size(); ++i)
      if (kCollections[i] == collection)
        streams[i]->push(R"({"type":")" + type + R"(","object":)" + object + "}");
  }
  std::size_t status_writes() { return count(transport->snapshot(), "PATCH", kReplPath + "/status"); }
  bool wait_status_writes(std::size_t n) {
    return transport->wait_for(
        [&](const Requests& r) { return count(r, "PATCH", kReplPath + "/status") >= n; });
  }
  // The phase in the last status written.
  std::string written_phase() {
    const auto requests = transport->snapshot();
    const HttpRequest* status = last(requests, "PATCH", kReplPath + "/status");
    REQUIRE(status != nullptr);
    return string_at(repl::test::parse_json(status->body), "/status/phase");
  }

  repl::test::QuietLogs quiet;
  repl::ManualClock clock;
  std::shared_ptr<repl::test::FakeTransport> transport = std::make_shared<repl::test::FakeTransport>();
  std::vector<std::shared_ptr<PushStream>> streams;
  repl::kube::Client client{transport};
  NoEvents events;
  repl::Reconciler reconciler{client, events, clock, repl::ChildSettings{}, repl::test::repo_templates()};
  repl::OperatorMetrics metrics;
  boost::asio::thread_pool pool{2};
  repl::Controller controller;
  std::thread runner;
};

TEST_CASE(
    "a Repl watched in is reconciled into four applies and a status; its Deployment turning ready "
    "updates the status",
    "[operator][controller]") {
  Fixture f;
  f.transport->route("PATCH", kChildPaths[0], 200, kApplied);
  f.start();
  f.push(kCollections[0], "ADDED", kRepl);
  REQUIRE(f.wait_status_writes(1));
  auto requests = f.transport->snapshot();
  for (const auto& p : kChildPaths) {
    INFO(p);
    CHECK(count(requests, "PATCH", p) == 1);
    CHECK(last(requests, "PATCH", p)->content_type == "application/apply-patch+yaml");
  }
  CHECK(f.written_phase() == "Starting");

  // The API server's watch then shows the Deployment it made, ready: what the operator applied,
  // with the status a Deployment controller writes.
  auto deployment = repl::test::parse_json(last(requests, "PATCH", kChildPaths[0])->body);
  auto& alloc = deployment.GetAllocator();
  deployment["metadata"].AddMember("generation", 1, alloc);
  deployment["metadata"].AddMember("resourceVersion", "30", alloc);
  rapidjson::Value status(rapidjson::kObjectType);
  status.AddMember("observedGeneration", 1, alloc);
  status.AddMember("replicas", 1, alloc);
  status.AddMember("updatedReplicas", 1, alloc);
  status.AddMember("readyReplicas", 1, alloc);
  status.AddMember("availableReplicas", 1, alloc);
  deployment.AddMember("status", status, alloc);
  f.push(kDeployments, "ADDED", repl::kube::to_json(deployment));
  REQUIRE(f.wait_status_writes(2));
  CHECK(f.written_phase() == "Ready");
  requests = f.transport->snapshot();
  CHECK(count(requests, "PATCH", kChildPaths[0]) == 1);  // what the cache holds is not applied again
}

TEST_CASE("a reconcile that fails is retried when virtual time reaches its backoff, not before",
          "[operator][controller]") {
  Fixture f;
  f.transport->route("PATCH", kChildPaths[0], 500, repl::test::status_json(500, "InternalError", "etcd"));
  f.transport->route("PATCH", kChildPaths[0], 500, repl::test::status_json(500, "InternalError", "etcd"));
  f.transport->route("PATCH", kChildPaths[0], 200, kApplied);
  f.start();
  f.push(kCollections[0], "ADDED", kRepl);

  // Each failure arms the queue's timer for the key's next try (5 ms, then 10 ms), and nothing else
  // happens until time moves there.
  for (const auto backoff : {5ms, 10ms}) {
    const auto due = f.clock.wait_armed(5000ms);
    REQUIRE(due);
    CHECK(*due - f.clock.now() == backoff);
    CHECK(f.status_writes() == 0);
    f.clock.advance_to(*due - 1ms);
    CHECK(f.clock.pending() == 1);  // still waiting
    f.clock.advance_to(*due);
  }
  REQUIRE(f.wait_status_writes(1));
  CHECK(count(f.transport->snapshot(), "PATCH", kChildPaths[0]) == 3);
  CHECK(f.written_phase() == "Starting");
}

TEST_CASE("a stopping pod's final sync reaches the Repl's status, and outlives the pod's deletion",
          "[operator][controller]") {
  Fixture f;
  f.transport->route("PATCH", kChildPaths[0], 200, kApplied);
  f.start();
  std::string suspended = kRepl;
  suspended.replace(suspended.find(R"("language":"python")"), 19, R"("language":"python","suspended":true)");
  f.push(kCollections[0], "ADDED", suspended);
  REQUIRE(f.wait_status_writes(1));
  CHECK(f.written_phase() == "Suspended");  // no pod yet

  const std::string pod =
      R"({"metadata":{"name":"abc123-5d8f-x","namespace":"team-a","uid":"u-1","resourceVersion":"40",)"
      R"("deletionTimestamp":"2026-01-01T00:01:00Z","labels":{"peetcode.com/repl":"abc123"}},)"
      R"("spec":{"initContainers":[{"name":"copy-s3-resources"},{"name":"sync-workspace","restartPolicy":"Always"}]},)"
      R"("status":{"initContainerStatuses":[{"name":"sync-workspace","state":{"terminated":{"exitCode":0,)"
      R"("message":"final sync: synced /workspace","finishedAt":"2026-01-01T00:01:07Z"}}}]}})";
  f.push(kCollections[5], "ADDED", pod);
  REQUIRE(f.wait_status_writes(2));
  const auto synced = [&f] {
    const auto requests = f.transport->snapshot();
    const auto body = repl::test::parse_json(last(requests, "PATCH", kReplPath + "/status")->body);
    CHECK(string_at(body, "/status/conditions/1/type") == "Synced");
    CHECK(string_at(body, "/status/conditions/1/status") == "True");
    CHECK(string_at(body, "/status/conditions/1/message") ==
          "pod abc123-5d8f-x: final sync: synced /workspace");
    CHECK(string_at(body, "/status/lastSyncTime") == "2026-01-01T00:01:07Z");
  };
  CHECK(f.written_phase() == "Stopping");
  synced();

  // The pod goes; the Repl's cache has not seen the status (the answers here are empty), so only
  // what the controller kept can still say how the final sync went.
  f.push(kCollections[5], "DELETED", pod);
  REQUIRE(f.wait_status_writes(3));
  CHECK(f.written_phase() == "Suspended");
  synced();
}

TEST_CASE("an idle Repl is suspended when virtual time reaches its idle timeout, not before",
          "[operator][controller][lifecycle]") {
  Fixture f;
  f.transport->route("PATCH", kChildPaths[0], 200, kApplied);
  f.transport->route("PATCH", kReplPath, 200, kApplied);
  f.start();
  std::string created = kRepl;  // created as the virtual clock starts, and never active since
  created.replace(created.find(R"("resourceVersion":"20")"), 22,
                  R"("resourceVersion":"20","creationTimestamp":"2026-01-01T00:00:00Z")");
  f.push(kCollections[0], "ADDED", created);
  REQUIRE(f.wait_status_writes(1));
  // The key comes back at the default 30 minutes (and a second): a timer of the clock.
  const auto due = f.clock.wait_armed(5000ms);
  REQUIRE(due);
  CHECK(*due - f.clock.now() == 30min + 1s);
  f.clock.advance_to(*due - 1s);
  CHECK(count(f.transport->snapshot(), "PATCH", kReplPath) == 0);
  f.clock.advance_to(*due);
  REQUIRE(f.transport->wait_for([](const Requests& r) { return count(r, "PATCH", kReplPath) == 1; }));
  const auto requests = f.transport->snapshot();
  const auto* patch = last(requests, "PATCH", kReplPath);
  CHECK(patch->content_type == "application/merge-patch+json");
  CHECK_THAT(patch->body, Catch::Contains(R"("spec":{"suspended":true})"));
  CHECK_THAT(patch->body, Catch::Contains(R"("peetcode.com/idle-suspended-at":"2026-01-01T00:30:01Z")"));
}

TEST_CASE(
    "a running sync sidecar's failing pushes reach Synced when virtual time reaches the check, Ready kept",
    "[operator][controller]") {
  Fixture f(60s);
  f.transport->route("PATCH", kChildPaths[0], 200, kApplied);
  const std::string log = "/api/v1/namespaces/team-a/pods/abc123-5d8f-x/log";
  for (int i = 0; i < 3; ++i)
    f.transport->route(
        "GET", log, 200,
        "2026-01-01T00:01:00.000000001Z sync-workspace: cannot sync /workspace to s3://repl/code/"
        "abc123/: An error occurred (NoSuchBucket)\n");
  f.start();
  f.push(kCollections[0], "ADDED", kRepl);
  REQUIRE(f.wait_status_writes(1));
  f.push(kCollections[5], "ADDED",
         R"({"metadata":{"name":"abc123-5d8f-x","namespace":"team-a","uid":"u-1","resourceVersion":"40",)"
         R"("labels":{"peetcode.com/repl":"abc123"}},"spec":{"initContainers":[{"name":"copy-s3-resources"},)"
         R"({"name":"sync-workspace","restartPolicy":"Always"}]},"status":{"initContainerStatuses":[)"
         R"({"name":"sync-workspace","state":{"running":{"startedAt":"2026-01-01T00:00:00Z"}}}]}})");
  // In the cache once its event has been reconciled (here every reconcile writes the status: the
  // fake's answers never reach the Repl's cache).
  REQUIRE(f.wait_status_writes(2));
  // The first check comes one interval (60 s) after the caches synced, and reads only that pod's log.
  std::optional<repl::SteadyTime> due;
  while ((due = f.clock.wait_armed(5000ms)) && *due - f.clock.now() != 60s) f.clock.advance_to(*due);
  REQUIRE(due);
  CHECK(count(f.transport->snapshot(), "GET", log) == 0);
  f.clock.advance_to(*due);
  REQUIRE(f.transport->wait_for([](const Requests& r) {
    const HttpRequest* status = last(r, "PATCH", kReplPath + "/status");
    return status != nullptr && status->body.find("SyncFailed") != std::string::npos;
  }));
  const auto requests = f.transport->snapshot();
  const HttpRequest* read = last(requests, "GET", log);
  REQUIRE(read != nullptr);
  CHECK(read->target == repl::SyncChecker::log_path({"team-a", "abc123-5d8f-x"}, 60s));
  CHECK_THAT(read->target, Catch::Contains("&sinceSeconds=120&tailLines=100"));
  const auto body = repl::test::parse_json(last(requests, "PATCH", kReplPath + "/status")->body);
  CHECK(string_at(body, "/status/conditions/1/type") == "Synced");
  CHECK(string_at(body, "/status/conditions/1/status") == "False");
  CHECK(string_at(body, "/status/conditions/1/reason") == "SyncFailed");
  CHECK_THAT(string_at(body, "/status/conditions/1/message"), Catch::EndsWith("(NoSuchBucket)"));
  CHECK(string_at(body, "/status/conditions/0/type") == "Ready");
  // What the checks cost is on /metrics.
  const std::string text = f.metrics.registry().render();
  CHECK_THAT(text, Catch::Contains("repl_operator_sync_check_reads_total 1\n"));
  CHECK_THAT(text, Catch::Contains("repl_operator_sync_check_read_failures_total 0\n"));
  CHECK_THAT(text, Catch::Contains("repl_operator_sync_check_round_seconds "));
}

}  // namespace
