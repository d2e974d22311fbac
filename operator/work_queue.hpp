// The reconcile queue, as a pure scheduler: keys of Repls that may need work, each with the time it
// becomes due. Time is passed in (never read from a clock), so tests drive it without sleeping.
//
//  - add(key, now): due now. A key already waiting keeps one entry: the earliest due time wins
//    (kube-rs's scheduler), so a burst of events for one Repl becomes one reconcile.
//  - add_after(key, delay, now): due later (a requeue-after); earliest wins as above.
//  - add_rate_limited(key, now, at_least): a failed reconcile. Due after the largest of the key's
//    own exponential backoff (5 ms doubling to 5 minutes), the overall token bucket (10 per second,
//    burst 100), as client-go's default controller rate limiter, and `at_least` (the server's
//    Retry-After). forget(key) resets the backoff.
//  - pop(now) hands out the earliest due key that no worker holds; done(key) releases it. A key is
//    never held twice: if it is added while held, it is handed out again only after done().
//
// Thread-safety: none; the Dispatcher (dispatcher.hpp) owns one behind its mutex.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "common/object_key.hpp"

namespace repl {

class WorkQueue {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;
  using Duration = Clock::duration;

  struct Options {
    Duration base_delay = std::chrono::milliseconds(5);
    Duration max_delay = std::chrono::minutes(5);
    double bucket_qps = 10;
    double bucket_burst = 100;
  };

  WorkQueue() : WorkQueue(Options{}) {}
  explicit WorkQueue(Options options);

  void add(const ObjectKey& key, TimePoint now) { schedule(key, now); }
  void add_after(const ObjectKey& key, Duration delay, TimePoint now) { schedule(key, now + delay); }
  // Returns the delay it chose.
  Duration add_rate_limited(const ObjectKey& key, TimePoint now, Duration at_least = {});
  void forget(const ObjectKey& key) { failures_.erase(key); }
  // Every key waiting out a failure's backoff is due again now, through the overall bucket (the
  // API server is back: what failed while it was gone should not wait minutes more). Their
  // failure counts stay, so a key that fails again backs off further. Returns how many.
  std::size_t retry_failed_now(TimePoint now);

  std::optional<ObjectKey> pop(TimePoint now);
  void done(const ObjectKey& key) { held_.erase(key); }

  // When the earliest waiting key that no worker holds becomes due (to arm a timer).
  std::optional<TimePoint> next_due() const;
  // Keys waiting (due or not), those of them due by `now`, and keys held by workers.
  std::size_t waiting() const { return by_key_.size(); }
  std::size_t due(TimePoint now) const;
  std::size_t held() const { return held_.size(); }
  int failures(const ObjectKey& key) const;

 private:
  struct Entry {
    TimePoint due;
    std::uint64_t seq;  // FIFO among equal due times
    ObjectKey key;
    auto operator<=>(const Entry&) const = default;
  };
  void schedule(const ObjectKey& key, TimePoint due);
  Duration bucket_delay(TimePoint now);

  const Options options_;
  std::set<Entry> by_due_;
  std::map<ObjectKey, std::set<Entry>::iterator> by_key_;
  std::set<ObjectKey> held_;
  std::map<ObjectKey, int> failures_;
  std::uint64_t seq_ = 0;
  // Token bucket: tokens available at `bucket_time_`.
  double tokens_;
  std::optional<TimePoint> bucket_time_;
};

}  // namespace repl
