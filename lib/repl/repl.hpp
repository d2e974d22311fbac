// The Repl custom resource (peetcode.com/v1alpha1) as the operator sees it: only the fields that
// reconcile needs, parsed from the API server's JSON. See crd/repls.peetcode.com.yaml.
//
// Pure value types and functions; thread-safe.
#pragma once

#include <rapidjson/document.h>

#include <cstdint>
#include <optional>
#include <string>

#include "common/object_key.hpp"
#include "common/result.hpp"

namespace repl {

// The operator's finalizer: a Repl being deleted stays until its runner pod has stopped and the
// final sync of its workspace to S3 has been seen (or was impossible: no pod ever ran).
inline constexpr const char* kFinalizer = "peetcode.com/final-sync";
// With the value "true", a Repl whose final sync failed is deleted anyway (its last edits are lost).
inline constexpr const char* kForceDeleteAnnotation = "peetcode.com/force-delete";
// When the user was last active (RFC 3339): written by the shim on /start and on heartbeats, at
// most once a minute per Repl.
inline constexpr const char* kLastActivityAnnotation = "peetcode.com/last-activity";
// When the operator suspended the Repl for being idle (RFC 3339), with spec.suspended.
inline constexpr const char* kIdleSuspendedAnnotation = "peetcode.com/idle-suspended-at";
// The user claim of the JWT the shim created the Repl for, as issued (spec.userId is its
// label-safe form: see auth::user_id_for).
inline constexpr const char* kSubjectAnnotation = "peetcode.com/subject";

struct ReplSpec {
  std::string user_id;
  std::string language;  // optional
  std::string image;     // optional runner image override
  bool suspended = false;
  // Durations in Go's h/m/s form ("30m"); empty: the operator's default; "0": never.
  std::string idle_timeout;
  std::string ttl_after_suspend;
  std::int64_t sync_interval_seconds = 0;  // 0: the operator's --sync-interval

  bool operator==(const ReplSpec&) const = default;
};

struct Condition {
  std::string type;
  std::string status;  // "True", "False", "Unknown"
  std::string reason;
  std::string message;
  std::int64_t observed_generation = 0;
  std::string last_transition_time;  // RFC 3339

  bool operator==(const Condition&) const = default;
};

struct ReplStatus {
  std::string phase;  // Pending, Starting, Ready, Suspended, Failed
  std::int64_t observed_generation = 0;
  std::string ide_url;
  std::string preview_url;
  std::optional<Condition> ready;
  // Synced: how the last final sync of the workspace to S3 went (absent before the first).
  std::optional<Condition> synced;
  // Contested: present while another client keeps changing or deleting the Repl's children.
  std::optional<Condition> contested;
  std::string last_sync_time;  // RFC 3339, of the last sync known to have succeeded

  bool operator==(const ReplStatus&) const = default;
};

struct Repl {
  ObjectKey key;
  std::string uid;
  std::string resource_version;
  std::int64_t generation = 0;
  bool deleting = false;          // metadata.deletionTimestamp is set
  bool finalizer = false;         // metadata.finalizers holds kFinalizer
  bool force_delete = false;      // annotation kForceDeleteAnnotation is "true"
  std::string created;            // metadata.creationTimestamp
  std::string last_activity;      // annotation kLastActivityAnnotation
  std::string idle_suspended_at;  // annotation kIdleSuspendedAnnotation
  std::string subject;            // annotation kSubjectAnnotation
  ReplSpec spec;
  ReplStatus status;
};

struct ParseError {
  std::string message;
};

Result<Repl, ParseError> parse_repl(const rapidjson::Value& object);

// The server-side apply body of a Repl's metadata.finalizers: [kFinalizer] (`keep`), or of none,
// which takes back the operator's (other managers' finalizers stay theirs).
rapidjson::Document finalizer_apply_body(const ObjectKey& repl, bool keep);

// The merge patch that sets kLastActivityAnnotation to `at` (RFC 3339) and nothing else (a merge
// patch, not an apply: an apply of a manager's that left out its other fields would remove them).
rapidjson::Document activity_patch_body(const std::string& at);

}  // namespace repl
