// WorkQueue, sequenced on one thread: get() is only called when a key is known to be ready.
#include "work_queue.hpp"

#include <catch2/catch.hpp>

namespace {

using repl::ObjectKey;
using repl::WorkQueue;

const ObjectKey kA{"ns", "a"};
const ObjectKey kB{"ns", "b"};
const ObjectKey kC{"other", "a"};

// Takes the next key, which the test knows is ready.
ObjectKey take(WorkQueue& q) {
  REQUIRE(q.depth() > 0);
  auto key = q.get();
  REQUIRE(key);
  return *key;
}

}  // namespace

TEST_CASE("keys are handed out in the order they were added", "[operator][work_queue]") {
  WorkQueue q;
  q.add(kA);
  q.add(kB);
  q.add(kC);
  CHECK(q.depth() == 3);
  CHECK(take(q) == kA);
  CHECK(take(q) == kB);
  CHECK(take(q) == kC);
  CHECK(q.depth() == 0);
}

TEST_CASE("adding a waiting key again does nothing", "[operator][work_queue]") {
  WorkQueue q;
  q.add(kA);
  q.add(kB);
  q.add(kA);
  CHECK(q.depth() == 2);
  CHECK(take(q) == kA);
  CHECK(take(q) == kB);
  CHECK(q.depth() == 0);
}

TEST_CASE("a key being processed is held back until done, then handed out again", "[operator][work_queue]") {
  WorkQueue q;
  q.add(kA);
  REQUIRE(take(q) == kA);
  q.add(kA);
  q.add(kA);
  CHECK(q.depth() == 0);  // not ready while a worker has it
  q.add(kB);
  CHECK(take(q) == kB);  // the second worker gets another key
  q.done(kB);
  CHECK(q.depth() == 0);
  q.done(kA);
  CHECK(q.depth() == 1);  // once, however often it was added
  CHECK(take(q) == kA);
  q.done(kA);
  CHECK(q.depth() == 0);
}

TEST_CASE("done without a new add does not requeue", "[operator][work_queue]") {
  WorkQueue q;
  q.add(kA);
  REQUIRE(take(q) == kA);
  q.done(kA);
  CHECK(q.depth() == 0);
  q.add(kA);  // added after done: ready again at once
  CHECK(take(q) == kA);
}

TEST_CASE("shut_down makes get return nothing and drops what was waiting", "[operator][work_queue]") {
  WorkQueue q;
  q.add(kA);
  q.add(kB);
  REQUIRE(take(q) == kA);
  q.add(kA);
  q.shut_down();
  CHECK(q.depth() == 0);
  CHECK_FALSE(q.get());
  CHECK_FALSE(q.get());
  q.add(kC);
  q.done(kA);  // was re-added while processing, but the queue is shutting down
  CHECK(q.depth() == 0);
  CHECK_FALSE(q.get());
}
