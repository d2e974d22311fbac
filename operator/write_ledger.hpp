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
//   what it would send nor the child it would go to has changed (it would be refused the same
//   way), for a hold that starts at `refusal_hold` and doubles with each refusal of the same apply
//   up to `max_refusal_hold`: a cause outside both (an admission webhook's policy, a port another
//   object holds) may be fixed meanwhile.
//
// A Repl's history is its uid's: a Repl deleted and made again under its name starts afresh.
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
    SteadyDuration refusal_hold = std::chrono::minutes(1);
    SteadyDuration max_refusal_hold = std::chrono::minutes(30);
  };
  explicit WriteLedger(Options options) : options_(options) {}
  WriteLedger() : WriteLedger(Options{}) {}

  // The Repl `repl` now has `uid`: a different one than before drops what was kept of the old.
  void begin(const ObjectKey& repl, const std::string& uid);
  // Whether writing `fingerprint` to child `index` of `repl` would be a repair: the same thing
  // was applied there before (and the caller saw that the child no longer holds it).
  bool is_repair(const ObjectKey& repl, std::size_t index, std::uint64_t fingerprint) const;
  // An apply to child `index` succeeded and the child now holds `fingerprint` (0: the answer did
  // not hold what was sent, e.g. a quantity the server wrote in another form: no repair is then
  // known for it).
  void applied(const ObjectKey& repl, std::size_t index, std::uint64_t fingerprint);

  // The apply of `fingerprint` to child `index`, whose managed fields had fingerprint `live` (0:
  // missing), was refused as invalid at `now`, for `why`.
  void refused(const ObjectKey& repl, std::size_t index, std::uint64_t fingerprint, std::uint64_t live,
               std::string why, SteadyTime now);
  struct Refused {
    std::string why;
    SteadyTime until;  // the hold ends then: the apply may be sent again
  };
  // When that same apply to that same child was refused before and its hold lasts at `now`.
  std::optional<Refused> refused_before(const ObjectKey& repl, std::size_t index, std::uint64_t fingerprint,
                                        std::uint64_t live, SteadyTime now) const;

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
    int times = 0;  // this same apply refused in a row
    SteadyTime until{};
  };
  struct History {
    std::string uid;
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
