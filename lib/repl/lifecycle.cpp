#include "repl/lifecycle.hpp"

#include <algorithm>
#include <initializer_list>

#include "common/time.hpp"

namespace repl {
namespace {

std::chrono::seconds duration_or(const std::string& text, std::chrono::seconds fallback) {
  if (text.empty()) return fallback;
  return parse_hms_duration(text).value_or(fallback);
}

// The latest of the times that parse; std::nullopt if none does.
std::optional<WallTime> latest(std::initializer_list<const std::string*> times) {
  std::optional<WallTime> out;
  for (const std::string* t : times) {
    if (const auto parsed = parse_rfc3339(*t); parsed && (!out || *parsed > *out)) out = parsed;
  }
  return out;
}

}  // namespace

LifecycleDecision decide_lifecycle(const Repl& repl, bool stopped, const LifecycleSettings& defaults,
                                   WallTime now) {
  using Action = LifecycleDecision::Action;
  LifecycleDecision d;
  if (repl.deleting) return d;
  const std::string none;
  const std::string& ready_changed = repl.status.ready ? repl.status.ready->last_transition_time : none;
  if (!repl.spec.suspended) {
    d.limit = duration_or(repl.spec.idle_timeout, defaults.idle_timeout);
    const auto since = latest({&repl.last_activity, &ready_changed, &repl.created});
    if (d.limit.count() == 0 || !since) return d;
    d.since = *since;
  } else {
    d.limit = duration_or(repl.spec.ttl_after_suspend, defaults.ttl_after_suspend);
    const auto since = latest({&repl.last_activity, &ready_changed, &repl.idle_suspended_at, &repl.created});
    if (d.limit.count() == 0 || !since || !stopped) return d;
    d.since = *since;
  }
  const WallTime due = d.since + d.limit;
  if (now >= due) {
    d.action = repl.spec.suspended ? Action::kDeleteExpired : Action::kSuspendIdle;
  } else {
    d.next_check = due;
  }
  return d;
}

}  // namespace repl
