#include "common/clock.hpp"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>

namespace repl {
namespace {

class AsioTimer final : public Timer {
 public:
  explicit AsioTimer(const boost::asio::any_io_executor& executor) : timer_(executor) {}
  void wait_until(SteadyTime at, std::function<void()> fn) override {
    timer_.expires_at(at);  // cancels the earlier wait
    timer_.async_wait([fn = std::move(fn)](const boost::system::error_code& ec) {
      if (!ec) fn();
    });
  }
  void cancel() override { timer_.cancel(); }

 private:
  boost::asio::steady_timer timer_;
};

}  // namespace

std::unique_ptr<Timer> AsioClock::make_timer() { return std::make_unique<AsioTimer>(executor_); }

class ManualClock::ManualTimer final : public Timer {
 public:
  explicit ManualTimer(ManualClock& clock) : clock_(clock) {}
  ~ManualTimer() override { clock_.disarm(this); }
  void wait_until(SteadyTime at, std::function<void()> fn) override { clock_.arm(this, at, std::move(fn)); }
  void cancel() override { clock_.disarm(this); }

 private:
  ManualClock& clock_;
};

SteadyTime ManualClock::now() const {
  std::lock_guard lock(mu_);
  return now_;
}

WallTime ManualClock::wall() const {
  const auto since_start = now() - SteadyTime{kSteadyStart};
  return WallTime{std::chrono::duration_cast<WallTime::duration>(kWallStart + since_start)};
}

std::unique_ptr<Timer> ManualClock::make_timer() { return std::make_unique<ManualTimer>(*this); }

std::size_t ManualClock::pending() const {
  std::lock_guard lock(mu_);
  return due_.size();
}

void ManualClock::arm(ManualTimer* timer, SteadyTime at, std::function<void()> fn) {
  std::lock_guard lock(mu_);
  if (auto it = armed_.find(timer); it != armed_.end()) {
    due_.erase(it->second);
    armed_.erase(it);
  }
  const Key key{at, seq_++};
  due_.emplace(key, std::make_pair(timer, std::move(fn)));
  armed_.emplace(timer, key);
  armed_cv_.notify_all();
}

void ManualClock::disarm(ManualTimer* timer) {
  std::lock_guard lock(mu_);
  if (auto it = armed_.find(timer); it != armed_.end()) {
    due_.erase(it->second);
    armed_.erase(it);
  }
}

void ManualClock::advance(SteadyDuration d) {
  std::unique_lock lock(mu_);
  const SteadyTime target = now_ + d;
  while (!due_.empty() && due_.begin()->first.first <= target) {
    auto node = due_.extract(due_.begin());
    armed_.erase(node.mapped().first);
    now_ = std::max(now_, node.key().first);  // a wait armed in the past is due at once
    lock.unlock();
    node.mapped().second();
    lock.lock();
  }
  now_ = target;
}

std::optional<SteadyTime> ManualClock::wait_armed(std::chrono::milliseconds real_timeout) const {
  std::unique_lock lock(mu_);
  if (!armed_cv_.wait_for(lock, real_timeout, [this] { return !due_.empty(); })) return std::nullopt;
  return due_.begin()->first.first;
}

}  // namespace repl
