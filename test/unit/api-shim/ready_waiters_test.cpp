// ReadyWaiters in virtual time, fed as a watch would feed it: a wait ends when its Repl is Ready
// (read or watched), deleted (an event or a relist without it), when its read failed, or at its
// deadline (with the Repl as last seen); exactly once; and finish_all() ends the rest.
#include "ready_waiters.hpp"

#include <rapidjson/document.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "kube/error.hpp"

namespace {

using namespace std::chrono_literals;
using repl::kube::EventType;
using repl::shim::ReadyWaiters;
using repl::shim::WaitResult;

rapidjson::Document repl_json(const std::string& name, const std::string& phase, const std::string& version) {
  rapidjson::Document d;
  const std::string text = R"({"apiVersion":"peetcode.com/v1alpha1","kind":"Repl","metadata":{"name":")" +
                           name + R"(","namespace":"repls","uid":"u-)" + name + R"(","resourceVersion":")" +
                           version + R"(","generation":1},"spec":{"userId":"alice"},"status":{"phase":")" +
                           phase + R"("}})";
  d.Parse(text.c_str());
  REQUIRE_FALSE(d.HasParseError());
  return d;
}

repl::Repl repl_of(const std::string& name, const std::string& phase, const std::string& version) {
  auto r = repl::parse_repl(repl_json(name, phase, version));
  REQUIRE(r);
  return *r;
}

// The answers one waiter got.
struct Answers {
  std::vector<WaitResult> got;
  repl::shim::WaitDone done() {
    return [this](WaitResult r) { got.push_back(std::move(r)); };
  }
  // The one answer's phase ("" for a Repl without one, "none" for no Repl, "error" for a failure).
  std::string phase() const {
    REQUIRE(got.size() == 1);
    if (!got[0]) return "error";
    return *got[0] ? (*got[0])->status.phase : "none";
  }
};

struct Harness {
  repl::ManualClock clock;
  ReadyWaiters waiters{clock};
};

}  // namespace

TEST_CASE("a wait for a Repl already Ready ends with the read, at once", "[shim][waiters]") {
  Harness h;
  Answers a;
  const auto id = h.waiters.add("abc", 30s, a.done());
  h.waiters.seed(id, std::optional(repl_of("abc", "Ready", "5")));
  CHECK(a.phase() == "Ready");
  CHECK(h.waiters.waiting() == 0);
  CHECK(h.clock.pending() == 0);  // its timer is gone
}

TEST_CASE("a wait ends when the watch reports the Repl Ready, and only then", "[shim][waiters]") {
  Harness h;
  Answers a, other;
  const auto id = h.waiters.add("abc", 30s, a.done());
  h.waiters.add("xyz", 30s, other.done());
  h.waiters.seed(id, std::optional(repl_of("abc", "Starting", "5")));
  h.waiters.on_event(EventType::kModified, repl_json("abc", "Starting", "6"));
  h.waiters.on_event(EventType::kModified, repl_json("xyz", "Ready", "7"));  // another Repl's
  h.waiters.on_event(EventType::kModified, repl_json("unwatched", "Ready", "8"));
  CHECK(a.got.empty());
  h.clock.advance(10s);
  h.waiters.on_event(EventType::kModified, repl_json("abc", "Ready", "9"));
  CHECK(a.phase() == "Ready");
  REQUIRE(*a.got[0]);
  CHECK((*a.got[0])->resource_version == "9");
  CHECK(other.phase() == "Ready");
  h.waiters.on_event(EventType::kModified, repl_json("abc", "Ready", "10"));
  CHECK(a.got.size() == 1);  // exactly once
}

TEST_CASE("at the deadline a wait ends with the Repl as last seen", "[shim][waiters]") {
  Harness h;
  Answers a;
  const auto id = h.waiters.add("abc", 5s, a.done());
  h.waiters.seed(id, std::optional(repl_of("abc", "Pending", "5")));
  h.clock.advance(2s);
  h.waiters.on_event(EventType::kModified, repl_json("abc", "Starting", "6"));
  h.clock.advance(2999ms);
  CHECK(a.got.empty());
  h.clock.advance(1ms);
  CHECK(a.phase() == "Starting");
  CHECK(h.waiters.waiting() == 0);
}

TEST_CASE("an event newer than the read is not undone by the read", "[shim][waiters]") {
  Harness h;
  Answers a;
  const auto id = h.waiters.add("abc", 5s, a.done());
  h.waiters.on_event(EventType::kModified, repl_json("abc", "Starting", "7"));
  h.waiters.seed(id, std::optional(repl_of("abc", "Pending", "6")));
  h.clock.advance(5s);
  CHECK(a.phase() == "Starting");
}

TEST_CASE("a deadline before the read answers with the read", "[shim][waiters]") {
  Harness h;
  Answers a;
  const auto id = h.waiters.add("abc", 0s, a.done());
  h.clock.advance(0s);
  CHECK(a.got.empty());  // not an unknown Repl: nothing was read yet
  h.waiters.seed(id, std::optional(repl_of("abc", "Pending", "5")));
  CHECK(a.phase() == "Pending");
}

TEST_CASE("a deleted Repl ends its waits with no Repl", "[shim][waiters]") {
  Answers deleted, missing, relisted, kept;  // they outlive the waiters, whose end answers `kept`
  Harness h;
  h.waiters.seed(h.waiters.add("abc", 30s, deleted.done()), std::optional(repl_of("abc", "Starting", "5")));
  h.waiters.on_event(EventType::kDeleted, repl_json("abc", "Starting", "6"));
  CHECK(deleted.phase() == "none");

  h.waiters.seed(h.waiters.add("never", 30s, missing.done()), std::optional<repl::Repl>());
  CHECK(missing.phase() == "none");

  // A relist (after the watch expired) without the Repl: deleted meanwhile.
  h.waiters.seed(h.waiters.add("gone", 30s, relisted.done()),
                 std::optional(repl_of("gone", "Starting", "5")));
  h.waiters.seed(h.waiters.add("here", 30s, kept.done()), std::optional(repl_of("here", "Starting", "5")));
  h.waiters.begin_resync();
  h.waiters.resync_item(repl_json("here", "Starting", "9"));
  h.waiters.resync_item(repl_json("other", "Ready", "9"));
  h.waiters.end_resync();
  CHECK(relisted.phase() == "none");
  CHECK(kept.got.empty());
  CHECK(h.waiters.waiting() == 1);
}

TEST_CASE("a failed read ends the wait with the error", "[shim][waiters]") {
  Harness h;
  Answers a;
  const auto id = h.waiters.add("abc", 30s, a.done());
  h.waiters.seed(id, repl::Fail(repl::kube::transport_error("connection refused")));
  CHECK(a.phase() == "error");
  CHECK(h.clock.pending() == 0);
}

TEST_CASE("several waits for one Repl all end; finish_all ends the rest", "[shim][waiters]") {
  Harness h;
  Answers first, second, seen, unseen;
  h.waiters.seed(h.waiters.add("abc", 30s, first.done()), std::optional(repl_of("abc", "Starting", "5")));
  h.waiters.seed(h.waiters.add("abc", 60s, second.done()), std::optional(repl_of("abc", "Starting", "5")));
  h.waiters.on_event(EventType::kModified, repl_json("abc", "Ready", "6"));
  CHECK(first.phase() == "Ready");
  CHECK(second.phase() == "Ready");

  h.waiters.seed(h.waiters.add("xyz", 30s, seen.done()), std::optional(repl_of("xyz", "Starting", "5")));
  h.waiters.add("new", 30s, unseen.done());  // its read still in flight
  h.waiters.finish_all();
  CHECK(seen.phase() == "Starting");
  CHECK(unseen.phase() == "error");
  CHECK(h.waiters.waiting() == 0);
  CHECK(h.clock.pending() == 0);
}
