// What the operator reads from live children: the few fields status and reconcile need, parsed
// from API objects into small values (the caches keep these, not the objects).
//
// Pure functions; thread-safe.
#pragma once

#include <rapidjson/document.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.hpp"
#include "common/object_key.hpp"

namespace repl {

// Something wrong that the Repl's user must see, with a CamelCase reason and a message.
struct Problem {
  std::string reason;
  std::string message;
  bool operator==(const Problem&) const = default;
};

struct DeploymentState {
  std::int64_t generation = 0;
  std::int64_t observed_generation = 0;
  std::int64_t ready_replicas = 0;
  // The controller's own verdicts: ReplicaFailure=True, or Progressing=False (deadline exceeded).
  std::optional<Problem> problem;
  bool operator==(const DeploymentState&) const = default;
};

DeploymentState deployment_state(const rapidjson::Value& deployment);

// Why a runner pod cannot become ready, if it is for a reason the user must act on or wait for:
// unschedulable, image pull failures, the S3 copy init container failing, a crash loop, a missing
// Secret or ConfigMap. std::nullopt while it is merely starting (or fine), and once it is stopping.
// A sidecar (an init container with restartPolicy Always) counts as a container, not an init one.
std::optional<Problem> pod_problem(const rapidjson::Value& pod);

// The runner pod's sync sidecar (templates/deployment.yaml), by the name the operator knows it by:
// a stopping pod's final sync of the workspace to S3 is its termination message.
inline constexpr const char* kSyncContainer = "sync-workspace";

// How a stopping pod's final sync ended: the sidecar's exit code and its one line, as the kubelet
// recorded them (each container's termination message is its own: the runner cannot forge it).
struct FinalSync {
  bool ok = false;
  std::string message;      // "pod <name>: <the sidecar's line>"
  std::string finished_at;  // RFC 3339
  double seconds = -1;      // from the pod's deletion to the sidecar's end (-1: unknown)
  bool operator==(const FinalSync&) const = default;
};

// How a running pod's last push went, from the last line of its sync sidecar's log (read with
// timestamps): the sidecar writes a line for each push that changed something, for each failure, and
// for the first success after one.
struct SyncReport {
  bool ok = false;
  std::string message;   // the line, without the kubelet's timestamp
  std::string at;        // RFC 3339 (whole seconds): when the line was written
  bool changed = false;  // ok, and something was written to S3
  bool operator==(const SyncReport&) const = default;
};

// The newest push line of a tail of the sidecar's log (kubelet timestamps on); std::nullopt when
// the tail holds none (nothing pushed yet, or only other lines).
std::optional<SyncReport> parse_sync_log(std::string_view log);

// When the newest "active: N IDE connections" line of such a tail was written (the sidecar saw
// the runner's websocket port in use); std::nullopt when it holds none.
std::optional<WallTime> parse_activity_log(std::string_view log);

// What the operator keeps of one runner pod.
struct PodState {
  ObjectKey repl;  // by its label
  std::string uid;
  std::optional<Problem> problem;  // pod_problem()
  // Containers (init or not) that have never started: still waiting, e.g. for their image.
  std::vector<std::string> not_started;
  bool terminating = false;  // metadata.deletionTimestamp is set
  bool syncing = false;      // its sync sidecar runs (and the pod is not stopping)
  // Once a terminating pod's sync sidecar has ended.
  std::optional<FinalSync> final_sync;
  bool operator==(const PodState&) const = default;
};

// std::nullopt for a pod without the peetcode.com/repl label.
std::optional<PodState> pod_state(const rapidjson::Value& pod);

// A kubelet's Warning Event that it could not pull a pod's image. The kubelet sends it at once,
// while it writes the failure into the pod's status only at the pod's next sync, after a fixed 10 s
// back-off: the Event lets the Repl say so seconds earlier.
struct PullFailure {
  ObjectKey pod;
  std::string pod_uid;
  std::string container;
  Problem problem;  // ImagePullFailed, as pod_problem() words it
  bool operator==(const PullFailure&) const = default;
};

// std::nullopt for any other Event.
std::optional<PullFailure> pull_failure(const rapidjson::Value& event);

// The Repl that controls `object` (its ownerReference of kind Repl with controller: true).
std::optional<ObjectKey> controlling_repl(const rapidjson::Value& object);

// The Repl a pod belongs to, by its peetcode.com/repl label (its owner is a ReplicaSet).
std::optional<ObjectKey> labelled_repl(const rapidjson::Value& object);

}  // namespace repl
