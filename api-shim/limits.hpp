// What one user, and all of them, may take: at most `per_user` running (not suspended) Repls per
// user and `total` in all (0: no limit), counted from the shim's own watch of the namespace's Repls
// (no LIST per request); and a token bucket per user for /start and the other writes.
//
// Quota counts what the watch shows plus what this shim admitted and the watch does not show yet
// (a reservation, until the Repl appears running or `reservation` passes; an apply that failed
// gives its reservation back), so concurrent /start calls on one shim admit exactly up to the limit.
// Two replicas do not see each other's reservations: in a burst faster than the watch (tens of
// milliseconds) each may admit up to the limit, so the bound is `per_user` x replicas until the
// watches catch up, after which no replica admits more.
//
//   switch (quota.admit("r1", "alice")) { case Quota::Verdict::kAdmitted: ...apply...; }
//   if (!applied) quota.release("r1");
//
// Thread-safety: every member from any thread (the watch's and the workers').
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "common/clock.hpp"
#include "kube/watcher.hpp"

namespace repl::shim {

class Quota final : public kube::WatchSink {
 public:
  struct Limits {
    int per_user = 0;  // running Repls of one user; 0: no limit
    int total = 0;     // running Repls in all; 0: no limit
    std::chrono::seconds reservation{30};
  };
  enum class Verdict { kAdmitted, kUserFull, kTotalFull, kNotSynced };

  Quota(Limits limits, Clock& clock) : limits_(limits), clock_(clock) {}
  const Limits& limits() const { return limits_; }
  // Whether admit() can answer: no limits, or the Repls have been listed.
  bool synced() const;

  // Whether `repl` of `user` may run: one that runs already (or is being started here) always may.
  // `*reserved` says whether this call made a reservation (only then is release() for it).
  Verdict admit(const std::string& repl, const std::string& user, bool* reserved = nullptr);
  // The start admitted, with a reservation, for `repl` did not happen.
  void release(const std::string& repl);
  // Running Repls of `user`, as counted for admit().
  int running(const std::string& user);

  void begin_resync() override;
  void resync_item(const rapidjson::Value& object) override;
  void end_resync() override;
  void on_event(kube::EventType type, const rapidjson::Value& object) override;

 private:
  struct Seen {
    std::string user;
    bool running = false;
  };
  struct Reserved {
    std::string user;
    SteadyTime until;
  };
  void put(std::map<std::string, Seen>& into, const rapidjson::Value& object);
  void forget_expired();  // requires mu_
  int running_locked(const std::string& user) const;

  const Limits limits_;
  Clock& clock_;
  mutable std::mutex mu_;
  bool synced_ = false;
  std::map<std::string, Seen> repls_;  // by name: the shim watches one namespace
  std::map<std::string, Seen> listing_;
  std::map<std::string, Reserved> reserved_;  // by Repl name
};

// One token bucket per key (the user): `per_minute` tokens a minute, at most `burst` saved. take()
// spends one, or says how long until one is there. Buckets that are full again are dropped once
// there are many, so memory follows the users active in the last burst's time.
class TokenBuckets final {
 public:
  TokenBuckets(int per_minute, int burst) : per_second_(per_minute / 60.0), burst_(burst) {}
  // std::nullopt: allowed (a token spent); else the whole seconds to wait (Retry-After).
  std::optional<std::chrono::seconds> take(const std::string& key, SteadyTime now);
  std::size_t size() const;

 private:
  struct Bucket {
    double tokens;
    SteadyTime at;
  };
  double refilled(const Bucket& b, SteadyTime now) const;

  const double per_second_;
  const int burst_;
  mutable std::mutex mu_;
  std::map<std::string, Bucket> buckets_;
};

}  // namespace repl::shim
