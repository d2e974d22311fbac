// parse_repl: the fields reconcile needs, from the API server's JSON.
#include "repl/repl.hpp"

#include <catch2/catch.hpp>
#include <string>

#include "unit/support/json.hpp"

namespace {

const char* const kFullRepl = R"json({
  "apiVersion": "peetcode.com/v1alpha1",
  "kind": "Repl",
  "metadata": {
    "name": "abc123", "namespace": "team-a", "uid": "6f1c2b4e-0d3a-4c55-9e8f-1a2b3c4d5e6f",
    "generation": 4, "resourceVersion": "12345", "creationTimestamp": "2026-01-01T00:00:00Z",
    "deletionTimestamp": "2026-01-03T00:00:00Z", "finalizers": ["x", "peetcode.com/final-sync"],
    "labels": {"team": "a"},
    "annotations": {"peetcode.com/last-activity": "2026-01-02T00:00:00Z",
                    "peetcode.com/idle-suspended-at": "2026-01-02T00:30:00Z", "peetcode.com/force-delete": "true"},
    "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
  },
  "spec": {"userId": "user-42", "language": "python", "image": "runner:v2", "suspended": true,
           "idleTimeout": "1h", "ttlAfterSuspend": "168h", "syncIntervalSeconds": 5},
  "status": {
    "phase": "Ready", "observedGeneration": 3, "lastSyncTime": "2026-01-02T00:31:00Z",
    "urls": {"ide": "https://abc123.peetcode.com", "preview": "https://abc123.autogpt-cloud.com"},
    "conditions": [
      {"type": "Progressing", "status": "True", "reason": "Other"},
      {"type": "Ready", "status": "True", "reason": "DeploymentReady", "message": "the runner pod is ready",
       "observedGeneration": 3, "lastTransitionTime": "2026-01-02T03:04:05Z"},
      {"type": "Synced", "status": "False", "reason": "FinalSyncFailed", "message": "pod p: final sync failed"}
    ]
  }
})json";

repl::Repl parse_ok(const char* json) {
  const auto doc = repl::test::parse_json(json);
  auto r = repl::parse_repl(doc);
  INFO((r ? "" : r.error().message));
  REQUIRE(r);
  return std::move(*r);
}

std::string parse_error(const char* json) {
  const auto doc = repl::test::parse_json(json);
  auto r = repl::parse_repl(doc);
  REQUIRE_FALSE(r);
  return r.error().message;
}

}  // namespace

TEST_CASE("parse_repl reads a full Repl", "[repl]") {
  const repl::Repl r = parse_ok(kFullRepl);
  CHECK(r.key == repl::ObjectKey{"team-a", "abc123"});
  CHECK(r.uid == "6f1c2b4e-0d3a-4c55-9e8f-1a2b3c4d5e6f");
  CHECK(r.generation == 4);
  CHECK(r.deleting);
  CHECK(r.spec == repl::ReplSpec{"user-42", "python", "runner:v2", true, "1h", "168h", 5});
  CHECK(r.finalizer);
  CHECK(r.force_delete);
  CHECK(r.created == "2026-01-01T00:00:00Z");
  CHECK(r.last_activity == "2026-01-02T00:00:00Z");
  CHECK(r.idle_suspended_at == "2026-01-02T00:30:00Z");
  CHECK(r.status.last_sync_time == "2026-01-02T00:31:00Z");
  REQUIRE(r.status.synced);
  CHECK(*r.status.synced ==
        repl::Condition{"Synced", "False", "FinalSyncFailed", "pod p: final sync failed", 0, ""});
  CHECK(r.status.phase == "Ready");
  CHECK(r.status.observed_generation == 3);
  CHECK(r.status.ide_url == "https://abc123.peetcode.com");
  CHECK(r.status.preview_url == "https://abc123.autogpt-cloud.com");
  REQUIRE(r.status.ready);
  CHECK(*r.status.ready == repl::Condition{"Ready", "True", "DeploymentReady", "the runner pod is ready", 3,
                                           "2026-01-02T03:04:05Z"});
}

TEST_CASE("parse_repl of a minimal Repl leaves the rest empty", "[repl]") {
  const repl::Repl r = parse_ok(R"({"metadata":{"name":"abc"}})");
  CHECK(r.key == repl::ObjectKey{"", "abc"});
  CHECK(r.uid.empty());
  CHECK(r.generation == 0);
  CHECK_FALSE(r.deleting);
  CHECK(r.spec == repl::ReplSpec{});
  CHECK_FALSE(r.finalizer);
  CHECK_FALSE(r.force_delete);
  CHECK(r.last_activity.empty());
  CHECK(r.status == repl::ReplStatus{});
}

TEST_CASE("parse_repl ignores fields of the wrong type", "[repl]") {
  const repl::Repl r = parse_ok(
      R"({"metadata":{"name":"abc","namespace":7,"generation":"4"},
          "spec":{"userId":42,"suspended":"true","language":null},
          "status":{"phase":["Ready"],"urls":"x","conditions":{"type":"Ready"}}})");
  CHECK(r.key.ns.empty());
  CHECK(r.generation == 0);
  CHECK(r.spec == repl::ReplSpec{});
  CHECK(r.status == repl::ReplStatus{});
  CHECK(parse_ok(R"({"metadata":{"name":"a"},"spec":"text","status":5})").spec == repl::ReplSpec{});
}

TEST_CASE("parse_repl refuses objects without metadata or a name", "[repl]") {
  CHECK(parse_error("[]") == "Repl has no metadata");
  CHECK(parse_error("{}") == "Repl has no metadata");
  CHECK(parse_error(R"({"metadata":"abc"})") == "Repl has no metadata");
  CHECK(parse_error(R"({"metadata":{}})") == "Repl has no metadata.name");
  CHECK(parse_error(R"({"metadata":{"name":""}})") == "Repl has no metadata.name");
  CHECK(parse_error(R"({"metadata":{"name":5}})") == "Repl has no metadata.name");
}
