// Dispatcher on a real io_context run by three threads and a virtual clock (backoffs and requeues
// happen when the test moves time, exactly). Reconciles block on gates the test opens, so overlaps
// are made to happen rather than hoped for; every wait is bounded (kTimeout), so a bug fails a
// check instead of hanging the run. Nothing sleeps to "let things happen".
#include "dispatcher.hpp"

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "unit/support/object_key.hpp"
#include "unit/support/quiet_logs.hpp"

namespace {

using namespace std::chrono_literals;
using repl::ObjectKey;
using repl::ReconcileOutcome;

constexpr auto kTimeout = 5s;
const ObjectKey kA{"ns", "a"};
const ObjectKey kB{"ns", "b"};

// Closed until open(); wait() returns false if it stayed closed for kTimeout.
class Gate {
 public:
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool wait() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kTimeout, [this] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// What the reconciles did: a log of starts and ends, and how many ran at once.
class Tracker {
 public:
  struct Step {
    bool start;
    ObjectKey key;
    bool operator==(const Step&) const = default;
  };

  void begin(const ObjectKey& key) {
    std::lock_guard lock(mu_);
    log_.push_back({true, key});
    max_running_ = std::max(max_running_, ++running_);
    max_per_key_ = std::max(max_per_key_, ++per_key_[key]);
    cv_.notify_all();
  }
  void end(const ObjectKey& key) {
    std::lock_guard lock(mu_);
    log_.push_back({false, key});
    --running_;
    --per_key_[key];
    cv_.notify_all();
  }

  // Waits (at most kTimeout) until `key` has started (or ended) `n` reconciles.
  bool wait_starts(const ObjectKey& key, int n) {
    return wait([&] { return count(true, key) >= n; });
  }
  bool wait_ends(const ObjectKey& key, int n) {
    return wait([&] { return count(false, key) >= n; });
  }
  bool wait_running(int n) {
    return wait([&] { return running_ >= n; });
  }

  int starts(const ObjectKey& key) {
    std::lock_guard lock(mu_);
    return count(true, key);
  }
  std::vector<Step> log() {
    std::lock_guard lock(mu_);
    return log_;
  }
  int max_running() {
    std::lock_guard lock(mu_);
    return max_running_;
  }
  int max_per_key() {
    std::lock_guard lock(mu_);
    return max_per_key_;
  }

 private:
  int count(bool start, const ObjectKey& key) const {  // requires mu_
    return static_cast<int>(std::count(log_.begin(), log_.end(), Step{start, key}));
  }
  template <class Pred>
  bool wait(Pred pred) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kTimeout, pred);
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Step> log_;
  int running_ = 0;
  int max_running_ = 0;
  std::map<ObjectKey, int> per_key_;
  int max_per_key_ = 0;
};

// A Dispatcher whose reconcile records itself in `tracker` around `body` (which the test sets before
// adding keys), on an io_context run by three threads. Teardown opens `gate`, so a reconcile still
// blocked on it when a check failed cannot hang the run.
struct Fixture {
  using Body = std::function<ReconcileOutcome(const ObjectKey& key, int call)>;

  explicit Fixture(int workers, Body b = {})
      : body(b ? std::move(b) : [](const ObjectKey&, int) { return ReconcileOutcome::done(); }),
        dispatcher(io.get_executor(), clock, workers, [this](const ObjectKey& key) {
          tracker.begin(key);
          struct Ended {  // also when the body throws
            Tracker& tracker;
            const ObjectKey& key;
            ~Ended() { tracker.end(key); }
          } ended{tracker, key};
          return body(key, tracker.starts(key));
        }) {
    for (int i = 0; i < 3; ++i) threads.emplace_back([this] { io.run(); });
  }
  ~Fixture() {
    gate.open();
    dispatcher.stop(kTimeout);
    guard.reset();
    io.stop();
    for (auto& t : threads) t.join();
  }

  // Waits until the dispatcher has armed its timer for a key put back, and returns when it is due.
  repl::SteadyTime armed() {
    const auto due = clock.wait_armed(std::chrono::duration_cast<std::chrono::milliseconds>(kTimeout));
    REQUIRE(due);
    return *due;
  }

  repl::test::QuietLogs quiet;
  repl::ManualClock clock;
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard =
      boost::asio::make_work_guard(io);
  Gate gate;
  Tracker tracker;
  Body body;
  repl::Dispatcher dispatcher;
  std::vector<std::thread> threads;
};

// Every key's reconcile blocks on `gate`. (No CHECKs on worker threads: Catch2 is not thread-safe;
// a gate that never opens shows up as the test's own bounded wait failing.)
Fixture::Body blocked_on(Gate& gate) {
  return [&gate](const ObjectKey&, int) {
    gate.wait();
    return ReconcileOutcome::done();
  };
}

ObjectKey numbered(int i) { return {"ns", "k" + std::to_string(i)}; }

}  // namespace

TEST_CASE("keys added before start wait for start", "[operator][dispatcher]") {
  Fixture f(2);
  f.dispatcher.add(kA);
  f.dispatcher.add(kB);
  f.dispatcher.add(kA);
  // Handing out happens inside add(): had it happened, a key would be in flight or gone.
  auto stats = f.dispatcher.stats();
  CHECK(stats.depth == 2);
  CHECK(stats.in_flight == 0);
  CHECK(stats.adds == 3);
  CHECK(f.tracker.log().empty());
  f.dispatcher.start();
  CHECK(f.tracker.wait_ends(kA, 1));
  CHECK(f.tracker.wait_ends(kB, 1));
  CHECK(f.dispatcher.stop(kTimeout));
  CHECK(f.tracker.starts(kA) == 1);  // added twice while waiting: reconciled once
  CHECK(f.dispatcher.stats().depth == 0);
}

TEST_CASE("every added key is reconciled", "[operator][dispatcher]") {
  Fixture f(3);
  f.dispatcher.start();
  for (int i = 0; i < 50; ++i) f.dispatcher.add(numbered(i));
  for (int i = 0; i < 50; ++i) {
    INFO("key " << i);
    CHECK(f.tracker.wait_ends(numbered(i), 1));
  }
  CHECK(f.dispatcher.stop(kTimeout));
  for (int i = 0; i < 50; ++i) CHECK(f.tracker.starts(numbered(i)) == 1);
  CHECK(f.dispatcher.stats().adds == 50);
  CHECK(f.dispatcher.stats().depth == 0);
}

TEST_CASE("a key re-added while it is reconciled runs again only after the first run returns",
          "[operator][dispatcher]") {
  Fixture f(3);
  f.body = [&f](const ObjectKey& key, int call) {
    if (key == kA && call == 1) f.gate.wait();
    return ReconcileOutcome::done();
  };
  f.dispatcher.start();
  f.dispatcher.add(kA);
  REQUIRE(f.tracker.wait_starts(kA, 1));
  f.dispatcher.add(kA);
  CHECK(f.dispatcher.stats().depth == 1);  // waiting, not handed out
  // Workers are free: kB runs to completion meanwhile, and kA (queued before it) is not started.
  f.dispatcher.add(kB);
  REQUIRE(f.tracker.wait_ends(kB, 1));
  CHECK(f.tracker.starts(kA) == 1);
  f.gate.open();
  REQUIRE(f.tracker.wait_ends(kA, 2));
  CHECK(f.dispatcher.stop(kTimeout));
  std::vector<Tracker::Step> a_steps;
  for (const auto& s : f.tracker.log()) {
    if (s.key == kA) a_steps.push_back(s);
  }
  CHECK(a_steps == std::vector<Tracker::Step>{{true, kA}, {false, kA}, {true, kA}, {false, kA}});
  CHECK(f.tracker.max_per_key() == 1);
}

TEST_CASE("at most `workers` reconciles run at once", "[operator][dispatcher]") {
  Fixture f(2);
  f.body = blocked_on(f.gate);
  f.dispatcher.start();
  for (int i = 0; i < 6; ++i) f.dispatcher.add(numbered(i));
  REQUIRE(f.tracker.wait_running(2));
  const auto stats = f.dispatcher.stats();
  CHECK(stats.in_flight == 2);
  CHECK(stats.depth == 4);
  f.gate.open();
  for (int i = 0; i < 6; ++i) CHECK(f.tracker.wait_ends(numbered(i), 1));
  CHECK(f.dispatcher.stop(kTimeout));
  CHECK(f.tracker.max_running() == 2);
}

TEST_CASE("a failed reconcile is retried with backoff", "[operator][dispatcher]") {
  Fixture f(2, [](const ObjectKey&, int call) {
    return call <= 2 ? ReconcileOutcome::retry() : ReconcileOutcome::done();
  });
  f.dispatcher.start();
  f.dispatcher.add(kA);
  REQUIRE(f.tracker.wait_ends(kA, 1));
  // Backoff 5 ms, then 10 ms: not a moment earlier.
  for (const auto backoff : {5ms, 10ms}) {
    const int ran = f.tracker.starts(kA);
    const auto failed_at = f.clock.now();
    CHECK(f.armed() - failed_at == backoff);
    f.clock.advance(backoff - 1ms);
    CHECK(f.dispatcher.stats().in_flight == 0);  // a due key would be handed out within advance()
    f.clock.advance(1ms);
    REQUIRE(f.tracker.wait_ends(kA, ran + 1));
  }
  CHECK(f.dispatcher.stop(kTimeout));
  CHECK(f.tracker.starts(kA) == 3);
  const auto stats = f.dispatcher.stats();
  CHECK(stats.retries == 2);
  CHECK(stats.adds == 1);
  CHECK(stats.depth == 0);
}

TEST_CASE("a reconcile that throws is logged, counted and retried with backoff; the worker lives on",
          "[operator][dispatcher]") {
  Fixture f(1, [](const ObjectKey& key, int call) -> ReconcileOutcome {
    if (key == kA && call == 1) throw std::runtime_error("boom");
    if (key == kA && call == 2) throw 42;  // not even a std::exception
    return ReconcileOutcome::done();
  });
  f.dispatcher.start();
  f.dispatcher.add(kA);
  for (int call = 1; call <= 2; ++call) {  // each throw is retried after a backoff
    REQUIRE(f.tracker.wait_ends(kA, call));
    f.clock.advance_to(f.armed());
  }
  REQUIRE(f.tracker.wait_ends(kA, 3));
  f.dispatcher.add(kB);  // the one worker still works
  REQUIRE(f.tracker.wait_ends(kB, 1));
  CHECK(f.dispatcher.stop(kTimeout));
  CHECK(f.tracker.starts(kA) == 3);
  const auto stats = f.dispatcher.stats();
  CHECK(stats.panics == 2);
  CHECK(stats.retries == 2);
  CHECK(stats.in_flight == 0);
  CHECK(stats.depth == 0);
}

TEST_CASE("requeue_after runs the key again", "[operator][dispatcher]") {
  Fixture f(2, [](const ObjectKey&, int call) {
    return call == 1 ? ReconcileOutcome::requeue_after(30s) : ReconcileOutcome::done();
  });
  f.dispatcher.start();
  f.dispatcher.add(kA);
  REQUIRE(f.tracker.wait_ends(kA, 1));
  CHECK(f.armed() - f.clock.now() == 30s);
  f.clock.advance(29s);
  CHECK(f.dispatcher.stats().in_flight == 0);
  f.clock.advance(1s);
  REQUIRE(f.tracker.wait_ends(kA, 2));
  CHECK(f.dispatcher.stop(kTimeout));
  CHECK(f.tracker.starts(kA) == 2);
  CHECK(f.dispatcher.stats().retries == 0);
}

TEST_CASE("stop waits for running reconciles and hands out nothing more", "[operator][dispatcher]") {
  Fixture f(2);
  f.body = blocked_on(f.gate);
  f.dispatcher.start();
  f.dispatcher.add(kA);
  REQUIRE(f.tracker.wait_starts(kA, 1));
  std::promise<void> stopping;
  auto stopped = std::async(std::launch::async, [&f, &stopping] {
    stopping.set_value();
    const bool ok = f.dispatcher.stop(kTimeout);
    return std::make_pair(ok, f.tracker.log().size());  // what had happened when stop returned
  });
  stopping.get_future().wait();
  f.gate.open();
  REQUIRE(stopped.wait_for(kTimeout) == std::future_status::ready);
  const auto [ok, steps] = stopped.get();
  CHECK(ok);
  CHECK(steps == 2);  // kA's start and its end
  CHECK(f.dispatcher.stats().in_flight == 0);

  f.dispatcher.add(kB);
  CHECK(f.dispatcher.stats().depth == 1);
  CHECK(f.dispatcher.stats().in_flight == 0);
  CHECK(f.tracker.starts(kB) == 0);

  SECTION("and start resumes") {
    f.dispatcher.start();
    CHECK(f.tracker.wait_ends(kB, 1));
  }
}

TEST_CASE("stop returns false when a reconcile outlives the grace period", "[operator][dispatcher]") {
  Fixture f(2);
  f.body = blocked_on(f.gate);
  f.dispatcher.start();
  f.dispatcher.add(kA);
  REQUIRE(f.tracker.wait_starts(kA, 1));
  CHECK_FALSE(f.dispatcher.stop(50ms));
  CHECK(f.dispatcher.stats().in_flight == 1);
  f.gate.open();
  CHECK(f.tracker.wait_ends(kA, 1));
  CHECK(f.dispatcher.stop(kTimeout));
}

TEST_CASE("a failed reconcile with the server's Retry-After waits that long", "[operator][dispatcher]") {
  Fixture f(1, [](const ObjectKey&, int call) {
    return call == 1 ? ReconcileOutcome::retry(4s) : ReconcileOutcome::done();
  });
  f.dispatcher.start();
  f.dispatcher.add(kA);
  REQUIRE(f.tracker.wait_ends(kA, 1));
  const auto failed_at = f.clock.now();
  CHECK(f.armed() - failed_at == 4s);
  f.clock.advance(4s - 1ms);
  CHECK(f.tracker.starts(kA) == 1);
  f.clock.advance(1ms);
  REQUIRE(f.tracker.wait_ends(kA, 2));
  CHECK(f.dispatcher.stop(kTimeout));
}
