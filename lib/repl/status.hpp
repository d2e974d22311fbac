// A Repl's status, computed from what the operator observed of its children, and the server-side
// apply body that writes it to the status subresource.
//
// Pure functions; thread-safe.
#pragma once

#include <rapidjson/document.h>

#include <chrono>
#include <optional>
#include <string>

#include "repl/children.hpp"
#include "repl/observed.hpp"
#include "repl/repl.hpp"

namespace repl {

// What reconcile saw. `failure_reason` is set when the children could not be rendered or applied
// (or the spec is invalid); otherwise the Deployment's state and the runner pods' problem decide.
struct ChildObservation {
  std::optional<std::string> failure_reason;  // CamelCase, e.g. "ApplyFailed"
  std::string failure_message;
  std::optional<DeploymentState> deployment;
  std::optional<Problem> pod_problem;
  bool pods = false;                      // the Repl has runner pods (running or stopping)
  std::optional<FinalSync> final_sync;    // a stopped pod's, newer than what the Repl shows
  std::optional<SyncReport> sync_report;  // the running pod's last push
  bool held = false;                      // being deleted, and kept there: its last final sync failed
  // Another client keeps undoing what the operator applies (operator/repairs.hpp): why.
  std::optional<std::string> contested;
  // When reconcile should run again by itself: a repair held back, or the end of a contest.
  std::optional<std::chrono::seconds> revisit;
};

// Whether the operator suspended the Repl for being idle (and nothing has resumed it since).
bool idle_suspended(const Repl& repl);

// Whether the Repl's last known final sync failed.
bool final_sync_failed(const Repl& repl, const ChildObservation& seen);

// Computes the status. `now` (RFC 3339) becomes a condition's lastTransitionTime only when its
// status changes; otherwise the previous time is kept, so an unchanged status compares equal.
// A suspended (or deleted) Repl is Stopping while it has pods, and Suspended once they are gone;
// Synced and lastSyncTime change only with a final sync seen, and are kept otherwise.
ReplStatus compute_status(const Repl& repl, const ChildObservation& seen, const ReplUrls& urls,
                          const std::string& now);

// The body for PATCH .../repls/<name>/status with application/apply-patch+yaml.
rapidjson::Document status_apply_body(const Repl& repl, const ReplStatus& status);

}  // namespace repl
