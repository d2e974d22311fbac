// Reconciler over a scripted API server: which requests one reconcile makes, what status it
// writes, and which failures it reports in the status rather than returning for a retry.
#include "reconciler.hpp"

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "unit/support/fake_transport.hpp"
#include "unit/support/json.hpp"
#include "unit/support/quiet_logs.hpp"
#include "unit/support/repl_fixtures.hpp"
#include "unit/support/status_json.hpp"

namespace {

using repl::kube::ApiError;
using repl::test::string_at;

const std::string kNs = "/namespaces/team-a/";
const std::vector<std::string> kChildPaths = {
    "/apis/apps/v1" + kNs + "deployments/abc123", "/api/v1" + kNs + "services/abc123",
    "/apis/networking.k8s.io/v1" + kNs + "ingresses/abc123-ingress"};
const std::string kStatusPath = "/apis/peetcode.com/v1alpha1" + kNs + "repls/abc123/status";

struct Fixture {
  repl::test::QuietLogs quiet;
  std::shared_ptr<repl::test::FakeTransport> transport = std::make_shared<repl::test::FakeTransport>();
  repl::kube::Client client{transport};
  repl::Reconciler reconciler{client, repl::ChildSettings{}, repl::test::repo_templates()};

  // Scripts successful applies of the three children, the Deployment reporting `ready` replicas.
  void children_applied(int ready) {
    transport->respond(200,
                       R"({"kind":"Deployment","status":{"readyReplicas":)" + std::to_string(ready) + "}}");
    transport->respond(200, R"({"kind":"Service"})");
    transport->respond(200, R"({"kind":"Ingress"})");
  }

  std::vector<std::string> paths() const {
    std::vector<std::string> out;
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

std::vector<std::string> with_status(std::vector<std::string> paths) {
  paths.push_back(kStatusPath);
  return paths;
}

}  // namespace

TEST_CASE("reconcile applies the children, then writes the status", "[operator][reconciler]") {
  Fixture f;
  f.children_applied(1);
  f.transport->respond(200, "{}");
  REQUIRE(f.reconciler.reconcile(repl::test::sample_repl()));
  CHECK(f.paths() == with_status(kChildPaths));
  for (const auto& r : f.transport->requests) {
    CHECK(r.method == "PATCH");
    CHECK(r.content_type == "application/apply-patch+yaml");
    CHECK(repl::test::query_params(r.target) == std::vector<std::pair<std::string, std::string>>{
                                                    {"fieldManager", "repl-operator"}, {"force", "true"}});
  }
  CHECK(string_at(repl::test::parse_json(f.transport->requests[0].body), "/kind") == "Deployment");
  const auto status = f.written_status();
  CHECK(string_at(status, "/status/phase") == "Ready");
  CHECK(string_at(status, "/status/urls/ide") == "https://abc123.peetcode.com");
  CHECK(string_at(status, "/status/conditions/0/reason") == "DeploymentReady");
}

TEST_CASE("a Deployment without ready replicas is Starting", "[operator][reconciler]") {
  Fixture f;
  f.children_applied(0);
  f.transport->respond(200, "{}");
  REQUIRE(f.reconciler.reconcile(repl::test::sample_repl()));
  CHECK(string_at(f.written_status(), "/status/phase") == "Starting");
}

TEST_CASE("an unchanged status is not written again", "[operator][reconciler]") {
  Fixture f;
  auto repl = repl::test::sample_repl();
  repl.status =
      repl::compute_status(repl, {std::nullopt, "", 1}, repl::urls_for(repl, {}), "2026-01-01T00:00:00Z");
  f.children_applied(1);
  REQUIRE(f.reconciler.reconcile(repl));
  CHECK(f.paths() == kChildPaths);
}

TEST_CASE("an invalid spec is reported in the status and nothing is applied", "[operator][reconciler]") {
  Fixture f;
  auto repl = repl::test::sample_repl();
  std::string field;
  SECTION("userId") {
    repl.spec.user_id = "-bad";
    field = "spec.userId: ";
  }
  SECTION("language") {
    repl.spec.language = "Py";
    field = "spec.language: ";
  }
  SECTION("image") {
    repl.spec.image = "a b";
    field = "spec.image: ";
  }
  SECTION("replId") {
    repl.key.name = "ABC";
    field = "metadata.name: ";
  }
  f.transport->respond(200, "{}");
  REQUIRE(f.reconciler.reconcile(repl));
  REQUIRE(f.transport->requests.size() == 1);
  const auto status = repl::test::parse_json(f.transport->requests[0].body);
  CHECK(string_at(status, "/status/phase") == "Failed");
  CHECK(string_at(status, "/status/conditions/0/reason") == "InvalidSpec");
  CHECK_THAT(string_at(status, "/status/conditions/0/message"), Catch::StartsWith(field));
}

TEST_CASE("an apply the server refuses is reported in the status, not retried", "[operator][reconciler]") {
  Fixture f;
  const int code = GENERATE(400, 422);
  f.transport->respond(200, R"({"kind":"Deployment"})");
  f.transport->respond(code, repl::test::status_json(code, "Invalid", "spec.ports: bad"));
  f.transport->respond(200, "{}");
  REQUIRE(f.reconciler.reconcile(repl::test::sample_repl()));
  CHECK(f.paths() == std::vector<std::string>{kChildPaths[0], kChildPaths[1], kStatusPath});
  const auto status = f.written_status();
  CHECK(string_at(status, "/status/phase") == "Failed");
  CHECK(string_at(status, "/status/conditions/0/reason") == "ApplyFailed");
  CHECK(string_at(status, "/status/conditions/0/message") == "Service abc123: spec.ports: bad");
}

TEST_CASE("a transient apply failure is returned for a retry, without a status", "[operator][reconciler]") {
  Fixture f;
  SECTION("server error") {
    f.transport->respond(500, repl::test::status_json(500, "InternalError", "etcd"));
  }
  SECTION("conflict") { f.transport->respond(409, repl::test::status_json(409, "Conflict", "modified")); }
  SECTION("forbidden: an RBAC rule an administrator can add") {
    f.transport->respond(403, repl::test::status_json(403, "Forbidden", "cannot patch services"));
  }
  SECTION("transport") { f.transport->fail(repl::kube::transport_error("connection refused")); }
  auto r = f.reconciler.reconcile(repl::test::sample_repl());
  REQUIRE_FALSE(r);
  CHECK_FALSE(repl::is_permanent(r.error()));
  CHECK(f.transport->requests.size() == 1);
}

TEST_CASE("writing the status of a Repl deleted meanwhile is not an error", "[operator][reconciler]") {
  Fixture f;
  f.children_applied(1);
  f.transport->respond(404, repl::test::status_json(404, "NotFound", "gone"));
  CHECK(f.reconciler.reconcile(repl::test::sample_repl()));
  SECTION("but other status failures are") {
    f.children_applied(1);
    f.transport->respond(503, "");
    auto r = f.reconciler.reconcile(repl::test::sample_repl());
    REQUIRE_FALSE(r);
    CHECK(r.error().code == 503);
  }
}

TEST_CASE("a Repl being deleted is left alone", "[operator][reconciler]") {
  Fixture f;
  auto repl = repl::test::sample_repl();
  repl.deleting = true;
  CHECK(f.reconciler.reconcile(repl));
  CHECK(f.transport->requests.empty());
}

TEST_CASE("is_permanent: only API answers saying the request itself is wrong", "[operator][reconciler]") {
  for (const int code : {400, 422}) CHECK(repl::is_permanent(repl::kube::decode_status(code, "")));
  for (const int code : {401, 403, 404, 409, 410, 429, 500, 503})
    CHECK_FALSE(repl::is_permanent(repl::kube::decode_status(code, "")));
  CHECK_FALSE(repl::is_permanent(ApiError{ApiError::Kind::kTransport, 422, "", ""}));
  CHECK_FALSE(repl::is_permanent(repl::kube::decode_error("x")));
}
