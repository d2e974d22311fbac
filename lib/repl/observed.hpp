// What the operator reads from live children: the few fields status and reconcile need, parsed
// from API objects into small values (the caches keep these, not the objects).
//
// Pure functions; thread-safe.
#pragma once

#include <rapidjson/document.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

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
// Secret or ConfigMap. std::nullopt while it is merely starting (or fine).
std::optional<Problem> pod_problem(const rapidjson::Value& pod);

// What the operator keeps of one runner pod.
struct PodState {
  ObjectKey repl;  // by its label
  std::string uid;
  std::optional<Problem> problem;  // pod_problem()
  // Containers (init or not) that have never started: still waiting, e.g. for their image.
  std::vector<std::string> not_started;
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
