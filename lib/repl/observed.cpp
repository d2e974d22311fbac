#include "repl/observed.hpp"

#include <charconv>
#include <set>
#include <string_view>

#include "common/json.hpp"
#include "common/time.hpp"

namespace repl {
namespace {

using json::int_at;
using json::member;
using json::string_at;

const rapidjson::Value* condition(const rapidjson::Value* status, std::string_view type) {
  const rapidjson::Value* conds = member(status, "conditions");
  if (conds == nullptr || !conds->IsArray()) return nullptr;
  for (const auto& c : conds->GetArray()) {
    if (string_at(&c, "type") == type) return &c;
  }
  return nullptr;
}

bool is_image_problem(std::string_view reason) {
  return reason == "ErrImagePull" || reason == "ImagePullBackOff" || reason == "InvalidImageName" ||
         reason == "ErrImageNeverPull";
}

// A problem in one container status (init or not).
std::optional<Problem> container_problem(const rapidjson::Value& cs, bool init) {
  const std::string name = string_at(&cs, "name");
  const rapidjson::Value* state = member(cs, "state");
  const rapidjson::Value* waiting = member(state, "waiting");
  const std::string waiting_reason = string_at(waiting, "reason");
  const std::string waiting_message = string_at(waiting, "message");
  if (is_image_problem(waiting_reason)) {
    return Problem{"ImagePullFailed", "container " + name + ": " + waiting_reason +
                                          (waiting_message.empty() ? "" : ": " + waiting_message)};
  }
  if (waiting_reason == "CreateContainerConfigError" || waiting_reason == "CreateContainerError") {
    return Problem{waiting_reason, "container " + name + ": " + waiting_message};
  }
  // A terminated init container with a non-zero code (now, or before the current back-off).
  const rapidjson::Value* terminated = member(state, "terminated");
  if (terminated == nullptr) terminated = member(member(cs, "lastState"), "terminated");
  const std::int64_t exit_code = int_at(terminated, "exitCode");
  if (init && terminated != nullptr && exit_code != 0) {
    const std::string msg = string_at(terminated, "message");
    return Problem{"InitContainerFailed", "init container " + name + " exited with code " +
                                              std::to_string(exit_code) + (msg.empty() ? "" : ": " + msg)};
  }
  if (waiting_reason == "CrashLoopBackOff") {
    return Problem{"CrashLoopBackOff",
                   "container " + name + " keeps exiting" +
                       (exit_code != 0 ? " (last exit code " + std::to_string(exit_code) + ")" : "")};
  }
  return std::nullopt;
}

// The names of the pod's sidecars: init containers with restartPolicy Always.
std::set<std::string, std::less<>> sidecars(const rapidjson::Value& pod) {
  std::set<std::string, std::less<>> out;
  const rapidjson::Value* init = member(member(pod, "spec"), "initContainers");
  if (init == nullptr || !init->IsArray()) return out;
  for (const auto& c : init->GetArray()) {
    if (string_at(&c, "restartPolicy") == "Always") out.insert(string_at(&c, "name"));
  }
  return out;
}

std::optional<Problem> first_problem(const rapidjson::Value* statuses, bool init,
                                     const std::set<std::string, std::less<>>& sidecar_names = {}) {
  if (statuses == nullptr || !statuses->IsArray()) return std::nullopt;
  for (const auto& cs : statuses->GetArray()) {
    if (auto p = container_problem(cs, init && !sidecar_names.contains(string_at(&cs, "name")))) return p;
  }
  return std::nullopt;
}

bool is_terminating(const rapidjson::Value& pod) {
  return member(member(pod, "metadata"), "deletionTimestamp") != nullptr;
}

std::optional<FinalSync> final_sync(const rapidjson::Value& pod) {
  const rapidjson::Value* statuses = member(member(pod, "status"), "initContainerStatuses");
  if (statuses == nullptr || !statuses->IsArray()) return std::nullopt;
  for (const auto& cs : statuses->GetArray()) {
    if (string_at(&cs, "name") != kSyncContainer) continue;
    const rapidjson::Value* ended = member(member(cs, "state"), "terminated");
    if (ended == nullptr) return std::nullopt;
    const std::int64_t code = int_at(ended, "exitCode");
    std::string message = string_at(ended, "message");
    // Killed at the end of the grace period, or by the OOM killer: it never wrote its line.
    if (message.empty()) {
      message = std::string(kSyncContainer) + " exited with code " + std::to_string(code) +
                (code == 0 ? "" : " before its final sync finished");
    }
    // Named by its pod, so each stop's line is told apart from the last one's.
    const rapidjson::Value* meta = member(pod, "metadata");
    FinalSync sync{code == 0, "pod " + string_at(meta, "name") + ": " + message,
                   string_at(ended, "finishedAt")};
    const auto from = parse_rfc3339(string_at(meta, "deletionTimestamp"));
    const auto to = parse_rfc3339(sync.finished_at);
    // The deletion's time is when the grace period ends (its start, less the grace period).
    const std::int64_t grace = int_at(meta, "deletionGracePeriodSeconds");
    if (from && to)
      sync.seconds = std::chrono::duration<double>(*to - (*from - std::chrono::seconds(grace))).count();
    return sync;
  }
  return std::nullopt;
}

}  // namespace

DeploymentState deployment_state(const rapidjson::Value& d) {
  const rapidjson::Value* status = member(d, "status");
  DeploymentState s;
  s.generation = int_at(member(d, "metadata"), "generation");
  s.observed_generation = int_at(status, "observedGeneration");
  s.ready_replicas = int_at(status, "readyReplicas");
  if (const rapidjson::Value* c = condition(status, "ReplicaFailure");
      c && string_at(c, "status") == "True") {
    s.problem = Problem{"ReplicaFailure", string_at(c, "message")};
  } else if (const rapidjson::Value* p = condition(status, "Progressing");
             p && string_at(p, "status") == "False") {
    s.problem = Problem{string_at(p, "reason").empty() ? "NotProgressing" : string_at(p, "reason"),
                        string_at(p, "message")};
  }
  return s;
}

std::optional<Problem> pod_problem(const rapidjson::Value& pod) {
  if (is_terminating(pod)) return std::nullopt;  // its containers' ends are the stop, not a fault
  const rapidjson::Value* status = member(pod, "status");
  if (const rapidjson::Value* c = condition(status, "PodScheduled");
      c && string_at(c, "status") == "False" && string_at(c, "reason") == "Unschedulable") {
    return Problem{"Unschedulable", string_at(c, "message")};
  }
  if (auto p = first_problem(member(status, "initContainerStatuses"), true, sidecars(pod))) return p;
  return first_problem(member(status, "containerStatuses"), false);
}

std::optional<PodState> pod_state(const rapidjson::Value& pod) {
  auto repl = labelled_repl(pod);
  if (!repl) return std::nullopt;
  PodState s{
      *repl, string_at(member(pod, "metadata"), "uid"), pod_problem(pod), {}, is_terminating(pod), false, {}};
  if (s.terminating) s.final_sync = final_sync(pod);
  if (const rapidjson::Value* statuses = member(member(pod, "status"), "initContainerStatuses");
      !s.terminating && statuses != nullptr && statuses->IsArray()) {
    for (const auto& cs : statuses->GetArray()) {
      if (string_at(&cs, "name") == kSyncContainer && member(member(cs, "state"), "running") != nullptr)
        s.syncing = true;
    }
  }
  for (const char* list : {"initContainerStatuses", "containerStatuses"}) {
    const rapidjson::Value* statuses = member(member(pod, "status"), list);
    if (statuses == nullptr || !statuses->IsArray()) continue;
    for (const auto& cs : statuses->GetArray()) {
      if (member(member(cs, "state"), "waiting") != nullptr &&
          member(member(cs, "lastState"), "terminated") == nullptr) {
        s.not_started.push_back(string_at(&cs, "name"));
      }
    }
  }
  return s;
}

namespace {

// One line of the sidecar's own ("<kubelet's RFC 3339 time> sync-workspace: <what>").
struct SidecarLine {
  WallTime at;
  std::string_view message;  // from "sync-workspace: " on
  std::string_view what;     // after it
};

std::optional<SidecarLine> sidecar_line(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const auto space = line.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const auto at = parse_rfc3339(line.substr(0, space));
  if (!at) return std::nullopt;
  const std::string_view message = line.substr(space + 1);
  const std::string prefix = std::string(kSyncContainer) + ": ";
  if (message.rfind(prefix, 0) != 0) return std::nullopt;
  return SidecarLine{*at, message, message.substr(prefix.size())};
}

// The newest of the log's lines for which `take` gives a value.
template <class T, class Take>
std::optional<T> newest(std::string_view log, Take take) {
  while (!log.empty()) {
    while (!log.empty() && (log.back() == '\n' || log.back() == '\r')) log.remove_suffix(1);
    const auto start = log.rfind('\n');
    const std::string_view line = start == std::string_view::npos ? log : log.substr(start + 1);
    log = start == std::string_view::npos ? std::string_view() : log.substr(0, start);
    if (const auto l = sidecar_line(line)) {
      if (std::optional<T> found = take(*l)) return found;
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<SyncReport> parse_sync_log(std::string_view log) {
  return newest<SyncReport>(log, [](const SidecarLine& l) -> std::optional<SyncReport> {
    SyncReport r{false, std::string(l.message), rfc3339(l.at), false};
    if (l.what.rfind("cannot sync ", 0) == 0) return r;
    r.ok = true;
    if (l.what.rfind("synced ", 0) == 0) {
      std::int64_t n = 0;
      const auto digits = l.what.substr(7);
      std::from_chars(digits.data(), digits.data() + digits.size(), n);
      r.changed = n > 0;
      return r;
    }
    if (l.what.find(" is empty: not synced") != std::string_view::npos) return r;
    return std::nullopt;
  });
}

std::optional<WallTime> parse_activity_log(std::string_view log) {
  return newest<WallTime>(log, [](const SidecarLine& l) -> std::optional<WallTime> {
    if (l.what.rfind("active: ", 0) == 0) return l.at;
    return std::nullopt;
  });
}

std::optional<PullFailure> pull_failure(const rapidjson::Value& event) {
  const rapidjson::Value* object = member(event, "involvedObject");
  const std::string message = string_at(&event, "message");
  if (string_at(object, "kind") != "Pod" || string_at(&event, "reason") != "Failed" ||
      message.rfind("Failed to pull image", 0) != 0) {
    return std::nullopt;
  }
  // fieldPath: "spec.containers{runner}" or "spec.initContainers{copy-s3-resources}".
  const std::string path = string_at(object, "fieldPath");
  const auto open = path.find('{');
  const std::string container =
      open != std::string::npos && path.back() == '}' ? path.substr(open + 1, path.size() - open - 2) : "";
  if (container.empty()) return std::nullopt;
  return PullFailure{{string_at(object, "namespace"), string_at(object, "name")},
                     string_at(object, "uid"),
                     container,
                     {"ImagePullFailed", "container " + container + ": " + message}};
}

std::optional<ObjectKey> controlling_repl(const rapidjson::Value& object) {
  const rapidjson::Value* meta = member(object, "metadata");
  const rapidjson::Value* owners = member(meta, "ownerReferences");
  if (owners == nullptr || !owners->IsArray()) return std::nullopt;
  for (const auto& o : owners->GetArray()) {
    if (string_at(&o, "kind") == "Repl" && json::bool_at(&o, "controller") &&
        string_at(&o, "apiVersion").rfind("peetcode.com/", 0) == 0) {
      return ObjectKey{string_at(meta, "namespace"), string_at(&o, "name")};
    }
  }
  return std::nullopt;
}

std::optional<ObjectKey> labelled_repl(const rapidjson::Value& object) {
  const rapidjson::Value* meta = member(object, "metadata");
  const std::string name = string_at(member(meta, "labels"), "peetcode.com/repl");
  if (name.empty()) return std::nullopt;
  return ObjectKey{string_at(meta, "namespace"), name};
}

}  // namespace repl
