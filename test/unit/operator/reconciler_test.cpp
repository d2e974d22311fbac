// Reconciler over an API server scripted by request (method and path: the children's applies are in
// flight together, in no promised order), a cache the test fills (FakeView) and a recorder of Events:
// which requests one reconcile makes, what status it writes, which Events it records, what it tells
// the cache it wrote, and which failures it reports in the status rather than returning for a retry.
#include "reconciler.hpp"

#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/time.hpp"
#include "unit/support/fake_transport.hpp"
#include "unit/support/json.hpp"
#include "unit/support/object_key.hpp"
#include "unit/support/quiet_logs.hpp"
#include "unit/support/repl_fixtures.hpp"
#include "unit/support/status_json.hpp"

namespace {

using repl::DeploymentState;
using repl::ObjectKey;
using repl::Problem;
using repl::kube::ApiError;
using repl::test::string_at;
using Lines = std::vector<std::string>;

const std::string kNs = "/namespaces/team-a/";
const std::vector<std::string> kChildPaths = {"/apis/apps/v1" + kNs + "deployments/abc123",
                                              "/api/v1" + kNs + "services/abc123",
                                              "/apis/networking.k8s.io/v1" + kNs + "ingresses/abc123-ingress",
                                              "/apis/networking.k8s.io/v1" + kNs + "networkpolicies/abc123"};
const std::string kStatusPath = "/apis/peetcode.com/v1alpha1" + kNs + "repls/abc123/status";
const std::string kEarlier = "2026-01-01T00:00:00Z";

// API server answers, told apart by their resourceVersion.
const std::string kServiceReply = R"({"kind":"Service","metadata":{"resourceVersion":"12"}})";
const std::string kIngressReply = R"({"kind":"Ingress","metadata":{"resourceVersion":"13"}})";
const std::string kStatusReply = R"({"kind":"Repl","metadata":{"resourceVersion":"14"}})";
const std::string kNetworkPolicyReply = R"({"kind":"NetworkPolicy","metadata":{"resourceVersion":"15"}})";
std::string deployment_reply(int ready) {
  return R"({"kind":"Deployment","metadata":{"resourceVersion":"11","generation":1},)"
         R"("status":{"observedGeneration":1,"readyReplicas":)" +
         std::to_string(ready) + "}}";
}
const DeploymentState kReady{1, 1, 1, std::nullopt};
const DeploymentState kNotReady{1, 1, 0, std::nullopt};
const Problem kPullFailed{"ImagePullFailed", "container runner: ErrImagePull: not found"};

// Records each Event as "<Type> <reason>: <message>".
class FakeEvents final : public repl::EventRecorder {
 public:
  void record(const repl::Repl& repl, repl::EventType type, const std::string& reason,
              const std::string& message) override {
    about.push_back(repl.key);
    lines.push_back((type == repl::EventType::kWarning ? "Warning " : "Normal ") + reason + ": " + message);
  }
  Lines lines;
  std::vector<ObjectKey> about;  // the Repl of each Event
};

// The caches as a map the test fills; records what wrote() received as "<kind> <json>".
class FakeView final : public repl::ChildView {
 public:
  std::optional<repl::LiveChild> child(const repl::kube::Resource& resource,
                                       const ObjectKey& key) const override {
    const auto it = children.find({resource.kind, key});
    if (it == children.end()) return std::nullopt;
    return it->second;
  }
  std::optional<Problem> pod_problem(const ObjectKey& repl) const override {
    const auto it = problems.find(repl);
    if (it == problems.end()) return std::nullopt;
    return it->second;
  }
  bool has_pods(const ObjectKey& repl) const override { return with_pods.contains(repl); }
  std::optional<repl::FinalSync> final_sync(const ObjectKey& repl) const override {
    const auto it = final_syncs.find(repl);
    if (it == final_syncs.end()) return std::nullopt;
    return it->second;
  }
  std::optional<repl::SyncReport> sync_report(const ObjectKey& repl) const override {
    const auto it = sync_reports.find(repl);
    if (it == sync_reports.end()) return std::nullopt;
    return it->second;
  }
  std::optional<repl::WallTime> ide_activity(const ObjectKey& repl) const override {
    const auto it = ide_active.find(repl);
    if (it == ide_active.end()) return std::nullopt;
    return it->second;
  }
  void wrote(const repl::kube::Resource& resource, const rapidjson::Value& object) override {
    writes.push_back(resource.kind + " " + repl::kube::to_json(object));
  }

  std::map<std::pair<std::string, ObjectKey>, repl::LiveChild> children;  // by kind and key
  std::map<ObjectKey, Problem> problems;                                  // by Repl
  std::set<ObjectKey> with_pods;                                          // Repls with pods
  std::map<ObjectKey, repl::FinalSync> final_syncs;                       // by Repl
  std::map<ObjectKey, repl::SyncReport> sync_reports;                     // by Repl
  std::map<ObjectKey, repl::WallTime> ide_active;                         // by Repl
  Lines writes;
};

struct Fixture {
  explicit Fixture(repl::LifecycleSettings lifecycle = {})
      : reconciler{client, events, clock, repl::ChildSettings{}, repl::test::repo_templates(), lifecycle} {}

  repl::test::QuietLogs quiet;
  std::shared_ptr<repl::test::FakeTransport> transport = std::make_shared<repl::test::FakeTransport>();
  repl::kube::Client client{transport};
  FakeEvents events;
  FakeView view;
  repl::ManualClock clock;
  repl::Reconciler reconciler;
  // A Repl an earlier reconcile gave the finalizer (the tests of adding it say so).
  repl::Repl repl = [] {
    auto r = repl::test::sample_repl();
    r.finalizer = true;
    return r;
  }();

  auto reconcile() { return reconciler.reconcile(repl, view); }

  // Scripts the answer to the next request on the i-th child (kChildPaths), or on the status.
  void answer(std::size_t i, int code, std::string body) {
    transport->route("PATCH", kChildPaths.at(i), code, std::move(body));
  }
  void status_answer(int code, std::string body) {
    transport->route("PATCH", "/apis/peetcode.com/v1alpha1" + kNs + "repls/" + repl.key.name + "/status",
                     code, std::move(body));
  }
  // Scripts successful applies of the four children (but the `except`-th, which the test scripts),
  // the Deployment reporting `ready` replicas.
  void children_applied(int ready, std::optional<std::size_t> except = std::nullopt) {
    const std::string replies[] = {deployment_reply(ready), kServiceReply, kIngressReply,
                                   kNetworkPolicyReply};
    for (std::size_t i = 0; i < kChildPaths.size(); ++i)
      if (i != except) answer(i, 200, replies[i]);
  }

  // Fills the cache with children holding exactly what the Repl renders; the Deployment in `state`.
  void cache_desired(const DeploymentState& state) {
    const auto children = repl::test::render_children(repl);
    for (std::size_t i = 0; i < children.size(); ++i) {
      const auto& c = children[i];
      repl::LiveChild live{reconciler.templates()[i].shape.fingerprint(c.object), nullptr};
      if (c.resource == repl::kube::deployments())
        live.deployment = std::make_shared<const DeploymentState>(state);
      view.children[{c.resource.kind, {repl.key.ns, c.name}}] = live;
    }
  }
  // The i-th child as the Repl renders it: an API server's answer that holds what was applied.
  std::string rendered(std::size_t i) const {
    return repl::kube::to_json(repl::test::render_children(repl).at(i).object);
  }
  repl::LiveChild& cached(const std::string& kind, const std::string& name) {
    const auto it = view.children.find({kind, {repl.key.ns, name}});
    REQUIRE(it != view.children.end());
    return it->second;
  }

  // Sets the Repl's status to what an earlier reconcile computed from `seen`.
  void status_from(const repl::ChildObservation& seen) {
    repl.status = repl::compute_status(repl, seen, repl::urls_for(repl, {}), kEarlier);
  }

  Lines paths() const {
    Lines out;
    for (const auto& r : transport->requests) out.push_back(repl::test::path_of(r.target));
    return out;
  }

  // The status body written by the last request, which must be the status apply.
  rapidjson::Document written_status() const {
    REQUIRE_FALSE(transport->requests.empty());
    const auto& r = transport->requests.back();
    REQUIRE(repl::test::path_of(r.target) == kStatusPath);
    return repl::test::parse_json(r.body);
  }
};

repl::ChildObservation observed(std::optional<DeploymentState> deployment, std::optional<Problem> pods = {}) {
  repl::ChildObservation seen;
  seen.deployment = std::move(deployment);
  seen.pod_problem = std::move(pods);
  return seen;
}

Lines with_status(Lines paths) {
  paths.push_back(kStatusPath);
  return paths;
}

}  // namespace

TEST_CASE("with nothing cached, reconcile creates the children, then writes the status",
          "[operator][reconciler]") {
  Fixture f;
  f.children_applied(1);
  f.status_answer(200, kStatusReply);
  REQUIRE(f.reconcile());
  CHECK(f.paths() == with_status(kChildPaths));
  for (const auto& r : f.transport->requests) {
    CHECK(r.method == "PATCH");
    CHECK(r.content_type == "application/apply-patch+yaml");
    CHECK(repl::test::query_params(r.target) == std::vector<std::pair<std::string, std::string>>{
                                                    {"fieldManager", "repl-operator"}, {"force", "true"}});
  }
  const auto desired = repl::test::render_children(f.repl);
  for (std::size_t i = 0; i < desired.size(); ++i) {
    CHECK(f.transport->requests[i].body == repl::kube::to_json(desired[i].object));
  }
  const auto status = f.written_status();
  CHECK(string_at(status, "/status/phase") == "Ready");
  CHECK(string_at(status, "/status/urls/ide") == "https://abc123.peetcode.com");
  CHECK(string_at(status, "/status/conditions/0/reason") == "DeploymentReady");
  // One Event for the four (Events are writes too).
  CHECK(f.events.lines == Lines{"Normal Created: created Deployment abc123, Service abc123, Ingress "
                                "abc123-ingress, NetworkPolicy abc123"});
  CHECK(f.events.about == std::vector<ObjectKey>(1, f.repl.key));
  // The cache hears of every answer: the four children, then the Repl's status.
  CHECK(f.view.writes == Lines{"Deployment " + deployment_reply(1), "Service " + kServiceReply,
                               "Ingress " + kIngressReply, "NetworkPolicy " + kNetworkPolicyReply,
                               "Repl " + kStatusReply});
}

TEST_CASE("without the NetworkPolicy template, reconcile applies the other three children only",
          "[operator][reconciler]") {
  repl::test::QuietLogs quiet;
  auto transport = std::make_shared<repl::test::FakeTransport>();
  repl::kube::Client client{transport};
  FakeEvents events;
  FakeView view;
  auto templates = repl::load_child_templates(std::string(REPL_SOURCE_DIR) + "/templates", false);
  REQUIRE(templates);
  repl::ManualClock clock;
  repl::Reconciler reconciler{client, events, clock, repl::ChildSettings{}, std::move(*templates)};
  transport->route("PATCH", kChildPaths[0], 200, deployment_reply(1));
  transport->route("PATCH", kChildPaths[1], 200, kServiceReply);
  transport->route("PATCH", kChildPaths[2], 200, kIngressReply);
  transport->route("PATCH", kStatusPath, 200, kStatusReply);
  auto repl = repl::test::sample_repl();
  repl.finalizer = true;
  REQUIRE(reconciler.reconcile(repl, view));
  Lines paths;
  for (const auto& r : transport->requests) paths.push_back(repl::test::path_of(r.target));
  CHECK(paths == with_status({kChildPaths[0], kChildPaths[1], kChildPaths[2]}));
  CHECK(events.lines ==
        Lines{"Normal Created: created Deployment abc123, Service abc123, Ingress abc123-ingress"});
}

TEST_CASE("a Deployment without ready replicas is Starting", "[operator][reconciler]") {
  Fixture f;
  f.children_applied(0);
  f.status_answer(200, kStatusReply);
  REQUIRE(f.reconcile());
  CHECK(string_at(f.written_status(), "/status/phase") == "Starting");
}

TEST_CASE("an unchanged status is not written again", "[operator][reconciler]") {
  Fixture f;
  f.status_from(observed(kReady));
  f.children_applied(1);
  REQUIRE(f.reconcile());
  CHECK(f.paths() == kChildPaths);
  CHECK(f.view.writes.size() == 4);
}

TEST_CASE("steady state: children as desired and the status as computed send nothing",
          "[operator][reconciler]") {
  Fixture f;
  f.cache_desired(kReady);
  f.status_from(observed(kReady));
  REQUIRE(f.reconcile());
  CHECK(f.transport->requests.empty());
  CHECK(f.events.lines.empty());
  CHECK(f.view.writes.empty());
  SECTION("also for a Repl that is still starting") {
    f.cache_desired(kNotReady);
    f.status_from(observed(kNotReady));
    REQUIRE(f.reconcile());
    CHECK(f.transport->requests.empty());
  }
}

TEST_CASE("the status follows the cached Deployment without applying anything", "[operator][reconciler]") {
  Fixture f;
  f.cache_desired(kReady);
  f.status_from(observed(kNotReady));  // written while it was starting
  f.status_answer(200, kStatusReply);
  REQUIRE(f.reconcile());
  CHECK(f.paths() == Lines{kStatusPath});
  CHECK(string_at(f.written_status(), "/status/phase") == "Ready");
  CHECK(f.events.lines.empty());
  CHECK(f.view.writes == Lines{"Repl " + kStatusReply});
}

TEST_CASE("only a child whose managed fields differ is applied again", "[operator][reconciler]") {
  Fixture f;
  f.cache_desired(kReady);
  f.status_from(observed(kReady));
  SECTION("the Service") {
    f.cached("Service", "abc123").fingerprint ^= 1;
    f.answer(1, 200, kServiceReply);
    REQUIRE(f.reconcile());
    CHECK(f.paths() == Lines{kChildPaths[1]});
    CHECK(f.events.lines == Lines{"Normal Updated: updated Service abc123 to the desired state"});
    CHECK(f.view.writes == Lines{"Service " + kServiceReply});
  }
  SECTION("the Ingress") {
    f.cached("Ingress", "abc123-ingress").fingerprint = 0;
    f.answer(2, 200, kIngressReply);
    REQUIRE(f.reconcile());
    CHECK(f.paths() == Lines{kChildPaths[2]});
    CHECK(f.events.lines == Lines{"Normal Updated: updated Ingress abc123-ingress to the desired state"});
  }
  SECTION("the NetworkPolicy") {
    f.cached("NetworkPolicy", "abc123").fingerprint ^= 1;
    f.answer(3, 200, kNetworkPolicyReply);
    REQUIRE(f.reconcile());
    CHECK(f.paths() == Lines{kChildPaths[3]});
    CHECK(f.events.lines == Lines{"Normal Updated: updated NetworkPolicy abc123 to the desired state"});
    CHECK(f.view.writes == Lines{"NetworkPolicy " + kNetworkPolicyReply});
  }
  SECTION("the Deployment, whose answer then decides the status") {
    f.cached("Deployment", "abc123").fingerprint ^= 1;
    f.answer(0, 200, deployment_reply(0));
    f.status_answer(200, kStatusReply);
    REQUIRE(f.reconcile());
    CHECK(f.paths() == Lines{kChildPaths[0], kStatusPath});
    CHECK(string_at(f.written_status(), "/status/phase") == "Starting");
    CHECK(f.events.lines == Lines{"Normal Updated: updated Deployment abc123 to the desired state"});
    CHECK(f.view.writes == Lines{"Deployment " + deployment_reply(0), "Repl " + kStatusReply});
  }
  SECTION("a missing one is created") {
    f.view.children.erase({"Service", {"team-a", "abc123"}});
    f.answer(1, 200, kServiceReply);
    REQUIRE(f.reconcile());
    CHECK(f.paths() == Lines{kChildPaths[1]});
    CHECK(f.events.lines == Lines{"Normal Created: created Service abc123"});
  }
  SECTION("a missing NetworkPolicy is created") {
    f.view.children.erase({"NetworkPolicy", {"team-a", "abc123"}});
    f.answer(3, 200, kNetworkPolicyReply);
    REQUIRE(f.reconcile());
    CHECK(f.paths() == Lines{kChildPaths[3]});
    CHECK(f.events.lines == Lines{"Normal Created: created NetworkPolicy abc123"});
  }
}

TEST_CASE("a spec change reaches the children even when the cache matched the old one",
          "[operator][reconciler]") {
  Fixture f;
  f.cache_desired(kReady);
  f.status_from(observed(kReady));
  f.repl.spec.image = "custom/runner:2";
  f.answer(0, 200, deployment_reply(1));
  REQUIRE(f.reconcile());
  REQUIRE(f.paths() == Lines{kChildPaths[0]});
  CHECK(string_at(repl::test::parse_json(f.transport->requests[0].body),
                  "/spec/template/spec/containers/0/image") == "custom/runner:2");
}

TEST_CASE("a pod problem fails the Repl once, with one Warning", "[operator][reconciler]") {
  Fixture f;
  f.cache_desired(kNotReady);
  f.status_from(observed(kNotReady));
  f.view.problems[f.repl.key] = kPullFailed;
  f.status_answer(200, kStatusReply);
  REQUIRE(f.reconcile());
  CHECK(f.paths() == Lines{kStatusPath});
  const auto status = f.written_status();
  CHECK(string_at(status, "/status/phase") == "Failed");
  CHECK(string_at(status, "/status/conditions/0/reason") == "ImagePullFailed");
  CHECK(string_at(status, "/status/conditions/0/message") == kPullFailed.message);
  CHECK(f.events.lines == Lines{"Warning ImagePullFailed: " + kPullFailed.message});

  // The Repl now shows that failure.
  f.status_from(observed(kNotReady, kPullFailed));
  REQUIRE(f.repl.status.phase == "Failed");
  f.transport->requests.clear();
  f.events.lines.clear();
  SECTION("the same failure again: nothing") {
    REQUIRE(f.reconcile());
    CHECK(f.transport->requests.empty());
    CHECK(f.events.lines.empty());
  }
  SECTION("the same failure in a status written for another reason: no new Event") {
    f.repl.generation += 1;  // observedGeneration must be updated
    f.status_answer(200, kStatusReply);
    REQUIRE(f.reconcile());
    CHECK(f.paths() == Lines{kStatusPath});
    CHECK(f.events.lines.empty());
  }
  SECTION("another failure: a new Event") {
    f.view.problems[f.repl.key] = Problem{"CrashLoopBackOff", "container runner keeps exiting"};
    f.status_answer(200, kStatusReply);
    REQUIRE(f.reconcile());
    CHECK(f.events.lines == Lines{"Warning CrashLoopBackOff: container runner keeps exiting"});
  }
  SECTION("recovered: Ready, without a Warning") {
    f.view.problems.clear();
    f.cache_desired(kReady);
    f.status_answer(200, kStatusReply);
    REQUIRE(f.reconcile());
    CHECK(string_at(f.written_status(), "/status/phase") == "Ready");
    CHECK(f.events.lines.empty());
  }
}

TEST_CASE("another Repl's pod problem is not this one's", "[operator][reconciler]") {
  Fixture f;
  f.cache_desired(kNotReady);
  f.status_from(observed(kNotReady));
  f.view.problems[{"team-a", "other"}] = kPullFailed;
  REQUIRE(f.reconcile());
  CHECK(f.transport->requests.empty());
}

TEST_CASE("an invalid spec is reported in the status and nothing is applied", "[operator][reconciler]") {
  Fixture f;
  std::string field;
  SECTION("userId") {
    f.repl.spec.user_id = "-bad";
    field = "spec.userId: ";
  }
  SECTION("language") {
    f.repl.spec.language = "Py";
    field = "spec.language: ";
  }
  SECTION("image") {
    f.repl.spec.image = "a b";
    field = "spec.image: ";
  }
  SECTION("replId") {
    f.repl.key.name = "ABC";
    field = "metadata.name: ";
  }
  f.status_answer(200, kStatusReply);
  REQUIRE(f.reconcile());
  REQUIRE(f.transport->requests.size() == 1);
  const auto status = repl::test::parse_json(f.transport->requests[0].body);
  CHECK(string_at(status, "/status/phase") == "Failed");
  CHECK(string_at(status, "/status/conditions/0/reason") == "InvalidSpec");
  CHECK_THAT(string_at(status, "/status/conditions/0/message"), Catch::StartsWith(field));
  REQUIRE(f.events.lines.size() == 1);
  CHECK_THAT(f.events.lines[0], Catch::StartsWith("Warning InvalidSpec: " + field));
}

TEST_CASE("an apply the server refuses is reported in the status, not retried", "[operator][reconciler]") {
  Fixture f;
  const int code = GENERATE(400, 422);
  f.children_applied(1, 1);
  f.answer(1, code, repl::test::status_json(code, "Invalid", "spec.ports: bad"));
  f.status_answer(200, kStatusReply);
  REQUIRE(f.reconcile());
  CHECK(f.paths() == with_status(kChildPaths));
  const auto status = f.written_status();
  CHECK(string_at(status, "/status/phase") == "Failed");
  CHECK(string_at(status, "/status/conditions/0/reason") == "ApplyFailed");
  CHECK(string_at(status, "/status/conditions/0/message") == "Service abc123: spec.ports: bad");
  // The other three were applied beside it, and are taken in.
  CHECK(f.events.lines ==
        Lines{"Normal Created: created Deployment abc123, Ingress abc123-ingress, NetworkPolicy abc123",
              "Warning ApplyFailed: Service abc123: spec.ports: bad"});
  CHECK(f.view.writes == Lines{"Deployment " + deployment_reply(1), "Ingress " + kIngressReply,
                               "NetworkPolicy " + kNetworkPolicyReply, "Repl " + kStatusReply});
}

TEST_CASE("a transient apply failure is returned for a retry, without a status", "[operator][reconciler]") {
  Fixture f;
  SECTION("server error") { f.answer(0, 500, repl::test::status_json(500, "InternalError", "etcd")); }
  SECTION("conflict") { f.answer(0, 409, repl::test::status_json(409, "Conflict", "modified")); }
  SECTION("forbidden: an RBAC rule an administrator can add") {
    f.answer(0, 403, repl::test::status_json(403, "Forbidden", "cannot patch services"));
  }
  SECTION("transport") {
    f.transport->route_failure("PATCH", kChildPaths[0], repl::kube::transport_error("connection refused"));
  }
  f.answer(1, 200, kServiceReply);
  f.answer(2, 200, kIngressReply);
  f.answer(3, 200, kNetworkPolicyReply);
  auto r = f.reconcile();
  REQUIRE_FALSE(r);
  CHECK_FALSE(repl::is_permanent(r.error()));
  CHECK(f.paths() == kChildPaths);  // all four in flight; no status
  // The three that were applied are taken in, so the retry does not apply them again.
  CHECK(f.events.lines == Lines{"Normal Created: created Service abc123, Ingress abc123-ingress, "
                                "NetworkPolicy abc123"});
  CHECK(f.view.writes.size() == 3);
}

TEST_CASE("a transient failure after a child was applied keeps what was done", "[operator][reconciler]") {
  Fixture f;
  f.children_applied(1, 1);
  f.answer(1, 503, repl::test::status_json(503, "ServiceUnavailable", "later"));
  auto r = f.reconcile();
  REQUIRE_FALSE(r);
  CHECK(r.error().code == 503);
  CHECK(f.paths() == kChildPaths);
  CHECK(f.events.lines ==
        Lines{"Normal Created: created Deployment abc123, Ingress abc123-ingress, NetworkPolicy abc123"});
  CHECK(f.view.writes == Lines{"Deployment " + deployment_reply(1), "Ingress " + kIngressReply,
                               "NetworkPolicy " + kNetworkPolicyReply});
}

TEST_CASE("writing the status of a Repl deleted meanwhile is not an error", "[operator][reconciler]") {
  Fixture f;
  f.children_applied(1);
  f.status_answer(404, repl::test::status_json(404, "NotFound", "gone"));
  CHECK(f.reconcile());
  CHECK(f.view.writes.size() == 4);  // the children only
  SECTION("but other status failures are") {
    f.children_applied(1);
    f.status_answer(503, "");
    auto r = f.reconcile();
    REQUIRE_FALSE(r);
    CHECK(r.error().code == 503);
  }
}

TEST_CASE("a Repl being deleted without the operator's finalizer is left alone", "[operator][reconciler]") {
  Fixture f;
  f.repl.deleting = true;
  f.repl.finalizer = false;
  f.view.problems[f.repl.key] = kPullFailed;
  f.view.with_pods.insert(f.repl.key);
  CHECK(f.reconcile());
  CHECK(f.transport->requests.empty());
  CHECK(f.events.lines.empty());
}

const std::string kReplPath = "/apis/peetcode.com/v1alpha1" + kNs + "repls/abc123";
const std::string kFinalizedReply = R"({"kind":"Repl","metadata":{"resourceVersion":"16"}})";

TEST_CASE("a Repl without the finalizer gets it by apply, in flight with its children",
          "[operator][reconciler]") {
  Fixture f;
  f.repl.finalizer = false;
  f.children_applied(1);
  f.transport->route("PATCH", kReplPath, 200, kFinalizedReply);
  f.status_answer(200, kStatusReply);
  REQUIRE(f.reconcile());
  Lines want = kChildPaths;
  want.push_back(kReplPath);
  CHECK(f.paths() == with_status(want));
  const auto& finalizer = f.transport->requests[4];
  CHECK(finalizer.content_type == "application/apply-patch+yaml");
  CHECK(
      finalizer.body ==
      R"({"apiVersion":"peetcode.com/v1alpha1","kind":"Repl","metadata":{"name":"abc123","namespace":"team-a",)"
      R"("finalizers":["peetcode.com/final-sync"]}})");
  CHECK(f.view.writes.front() == "Repl " + kFinalizedReply);

  SECTION("refused (the Repl is being deleted by now): returned, for a retry that sees it") {
    f.children_applied(1);
    f.transport->route("PATCH", kReplPath, 422,
                       repl::test::status_json(422, "Invalid", "no new finalizers can be added"));
    auto r = f.reconcile();
    REQUIRE_FALSE(r);
    CHECK(r.error().code == 422);
  }
}

TEST_CASE("a Repl being deleted has its runner scaled to zero and is Stopping while it has pods",
          "[operator][reconciler]") {
  Fixture f;
  f.cache_desired(kReady);
  f.view.children.erase({"Service", f.repl.key});  // gone already: not made again for a Repl going away
  f.repl.deleting = true;
  f.view.with_pods.insert(f.repl.key);
  f.answer(0, 200, deployment_reply(0));
  f.status_answer(200, kStatusReply);
  REQUIRE(f.reconcile());
  CHECK(f.paths() == with_status({kChildPaths[0]}));
  auto stopped = f.repl;
  stopped.spec.suspended = true;
  CHECK(f.transport->requests[0].body == repl::kube::to_json(repl::test::render_children(stopped)[0].object));
  const auto status = f.written_status();
  CHECK(string_at(status, "/status/phase") == "Stopping");
  CHECK(string_at(status, "/status/conditions/0/reason") == "Stopping");
  CHECK_THAT(string_at(status, "/status/conditions/0/message"),
             Catch::StartsWith("the Repl is being deleted"));
}

TEST_CASE("once its pods are gone, a Repl being deleted loses the finalizer, unless its final sync failed",
          "[operator][reconciler]") {
  Fixture f;
  f.repl.deleting = true;
  const auto released = [&f] {
    CHECK(f.paths() == Lines{kReplPath});
    const auto& r = f.transport->requests.back();
    CHECK(r.method == "PATCH");
    // Our apply without the finalizer takes back our field (others' finalizers stay theirs).
    CHECK(
        r.body ==
        R"({"apiVersion":"peetcode.com/v1alpha1","kind":"Repl","metadata":{"name":"abc123","namespace":"team-a"}})");
  };

  SECTION("its final sync succeeded") {
    f.view.final_syncs[f.repl.key] = {true, "pod abc123-x: final sync: synced", "2026-01-01T00:00:05Z"};
    f.transport->route("PATCH", kReplPath, 200, kFinalizedReply);
    REQUIRE(f.reconcile());
    released();
  }
  SECTION("no pod ever ran (or none was seen to stop): nothing to wait for") {
    f.transport->route("PATCH", kReplPath, 200, kFinalizedReply);
    REQUIRE(f.reconcile());
    released();
  }
  SECTION("gone meanwhile: nothing left to do") {
    f.transport->route("PATCH", kReplPath, 404, repl::test::status_json(404, "NotFound", "gone"));
    CHECK(f.reconcile());
  }

  SECTION("its final sync failed") {
    const repl::FinalSync failed{false, "pod abc123-x: final sync failed: cannot sync /workspace: 503",
                                 "2026-01-01T00:00:05Z"};
    f.view.final_syncs[f.repl.key] = failed;
    SECTION("held: Synced False with the sidecar's line, Ready says why and how to let it go, two Events") {
      f.transport->route("GET", "/api/v1/namespaces/team-a", 200, R"({"metadata":{"name":"team-a"}})");
      f.status_answer(200, kStatusReply);
      REQUIRE(f.reconcile());
      CHECK(f.paths() == with_status({"/api/v1/namespaces/team-a"}));
      const auto status = f.written_status();
      CHECK(string_at(status, "/status/phase") == "Failed");
      CHECK(string_at(status, "/status/conditions/0/reason") == "FinalSyncFailed");
      CHECK_THAT(string_at(status, "/status/conditions/0/message"),
                 Catch::Contains("peetcode.com/force-delete=true"));
      CHECK(string_at(status, "/status/conditions/1/type") == "Synced");
      CHECK(string_at(status, "/status/conditions/1/status") == "False");
      CHECK(string_at(status, "/status/conditions/1/message") == failed.message);
      REQUIRE(f.events.lines.size() == 2);
      CHECK_THAT(f.events.lines[0], Catch::StartsWith("Warning FinalSyncFailed: deletion held"));
      CHECK(f.events.lines[1] == "Warning FinalSyncFailed: " + failed.message);
    }
    SECTION("the Repl's status already says so: held the same") {
      f.view.final_syncs.clear();
      repl::ChildObservation seen;
      seen.final_sync = failed;
      f.status_from(seen);
      f.transport->route("GET", "/api/v1/namespaces/team-a", 200, R"({"metadata":{"name":"team-a"}})");
      f.status_answer(200, kStatusReply);
      REQUIRE(f.reconcile());
      CHECK(string_at(f.written_status(), "/status/conditions/0/reason") == "FinalSyncFailed");
    }
    SECTION("the force-delete annotation lets it go") {
      f.repl.force_delete = true;
      f.transport->route("PATCH", kReplPath, 200, kFinalizedReply);
      REQUIRE(f.reconcile());
      released();
    }
    SECTION("its namespace is being deleted: nobody to hold it for") {
      f.transport->route("GET", "/api/v1/namespaces/team-a", 200,
                         R"({"metadata":{"name":"team-a","deletionTimestamp":"2026-01-01T00:00:06Z"}})");
      f.transport->route("PATCH", kReplPath, 200, kFinalizedReply);
      REQUIRE(f.reconcile());
      CHECK(f.paths() == Lines{"/api/v1/namespaces/team-a", kReplPath});
    }
    SECTION("the namespace cannot be read: retried") {
      f.transport->route("GET", "/api/v1/namespaces/team-a", 403,
                         repl::test::status_json(403, "Forbidden", "no"));
      CHECK_FALSE(f.reconcile());
    }
  }
}

TEST_CASE("is_permanent: only API answers saying the request itself is wrong", "[operator][reconciler]") {
  for (const int code : {400, 422}) CHECK(repl::is_permanent(repl::kube::decode_status(code, "")));
  for (const int code : {401, 403, 404, 409, 410, 429, 500, 503})
    CHECK_FALSE(repl::is_permanent(repl::kube::decode_status(code, "")));
  CHECK_FALSE(repl::is_permanent(ApiError{ApiError::Kind::kTransport, 422, "", ""}));
  CHECK_FALSE(repl::is_permanent(repl::kube::decode_error("x")));
}

TEST_CASE("an apply of a cached child refused as Invalid falls back to a merge patch of its spec",
          "[operator][reconciler]") {
  Fixture f;
  f.cache_desired(kReady);
  f.status_from(observed(kReady));
  f.cached("Service", "abc123").fingerprint ^= 1;  // someone changed a port number
  f.answer(1, 422, repl::test::status_json(422, "Invalid", "spec.ports[1].name: Duplicate value"));
  const auto desired = repl::test::render_children(f.repl);
  const auto& service = desired[1].object;
  REQUIRE(desired[1].resource == repl::kube::services());

  const auto check_patch = [&f, &service] {
    REQUIRE(f.transport->requests.size() >= 2);
    const auto& apply = f.transport->requests[0];
    CHECK(apply.content_type == "application/apply-patch+yaml");
    const auto& patch = f.transport->requests[1];
    CHECK(patch.method == "PATCH");
    CHECK(patch.content_type == "application/merge-patch+json");
    CHECK(patch.target == kChildPaths[1]);  // no fieldManager: a merge patch is no apply
    const auto body = repl::test::parse_json(patch.body);
    REQUIRE(body.IsObject());
    CHECK(body.MemberCount() == 1);  // neither metadata (ownerReferences, labels) nor apiVersion/kind
    CHECK(repl::kube::to_json(repl::test::at(body, "/spec")) == repl::kube::to_json(service["spec"]));
  };

  SECTION("a patch that succeeds restores the child") {
    f.answer(1, 200, kServiceReply);
    REQUIRE(f.reconcile());
    CHECK(f.paths() == Lines{kChildPaths[1], kChildPaths[1]});
    check_patch();
    CHECK(f.events.lines == Lines{"Normal Updated: updated Service abc123 to the desired state"});
    CHECK(f.view.writes == Lines{"Service " + kServiceReply});
  }
  SECTION("a patch refused too is reported in the status") {
    f.answer(1, 422, repl::test::status_json(422, "Invalid", "spec.ports: still bad"));
    f.status_answer(200, kStatusReply);
    REQUIRE(f.reconcile());
    CHECK(f.paths() == Lines{kChildPaths[1], kChildPaths[1], kStatusPath});
    check_patch();
    const auto status = f.written_status();
    CHECK(string_at(status, "/status/conditions/0/reason") == "ApplyFailed");
    CHECK(string_at(status, "/status/conditions/0/message") == "Service abc123: spec.ports: still bad");
    CHECK(f.events.lines == Lines{"Warning ApplyFailed: Service abc123: spec.ports: still bad"});
  }
  SECTION("a patch that fails for a while is retried") {
    f.answer(1, 503, repl::test::status_json(503, "ServiceUnavailable", "later"));
    auto r = f.reconcile();
    REQUIRE_FALSE(r);
    CHECK(r.error().code == 503);
    check_patch();
    CHECK(f.events.lines.empty());
    CHECK(f.view.writes.empty());
  }
}

TEST_CASE("a Deployment restored by a merge patch reports its state from the patch's answer",
          "[operator][reconciler]") {
  Fixture f;
  f.cache_desired(kReady);
  f.status_from(observed(kReady));
  f.cached("Deployment", "abc123").fingerprint ^= 1;
  f.answer(0, 422, repl::test::status_json(422, "Invalid", "containerPort: Duplicate value"));
  f.answer(0, 200, deployment_reply(0));
  f.status_answer(200, kStatusReply);
  REQUIRE(f.reconcile());
  CHECK(f.paths() == Lines{kChildPaths[0], kChildPaths[0], kStatusPath});
  CHECK(f.transport->requests[1].content_type == "application/merge-patch+json");
  const auto body = repl::test::parse_json(f.transport->requests[1].body);
  CHECK(body.MemberCount() == 1);
  CHECK(repl::test::has(body, "/spec/template/spec/containers/0/ports"));
  CHECK(string_at(f.written_status(), "/status/phase") == "Starting");
  CHECK(f.events.lines == Lines{"Normal Updated: updated Deployment abc123 to the desired state"});
}

TEST_CASE("a refused apply of a child not in the cache is ApplyFailed, without a merge patch",
          "[operator][reconciler]") {
  Fixture f;
  f.cache_desired(kReady);
  f.status_from(observed(kReady));
  int code = 422;
  SECTION("absent: 422") { f.view.children.erase({"Service", {"team-a", "abc123"}}); }
  SECTION("present, but 400 is not the clash a merge patch mends") {
    f.cached("Service", "abc123").fingerprint ^= 1;
    code = 400;
  }
  f.answer(1, code, repl::test::status_json(code, "Invalid", "spec.ports: bad"));
  f.status_answer(200, kStatusReply);
  REQUIRE(f.reconcile());
  CHECK(f.paths() == Lines{kChildPaths[1], kStatusPath});
  for (const auto& r : f.transport->requests) CHECK(r.content_type == "application/apply-patch+yaml");
  const auto status = f.written_status();
  CHECK(string_at(status, "/status/conditions/0/reason") == "ApplyFailed");
  CHECK(string_at(status, "/status/conditions/0/message") == "Service abc123: spec.ports: bad");
}

TEST_CASE(
    "a running Repl's reconcile says when its idle timeout runs out; then it is suspended, with an Event",
    "[operator][reconciler][lifecycle]") {
  Fixture f;
  f.cache_desired(kReady);
  f.repl.created = "2025-12-31T23:50:00Z";  // the clock is at 2026-01-01T00:00:00Z
  f.view.with_pods.insert(f.repl.key);
  // Ready since its creation, and nothing since.
  f.repl.status =
      repl::compute_status(f.repl, observed(kReady), repl::urls_for(f.repl, {}), "2025-12-31T23:50:00Z");
  auto r = f.reconcile();
  REQUIRE(r);
  REQUIRE(*r);
  CHECK(**r == std::chrono::seconds(20 * 60 + 1));  // 30 minutes after its creation, a second late
  CHECK(f.transport->requests.empty());

  f.clock.advance(std::chrono::minutes(21));
  f.transport->route("PATCH", kReplPath, 200, kFinalizedReply);
  r = f.reconcile();
  REQUIRE(r);
  CHECK_FALSE(*r);
  REQUIRE(f.paths() == Lines{kReplPath});
  const auto& patch = f.transport->requests.back();
  CHECK(patch.content_type == "application/merge-patch+json");
  CHECK(
      patch.body ==
      R"({"metadata":{"annotations":{"peetcode.com/idle-suspended-at":"2026-01-01T00:21:00Z"}},"spec":{"suspended":true}})");
  REQUIRE(f.events.lines.size() == 1);
  CHECK(f.events.lines[0] ==
        "Normal Idle: no activity since 2025-12-31T23:50:00Z (idle timeout 1800 s): suspended");

  SECTION("once stopped it is Suspended with reason Idle") {
    f.repl.spec.suspended = true;
    f.repl.idle_suspended_at = "2026-01-01T00:21:00Z";
    const auto s = repl::compute_status(f.repl, observed(kNotReady), repl::urls_for(f.repl, {}), "now");
    CHECK(s.phase == "Suspended");
    CHECK(s.ready->reason == "Idle");
    SECTION("but a later /stop after a resume is an ordinary suspend") {
      f.repl.last_activity = "2026-01-01T00:30:00Z";
      CHECK(repl::compute_status(f.repl, observed(kNotReady), repl::urls_for(f.repl, {}), "now")
                .ready->reason == "Suspended");
    }
  }
}

TEST_CASE("live IDE connections are activity: a newer report is written once and holds off the idle suspend",
          "[operator][reconciler][lifecycle]") {
  Fixture f;
  f.cache_desired(kReady);
  f.repl.created = "2025-12-31T23:00:00Z";  // the clock is at 2026-01-01T00:00:00Z: idle for an hour
  f.repl.last_activity = "2025-12-31T23:10:00Z";
  f.view.with_pods.insert(f.repl.key);
  f.repl.status =
      repl::compute_status(f.repl, observed(kReady), repl::urls_for(f.repl, {}), "2025-12-31T23:00:00Z");
  // The sidecar saw the websocket in use 50 s ago (to the nanosecond, as the kubelet stamps it).
  f.view.ide_active[f.repl.key] = *repl::parse_rfc3339("2025-12-31T23:59:10.123456789Z");
  f.transport->route("PATCH", kReplPath, 200, kFinalizedReply);
  auto r = f.reconcile();
  REQUIRE(r);
  REQUIRE(f.paths() == Lines{kReplPath});
  CHECK(f.transport->requests.back().content_type == "application/merge-patch+json");
  CHECK(f.transport->requests.back().body ==
        R"({"metadata":{"annotations":{"peetcode.com/last-activity":"2025-12-31T23:59:10Z"}}})");
  // Not suspended: idle since that activity, the timer set 30 minutes after it.
  REQUIRE(*r);
  CHECK(**r == std::chrono::seconds(29 * 60 + 10 + 1));
  CHECK(f.events.lines.empty());

  SECTION("once written (the annotation holds it), the same report writes nothing") {
    f.repl.last_activity = "2025-12-31T23:59:10Z";
    f.transport->requests.clear();
    REQUIRE(f.reconcile());
    CHECK(f.transport->requests.empty());
  }
  SECTION("an older report than the annotation writes nothing") {
    f.repl.last_activity = "2026-01-01T00:00:00Z";
    f.transport->requests.clear();
    REQUIRE(f.reconcile());
    CHECK(f.transport->requests.empty());
  }
  SECTION("a suspended Repl's (its pod stopping) is not activity") {
    f.repl.spec.suspended = true;
    f.transport->requests.clear();
    for (const auto& p : kChildPaths) f.transport->route("PATCH", p, 200, kServiceReply);
    f.transport->route("PATCH", kStatusPath, 200, kStatusReply);
    REQUIRE(f.reconcile());
    for (const auto& req : f.transport->requests) CHECK(req.target != kReplPath);
  }
}

TEST_CASE("a suspended Repl past its TTL is deleted (by uid), with an Event; before, its reconcile says when",
          "[operator][reconciler][lifecycle]") {
  Fixture f({std::chrono::minutes(30), std::chrono::hours(24)});
  auto& transport = f.transport;
  auto& clock = f.clock;
  auto& view = f.view;
  auto r = repl::test::sample_repl();
  r.finalizer = true;
  r.spec.suspended = true;
  r.created = "2025-12-31T00:00:00Z";
  r.last_activity = "2025-12-31T12:00:00Z";
  transport->route("PATCH", kChildPaths[0], 200, deployment_reply(0));
  for (std::size_t i = 1; i < kChildPaths.size(); ++i)
    transport->route("PATCH", kChildPaths[i], 200, kServiceReply);
  transport->route("PATCH", kStatusPath, 200, kStatusReply);
  auto first = f.reconciler.reconcile(r, view);
  REQUIRE(first);
  REQUIRE(*first);
  CHECK(**first == std::chrono::hours(12) + std::chrono::seconds(1));

  SECTION("not while it still has a pod (stopping): the pod's end brings it back") {
    view.with_pods.insert(r.key);
    clock.advance(std::chrono::hours(13));
    for (std::size_t i = 0; i < kChildPaths.size(); ++i)
      transport->route("PATCH", kChildPaths[i], 200, kServiceReply);
    transport->route("PATCH", kStatusPath, 200, kStatusReply);
    const auto stopping = f.reconciler.reconcile(r, view);
    REQUIRE(stopping);
    CHECK_FALSE(*stopping);
    CHECK(transport->requests.back().method == "PATCH");  // no DELETE
  }
  SECTION("due: deleted") {
    clock.advance(std::chrono::hours(12) + std::chrono::seconds(1));
    for (std::size_t i = 0; i < kChildPaths.size(); ++i)
      transport->route("PATCH", kChildPaths[i], 200, kServiceReply);
    transport->route("PATCH", kStatusPath, 200, kStatusReply);
    transport->route("DELETE", "/apis/peetcode.com/v1alpha1" + kNs + "repls/abc123", 200, "{}");
    const auto expired = f.reconciler.reconcile(r, view);
    REQUIRE(expired);
    CHECK_FALSE(*expired);
    const auto& del = transport->requests.back();
    CHECK(del.method == "DELETE");
    CHECK_THAT(del.body, Catch::Contains(R"("uid":"6f1c2b4e-0d3a-4c55-9e8f-1a2b3c4d5e6f")"));
    CHECK(f.events.lines.back() ==
          "Normal Expired: suspended since 2025-12-31T12:00:00Z (ttlAfterSuspend 86400 s): deleted");
  }
}

TEST_CASE(
    "an unreadable idleTimeout, ttlAfterSuspend or syncIntervalSeconds is an InvalidSpec, and nothing "
    "is applied",
    "[operator][reconciler][lifecycle]") {
  Fixture f;
  std::string field = "spec.idleTimeout: ";
  SECTION("idleTimeout") { f.repl.spec.idle_timeout = "5 days"; }
  SECTION("ttlAfterSuspend") {
    f.repl.spec.ttl_after_suspend = "87601h";
    field = "spec.ttlAfterSuspend: ";
  }
  SECTION("syncIntervalSeconds") {
    f.repl.spec.sync_interval_seconds = GENERATE(-1, 86401);
    field = "spec.syncIntervalSeconds: ";
  }
  f.status_answer(200, kStatusReply);
  const auto r = f.reconcile();
  REQUIRE(r);
  CHECK_FALSE(*r);
  CHECK(f.paths() == Lines{kStatusPath});
  CHECK(string_at(f.written_status(), "/status/conditions/0/reason") == "InvalidSpec");
  CHECK_THAT(string_at(f.written_status(), "/status/conditions/0/message"), Catch::StartsWith(field));
}

TEST_CASE(
    "a Service another client deletes again and again is put back at once five times, then after waits that "
    "double; meanwhile the Repl is Contested",
    "[operator][reconciler][repairs]") {
  using namespace std::chrono_literals;
  Fixture f;
  f.cache_desired(kReady);
  f.status_from(observed(kReady));
  f.answer(1, 200, f.rendered(1));
  f.status_answer(200, kStatusReply);
  const auto service_applies = [&] {
    const Lines p = f.paths();
    return std::count(p.begin(), p.end(), kChildPaths[1]);
  };
  // Another client deletes the Service; one reconcile follows (the watch's event). The status the
  // reconcile wrote, if any, is what the next one reads.
  const auto deleted_then_reconciled = [&] {
    f.view.children.erase({"Service", {"team-a", "abc123"}});
    const std::size_t before = f.transport->requests.size();
    auto outcome = f.reconcile();
    REQUIRE(outcome);
    if (f.transport->requests.size() > before && f.paths().back() == kStatusPath)
      f.repl.status = repl::parse_repl(f.written_status())->status;
    f.cache_desired(kReady);  // what was applied is back in the cache
    return *outcome;
  };

  // The first put-back after a start is not known to be one (nothing of this run applied it yet).
  deleted_then_reconciled();
  CHECK(service_applies() == 1);
  for (int i = 1; i <= 5; ++i) deleted_then_reconciled();
  CHECK(service_applies() == 6);
  CHECK(f.reconciler.stats().repairs == 5);
  // The fifth repair within the quiet time makes the Repl Contested: one status write, one Event.
  REQUIRE(f.repl.status.contested);
  CHECK(f.repl.status.contested->status == "True");
  CHECK(f.repl.status.contested->reason == "RepairBackoff");
  CHECK_THAT(f.repl.status.contested->message,
             Catch::Contains("another client keeps changing or deleting Service abc123"));
  CHECK(f.repl.status.phase == "Ready");  // the runner itself is fine
  CHECK(std::count_if(f.events.lines.begin(), f.events.lines.end(),
                      [](const std::string& l) { return l.starts_with("Warning Contested:"); }) == 1);

  // From now on each repair waits twice as long as the one before: 1 s, 2 s, 4 s, ...
  for (const auto wait : {1s, 2s, 4s, 8s, 16s}) {
    const auto applies = service_applies();
    const auto writes = f.transport->requests.size();
    const auto revisit = deleted_then_reconciled();
    CHECK(f.transport->requests.size() == writes);  // held back: nothing sent, the status unchanged
    REQUIRE(revisit);
    CHECK(*revisit == wait);
    f.clock.advance(wait - 1ms);
    f.view.children.erase({"Service", {"team-a", "abc123"}});
    REQUIRE(f.reconcile());
    CHECK(service_applies() == applies);  // still too early
    f.clock.advance(1ms);
    REQUIRE(f.reconcile());
    CHECK(service_applies() == applies + 1);
    f.cache_desired(kReady);
  }
  CHECK(f.reconciler.stats().repairs_held >= 10);

  // No repair for the quiet time (10 min): the contest ends, and the condition goes.
  f.clock.advance(10min);
  REQUIRE(f.reconcile());
  CHECK(f.paths().back() == kStatusPath);
  CHECK_FALSE(repl::parse_repl(f.written_status())->status.contested);
}

TEST_CASE("an edit of the Repl reaches its children at once, even while the Repl is Contested",
          "[operator][reconciler][repairs]") {
  Fixture f;
  f.cache_desired(kReady);
  f.status_from(observed(kReady));
  std::string ready = f.rendered(0);  // with the status of a ready Deployment, as the server answers
  ready.insert(ready.rfind('}'), R"(,"status":{"observedGeneration":1,"readyReplicas":1})");
  f.answer(0, 200, ready);
  f.status_answer(200, kStatusReply);
  std::size_t before_last = 0;
  for (int i = 0; i < 7; ++i) {  // one first apply, then five repairs at once, then one held back
    f.cached("Deployment", "abc123").fingerprint ^= 1;
    before_last = f.transport->requests.size();
    REQUIRE(f.reconcile());
    if (f.transport->requests.size() > before_last && f.paths().back() == kStatusPath)
      f.repl.status = repl::parse_repl(f.written_status())->status;
    f.cache_desired(kReady);
  }
  REQUIRE(f.reconciler.stats().repairs_held == 1);
  // The held-back Deployment's state is still the cache's: the status stays Ready, unwritten.
  CHECK(f.transport->requests.size() == before_last);
  CHECK(f.repl.status.phase == "Ready");
  const auto writes = f.transport->requests.size();
  f.repl.spec.suspended = true;  // a new desired state: not a repair
  REQUIRE(f.reconcile());
  CHECK(f.transport->requests.size() > writes);
  CHECK(f.paths()[writes] == kChildPaths[0]);
}

TEST_CASE("an apply refused as invalid is not sent again while the child it goes to is unchanged",
          "[operator][reconciler]") {
  Fixture f;
  f.children_applied(1, 2);
  f.answer(2, 422, repl::test::status_json(422, "Invalid", "spec.rules[0].host: too long"));
  f.status_answer(200, kStatusReply);
  REQUIRE(f.reconcile());
  f.repl.status = repl::parse_repl(f.written_status())->status;
  f.cache_desired(kReady);
  f.view.children.erase({"Ingress", {"team-a", "abc123-ingress"}});  // it was never made
  const auto sent = f.transport->requests.size();
  // The status's own event brings the key back: the same apply would be refused the same way.
  REQUIRE(f.reconcile());
  CHECK(f.transport->requests.size() == sent);
  CHECK(f.repl.status.ready->reason == "ApplyFailed");
  CHECK(f.repl.status.ready->message == "Ingress abc123-ingress: spec.rules[0].host: too long");
  SECTION("an edit of the Repl reaches the Deployment; the Ingress it does not change stays unsent") {
    f.repl.spec.suspended = true;
    REQUIRE(f.reconcile());
    const Lines p = f.paths();
    const auto after = p.begin() + static_cast<std::ptrdiff_t>(sent);
    CHECK(std::count(after, p.end(), kChildPaths[0]) == 1);
    CHECK(std::count(after, p.end(), kChildPaths[2]) == 0);
  }
  SECTION("someone made an Ingress of that name meanwhile: sent") {
    f.view.children[{"Ingress", {"team-a", "abc123-ingress"}}] = repl::LiveChild{7, nullptr};
    REQUIRE(f.reconcile());
    CHECK(f.paths().at(sent) == kChildPaths[2]);
  }
  SECTION("the Repl was deleted and made again: its ledger went with it") {
    f.reconciler.forget(f.repl.key);
    REQUIRE(f.reconcile());
    CHECK(f.paths().at(sent) == kChildPaths[2]);
  }
}

TEST_CASE("an answer that does not hold what was applied (the server's own form) makes no repairs",
          "[operator][reconciler][repairs]") {
  Fixture f;
  f.cache_desired(kReady);
  f.status_from(observed(kReady));
  f.answer(1, 200, kServiceReply);  // not the rendered Service: as if the server rewrote a field
  for (int i = 0; i < 10; ++i) {
    f.cached("Service", "abc123").fingerprint ^= 1;
    REQUIRE(f.reconcile());
  }
  CHECK(f.reconciler.stats().repairs == 0);
  CHECK(f.reconciler.stats().repairs_held == 0);
  CHECK_FALSE(f.repl.status.contested);
}

TEST_CASE("a Repl made again under its name starts with no repairs of the old one",
          "[operator][reconciler][repairs]") {
  Fixture f;
  f.cache_desired(kReady);
  f.status_from(observed(kReady));
  f.answer(1, 200, f.rendered(1));
  f.status_answer(200, kStatusReply);
  for (int i = 0; i < 7; ++i) {
    f.view.children.erase({"Service", {"team-a", "abc123"}});
    REQUIRE(f.reconcile());
    f.cache_desired(kReady);
  }
  REQUIRE(f.reconciler.stats().repairs_held == 1);
  f.repl.uid = "another-uid";
  f.repl.status = {};
  f.view.children.erase({"Service", {"team-a", "abc123"}});
  f.children_applied(1, 1);  // the owner's uid is in every child: all are applied anew
  const auto sent = f.transport->requests.size();
  const auto outcome = f.reconcile();
  INFO((outcome ? std::string() : outcome.error().describe()));
  REQUIRE(outcome);
  const Lines p = f.paths();
  CHECK(std::count(p.begin() + static_cast<std::ptrdiff_t>(sent), p.end(), kChildPaths[1]) == 1);
  CHECK_FALSE(repl::parse_repl(f.written_status())->status.contested);
}
