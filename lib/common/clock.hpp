// The one clock: what reads the time (now) and waits for it (timers) is given a Clock, never reads
// std::chrono::steady_clock itself, so behaviour over time is tested in virtual time.
//
//   AsioClock clock(io.get_executor());       // production: steady_clock, timers on the io_context
//   auto timer = clock.make_timer();
//   timer->wait_until(clock.now() + 5s, [] { ... });   // runs on the io_context, once
//
//   ManualClock clock;                         // tests: time moves only when advance() says so
//   clock.advance(5s);                         // runs every timer due by then, in due order
//
// Timer semantics (both clocks): wait_until() replaces any earlier wait of that timer; cancel() and
// destroying the timer drop its wait. A wait that was already firing when it was replaced or
// cancelled may still run once (as with Boost.Asio), so callbacks must tolerate a stale wake-up
// (re-check what they wait for). Time points are steady_clock's type on both clocks.
//
// Thread-safety: now() from any thread. A Timer is used by one owner at a time (callers serialise
// wait_until/cancel, e.g. under their mutex); callbacks run without any lock of the clock held.
#pragma once

#include <algorithm>
#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

namespace repl {

using SteadyTime = std::chrono::steady_clock::time_point;
using SteadyDuration = std::chrono::steady_clock::duration;
using WallTime = std::chrono::system_clock::time_point;

class Timer {
 public:
  virtual ~Timer() = default;
  virtual void wait_until(SteadyTime at, std::function<void()> fn) = 0;
  virtual void cancel() = 0;
};

class Clock {
 public:
  virtual ~Clock() = default;
  virtual SteadyTime now() const = 0;
  // The calendar time, for what is compared with times on API objects (RFC 3339); it moves with
  // now() (on ManualClock exactly, from a fixed start).
  virtual WallTime wall() const = 0;
  virtual std::unique_ptr<Timer> make_timer() = 0;
};

// steady_clock, with timers on an executor (an io_context's): callbacks run on its threads.
class AsioClock final : public Clock {
 public:
  explicit AsioClock(boost::asio::any_io_executor executor) : executor_(std::move(executor)) {}
  SteadyTime now() const override { return std::chrono::steady_clock::now(); }
  WallTime wall() const override { return std::chrono::system_clock::now(); }
  std::unique_ptr<Timer> make_timer() override;

 private:
  boost::asio::any_io_executor executor_;
};

// Virtual time for tests: it starts at an arbitrary fixed point and moves only by advance(), which
// runs the due callbacks on the calling thread, earliest first (a callback may arm timers again;
// those due within the advance run too).
class ManualClock final : public Clock {
 public:
  // 2026-01-01T00:00:00Z at the start.
  static constexpr std::chrono::seconds kWallStart{1767225600};
  SteadyTime now() const override;
  WallTime wall() const override;
  std::unique_ptr<Timer> make_timer() override;
  void advance(SteadyDuration d);
  // Timers armed and not yet fired or cancelled.
  std::size_t pending() const;
  // Blocks, at most `real_timeout` of real time, until some timer is armed, and returns the earliest
  // due time (nullopt if none was armed in time): for a test that must know the code under test
  // is waiting before it moves time, and for a driver thread that lets time jump to each wait, as
  // tokio's paused clock does.
  std::optional<SteadyTime> wait_armed(std::chrono::milliseconds real_timeout) const;
  // Advances to `at` (if it is later than now).
  void advance_to(SteadyTime at) { advance(std::max(SteadyDuration::zero(), at - now())); }

 private:
  class ManualTimer;
  using Key = std::pair<SteadyTime, std::uint64_t>;  // due, then arming order
  void arm(ManualTimer* timer, SteadyTime at, std::function<void()> fn);
  void disarm(ManualTimer* timer);

  mutable std::mutex mu_;
  mutable std::condition_variable armed_cv_;
  static constexpr SteadyDuration kSteadyStart = std::chrono::hours(1);
  SteadyTime now_{kSteadyStart};
  std::uint64_t seq_ = 0;
  std::map<Key, std::pair<ManualTimer*, std::function<void()>>> due_;
  std::map<ManualTimer*, Key> armed_;
};

}  // namespace repl
