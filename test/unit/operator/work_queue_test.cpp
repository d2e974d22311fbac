// WorkQueue as a pure scheduler: time is a TimePoint the test passes in, never a clock, so due
// times, backoff and the token bucket are checked exactly and without sleeping.
#include "work_queue.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "unit/support/object_key.hpp"

namespace {

using namespace std::chrono_literals;
using repl::ObjectKey;
using repl::WorkQueue;
using Keys = std::vector<ObjectKey>;

const ObjectKey kA{"ns", "a"};
const ObjectKey kB{"ns", "b"};
const ObjectKey kC{"other", "a"};
const WorkQueue::TimePoint kT0 = WorkQueue::TimePoint{} + 1h;  // an arbitrary start

ObjectKey numbered(int i) { return {"ns", "k" + std::to_string(i)}; }

// Pops (and releases) every key due at `now`, in the order handed out.
Keys drain(WorkQueue& q, WorkQueue::TimePoint now) {
  Keys out;
  while (auto key = q.pop(now)) {
    out.push_back(*key);
    q.done(*key);
  }
  return out;
}

double millis(WorkQueue::Duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

TEST_CASE("keys due at the same time are handed out in the order they were added", "[operator][work_queue]") {
  WorkQueue q;
  q.add(kA, kT0);
  q.add(kB, kT0);
  q.add(kC, kT0);
  CHECK(q.waiting() == 3);
  CHECK(drain(q, kT0) == Keys{kA, kB, kC});
  CHECK(q.waiting() == 0);
  CHECK_FALSE(q.pop(kT0 + 1h));
}

TEST_CASE("adding a waiting key again keeps one entry", "[operator][work_queue]") {
  WorkQueue q;
  q.add(kA, kT0);
  q.add(kB, kT0);
  q.add(kA, kT0);
  q.add_after(kA, 1s, kT0);
  CHECK(q.waiting() == 2);
  CHECK(drain(q, kT0 + 1h) == Keys{kA, kB});
}

TEST_CASE("of two due times for one key, the earlier wins", "[operator][work_queue]") {
  WorkQueue q;
  SECTION("later first, then earlier") {
    q.add_after(kA, 10s, kT0);
    q.add_after(kA, 2s, kT0);
  }
  SECTION("earlier first, then later") {
    q.add_after(kA, 2s, kT0);
    q.add_after(kA, 10s, kT0);
  }
  CHECK(q.waiting() == 1);
  CHECK(q.next_due() == kT0 + 2s);
  CHECK_FALSE(q.pop(kT0 + 2s - 1ns));
  CHECK(q.pop(kT0 + 2s) == kA);
  q.done(kA);
  CHECK(q.waiting() == 0);  // the later one did not stay behind
  CHECK_FALSE(q.pop(kT0 + 10s));
}

TEST_CASE("an add now overrides a pending add_after, and not the other way round", "[operator][work_queue]") {
  WorkQueue q;
  SECTION("add_after, then add") {
    q.add_after(kA, 1min, kT0);
    q.add(kA, kT0);
  }
  SECTION("add, then add_after") {
    q.add(kA, kT0);
    q.add_after(kA, 1min, kT0);
  }
  CHECK(q.pop(kT0) == kA);
  q.done(kA);
  CHECK(q.waiting() == 0);
}

TEST_CASE("pop hands out only keys that are due, earliest first", "[operator][work_queue]") {
  WorkQueue q;
  q.add_after(kA, 2s, kT0);
  q.add_after(kB, 1s, kT0);
  q.add_after(kC, 100ms, kT0);
  CHECK_FALSE(q.pop(kT0));
  CHECK_FALSE(q.pop(kT0 + 99ms));
  CHECK(q.pop(kT0 + 100ms) == kC);
  CHECK_FALSE(q.pop(kT0 + 999ms));
  CHECK(drain(q, kT0 + 5s) == Keys{kB, kA});  // by due time, not by insertion
}

TEST_CASE("a held key is not handed out again until done", "[operator][work_queue]") {
  WorkQueue q;
  q.add(kA, kT0);
  REQUIRE(q.pop(kT0) == kA);
  CHECK(q.held() == 1);
  CHECK(q.waiting() == 0);
  q.add(kA, kT0);
  q.add(kA, kT0 + 1s);
  CHECK(q.waiting() == 1);
  CHECK_FALSE(q.pop(kT0 + 1h));  // due, but a worker has it
  q.add(kB, kT0);
  CHECK(q.pop(kT0 + 1h) == kB);  // another worker gets another key
  CHECK(q.held() == 2);
  q.done(kB);
  CHECK_FALSE(q.pop(kT0 + 1h));
  q.done(kA);
  CHECK(q.held() == 0);
  CHECK(q.pop(kT0 + 1h) == kA);  // once, however often it was added
  q.done(kA);
  CHECK_FALSE(q.pop(kT0 + 1h));
}

TEST_CASE("done without a new add does not requeue", "[operator][work_queue]") {
  WorkQueue q;
  q.add(kA, kT0);
  REQUIRE(q.pop(kT0) == kA);
  q.done(kA);
  CHECK(q.waiting() == 0);
  CHECK(q.held() == 0);
  CHECK_FALSE(q.pop(kT0 + 1h));
  q.add(kA, kT0);
  CHECK(q.pop(kT0) == kA);
}

TEST_CASE("next_due is the earliest due time among keys no worker holds", "[operator][work_queue]") {
  WorkQueue q;
  CHECK_FALSE(q.next_due());
  q.add(kA, kT0);
  REQUIRE(q.pop(kT0) == kA);
  q.add_after(kA, 1s, kT0);
  CHECK_FALSE(q.next_due());  // only a held key waits
  q.add_after(kB, 5s, kT0);
  CHECK(q.next_due() == kT0 + 5s);
  q.done(kA);
  CHECK(q.next_due() == kT0 + 1s);
}

TEST_CASE("add_rate_limited backs off per key: 5 ms doubling, capped at 5 minutes",
          "[operator][work_queue]") {
  WorkQueue q;
  auto now = kT0;
  WorkQueue::Duration expected = 5ms;
  for (int i = 0; i < 45; ++i) {  // well past the cap, and past where 2^n would overflow
    INFO("failure " << i + 1);
    const auto delay = q.add_rate_limited(kA, now);
    CHECK(delay == expected);
    CHECK(q.failures(kA) == i + 1);
    CHECK_FALSE(q.pop(now + delay - 1ns));
    CHECK(q.pop(now + delay) == kA);
    q.done(kA);
    now += delay;
    expected = std::min<WorkQueue::Duration>(expected * 2, 5min);
  }
  CHECK(expected == 5min);
  // Other keys have their own count.
  CHECK(q.failures(kB) == 0);
  CHECK(q.add_rate_limited(kB, now) == 5ms);
  CHECK(q.add_rate_limited(kB, now + 1s) == 10ms);
  CHECK(q.failures(kB) == 2);
}

TEST_CASE("forget resets a key's backoff", "[operator][work_queue]") {
  WorkQueue q;
  q.add_rate_limited(kA, kT0);
  q.add_rate_limited(kA, kT0 + 1s);
  CHECK(q.add_rate_limited(kA, kT0 + 2s) == 20ms);
  q.add_rate_limited(kB, kT0);
  q.forget(kA);
  CHECK(q.failures(kA) == 0);
  CHECK(q.failures(kB) == 1);  // untouched
  CHECK(q.add_rate_limited(kA, kT0 + 3s) == 5ms);
}

TEST_CASE("a rate-limited add does not delay a key that is already due sooner", "[operator][work_queue]") {
  WorkQueue q;
  q.add(kA, kT0);
  CHECK(q.add_rate_limited(kA, kT0) == 5ms);  // the delay chosen...
  CHECK(q.pop(kT0) == kA);                    // ...but the earlier entry stays
}

TEST_CASE("the overall token bucket: burst 100, then 10 per second", "[operator][work_queue]") {
  WorkQueue q;
  int next = 0;
  const auto rate_limited = [&](WorkQueue::TimePoint now) {
    return q.add_rate_limited(numbered(next++), now);
  };
  for (int i = 0; i < 100; ++i) {
    INFO("add " << i + 1);
    REQUIRE(rate_limited(kT0) == 5ms);  // only the key's own first backoff
  }
  const ObjectKey the_101st = numbered(next);
  CHECK(millis(rate_limited(kT0)) == Approx(100).margin(0.001));
  CHECK(millis(rate_limited(kT0)) == Approx(200).margin(0.001));
  CHECK(drain(q, kT0 + 99ms).size() == 100);
  CHECK(q.pop(kT0 + 100ms) == the_101st);

  SECTION("tokens come back at 10 per second") {
    // 200 ms later two tokens are back, both already promised to the 101st and 102nd.
    CHECK(millis(rate_limited(kT0 + 200ms)) == Approx(100).margin(0.001));
    // A second after that, ten more: nine to spend at once.
    for (int i = 0; i < 9; ++i) {
      INFO("add " << i + 1 << " after the refill");
      CHECK(rate_limited(kT0 + 1200ms) == 5ms);
    }
    CHECK(millis(rate_limited(kT0 + 1200ms)) == Approx(100).margin(0.001));
  }
  SECTION("refilling stops at the burst size") {
    const auto later = kT0 + 1h;
    for (int i = 0; i < 100; ++i) {
      INFO("add " << i + 1 << " an hour later");
      REQUIRE(rate_limited(later) == 5ms);
    }
    CHECK(millis(rate_limited(later)) == Approx(100).margin(0.001));
  }
}

TEST_CASE("the bucket delay applies on top of a shorter per-key backoff", "[operator][work_queue]") {
  WorkQueue::Options options;
  options.bucket_burst = 1;
  options.bucket_qps = 1;
  WorkQueue q(options);
  CHECK(q.add_rate_limited(kA, kT0) == 5ms);
  CHECK(q.add_rate_limited(kB, kT0) == 1s);
  CHECK(drain(q, kT0 + 999ms) == Keys{kA});
  CHECK(drain(q, kT0 + 1s) == Keys{kB});
}

TEST_CASE("waiting and held count keys, not adds", "[operator][work_queue]") {
  WorkQueue q;
  q.add(kA, kT0);
  q.add_after(kB, 1s, kT0);
  q.add_rate_limited(kC, kT0);
  q.add(kA, kT0);
  CHECK(q.waiting() == 3);
  CHECK(q.held() == 0);
  REQUIRE(q.pop(kT0) == kA);
  CHECK(q.waiting() == 2);
  CHECK(q.held() == 1);
  q.done(kA);
  q.done(kA);  // harmless
  CHECK(q.held() == 0);
}

TEST_CASE("due() counts the waiting keys due by a time, not those delayed past it",
          "[operator][work_queue]") {
  WorkQueue q;
  q.add(kA, kT0);
  q.add_after(kB, 30min, kT0);
  q.add_after(kC, 1s, kT0);
  CHECK(q.waiting() == 3);
  CHECK(q.due(kT0) == 1);
  CHECK(q.due(kT0 + 1s) == 2);
  CHECK(q.due(kT0 + 30min) == 3);
  CHECK(drain(q, kT0) == Keys{kA});
  CHECK(q.due(kT0) == 0);
  CHECK(q.waiting() == 2);
}

TEST_CASE("a failed key waits at least what the server asked for (Retry-After)", "[operator][work_queue]") {
  WorkQueue q;
  CHECK(q.add_rate_limited(kA, kT0, 3s) == 3s);  // not the 5 ms of the first backoff
  CHECK_FALSE(q.pop(kT0 + 2999ms));
  CHECK(q.pop(kT0 + 3s) == kA);
  q.done(kA);
  // A Retry-After shorter than the key's backoff changes nothing.
  for (int i = 0; i < 10; ++i) q.add_rate_limited(kB, kT0, 0s);
  CHECK(q.add_rate_limited(kB, kT0, 1s) == 5ms * 1024);
}

TEST_CASE("retry_failed_now makes the keys in a failure's backoff due now, keeping their counts",
          "[operator][queue]") {
  using namespace std::chrono_literals;
  repl::WorkQueue q({.base_delay = 1s, .max_delay = 5min, .bucket_qps = 100, .bucket_burst = 100});
  const auto t0 = repl::WorkQueue::TimePoint{} + 1h;
  const repl::ObjectKey a{"ns", "a"}, b{"ns", "b"}, fine{"ns", "fine"};
  for (const auto& k : {a, b}) {
    for (int i = 0; i < 8; ++i) {  // eight failed reconciles, each retried when due
      q.add_rate_limited(k, t0);
      REQUIRE(q.pop(t0 + 1h) == k);
      q.done(k);
    }
    CHECK(q.add_rate_limited(k, t0) == 256s);  // the ninth: 256 s of backoff
  }
  q.add_after(fine, 10min, t0);  // waiting for a deadline, not a failure: left alone
  const auto now = t0 + 3s;
  CHECK(q.due(now) == 0);
  CHECK(q.retry_failed_now(now) == 2);
  CHECK(q.due(now) == 2);
  CHECK(q.failures(a) == 9);  // a failure again backs off further
  REQUIRE(q.pop(now) == a);
  q.done(a);
  CHECK(q.add_rate_limited(a, now) == 5min);  // the cap
  CHECK(q.due(now) == 1);                     // b
  CHECK(q.due(now + 10min) == 3);
  // Due already: nothing to do.
  CHECK(q.retry_failed_now(now) == 1);  // a, back in its backoff
  CHECK(q.retry_failed_now(now) == 0);
}
