// Quotas on running Repls, counted from the watch plus this shim's own admissions, and per-user
// token buckets, in virtual time.
#include "limits.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "unit/support/json.hpp"

using namespace std::chrono_literals;
using repl::shim::Quota;
using Verdict = repl::shim::Quota::Verdict;

namespace {

std::string repl_json(const std::string& name, const std::string& user, bool suspended = false) {
  return R"({"metadata":{"name":")" + name + R"(","namespace":"repls"},"spec":{"userId":")" + user +
         R"(","suspended":)" + (suspended ? "true" : "false") + "}}";
}

void list(Quota& q, const std::vector<std::string>& objects) {
  q.begin_resync();
  for (const auto& o : objects) q.resync_item(repl::test::parse_json(o));
  q.end_resync();
}

}  // namespace

TEST_CASE("Quota: running repls per user, counted from the watch and this shim's admissions",
          "[shim][quota]") {
  repl::ManualClock clock;
  Quota q({3, 0, 30s}, clock);
  CHECK(q.admit("r4", "alice") == Verdict::kNotSynced);  // nothing listed yet: no guessing
  list(q, {repl_json("r1", "alice"), repl_json("r2", "alice"), repl_json("r3", "alice", true),
           repl_json("b1", "bob")});
  CHECK(q.running("alice") == 2);
  CHECK(q.admit("r4", "alice") == Verdict::kAdmitted);
  CHECK(q.running("alice") == 3);
  CHECK(q.admit("r4", "alice") == Verdict::kAdmitted);  // the same start again
  CHECK(q.admit("r5", "alice") == Verdict::kUserFull);
  CHECK(q.admit("r3", "alice") == Verdict::kUserFull);  // a resume counts too
  CHECK(q.admit("r1", "alice") == Verdict::kAdmitted);  // running already
  CHECK(q.admit("b2", "bob") == Verdict::kAdmitted);    // another user's count

  SECTION("a start admitted on another's reservation has none to give back") {
    bool reserved = true;
    CHECK(q.admit("r4", "mallory", &reserved) == Verdict::kAdmitted);  // (her apply then fails: 409)
    CHECK_FALSE(reserved);
    CHECK(q.admit("r5", "alice", &reserved) == Verdict::kUserFull);
    CHECK_FALSE(reserved);
  }
  SECTION("an apply that failed gives its place back") {
    q.release("r4");
    CHECK(q.admit("r3", "alice") == Verdict::kAdmitted);
  }
  SECTION("the watch showing it running takes over from the reservation") {
    q.on_event(repl::kube::EventType::kAdded, repl::test::parse_json(repl_json("r4", "alice")));
    CHECK(q.running("alice") == 3);
    clock.advance(31s);
    CHECK(q.running("alice") == 3);
    // Suspending one (the watch sees it) frees a place; deleting one too.
    q.on_event(repl::kube::EventType::kModified, repl::test::parse_json(repl_json("r1", "alice", true)));
    CHECK(q.admit("r5", "alice") == Verdict::kAdmitted);
    q.on_event(repl::kube::EventType::kDeleted, repl::test::parse_json(repl_json("r2", "alice")));
    CHECK(q.admit("r6", "alice") == Verdict::kAdmitted);
    CHECK(q.admit("r7", "alice") == Verdict::kUserFull);
  }
  SECTION("a reservation the watch never confirms ends") {
    clock.advance(31s);
    CHECK(q.running("alice") == 2);
    CHECK(q.admit("r5", "alice") == Verdict::kAdmitted);
  }
  SECTION("a relist replaces what was seen") {
    list(q, {repl_json("r1", "alice")});
    CHECK(q.running("alice") == 2);  // r1, and r4 still reserved
  }
}

TEST_CASE("Quota: the total over all users", "[shim][quota]") {
  repl::ManualClock clock;
  Quota q({0, 2, 30s}, clock);
  list(q, {repl_json("a1", "alice"), repl_json("b1", "bob", true)});
  CHECK(q.admit("b1", "bob") == Verdict::kAdmitted);
  CHECK(q.admit("c1", "carol") == Verdict::kTotalFull);
  CHECK(q.admit("a1", "alice") == Verdict::kAdmitted);
  Quota none({0, 0, 30s}, clock);
  CHECK(none.admit("x", "y") == Verdict::kAdmitted);  // no limits: no watch needed
}

TEST_CASE("Quota: 50 concurrent starts of one user against a quota of 3 admit exactly 3", "[shim][quota]") {
  repl::ManualClock clock;
  Quota q({3, 0, 30s}, clock);
  list(q, {});
  std::atomic<int> admitted{0}, refused{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 50; ++i) {
    threads.emplace_back(
        [&, i] { (q.admit("r" + std::to_string(i), "alice") == Verdict::kAdmitted ? admitted : refused)++; });
  }
  for (auto& t : threads) t.join();
  CHECK(admitted == 3);
  CHECK(refused == 47);
}

TEST_CASE("TokenBuckets: a burst, then one token a period, per key", "[shim][rate]") {
  repl::ManualClock clock;
  repl::shim::TokenBuckets b(60, 3);  // one a second, three at once
  for (int i = 0; i < 3; ++i) CHECK_FALSE(b.take("alice", clock.now()));
  const auto wait = b.take("alice", clock.now());
  REQUIRE(wait);
  CHECK(*wait == 1s);
  CHECK_FALSE(b.take("bob", clock.now()));  // bob's own bucket
  clock.advance(1s);
  CHECK_FALSE(b.take("alice", clock.now()));
  CHECK(b.take("alice", clock.now()));
  clock.advance(10s);  // refills to the burst, not beyond
  for (int i = 0; i < 3; ++i) CHECK_FALSE(b.take("alice", clock.now()));
  CHECK(b.take("alice", clock.now()));
  repl::shim::TokenBuckets slow(6, 1);  // one every 10 s
  CHECK_FALSE(slow.take("a", clock.now()));
  CHECK(slow.take("a", clock.now()) == 10s);
}

TEST_CASE("TokenBuckets: full buckets are dropped once there are many", "[shim][rate]") {
  repl::ManualClock clock;
  repl::shim::TokenBuckets b(60, 2);
  for (int i = 0; i < 10000; ++i) b.take("u" + std::to_string(i), clock.now());
  CHECK(b.size() == 10000);
  clock.advance(2s);  // all full again
  b.take("new", clock.now());
  CHECK(b.size() == 1);
}
