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
