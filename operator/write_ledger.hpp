// What the operator sent to each child of each Repl, to keep two kinds of write from being made
// as often as events ask for them:
//
// - Repairs. A repair is an apply of exactly what this operator applied before (the desired object
//   has not changed since) to a child that no longer holds it: another field manager took a field
//   of ours, or someone deleted the child. The first `burst` repairs of a Repl within `quiet` of
//   each other happen at once; after that each waits twice as long as the one before (base,
//   2 base, ... up to max), so a fight with another controller, or a client deleting a Service in a
//   loop, costs a bounded number of writes a minute instead of one per change; while that lasts the
//   Repl is "contested". After `quiet` with no repair the Repl starts over. Changes of the desired
//   state itself (an edit of the Repl, new settings) are not repairs and are never held back.
// - Refused applies. An apply the API server refused as invalid is not sent again while neither
//   what it would send nor the child it would go to has changed: it would be refused the same way.
//
// Pure: the caller gives the time. Thread-safety: any thread (one mutex).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "common/object_key.hpp"

namespace repl {

class WriteLedger final {
 public:
  struct Options {
    int burst = 5;
    SteadyDuration base = std::chrono::seconds(1);
    SteadyDuration max = std::chrono::minutes(5);
    SteadyDuration quiet = std::chrono::minutes(10);
  };
  explicit WriteLedger(Options options) : options_(options) {}
  WriteLedger() : WriteLedger(Options{}) {}

  // Whether writing `fingerprint` to child `index` of `repl` would be a repair: the same thing
  // was applied there before (and the caller saw that the child no longer holds it).
  bool is_repair(const ObjectKey& repl, std::size_t index, std::uint64_t fingerprint) const;
  // The apply of `fingerprint` to child `index` succeeded.
  void applied(const ObjectKey& repl, std::size_t index, std::uint64_t fingerprint);

  // The apply of `fingerprint` to child `index`, whose managed fields had fingerprint `live` (0:
  // missing), was refused as invalid, for `why`.
  void refused(const ObjectKey& repl, std::size_t index, std::uint64_t fingerprint, std::uint64_t live,
               std::string why);
  // `why`, when that same apply to that same child was refused before.
  std::optional<std::string> refused_before(const ObjectKey& repl, std::size_t index,
                                            std::uint64_t fingerprint, std::uint64_t live) const;

  struct Verdict {
    bool now = true;        // repair at once (counted); else wait
    SteadyDuration wait{};  // when !now: until the next repair may be made
  };
  // Asks to repair `children` (what the caller names them, e.g. "Service abc") of `repl` at `now`.
  Verdict admit(const ObjectKey& repl, const std::vector<std::string>& children, SteadyTime now);

  struct Contest {
    std::string message;  // which children, and how repairs are spaced; changes only with them
    SteadyTime until;     // it ends then unless another repair comes first
  };
  // Whether `repl` is contested at `now`: its repairs came faster than `burst` within `quiet`.
  std::optional<Contest> contested(const ObjectKey& repl, SteadyTime now) const;

  // `repl` is gone: its history goes too.
  void forget(const ObjectKey& repl);
  std::size_t size() const;

 private:
  struct Refusal {
    std::uint64_t fingerprint = 0;
    std::uint64_t live = 0;
    std::string why;
  };
  struct History {
    std::vector<std::uint64_t> applied;       // by child index; 0: nothing applied yet
    std::map<std::size_t, Refusal> refusals;  // by child index
    int repairs = 0;                          // within `quiet` of each other
    SteadyTime last{};
    SteadyTime next_allowed{};
    std::set<std::string> children;  // repaired while contested
  };
  bool quiet_since(const History& h, SteadyTime now) const { return now - h.last >= options_.quiet; }

  const Options options_;
  mutable std::mutex mu_;
  std::map<ObjectKey, History> by_repl_;
};

// "5m", "1m30s", "45s": a whole-second duration as a person reads it.
std::string short_duration(SteadyDuration d);

}  // namespace repl
