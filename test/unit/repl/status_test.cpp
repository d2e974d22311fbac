// A Repl's status from what reconcile observed, and the body that writes it.
#include "repl/status.hpp"

#include <catch2/catch.hpp>
#include <regex>
#include <string>

#include "kube/client.hpp"
#include "unit/support/json.hpp"
#include "unit/support/repl_fixtures.hpp"

namespace {

using repl::ChildObservation;
using repl::ReplStatus;

const repl::ReplUrls kUrls = {"https://abc123.peetcode.com", "https://abc123.autogpt-cloud.com"};
const std::string kEarlier = "2026-01-01T00:00:00Z";
const std::string kNow = "2026-01-02T03:04:05Z";

ChildObservation failed(const std::string& reason, const std::string& message) {
  ChildObservation seen;
  seen.failure_reason = reason;
  seen.failure_message = message;
  return seen;
}

// A Deployment that has seen its latest generation, with `n` ready replicas.
ChildObservation ready_replicas(std::int64_t n) {
  ChildObservation seen;
  seen.deployment = repl::DeploymentState{2, 2, n, std::nullopt};
  return seen;
}

ChildObservation with_problems(std::optional<repl::Problem> deployment_problem,
                               std::optional<repl::Problem> pod_problem) {
  ChildObservation seen = ready_replicas(0);
  seen.deployment->problem = std::move(deployment_problem);
  seen.pod_problem = std::move(pod_problem);
  return seen;
}

const repl::Problem kPullFailed{"ImagePullFailed", "container runner: ErrImagePull: not found"};
const repl::Problem kDeadline{"ProgressDeadlineExceeded",
                              "ReplicaSet \"abc123-5d8f\" has timed out progressing."};

void check_ready_condition(const ReplStatus& s, const std::string& status, const std::string& reason) {
  REQUIRE(s.ready);
  CHECK(s.ready->type == "Ready");
  CHECK(s.ready->status == status);
  CHECK(s.ready->reason == reason);
  CHECK_FALSE(s.ready->message.empty());
  CHECK(s.ready->observed_generation == 3);
}

}  // namespace

TEST_CASE("compute_status: phase and Ready condition", "[repl][status]") {
  auto repl = repl::test::sample_repl();
  SECTION("a failure wins over everything") {
    repl.spec.suspended = true;
    const auto s = repl::compute_status(
        repl,
        [] {
          auto seen = failed("ApplyFailed", "Deployment abc123: invalid");
          seen.deployment = ready_replicas(1).deployment;
          seen.pod_problem = kPullFailed;
          return seen;
        }(),
        kUrls, kNow);
    CHECK(s.phase == "Failed");
    check_ready_condition(s, "False", "ApplyFailed");
    CHECK(s.ready->message == "Deployment abc123: invalid");
  }
  SECTION("suspended once its pods are gone, even with the Deployment still counting one ready") {
    repl.spec.suspended = true;
    const auto s = repl::compute_status(repl, ready_replicas(1), kUrls, kNow);
    CHECK(s.phase == "Suspended");
    check_ready_condition(s, "False", "Suspended");
  }
  SECTION("suspended but a pod is still there (stopping, syncing): Stopping") {
    repl.spec.suspended = true;
    auto seen = ready_replicas(0);
    seen.pods = true;
    seen.pod_problem = kPullFailed;  // a stopping pod's problems do not matter any more
    const auto s = repl::compute_status(repl, seen, kUrls, kNow);
    CHECK(s.phase == "Stopping");
    check_ready_condition(s, "False", "Stopping");
    CHECK(s.ready->message ==
          "spec.suspended is true: the runner pod is stopping, after a final sync of its workspace to S3");
  }
  SECTION("ready when the Deployment has a ready replica") {
    const auto s = repl::compute_status(repl, ready_replicas(1), kUrls, kNow);
    CHECK(s.phase == "Ready");
    check_ready_condition(s, "True", "DeploymentReady");
  }
  SECTION("starting otherwise") {
    const auto s = repl::compute_status(repl, ready_replicas(0), kUrls, kNow);
    CHECK(s.phase == "Starting");
    check_ready_condition(s, "False", "DeploymentNotReady");
  }
  SECTION("starting before the Deployment was seen at all") {
    const auto s = repl::compute_status(repl, ChildObservation{}, kUrls, kNow);
    CHECK(s.phase == "Starting");
    check_ready_condition(s, "False", "DeploymentNotReady");
  }
}

TEST_CASE("compute_status: Ready needs the Deployment controller to have seen the latest generation",
          "[repl][status]") {
  const auto repl = repl::test::sample_repl();
  auto seen = ready_replicas(1);
  SECTION("an old ReplicaSet's pod is ready, the new spec not yet observed") {
    seen.deployment->generation = 3;
    seen.deployment->observed_generation = 2;
    CHECK(repl::compute_status(repl, seen, kUrls, kNow).phase == "Starting");
  }
  SECTION("observed") {
    seen.deployment->generation = 3;
    seen.deployment->observed_generation = 3;
    CHECK(repl::compute_status(repl, seen, kUrls, kNow).phase == "Ready");
  }
  SECTION("observed a newer one still counts") {
    seen.deployment->generation = 3;
    seen.deployment->observed_generation = 4;
    CHECK(repl::compute_status(repl, seen, kUrls, kNow).phase == "Ready");
  }
}

TEST_CASE("compute_status: problems of the Deployment and of its pods make the Repl Failed",
          "[repl][status]") {
  auto repl = repl::test::sample_repl();
  SECTION("a pod problem") {
    const auto s = repl::compute_status(repl, with_problems(std::nullopt, kPullFailed), kUrls, kNow);
    CHECK(s.phase == "Failed");
    check_ready_condition(s, "False", "ImagePullFailed");
    CHECK(s.ready->message == kPullFailed.message);
  }
  SECTION("a Deployment problem, which wins over a pod problem") {
    for (const auto& pod : {std::optional<repl::Problem>(), std::optional<repl::Problem>(kPullFailed)}) {
      const auto s = repl::compute_status(repl, with_problems(kDeadline, pod), kUrls, kNow);
      CHECK(s.phase == "Failed");
      check_ready_condition(s, "False", "ProgressDeadlineExceeded");
      CHECK(s.ready->message == kDeadline.message);
    }
  }
  SECTION("a pod problem without any Deployment seen") {
    ChildObservation seen;
    seen.pod_problem = kPullFailed;
    CHECK(repl::compute_status(repl, seen, kUrls, kNow).ready->reason == "ImagePullFailed");
  }
  SECTION("a failure to apply wins over both") {
    auto seen = with_problems(kDeadline, kPullFailed);
    seen.failure_reason = "ApplyFailed";
    seen.failure_message = "Service abc123: bad";
    const auto s = repl::compute_status(repl, seen, kUrls, kNow);
    CHECK(s.phase == "Failed");
    CHECK(s.ready->reason == "ApplyFailed");
    CHECK(s.ready->message == "Service abc123: bad");
  }
  SECTION("suspended wins over them") {
    repl.spec.suspended = true;
    const auto s = repl::compute_status(repl, with_problems(kDeadline, kPullFailed), kUrls, kNow);
    CHECK(s.phase == "Suspended");
    check_ready_condition(s, "False", "Suspended");
  }
}

TEST_CASE("compute_status reports the generation and the URLs", "[repl][status]") {
  const auto s = repl::compute_status(repl::test::sample_repl(), ready_replicas(1), kUrls, kNow);
  CHECK(s.observed_generation == 3);
  CHECK(s.ide_url == kUrls.ide);
  CHECK(s.preview_url == kUrls.preview);
}

TEST_CASE("lastTransitionTime changes only when the condition's status does", "[repl][status]") {
  auto repl = repl::test::sample_repl();
  SECTION("no previous condition: now") {
    CHECK(repl::compute_status(repl, ready_replicas(0), kUrls, kNow).ready->last_transition_time == kNow);
  }
  repl.status = repl::compute_status(repl, ready_replicas(0), kUrls, kEarlier);  // Starting, False
  SECTION("same status (False -> False, even with another reason): kept") {
    const auto s = repl::compute_status(repl, failed("RenderFailed", "x"), kUrls, kNow);
    CHECK(s.ready->reason == "RenderFailed");
    CHECK(s.ready->last_transition_time == kEarlier);
  }
  SECTION("status changes (False -> True): now") {
    CHECK(repl::compute_status(repl, ready_replicas(2), kUrls, kNow).ready->last_transition_time == kNow);
  }
  SECTION("an unchanged observation computes an equal status, so nothing is written") {
    CHECK(repl::compute_status(repl, ready_replicas(0), kUrls, kNow) == repl.status);
  }
}

TEST_CASE("compute_status: Synced and lastSyncTime come from a final sync seen, and are kept otherwise",
          "[repl][status]") {
  auto repl = repl::test::sample_repl();
  repl.spec.suspended = true;
  auto seen = ready_replicas(0);
  CHECK_FALSE(repl::compute_status(repl, seen, kUrls, kNow).synced);  // none before the first
  CHECK(repl::compute_status(repl, seen, kUrls, kNow).last_sync_time.empty());

  seen.final_sync =
      repl::FinalSync{true, "pod abc123-1: final sync: synced /workspace", "2026-01-02T03:04:00Z"};
  const auto ok = repl::compute_status(repl, seen, kUrls, kNow);
  CHECK(ok.phase == "Suspended");
  REQUIRE(ok.synced);
  CHECK(ok.synced->type == "Synced");
  CHECK(ok.synced->status == "True");
  CHECK(ok.synced->reason == "FinalSyncSucceeded");
  CHECK(ok.synced->message == "pod abc123-1: final sync: synced /workspace");
  CHECK(ok.synced->last_transition_time == kNow);
  CHECK(ok.last_sync_time == "2026-01-02T03:04:00Z");  // when the sidecar finished, not now

  repl.status = ok;
  SECTION("kept as they are when no new final sync is seen (the pod is long gone)") {
    const auto later = repl::compute_status(repl, ready_replicas(0), kUrls, "2026-01-03T00:00:00Z");
    CHECK(later.synced == ok.synced);
    CHECK(later.last_sync_time == ok.last_sync_time);
    CHECK(later == ok);
  }
  SECTION("a failed one: Synced False with the sidecar's line; lastSyncTime stays the last good one") {
    seen.final_sync =
        repl::FinalSync{false, "pod abc123-2: final sync failed: cannot sync: 503", "2026-01-03T00:00:00Z"};
    const auto bad = repl::compute_status(repl, seen, kUrls, "2026-01-03T00:00:01Z");
    REQUIRE(bad.synced);
    CHECK(bad.synced->status == "False");
    CHECK(bad.synced->reason == "FinalSyncFailed");
    CHECK(bad.synced->message == "pod abc123-2: final sync failed: cannot sync: 503");
    CHECK(bad.synced->last_transition_time == "2026-01-03T00:00:01Z");
    CHECK(bad.last_sync_time == "2026-01-02T03:04:00Z");
    CHECK(bad.phase == "Suspended");  // a suspend that could not sync still stops the pod
    CHECK(repl::final_sync_failed(repl, seen));
  }
  SECTION("final_sync_failed reads the Repl's own status when nothing newer was seen") {
    CHECK_FALSE(repl::final_sync_failed(repl, ChildObservation{}));
    repl.status.synced->status = "False";
    CHECK(repl::final_sync_failed(repl, ChildObservation{}));
  }
}

TEST_CASE("compute_status: a running pod's pushes set Synced, never Ready; lastSyncTime moves with changes",
          "[repl][status]") {
  auto repl = repl::test::sample_repl();
  auto seen = ready_replicas(1);
  seen.sync_report =
      repl::SyncReport{false, "sync-workspace: cannot sync: 503", "2026-01-02T03:04:00Z", false};
  const auto failing = repl::compute_status(repl, seen, kUrls, kNow);
  CHECK(failing.phase == "Ready");
  check_ready_condition(failing, "True", "DeploymentReady");
  REQUIRE(failing.synced);
  CHECK(failing.synced->status == "False");
  CHECK(failing.synced->reason == "SyncFailed");
  CHECK(failing.synced->message == "sync-workspace: cannot sync: 503");
  CHECK(failing.last_sync_time.empty());
  repl.status = failing;
  seen.sync_report = repl::SyncReport{true, "sync-workspace: synced 2 changes", "2026-01-02T03:05:00Z", true};
  const auto ok = repl::compute_status(repl, seen, kUrls, kNow);
  CHECK(ok.synced->status == "True");
  CHECK(ok.synced->reason == "Synced");
  CHECK(ok.last_sync_time == "2026-01-02T03:05:00Z");
  repl.status = ok;
  seen.sync_report =
      repl::SyncReport{true, "sync-workspace: synced 0 changes", "2026-01-02T03:06:00Z", false};
  CHECK(repl::compute_status(repl, seen, kUrls, kNow).last_sync_time == "2026-01-02T03:05:00Z");
}

TEST_CASE("status_apply_body names the Repl and carries the whole status", "[repl][status]") {
  const auto repl = repl::test::sample_repl();
  const auto status = repl::compute_status(repl, ready_replicas(1), kUrls, kNow);
  const auto body = repl::status_apply_body(repl, status);
  CHECK(
      repl::kube::to_json(body) ==
      R"({"apiVersion":"peetcode.com/v1alpha1","kind":"Repl","metadata":{"name":"abc123","namespace":"team-a"},)"
      R"("status":{"phase":"Ready","observedGeneration":3,"urls":{"ide":"https://abc123.peetcode.com",)"
      R"("preview":"https://abc123.autogpt-cloud.com"},"conditions":[{"type":"Ready","status":"True",)"
      R"("reason":"DeploymentReady","message":"the runner pod is ready","observedGeneration":3,)"
      R"("lastTransitionTime":"2026-01-02T03:04:05Z"}]}})");
  CHECK_FALSE(repl::test::has(body, "/spec"));  // the status subresource only

  SECTION("read back by parse_repl it is the same status") {
    auto parsed = repl::parse_repl(body);
    REQUIRE(parsed);
    CHECK(parsed->status == status);
  }
  SECTION("with a final sync: lastSyncTime, and Synced after Ready; read back the same") {
    auto suspended = repl;
    suspended.spec.suspended = true;
    auto seen = ready_replicas(0);
    seen.final_sync = repl::FinalSync{true, "pod p: final sync: synced", "2026-01-02T03:04:00Z"};
    const auto synced = repl::compute_status(suspended, seen, kUrls, kNow);
    const auto written = repl::status_apply_body(suspended, synced);
    CHECK(repl::test::string_at(written, "/status/lastSyncTime") == "2026-01-02T03:04:00Z");
    CHECK(repl::test::string_at(written, "/status/conditions/1/type") == "Synced");
    CHECK(repl::test::string_at(written, "/status/conditions/1/reason") == "FinalSyncSucceeded");
    auto parsed = repl::parse_repl(written);
    REQUIRE(parsed);
    CHECK(parsed->status == synced);
  }
  SECTION("without a condition the list is empty") {
    ReplStatus bare = status;
    bare.ready.reset();
    CHECK(repl::test::at(repl::status_apply_body(repl, bare), "/status/conditions").GetArray().Empty());
  }
}
