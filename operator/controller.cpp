#include "controller.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <thread>
#include <vector>

#include "common/log.hpp"
#include "kube/resource.hpp"

namespace repl {

std::chrono::milliseconds retry_delay(int failures) {
  constexpr auto kBase = std::chrono::milliseconds(5);
  constexpr auto kMax = std::chrono::minutes(5);
  const int doublings = std::min(failures - 1, 20);
  return std::min<std::chrono::milliseconds>(kBase * (1LL << std::max(doublings, 0)), kMax);
}

Controller::Controller(kube::Client& client, Reconciler& reconciler, ControllerOptions options)
    : reconciler_(reconciler),
      options_(std::move(options)),
      store_([this](const ObjectKey& key) { queue_.add(key); }),
      repl_watcher_(client, {kube::collection_path(kube::repls(), options_.ns), "", 500, "repls"}, store_),
      timers_guard_(boost::asio::make_work_guard(timers_)) {}

void Controller::stop() {
  repl_watcher_.stop();
  store_.cancel_wait();
  queue_.shut_down();
  timers_guard_.reset();
  timers_.stop();
}

void Controller::retry_later(const ObjectKey& key) {
  int failures = 0;
  {
    std::lock_guard lock(failures_mu_);
    failures = ++failures_[key];
  }
  auto timer = std::make_shared<boost::asio::steady_timer>(timers_, retry_delay(failures));
  timer->async_wait([this, key, timer](const boost::system::error_code& ec) {
    if (!ec) queue_.add(key);
  });
}

void Controller::work() {
  while (auto key = queue_.get()) {
    if (const auto repl = store_.get(*key)) {
      const auto started = std::chrono::steady_clock::now();
      auto result = reconciler_.reconcile(*repl);
      const auto ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
      if (!result) {
        log::warn("reconcile failed", {{"repl", key->str()}, {"error", result.error().describe()}});
        retry_later(*key);
      } else {
        log::debug("reconciled", {{"repl", key->str()}, {"ms", std::to_string(ms.count())}});
        std::lock_guard lock(failures_mu_);
        failures_.erase(*key);
      }
    } else {
      // Deleted: nothing to retry any more.
      std::lock_guard lock(failures_mu_);
      failures_.erase(*key);
    }
    queue_.done(*key);
  }
}

void Controller::run() {
  std::thread watcher([this] { repl_watcher_.run(); });
  std::thread timer_thread([this] { timers_.run(); });
  // Workers start only after the first list is stored: until then the cache is partial.
  if (store_.wait_synced()) log::info("caches synced", {{"repls", std::to_string(store_.size())}});
  std::vector<std::thread> workers;
  for (int i = 0; i < options_.workers; ++i) workers.emplace_back([this] { work(); });
  for (auto& w : workers) w.join();
  watcher.join();
  timer_thread.join();
}

}  // namespace repl
