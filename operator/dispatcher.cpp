#include "dispatcher.hpp"

#include <boost/asio/post.hpp>
#include <exception>
#include <string>

#include "common/log.hpp"

namespace repl {

Dispatcher::Dispatcher(boost::asio::any_io_executor executor, Clock& clock, int workers, Reconcile reconcile)
    : executor_(std::move(executor)),
      clock_(clock),
      workers_(workers),
      reconcile_(std::move(reconcile)),
      timer_(clock.make_timer()) {}

void Dispatcher::add(const ObjectKey& key) {
  std::lock_guard lock(mu_);
  ++adds_;
  queue_.add(key, clock_.now());
  pump();
}

std::size_t Dispatcher::retry_failed_now() {
  std::lock_guard lock(mu_);
  const std::size_t n = queue_.retry_failed_now(clock_.now());
  pump();
  return n;
}

void Dispatcher::start() {
  std::lock_guard lock(mu_);
  running_ = true;
  pump();
}

bool Dispatcher::stop(std::chrono::milliseconds grace) {
  std::unique_lock lock(mu_);
  running_ = false;
  timer_->cancel();
  return idle_.wait_for(lock, grace, [this] { return in_flight_ == 0; });
}

Dispatcher::Stats Dispatcher::stats() const {
  std::lock_guard lock(mu_);
  const std::size_t due = queue_.due(clock_.now());
  return {adds_, retries_, panics_, due, queue_.waiting() - due, in_flight_};
}

void Dispatcher::pump() {
  if (!running_) return;
  const auto now = clock_.now();
  while (in_flight_ < static_cast<std::size_t>(workers_)) {
    auto key = queue_.pop(now);
    if (!key) break;
    ++in_flight_;
    boost::asio::post(executor_, [this, k = std::move(*key)] { run(k); });
  }
  // With a free worker, wake up when the next delayed key is due; a busy pool is pumped by run().
  const auto next = queue_.next_due();
  if (next && in_flight_ < static_cast<std::size_t>(workers_)) {
    timer_->wait_until(*next, [this] {
      std::lock_guard lock(mu_);
      pump();  // a stale wake-up (re-armed meanwhile) pops nothing early: pump() reads the queue
    });
  }
}

ReconcileOutcome Dispatcher::guarded(const ObjectKey& key) {
  std::string what;
  try {
    return reconcile_(key);
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
    what = "an exception of unknown type";
  }
  log::error("reconcile threw; retrying with backoff", {{"repl", key.str()}, {"error", what}});
  std::lock_guard lock(mu_);
  ++panics_;
  return ReconcileOutcome::retry();
}

void Dispatcher::run(const ObjectKey& key) {
  const ReconcileOutcome outcome = guarded(key);
  std::lock_guard lock(mu_);
  const auto now = clock_.now();
  queue_.done(key);
  switch (outcome.kind) {
    case ReconcileOutcome::Kind::kDone:
      queue_.forget(key);
      break;
    case ReconcileOutcome::Kind::kRetry: {
      ++retries_;
      const auto delay = queue_.add_rate_limited(key, now, outcome.after);
      log::debug("retrying",
                 {{"repl", key.str()},
                  {"after_ms",
                   std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(delay).count())}});
      break;
    }
    case ReconcileOutcome::Kind::kRequeueAfter:
      queue_.forget(key);
      queue_.add_after(key, outcome.after, now);
      break;
  }
  --in_flight_;
  if (in_flight_ == 0) idle_.notify_all();
  pump();
}

}  // namespace repl
