#include "write_ledger.hpp"

#include <algorithm>
#include <utility>

namespace repl {

bool WriteLedger::is_repair(const ObjectKey& repl, std::size_t index, std::uint64_t fingerprint) const {
  std::lock_guard lock(mu_);
  const auto it = by_repl_.find(repl);
  return it != by_repl_.end() && index < it->second.applied.size() &&
         it->second.applied[index] == fingerprint;
}

void WriteLedger::begin(const ObjectKey& repl, const std::string& uid) {
  std::lock_guard lock(mu_);
  History& h = by_repl_[repl];
  if (h.uid != uid) {
    h = History();
    h.uid = uid;
  }
}

void WriteLedger::applied(const ObjectKey& repl, std::size_t index, std::uint64_t fingerprint) {
  std::lock_guard lock(mu_);
  History& h = by_repl_[repl];
  if (h.applied.size() <= index) h.applied.resize(index + 1, 0);
  h.applied[index] = fingerprint;
  h.refusals.erase(index);
}

void WriteLedger::refused(const ObjectKey& repl, std::size_t index, std::uint64_t fingerprint,
                          std::uint64_t live, std::string why, SteadyTime now) {
  std::lock_guard lock(mu_);
  Refusal& r = by_repl_[repl].refusals[index];
  const bool again = r.times > 0 && r.fingerprint == fingerprint && r.live == live;
  r.times = again ? r.times + 1 : 1;
  r.fingerprint = fingerprint;
  r.live = live;
  r.why = std::move(why);
  const int doublings = std::min(r.times - 1, 30);
  r.until = now + std::min<SteadyDuration>(options_.max_refusal_hold,
                                           options_.refusal_hold * (std::int64_t{1} << doublings));
}

std::optional<WriteLedger::Refused> WriteLedger::refused_before(const ObjectKey& repl, std::size_t index,
                                                                std::uint64_t fingerprint, std::uint64_t live,
                                                                SteadyTime now) const {
  std::lock_guard lock(mu_);
  const auto it = by_repl_.find(repl);
  if (it == by_repl_.end()) return std::nullopt;
  const auto r = it->second.refusals.find(index);
  if (r == it->second.refusals.end() || r->second.fingerprint != fingerprint || r->second.live != live ||
      now >= r->second.until)
    return std::nullopt;
  return Refused{r->second.why, r->second.until};
}

WriteLedger::Verdict WriteLedger::admit(const ObjectKey& repl, const std::vector<std::string>& children,
                                        SteadyTime now) {
  std::lock_guard lock(mu_);
  History& h = by_repl_[repl];
  if (h.repairs > 0 && quiet_since(h, now)) {
    h.repairs = 0;
    h.children.clear();
  }
  if (h.repairs >= options_.burst && now < h.next_allowed) return Verdict{false, h.next_allowed - now};
  ++h.repairs;
  h.last = now;
  if (h.repairs >= options_.burst) {
    h.children.insert(children.begin(), children.end());
    const int doublings = std::min(h.repairs - options_.burst, 30);
    const auto wait = std::min<SteadyDuration>(options_.max, options_.base * (std::int64_t{1} << doublings));
    h.next_allowed = now + wait;
  }
  return Verdict{};
}

std::optional<WriteLedger::Contest> WriteLedger::contested(const ObjectKey& repl, SteadyTime now) const {
  std::lock_guard lock(mu_);
  const auto it = by_repl_.find(repl);
  if (it == by_repl_.end()) return std::nullopt;
  const History& h = it->second;
  if (h.repairs < options_.burst || quiet_since(h, now)) return std::nullopt;
  std::string names;
  for (const auto& c : h.children) names += (names.empty() ? "" : ", ") + c;
  return Contest{"another client keeps changing or deleting " + names + ": " +
                     std::to_string(options_.burst) + " repairs came within " +
                     short_duration(options_.quiet) +
                     " of each other, so each repair now waits twice as long as the one before (up to " +
                     short_duration(options_.max) + "); this ends " + short_duration(options_.quiet) +
                     " after the last repair",
                 h.last + options_.quiet};
}

void WriteLedger::forget(const ObjectKey& repl) {
  std::lock_guard lock(mu_);
  by_repl_.erase(repl);
}

std::size_t WriteLedger::size() const {
  std::lock_guard lock(mu_);
  return by_repl_.size();
}

std::string short_duration(SteadyDuration d) {
  const auto total = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  const auto h = total / 3600, m = total / 60 % 60, s = total % 60;
  std::string out;
  if (h > 0) out += std::to_string(h) + "h";
  if (m > 0) out += std::to_string(m) + "m";
  if (s > 0 || out.empty()) out += std::to_string(s) + "s";
  return out;
}

}  // namespace repl
