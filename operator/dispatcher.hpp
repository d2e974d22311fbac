// The Dispatcher runs reconciles for the keys of a WorkQueue on an executor (a fixed pool of
// threads): at most `workers` at once, never two for one key, each delayed key released by one timer
// of the injected Clock armed at the queue's next due time (no polling). The outcome of a reconcile
// decides what happens to its key: forgotten (success), retried with backoff (failure), or requeued
// after a delay. Time is read only from the Clock, so tests run it in virtual time.
//
// Keys may be added from any thread at any time; they are only handed out between start() and
// stop(), so the controller can start it once its caches have synced (and it leads).
//
// Ownership: the executor and the clock are the caller's; the executor must offer at least
// `workers` threads (the reconcile function blocks its thread), and both must outlive the
// Dispatcher, whose timer callbacks run on the clock's executor. Thread-safety: every public method,
// any thread.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>

#include "common/clock.hpp"
#include "work_queue.hpp"

namespace repl {

struct ReconcileOutcome {
  enum class Kind { kDone, kRetry, kRequeueAfter };
  Kind kind = Kind::kDone;
  WorkQueue::Duration after{};  // kRequeueAfter: the delay; kRetry: the least delay (a Retry-After)

  static ReconcileOutcome done() { return {}; }
  static ReconcileOutcome retry(WorkQueue::Duration at_least = {}) { return {Kind::kRetry, at_least}; }
  static ReconcileOutcome requeue_after(WorkQueue::Duration d) { return {Kind::kRequeueAfter, d}; }
};

class Dispatcher final {
 public:
  using Reconcile = std::function<ReconcileOutcome(const ObjectKey&)>;

  struct Stats {
    std::uint64_t adds = 0;     // add() calls
    std::uint64_t retries = 0;  // failed reconciles put back with backoff
    std::uint64_t panics = 0;   // reconciles that threw (also counted in retries)
    std::size_t depth = 0;      // keys due, waiting for a worker
    std::size_t delayed = 0;    // keys waiting for a later time (a backoff, an idle or TTL deadline)
    std::size_t in_flight = 0;  // reconciles running
  };

  Dispatcher(boost::asio::any_io_executor executor, Clock& clock, int workers, Reconcile reconcile);

  void add(const ObjectKey& key);
  // WorkQueue::retry_failed_now; returns how many keys.
  std::size_t retry_failed_now();
  void start();
  // Hands out no more keys and waits (at most `grace`) for running reconciles to finish.
  // Returns false if some were still running when the grace period ended.
  bool stop(std::chrono::milliseconds grace);
  Stats stats() const;

 private:
  void pump();  // requires mu_
  void run(const ObjectKey& key);
  // The one barrier: an exception out of a reconcile is logged, counted and retried with backoff,
  // and the worker thread lives on.
  ReconcileOutcome guarded(const ObjectKey& key);

  const boost::asio::any_io_executor executor_;
  Clock& clock_;
  const int workers_;
  const Reconcile reconcile_;
  mutable std::mutex mu_;
  std::condition_variable idle_;
  WorkQueue queue_;                     // guarded by mu_
  const std::unique_ptr<Timer> timer_;  // guarded by mu_
  bool running_ = false;
  std::size_t in_flight_ = 0;
  std::uint64_t adds_ = 0;
  std::uint64_t retries_ = 0;
  std::uint64_t panics_ = 0;
};

}  // namespace repl
