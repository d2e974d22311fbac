// What the operator reads from live children: a Deployment's state, a runner pod's problem, and
// which Repl an object belongs to. Objects are trimmed to the fields that matter, as the API
// server would send them.
#include "repl/observed.hpp"

#include <catch2/catch.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/time.hpp"
#include "unit/support/json.hpp"
#include "unit/support/object_key.hpp"

namespace {

using repl::DeploymentState;
using repl::ObjectKey;
using repl::Problem;

DeploymentState deployment(const std::string& status) {
  return repl::deployment_state(
      repl::test::parse_json(R"({"metadata":{"name":"abc123","generation":4},"status":)" + status + "}"));
}

// `s` as a JSON string literal (quotes and backslashes escaped, as the API server sends them).
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string condition(const std::string& type, const std::string& status, const std::string& reason = "",
                      const std::string& message = "") {
  return R"({"type":")" + type + R"(","status":")" + status + R"(","reason":)" + quoted(reason) +
         R"(,"message":)" + quoted(message) + "}";
}

// A runner pod with the given status members (JSON text without the braces).
std::optional<Problem> problem_of(const std::string& status_members) {
  return repl::pod_problem(repl::test::parse_json(
      R"({"metadata":{"name":"abc123-5d8f-x","namespace":"team-a"},"status":{"phase":"Pending",)" +
      status_members + "}}"));
}

// A container status named `name` with the given state members (JSON text).
std::string container(const std::string& name, const std::string& state,
                      const std::string& last_state = "{}") {
  return R"({"name":")" + name + R"(","ready":false,"restartCount":3,"state":)" + state + R"(,"lastState":)" +
         last_state + "}";
}
std::string waiting(const std::string& reason, const std::string& message = "") {
  return R"({"waiting":{"reason":)" + quoted(reason) + R"(,"message":)" + quoted(message) + "}}";
}
std::string terminated(int code, const std::string& reason, const std::string& message = "") {
  return R"({"terminated":{"exitCode":)" + std::to_string(code) + R"(,"reason":)" + quoted(reason) +
         R"(,"message":)" + quoted(message) + "}}";
}
const std::string kRunning = R"({"running":{"startedAt":"2026-01-01T00:00:00Z"}})";

std::string init_statuses(const std::string& list) { return R"("initContainerStatuses":[)" + list + "]"; }
std::string main_statuses(const std::string& list) { return R"("containerStatuses":[)" + list + "]"; }

std::optional<ObjectKey> owner_of(const std::string& owner_references) {
  return repl::controlling_repl(repl::test::parse_json(
      R"({"metadata":{"name":"abc123-ingress","namespace":"team-a","ownerReferences":)" + owner_references +
      "}}"));
}

}  // namespace

TEST_CASE("deployment_state reads generations and ready replicas", "[repl][observed]") {
  const auto s = deployment(R"({"observedGeneration":3,"replicas":1,"readyReplicas":1})");
  CHECK(s.generation == 4);
  CHECK(s.observed_generation == 3);
  CHECK(s.ready_replicas == 1);
  CHECK_FALSE(s.problem);
  SECTION("no status yet: all zero") {
    const auto fresh = repl::deployment_state(repl::test::parse_json(R"({"metadata":{"generation":1}})"));
    CHECK(fresh == DeploymentState{1, 0, 0, std::nullopt});
  }
  SECTION("readyReplicas absent (none ready)") {
    CHECK(deployment(R"({"observedGeneration":4,"replicas":1})").ready_replicas == 0);
  }
}

TEST_CASE("deployment_state reports the Deployment controller's verdicts", "[repl][observed]") {
  const std::string quota = "pods \"abc123-x\" is forbidden: exceeded quota";
  SECTION("ReplicaFailure True") {
    const auto s =
        deployment(R"({"conditions":[)" + condition("ReplicaFailure", "True", "FailedCreate", quota) + "]}");
    CHECK(s.problem == Problem{"ReplicaFailure", quota});
  }
  SECTION("Progressing False: the deadline passed") {
    const auto s = deployment(R"({"conditions":[)" +
                              condition("Available", "False", "MinimumReplicasUnavailable") + "," +
                              condition("Progressing", "False", "ProgressDeadlineExceeded",
                                        "ReplicaSet \"abc123-5d8f\" has timed out progressing.") +
                              "]}");
    CHECK(s.problem ==
          Problem{"ProgressDeadlineExceeded", "ReplicaSet \"abc123-5d8f\" has timed out progressing."});
  }
  SECTION("Progressing False without a reason") {
    CHECK(deployment(R"({"conditions":[)" + condition("Progressing", "False") + "]}").problem->reason ==
          "NotProgressing");
  }
  SECTION("ReplicaFailure wins over Progressing") {
    const auto s =
        deployment(R"({"conditions":[)" + condition("Progressing", "False", "ProgressDeadlineExceeded") +
                   "," + condition("ReplicaFailure", "True", "FailedCreate", quota) + "]}");
    CHECK(s.problem->reason == "ReplicaFailure");
  }
  SECTION("healthy conditions are no problem") {
    const auto s = deployment(R"({"conditions":[)" + condition("ReplicaFailure", "False") + "," +
                              condition("Progressing", "True", "NewReplicaSetAvailable") + "," +
                              condition("Available", "False", "MinimumReplicasUnavailable") + "]}");
    CHECK_FALSE(s.problem);
  }
}

TEST_CASE("pod_problem: an unschedulable pod", "[repl][observed]") {
  const std::string msg = "0/3 nodes are available: 3 Insufficient memory.";
  const auto p =
      problem_of(R"("conditions":[)" + condition("PodScheduled", "False", "Unschedulable", msg) + "]");
  CHECK(p == Problem{"Unschedulable", msg});
  CHECK_FALSE(problem_of(R"("conditions":[)" + condition("PodScheduled", "True") + "]"));
  CHECK_FALSE(problem_of(R"("conditions":[)" + condition("PodScheduled", "False", "SchedulingGated") + "]"));
}

TEST_CASE("pod_problem: image pulls that fail, in init and main containers", "[repl][observed]") {
  const std::string reason = GENERATE("ErrImagePull", "ImagePullBackOff", "InvalidImageName");
  const std::string msg = "Back-off pulling image \"nope:1\"";
  SECTION("the runner") {
    const auto p = problem_of(init_statuses(container("copy-s3-resources", terminated(0, "Completed"))) +
                              "," + main_statuses(container("runner", waiting(reason, msg))));
    CHECK(p == Problem{"ImagePullFailed", "container runner: " + reason + ": " + msg});
  }
  SECTION("the init container") {
    const auto p = problem_of(init_statuses(container("copy-s3-resources", waiting(reason, msg))) + "," +
                              main_statuses(container("runner", waiting("PodInitializing"))));
    CHECK(p == Problem{"ImagePullFailed", "container copy-s3-resources: " + reason + ": " + msg});
  }
  SECTION("without a message") {
    CHECK(problem_of(main_statuses(container("runner", waiting(reason))))->message ==
          "container runner: " + reason);
  }
}

TEST_CASE("pod_problem: the S3 copy init container failing", "[repl][observed]") {
  SECTION("terminated now") {
    const auto p =
        problem_of(init_statuses(container("copy-s3-resources", terminated(1, "Error", "NoSuchBucket"))));
    CHECK(p == Problem{"InitContainerFailed",
                       "init container copy-s3-resources exited with code 1: NoSuchBucket"});
  }
  SECTION("in back-off after terminating") {
    const auto p = problem_of(
        init_statuses(container("copy-s3-resources", waiting("CrashLoopBackOff"), terminated(1, "Error"))));
    CHECK(p == Problem{"InitContainerFailed", "init container copy-s3-resources exited with code 1"});
  }
  SECTION("completed is fine") {
    CHECK_FALSE(problem_of(init_statuses(container("copy-s3-resources", terminated(0, "Completed")))));
  }
}

TEST_CASE("pod_problem: a runner in a crash loop", "[repl][observed]") {
  const auto p = problem_of(main_statuses(
      container("runner", waiting("CrashLoopBackOff", "back-off 40s"), terminated(137, "OOMKilled"))));
  CHECK(p == Problem{"CrashLoopBackOff", "container runner keeps exiting (last exit code 137)"});
  CHECK(problem_of(main_statuses(container("runner", waiting("CrashLoopBackOff"))))->message ==
        "container runner keeps exiting");
}

TEST_CASE("pod_problem: a container that cannot be created", "[repl][observed]") {
  const std::string reason = GENERATE("CreateContainerConfigError", "CreateContainerError");
  const auto p = problem_of(init_statuses(
      container("copy-s3-resources", waiting(reason, R"(secret "aws-credentials" not found)"))));
  CHECK(p == Problem{reason, R"(container copy-s3-resources: secret "aws-credentials" not found)"});
}

TEST_CASE("pod_problem: a pod that is merely starting or running has none", "[repl][observed]") {
  SECTION("no status") { CHECK_FALSE(repl::pod_problem(repl::test::parse_json(R"({"metadata":{}})"))); }
  SECTION("scheduled, nothing started") {
    CHECK_FALSE(problem_of(R"("conditions":[)" + condition("PodScheduled", "True") + "]"));
  }
  SECTION("init container running") {
    CHECK_FALSE(problem_of(init_statuses(container("copy-s3-resources", kRunning)) + "," +
                           main_statuses(container("runner", waiting("PodInitializing")))));
  }
  SECTION("ContainerCreating") {
    CHECK_FALSE(problem_of(init_statuses(container("copy-s3-resources", terminated(0, "Completed"))) + "," +
                           main_statuses(container("runner", waiting("ContainerCreating")))));
  }
  SECTION("Running, after a restart") {
    CHECK_FALSE(problem_of(init_statuses(container("copy-s3-resources", terminated(0, "Completed"))) + "," +
                           main_statuses(container("runner", kRunning, terminated(137, "OOMKilled")))));
  }
}

TEST_CASE("pod_problem: the first problem wins, init containers before the runner", "[repl][observed]") {
  const std::string both = init_statuses(container("copy-s3-resources", terminated(1, "Error"))) + "," +
                           main_statuses(container("runner", waiting("ErrImagePull")));
  CHECK(problem_of(both)->reason == "InitContainerFailed");
  const std::string unschedulable =
      R"("conditions":[)" + condition("PodScheduled", "False", "Unschedulable", "no nodes") + "],";
  CHECK(problem_of(unschedulable + both)->reason == "Unschedulable");
}

TEST_CASE("controlling_repl: the controller ownerReference of kind Repl", "[repl][observed]") {
  const std::string repl_owner =
      R"({"apiVersion":"peetcode.com/v1alpha1","kind":"Repl","name":"abc123","uid":"u1","controller":true})";
  CHECK(owner_of("[" + repl_owner + "]") == ObjectKey{"team-a", "abc123"});
  CHECK(owner_of(R"([{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs","controller":false},)" +
                 repl_owner + "]") == ObjectKey{"team-a", "abc123"});
  CHECK(owner_of(R"([{"apiVersion":"peetcode.com/v2","kind":"Repl","name":"abc123","controller":true}])") ==
        ObjectKey{"team-a", "abc123"});  // any version of our group

  CHECK_FALSE(owner_of(R"([{"apiVersion":"peetcode.com/v1alpha1","kind":"Repl","name":"abc123"}])"));
  CHECK_FALSE(owner_of(
      R"([{"apiVersion":"peetcode.com/v1alpha1","kind":"Repl","name":"abc123","controller":false}])"));
  CHECK_FALSE(owner_of(
      R"([{"apiVersion":"peetcode.com/v1alpha1","kind":"Repl","name":"abc123","controller":"true"}])"));
  CHECK_FALSE(
      owner_of(R"([{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"abc123","controller":true}])"));
  CHECK_FALSE(owner_of(R"([{"apiVersion":"other.io/v1","kind":"Repl","name":"abc123","controller":true}])"));
  CHECK_FALSE(
      owner_of(R"([{"apiVersion":"peetcode.com.evil/v1","kind":"Repl","name":"x","controller":true}])"));
  CHECK_FALSE(owner_of("[]"));
  CHECK_FALSE(owner_of("{}"));
  CHECK_FALSE(repl::controlling_repl(repl::test::parse_json(R"({"metadata":{"name":"x"}})")));
}

TEST_CASE("labelled_repl: the peetcode.com/repl label", "[repl][observed]") {
  const auto pod = [](const std::string& labels) {
    return repl::labelled_repl(repl::test::parse_json(
        R"({"metadata":{"name":"abc123-5d8f-x","namespace":"team-a","labels":)" + labels + "}}"));
  };
  CHECK(pod(R"({"peetcode.com/repl":"abc123","pod-template-hash":"5d8f"})") == ObjectKey{"team-a", "abc123"});
  CHECK_FALSE(pod(R"({"app":"abc123"})"));
  CHECK_FALSE(pod(R"({"peetcode.com/repl":""})"));
  CHECK_FALSE(pod("{}"));
  CHECK_FALSE(repl::labelled_repl(repl::test::parse_json(R"({"metadata":{"name":"x"}})")));
}

namespace {

std::optional<repl::PodState> state_of(const std::string& status_members) {
  return repl::pod_state(repl::test::parse_json(
      R"({"metadata":{"name":"abc123-5d8f-x","namespace":"team-a","uid":"u-1","labels":{"peetcode.com/repl":"abc123"}},)"
      R"("status":{"phase":"Pending",)" +
      status_members + "}}"));
}

std::optional<repl::PullFailure> event(const std::string& kind, const std::string& reason,
                                       const std::string& message,
                                       const std::string& field_path = "spec.containers{runner}") {
  return repl::pull_failure(repl::test::parse_json(
      R"({"metadata":{"name":"abc123-5d8f-x.1","namespace":"team-a"},"involvedObject":{"kind":)" +
      quoted(kind) + R"(,"namespace":"team-a","name":"abc123-5d8f-x","uid":"u-1","fieldPath":)" +
      quoted(field_path) + R"(},"reason":)" + quoted(reason) + R"(,"message":)" + quoted(message) +
      R"(,"type":"Warning"})"));
}

}  // namespace

TEST_CASE("pod_state: the Repl, the uid, the problem, and the containers that have not started",
          "[repl][observed]") {
  using Names = std::vector<std::string>;
  const auto pulling = state_of(init_statuses(container("copy-s3-resources", terminated(0, "Completed"))) +
                                "," + main_statuses(container("runner", waiting("PodInitializing"))));
  REQUIRE(pulling);
  CHECK(pulling->repl == ObjectKey{"team-a", "abc123"});
  CHECK(pulling->uid == "u-1");
  CHECK_FALSE(pulling->problem);
  CHECK(pulling->not_started == Names{"runner"});  // the init container ran

  const auto running = state_of(main_statuses(container("runner", kRunning)));
  REQUIRE(running);
  CHECK(running->not_started.empty());

  const auto crashed =
      state_of(main_statuses(container("runner", waiting("CrashLoopBackOff"), terminated(3, "Error"))));
  REQUIRE(crashed);
  CHECK(crashed->not_started.empty());  // it ran before
  CHECK(crashed->problem->reason == "CrashLoopBackOff");

  CHECK_FALSE(repl::pod_state(repl::test::parse_json(R"({"metadata":{"name":"x","namespace":"a"}})")));
}

TEST_CASE("pull_failure: the kubelet's Event that an image could not be pulled, and no other",
          "[repl][observed]") {
  const std::string pull =
      R"(Failed to pull image "localhost/repl:nope": failed to resolve reference "localhost/repl:nope": not found)";
  const auto f = event("Pod", "Failed", pull);
  REQUIRE(f);
  CHECK(f->pod == ObjectKey{"team-a", "abc123-5d8f-x"});
  CHECK(f->pod_uid == "u-1");
  CHECK(f->container == "runner");
  CHECK(f->problem == Problem{"ImagePullFailed", "container runner: " + pull});
  CHECK(event("Pod", "Failed", pull, "spec.initContainers{copy-s3-resources}")->problem.message ==
        "container copy-s3-resources: " + pull);
  CHECK_FALSE(event("Pod", "Failed", pull, ""));  // about no container: nothing to match it with

  CHECK_FALSE(event("Pod", "Failed", "Error: ErrImagePull"));  // the status says that one
  CHECK_FALSE(event("Pod", "BackOff", "Back-off pulling image \"x\""));
  CHECK_FALSE(event("Node", "Failed", pull));
  CHECK_FALSE(event("Pod", "FailedScheduling", "0/1 nodes are available"));
  CHECK_FALSE(repl::pull_failure(repl::test::parse_json("{}")));
}

namespace {

// A runner pod of the template's shape (the restore, then the sync sidecar), `deleting` or not.
std::string sidecar_pod(bool deleting, const std::string& status_members) {
  return R"({"metadata":{"name":"abc123-5d8f-x","namespace":"team-a","uid":"u-1",)" +
         std::string(deleting
                         ? R"("deletionTimestamp":"2026-01-01T00:01:00Z","deletionGracePeriodSeconds":60,)"
                         : "") +
         R"("labels":{"peetcode.com/repl":"abc123"}},)"
         R"("spec":{"initContainers":[{"name":"copy-s3-resources"},{"name":"sync-workspace","restartPolicy":"Always"}],)"
         R"("containers":[{"name":"runner"}]},"status":{"phase":"Running",)" +
         status_members + "}}";
}
std::string ended(int code, const std::string& message) {
  return R"({"terminated":{"exitCode":)" + std::to_string(code) + R"(,"reason":"Completed","message":)" +
         quoted(message) + R"(,"finishedAt":"2026-01-01T00:01:07Z"}})";
}

}  // namespace

TEST_CASE("pod_state: a stopping pod's final sync is its sync sidecar's end", "[repl][observed]") {
  const auto restored = container("copy-s3-resources", terminated(0, "Completed"));
  const auto state = [&](bool deleting, const std::string& sync_state) {
    auto s = repl::pod_state(repl::test::parse_json(
        sidecar_pod(deleting, init_statuses(restored + "," + container("sync-workspace", sync_state)))));
    REQUIRE(s);
    return *s;
  };
  SECTION("running, or not stopping: none") {
    CHECK_FALSE(state(false, kRunning).final_sync);
    CHECK_FALSE(state(true, kRunning).final_sync);
    CHECK(state(true, kRunning).terminating);
    CHECK_FALSE(state(false, kRunning).terminating);
  }
  SECTION("ended with 0: succeeded, with its line and time, named by the pod") {
    const auto s = state(true, ended(0, "final sync: synced /workspace to s3://b/code/abc123/"));
    // 67 s from the stop (the deletion's time less its grace period) to the sidecar's end.
    CHECK(s.final_sync ==
          repl::FinalSync{true, "pod abc123-5d8f-x: final sync: synced /workspace to s3://b/code/abc123/",
                          "2026-01-01T00:01:07Z", 67});
    CHECK_FALSE(s.problem);
  }
  SECTION("ended otherwise: failed, with its line") {
    const auto s = state(true, ended(1, "final sync failed: cannot sync /workspace: 503"));
    REQUIRE(s.final_sync);
    CHECK_FALSE(s.final_sync->ok);
    CHECK(s.final_sync->message == "pod abc123-5d8f-x: final sync failed: cannot sync /workspace: 503");
    CHECK_FALSE(s.problem);  // a stopping pod's ends are not a problem to report
  }
  SECTION("killed before it wrote its line (the grace period ran out)") {
    const auto s = state(true, ended(137, ""));
    REQUIRE(s.final_sync);
    CHECK_FALSE(s.final_sync->ok);
    CHECK(s.final_sync->message ==
          "pod abc123-5d8f-x: sync-workspace exited with code 137 before its final sync finished");
  }
  SECTION("a running pod's sidecar that crashed is a crash loop, not a failed init container") {
    const auto s = state(false, kRunning);
    CHECK_FALSE(s.problem);
    const auto crashed = repl::pod_state(repl::test::parse_json(sidecar_pod(
        false,
        init_statuses(restored + "," +
                      container("sync-workspace", waiting("CrashLoopBackOff"), terminated(1, "Error"))))));
    REQUIRE(crashed);
    CHECK(crashed->problem ==
          Problem{"CrashLoopBackOff", "container sync-workspace keeps exiting (last exit code 1)"});
    const auto restarted = repl::pod_state(repl::test::parse_json(sidecar_pod(
        false,
        init_statuses(restored + "," + container("sync-workspace", kRunning, terminated(1, "Error"))))));
    REQUIRE(restarted);
    CHECK_FALSE(restarted->problem);
  }
}

TEST_CASE("parse_sync_log: the sidecar's last push line says how its last push went", "[repl][observed]") {
  const std::string t = "2026-01-01T00:02:03.123456789Z ";
  const auto synced = repl::parse_sync_log(
      "2026-01-01T00:01:00.5Z sync-workspace: cannot sync /workspace to s3://b/code/a/: 503\n" + t +
      "sync-workspace: synced 3 changes of /workspace to s3://b/code/a/\n");
  CHECK(synced == repl::SyncReport{true, "sync-workspace: synced 3 changes of /workspace to s3://b/code/a/",
                                   "2026-01-01T00:02:03Z", true});
  const auto recovered =
      repl::parse_sync_log(t + "sync-workspace: synced 0 changes of /workspace to s3://b/");
  REQUIRE(recovered);
  CHECK(recovered->ok);
  CHECK_FALSE(recovered->changed);
  const auto failed = repl::parse_sync_log(
      t + "sync-workspace: cannot sync /workspace to s3://b/code/a/: An error occurred (NoSuchBucket)\n");
  REQUIRE(failed);
  CHECK_FALSE(failed->ok);
  CHECK(failed->message ==
        "sync-workspace: cannot sync /workspace to s3://b/code/a/: An error occurred (NoSuchBucket)");
  const auto empty =
      repl::parse_sync_log(t + "sync-workspace: /workspace is empty: not synced, s3://b/ left as it was");
  REQUIRE(empty);
  CHECK(empty->ok);
  CHECK_FALSE(empty->changed);
  for (const std::string& bad : {std::string(""), std::string("\n"), t + "runner: hello",
                                 std::string("no-time sync-workspace: synced 1 changes"),
                                 t + "sync-workspace: /workspace was never restored: refusing to sync it"}) {
    INFO(bad);
    CHECK_FALSE(repl::parse_sync_log(bad));
  }
  // Other lines after it (activity, the restore's) do not hide it.
  const auto behind =
      repl::parse_sync_log(t + "sync-workspace: cannot sync /workspace to s3://b/: 403\r\n" +
                           "2026-01-01T00:03:00Z sync-workspace: active: 1 IDE connections\n" +
                           "2026-01-01T00:03:01Z runner: hi\n");
  REQUIRE(behind);
  CHECK_FALSE(behind->ok);
  CHECK(behind->message == "sync-workspace: cannot sync /workspace to s3://b/: 403");
}

TEST_CASE("parse_activity_log: when the sidecar last saw live IDE connections", "[repl][observed]") {
  const auto at = repl::parse_activity_log(
      "2026-01-01T00:01:00Z sync-workspace: active: 2 IDE connections\n"
      "2026-01-01T00:02:00.25Z sync-workspace: active: 1 IDE connections\n"
      "2026-01-01T00:02:30Z sync-workspace: synced 1 changes of /workspace to s3://b/\n");
  REQUIRE(at);
  CHECK(*at == *repl::parse_rfc3339("2026-01-01T00:02:00.25Z"));
  for (const std::string& none :
       {std::string(""), std::string("2026-01-01T00:01:00Z sync-workspace: synced 1 changes"),
        std::string("2026-01-01T00:01:00Z runner: active: 1 IDE connections"),
        std::string("garbage sync-workspace: active: 1 IDE connections")}) {
    INFO(none);
    CHECK_FALSE(repl::parse_activity_log(none));
  }
}

TEST_CASE("pod_state: a running pod whose sync sidecar runs is syncing; a stopping one is not",
          "[repl][observed]") {
  const auto restored = container("copy-s3-resources", terminated(0, "Completed"));
  const auto state = [&](bool deleting, const std::string& sync_state) {
    return repl::pod_state(repl::test::parse_json(
        sidecar_pod(deleting, init_statuses(restored + "," + container("sync-workspace", sync_state)))));
  };
  CHECK(state(false, kRunning)->syncing);
  CHECK_FALSE(state(true, kRunning)->syncing);
  CHECK_FALSE(state(false, waiting("PodInitializing"))->syncing);
}
