// When a Repl ends on its own: idle suspend and the TTL after suspend, decided from its times.
#include "repl/lifecycle.hpp"

#include <catch2/catch.hpp>

#include "common/time.hpp"
#include "unit/support/repl_fixtures.hpp"

namespace {

using namespace std::chrono_literals;
using Action = repl::LifecycleDecision::Action;

repl::WallTime t(const std::string& rfc3339) { return *repl::parse_rfc3339(rfc3339); }

repl::Repl running() {
  auto r = repl::test::sample_repl();
  r.created = "2026-01-01T00:00:00Z";
  return r;
}

const repl::LifecycleSettings kDefaults{30min, 24h};

}  // namespace

TEST_CASE("a running Repl is suspended once idle for its timeout, counted from its latest activity",
          "[repl][lifecycle]") {
  auto r = running();
  SECTION("from its creation, when nothing else happened") {
    const auto before = repl::decide_lifecycle(r, false, kDefaults, t("2026-01-01T00:29:59Z"));
    CHECK(before.action == Action::kNone);
    CHECK(before.next_check == t("2026-01-01T00:30:00Z"));
    const auto due = repl::decide_lifecycle(r, false, kDefaults, t("2026-01-01T00:30:00Z"));
    CHECK(due.action == Action::kSuspendIdle);
    CHECK(due.since == t("2026-01-01T00:00:00Z"));
    CHECK(due.limit == 30min);
  }
  SECTION("from the last activity (/start, heartbeats)") {
    r.last_activity = "2026-01-01T01:00:00Z";
    CHECK(repl::decide_lifecycle(r, false, kDefaults, t("2026-01-01T01:10:00Z")).next_check ==
          t("2026-01-01T01:30:00Z"));
  }
  SECTION("from the Ready condition's last change (a resume by kubectl, a pod that became ready)") {
    r.last_activity = "2026-01-01T01:00:00Z";
    r.status.ready = repl::Condition{"Ready", "True", "DeploymentReady", "", 3, "2026-01-01T02:00:00Z"};
    CHECK(repl::decide_lifecycle(r, false, kDefaults, t("2026-01-01T02:10:00Z")).next_check ==
          t("2026-01-01T02:30:00Z"));
  }
  SECTION("the Repl's own idleTimeout wins; 0 is never") {
    r.spec.idle_timeout = "2h";
    CHECK(repl::decide_lifecycle(r, false, kDefaults, t("2026-01-01T01:00:00Z")).next_check ==
          t("2026-01-01T02:00:00Z"));
    r.spec.idle_timeout = "0";
    const auto never = repl::decide_lifecycle(r, false, kDefaults, t("2030-01-01T00:00:00Z"));
    CHECK(never.action == Action::kNone);
    CHECK_FALSE(never.next_check);
  }
  SECTION("the operator's default 0 is never too") {
    const auto never = repl::decide_lifecycle(r, false, {0s, 0s}, t("2030-01-01T00:00:00Z"));
    CHECK(never.action == Action::kNone);
    CHECK_FALSE(never.next_check);
  }
  SECTION("a Repl being deleted is left to its finalizer") {
    r.deleting = true;
    CHECK(repl::decide_lifecycle(r, false, kDefaults, t("2030-01-01T00:00:00Z")).action == Action::kNone);
  }
}

TEST_CASE("a suspended Repl is deleted once its pods are gone and its TTL has run out", "[repl][lifecycle]") {
  auto r = running();
  r.spec.suspended = true;
  r.last_activity = "2026-01-01T01:00:00Z";
  r.idle_suspended_at = "2026-01-01T01:30:00Z";
  SECTION("counted from the idle suspend") {
    CHECK(repl::decide_lifecycle(r, true, kDefaults, t("2026-01-02T01:29:59Z")).next_check ==
          t("2026-01-02T01:30:00Z"));
    const auto due = repl::decide_lifecycle(r, true, kDefaults, t("2026-01-02T01:30:00Z"));
    CHECK(due.action == Action::kDeleteExpired);
    CHECK(due.since == t("2026-01-01T01:30:00Z"));
    CHECK(due.limit == 24h);
  }
  SECTION("not while its pod still stops and syncs") {
    const auto stopping = repl::decide_lifecycle(r, false, kDefaults, t("2030-01-01T00:00:00Z"));
    CHECK(stopping.action == Action::kNone);
    CHECK_FALSE(stopping.next_check);  // its pod's end brings it back
  }
  SECTION("its own ttlAfterSuspend wins; default 0 and its own 0 are never") {
    r.spec.ttl_after_suspend = "1h";
    CHECK(repl::decide_lifecycle(r, true, kDefaults, t("2026-01-01T02:30:00Z")).action ==
          Action::kDeleteExpired);
    r.spec.ttl_after_suspend = "0";
    CHECK(repl::decide_lifecycle(r, true, kDefaults, t("2030-01-01T00:00:00Z")).action == Action::kNone);
    r.spec.ttl_after_suspend = "";
    CHECK(repl::decide_lifecycle(r, true, {30min, 0s}, t("2030-01-01T00:00:00Z")).action == Action::kNone);
  }
  SECTION("a running Repl is never expired, however old") {
    r.spec.suspended = false;
    CHECK(repl::decide_lifecycle(r, true, {0s, 1s}, t("2030-01-01T00:00:00Z")).action == Action::kNone);
  }
}
