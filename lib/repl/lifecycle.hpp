// When a Repl's sandbox should end on its own: a running Repl idle for its idle timeout is suspended,
// and a Repl suspended for its TTL is deleted (through the finalizer, so its code is in S3 first).
//
//   idle since   = the latest of: the last activity (annotation peetcode.com/last-activity, which the
//                  shim writes on /start and heartbeats), the Ready condition's last change (a resume
//                  by other means than /start, a pod that became ready), the Repl's creation
//   suspended at = the latest of those and of the idle suspend (annotation
//                  peetcode.com/idle-suspended-at); the TTL counts from there
//
// Pure functions; thread-safe.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "common/clock.hpp"
#include "repl/repl.hpp"

namespace repl {

// The operator's defaults, for Repls whose spec names none. 0: never.
struct LifecycleSettings {
  std::chrono::seconds idle_timeout{std::chrono::minutes(30)};
  std::chrono::seconds ttl_after_suspend{0};
};

struct LifecycleDecision {
  enum class Action { kNone, kSuspendIdle, kDeleteExpired };
  Action action = Action::kNone;
  WallTime since{};                    // idle since / suspended at (kSuspendIdle, kDeleteExpired)
  std::chrono::seconds limit{0};       // the idle timeout or the TTL that ran out
  std::optional<WallTime> next_check;  // kNone: when to look again (a timer), if ever
};

// `stopped`: a suspended Repl's pods are gone (the TTL starts only then). Unreadable durations count
// as the defaults (validation reports them on the Repl).
LifecycleDecision decide_lifecycle(const Repl& repl, bool stopped, const LifecycleSettings& defaults,
                                   WallTime now);

}  // namespace repl
