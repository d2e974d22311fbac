// WriteLedger: which applies put back what another client undid, and how they are spaced out.
#include "write_ledger.hpp"

#include <catch2/catch.hpp>
#include <chrono>

namespace {

using namespace std::chrono_literals;
using repl::ObjectKey;
using repl::WriteLedger;

const ObjectKey kRepl{"team-a", "abc"};
const repl::SteadyTime kStart{};

}  // namespace

TEST_CASE("a repair is an apply of the same thing applied before", "[operator][repairs]") {
  WriteLedger r;
  CHECK_FALSE(r.is_repair(kRepl, 1, 42));  // nothing applied yet (a restarted operator)
  r.applied(kRepl, 1, 42);
  CHECK(r.is_repair(kRepl, 1, 42));
  CHECK_FALSE(r.is_repair(kRepl, 1, 43));  // the desired state changed: an update, not a repair
  CHECK_FALSE(r.is_repair(kRepl, 0, 42));
  CHECK_FALSE(r.is_repair({"team-a", "other"}, 1, 42));
  r.forget(kRepl);
  CHECK_FALSE(r.is_repair(kRepl, 1, 42));
  CHECK(r.size() == 0);
}

TEST_CASE("repairs: a burst at once, then waits that double up to the cap; quiet starts over",
          "[operator][repairs]") {
  WriteLedger r({.burst = 3, .base = 1s, .max = 10s, .quiet = 60s});
  auto now = kStart + 1h;
  for (int i = 0; i < 3; ++i) CHECK(r.admit(kRepl, {"Service abc"}, now).now);
  const auto contest = r.contested(kRepl, now);
  REQUIRE(contest);
  CHECK(contest->message ==
        "another client keeps changing or deleting Service abc: 3 repairs came within 1m of each other, so "
        "each repair now waits twice as long as the one before (up to 10s); this ends 1m after the last "
        "repair");
  CHECK(contest->until == now + 60s);
  // Each wait: refused until it is over, then one repair.
  for (const auto wait : {1s, 2s, 4s, 8s, 10s, 10s}) {
    const auto refused = r.admit(kRepl, {"Service abc"}, now);
    CHECK_FALSE(refused.now);
    CHECK(refused.wait == wait);
    CHECK_FALSE(r.admit(kRepl, {"Service abc"}, now + wait - 1ms).now);
    now += wait;
    CHECK(r.admit(kRepl, {"Service abc"}, now).now);
  }
  // A second child joins the message; the message is otherwise stable (it is the status).
  now += 10s;
  CHECK(r.admit(kRepl, {"Deployment abc"}, now).now);
  CHECK_THAT(r.contested(kRepl, now)->message, Catch::StartsWith("another client keeps changing or deleting "
                                                                 "Deployment abc, Service abc:"));
  // Quiet for a minute: not contested, and the next repairs are at once again.
  now += 60s;
  CHECK_FALSE(r.contested(kRepl, now));
  for (int i = 0; i < 3; ++i) CHECK(r.admit(kRepl, {"Service abc"}, now).now);
  CHECK_FALSE(r.admit(kRepl, {"Service abc"}, now).now);
  // Another Repl's repairs are its own.
  CHECK(r.admit({"team-a", "other"}, {"Service other"}, now).now);
}

TEST_CASE("short_duration reads as a person writes it", "[operator][repairs]") {
  CHECK(repl::short_duration(0s) == "0s");
  CHECK(repl::short_duration(45s) == "45s");
  CHECK(repl::short_duration(5min) == "5m");
  CHECK(repl::short_duration(90s) == "1m30s");
  CHECK(repl::short_duration(2h + 1s) == "2h1s");
  CHECK(repl::short_duration(1500ms) == "1s");
}

TEST_CASE("a refused apply is held back while nothing changed, for a hold that doubles",
          "[operator][repairs]") {
  WriteLedger r({.refusal_hold = 1min, .max_refusal_hold = 3min});
  auto now = kStart + 1h;
  CHECK_FALSE(r.refused_before(kRepl, 2, 42, 0, now));
  r.refused(kRepl, 2, 42, 0, "Ingress x: host too long", now);
  auto held = r.refused_before(kRepl, 2, 42, 0, now + 59s);
  REQUIRE(held);
  CHECK(held->why == "Ingress x: host too long");
  CHECK(held->until == now + 1min);
  CHECK_FALSE(r.refused_before(kRepl, 2, 43, 0, now));         // another apply
  CHECK_FALSE(r.refused_before(kRepl, 2, 42, 7, now));         // the child changed meanwhile
  CHECK_FALSE(r.refused_before(kRepl, 2, 42, 0, now + 1min));  // the hold is over: sent again
  // Refused again: 2 min, then 3 (the cap).
  now += 1min;
  r.refused(kRepl, 2, 42, 0, "Ingress x: host too long", now);
  CHECK(r.refused_before(kRepl, 2, 42, 0, now)->until == now + 2min);
  now += 2min;
  r.refused(kRepl, 2, 42, 0, "Ingress x: host too long", now);
  CHECK(r.refused_before(kRepl, 2, 42, 0, now)->until == now + 3min);
  // A success forgets it; a refusal of another apply starts at 1 min again.
  r.applied(kRepl, 2, 43);
  CHECK_FALSE(r.refused_before(kRepl, 2, 42, 0, now));
  r.refused(kRepl, 2, 44, 0, "other", now);
  CHECK(r.refused_before(kRepl, 2, 44, 0, now)->until == now + 1min);
}

TEST_CASE("another uid under the same name starts afresh", "[operator][repairs]") {
  WriteLedger r({.burst = 1});
  const auto now = kStart + 1h;
  r.begin(kRepl, "uid-1");
  r.applied(kRepl, 0, 42);
  CHECK(r.admit(kRepl, {"Service abc"}, now).now);
  CHECK(r.contested(kRepl, now));
  r.begin(kRepl, "uid-1");
  CHECK(r.is_repair(kRepl, 0, 42));
  r.begin(kRepl, "uid-2");
  CHECK_FALSE(r.is_repair(kRepl, 0, 42));
  CHECK_FALSE(r.contested(kRepl, now));
  CHECK(r.admit(kRepl, {"Service abc"}, now).now);
}
