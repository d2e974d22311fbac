// The watcher: parsing watch-stream lines, and the pure state machine step(), transition by
// transition, with explicit time points so backoff and its reset are exact.
#include "kube/watcher.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "unit/support/status_json.hpp"

namespace {

using namespace std::chrono_literals;
using repl::SteadyDuration;
using repl::SteadyTime;
using repl::kube::ApiError;
using repl::kube::EventType;
using repl::kube::parse_watch_event;
using namespace repl::kube::watcher;
using Kind = Action::Kind;
using Phase = State::Phase;

std::string event_line(const std::string& type, const std::string& object) {
  return R"({"type":")" + type + R"(","object":)" + object + "}";
}

std::string repl_object(const std::string& name, const std::string& rv) {
  return R"({"apiVersion":"peetcode.com/v1alpha1","kind":"Repl","metadata":{"name":")" + name +
         R"(","namespace":"team-a","resourceVersion":")" + rv + R"("},"spec":{"userId":"u"}})";
}

}  // namespace

TEST_CASE("parse_watch_event reads object events with their resourceVersion", "[kube][watcher]") {
  const std::pair<const char*, EventType> types[] = {
      {"ADDED", EventType::kAdded}, {"MODIFIED", EventType::kModified}, {"DELETED", EventType::kDeleted}};
  for (const auto& [name, type] : types) {
    INFO(name);
    auto ev = parse_watch_event(event_line(name, repl_object("abc", "1234")));
    REQUIRE(ev);
    CHECK(ev->type == type);
    CHECK(ev->resource_version == "1234");
    CHECK(std::string(ev->object["metadata"]["name"].GetString()) == "abc");
    CHECK(std::string(ev->object["spec"]["userId"].GetString()) == "u");
  }
}

TEST_CASE("parse_watch_event reads a BOOKMARK's resourceVersion", "[kube][watcher]") {
  auto ev = parse_watch_event(event_line(
      "BOOKMARK",
      R"({"kind":"Repl","apiVersion":"peetcode.com/v1alpha1","metadata":{"resourceVersion":"9000",)"
      R"("annotations":{"k8s.io/initial-events-end":"true"}}})"));
  REQUIRE(ev);
  CHECK(ev->type == EventType::kBookmark);
  CHECK(ev->resource_version == "9000");
}

TEST_CASE("parse_watch_event decodes an ERROR event's Status", "[kube][watcher]") {
  SECTION("410 Expired is gone") {
    auto ev = parse_watch_event(
        event_line("ERROR", repl::test::status_json(410, "Expired", "too old resource version: 1 (50)")));
    REQUIRE(ev);
    CHECK(ev->type == EventType::kError);
    CHECK(ev->error.kind == ApiError::Kind::kApi);
    CHECK(ev->error.code == 410);
    CHECK(ev->error.reason == "Expired");
    CHECK(ev->error.message == "too old resource version: 1 (50)");
    CHECK(ev->error.is_gone());
    CHECK(ev->resource_version.empty());
  }
  SECTION("other errors are not gone") {
    auto ev =
        parse_watch_event(event_line("ERROR", repl::test::status_json(500, "InternalError", "etcd down")));
    REQUIRE(ev);
    CHECK(ev->error.code == 500);
    CHECK_FALSE(ev->error.is_gone());
  }
  SECTION("a Status without a code counts as 500") {
    auto ev = parse_watch_event(event_line("ERROR", R"({"kind":"Status","message":"?"})"));
    REQUIRE(ev);
    CHECK(ev->error.code == 500);
  }
}

TEST_CASE("an object without a resourceVersion gives an empty one", "[kube][watcher]") {
  auto ev = parse_watch_event(event_line("ADDED", R"({"kind":"Repl"})"));
  REQUIRE(ev);
  CHECK(ev->resource_version.empty());
}

TEST_CASE("malformed watch lines are decode errors", "[kube][watcher]") {
  for (const std::string line :
       {"", "not json", "[]", "\"ADDED\"", R"({"type":"ADDED"})", R"({"object":{}})",
        R"({"type":"ADDED","object":"text"})", R"({"type":"ADDED","object":null})",
        R"({"type":1,"object":{}})", R"({"type":"SYNC","object":{}})", R"({"type":"ADDED","object":{})"}) {
    INFO(line);
    auto ev = parse_watch_event(line);
    REQUIRE_FALSE(ev);
    CHECK(ev.error().kind == ApiError::Kind::kDecode);
  }
}

namespace {

const SteadyTime kT0 = SteadyTime{} + 10h;

ApiError gone() { return repl::kube::decode_status(410, repl::test::status_json(410, "Expired", "too old")); }
ApiError unavailable() { return repl::kube::decode_status(503, ""); }

State watching(const std::string& rv) {
  State s;
  s.phase = Phase::kWatching;
  s.resource_version = rv;
  return s;
}

void check_action(const Step& st, Kind kind, SteadyDuration delay) {
  CHECK(st.action.kind == kind);
  CHECK(st.action.delay == delay);
}

void check_relist(const Step& st) {
  CHECK(st.state.phase == Phase::kListing);
  CHECK(st.state.resource_version.empty());
  check_action(st, Kind::kList, 0s);
}

}  // namespace

TEST_CASE("a successful list starts a watch from its resourceVersion, at once", "[kube][watcher]") {
  const Step st = step(State{}, ListSucceeded{"100"}, kT0, 1.0);
  CHECK(st.state.phase == Phase::kWatching);
  CHECK(st.state.resource_version == "100");
  check_action(st, Kind::kWatch, 0s);
}

TEST_CASE("events and bookmarks move the resourceVersion and keep reading", "[kube][watcher]") {
  for (const EventType type :
       {EventType::kAdded, EventType::kModified, EventType::kDeleted, EventType::kBookmark}) {
    const Step st = step(watching("100"), EventReceived{type, "101", {}}, kT0, 1.0);
    CHECK(st.state.phase == Phase::kWatching);
    CHECK(st.state.resource_version == "101");
    check_action(st, Kind::kKeepReading, 0s);
    CHECK(st.state.failures == 0);
  }
  SECTION("an event without a resourceVersion keeps the last one") {
    CHECK(step(watching("100"), EventReceived{EventType::kAdded, "", {}}, kT0, 1.0).state.resource_version ==
          "100");
  }
}

TEST_CASE("410 Gone, as an ERROR event or when opening the watch, lists again at once", "[kube][watcher]") {
  check_relist(step(watching("100"), EventReceived{EventType::kError, "", gone()}, kT0, 1.0));
  check_relist(step(watching("100"), WatchOpenFailed{gone()}, kT0, 1.0));
  check_relist(step(watching("100"), StreamBroken{gone()}, kT0, 1.0));
}

TEST_CASE("a 410 after an outage relists at once, however many failures came before", "[kube][watcher]") {
  State s = watching("100");
  for (int i = 0; i < 6; ++i)
    s = step(s, WatchOpenFailed{repl::kube::transport_error("refused")}, kT0 + i * 1s, 1.0).state;
  const Step st = step(s, EventReceived{EventType::kError, "", gone()}, kT0 + 10s, 1.0);
  CHECK(st.state.phase == Phase::kListing);
  check_action(st, Kind::kList, 0s);
}

TEST_CASE("the backoff never exceeds 30 s, jitter included", "[kube][watcher]") {
  State s = watching("100");
  Step st{s, {}};
  for (int i = 0; i < 12; ++i)
    st = step(st.state, WatchOpenFailed{repl::kube::transport_error("refused")}, kT0 + i * 1s, 1.49);
  CHECK(st.action.delay == std::chrono::duration_cast<SteadyDuration>(30s));
}

TEST_CASE("410 Gone again right after a relist backs off instead of spinning", "[kube][watcher]") {
  // list -> watch -> 410 -> list -> watch -> 410: the second relist waits.
  Step st = step(watching("100"), WatchOpenFailed{gone()}, kT0, 1.0);
  check_action(st, Kind::kList, 0s);
  st = step(st.state, ListSucceeded{"200"}, kT0 + 1s, 1.0);
  st = step(st.state, WatchOpenFailed{gone()}, kT0 + 2s, 1.0);
  CHECK(st.state.phase == Phase::kListing);
  check_action(st, Kind::kList, 1600ms);
  // Two minutes of health later, a 410 relists at once again.
  st = step(st.state, ListSucceeded{"300"}, kT0 + 3s, 1.0);
  st = step(st.state, EventReceived{EventType::kError, "", gone()}, kT0 + 2s + 2min, 1.0);
  check_action(st, Kind::kList, 0s);
}

TEST_CASE("a stream the server ended is watched again from the same version, at once", "[kube][watcher]") {
  const Step st = step(watching("150"), StreamEnded{}, kT0, 1.0);
  CHECK(st.state.phase == Phase::kWatching);
  CHECK(st.state.resource_version == "150");
  check_action(st, Kind::kWatch, 0s);
  CHECK(st.state.failures == 0);
}

TEST_CASE("other watch failures retry the watch from the same version after a backoff", "[kube][watcher]") {
  const Input failures[] = {StreamBroken{unavailable()}, WatchOpenFailed{unavailable()},
                            StreamBroken{repl::kube::decode_error("bad event")},
                            WatchOpenFailed{repl::kube::transport_error("refused")},
                            EventReceived{EventType::kError, "", unavailable()}};
  for (const Input& in : failures) {
    const Step st = step(watching("150"), in, kT0, 1.0);
    CHECK(st.state.phase == Phase::kWatching);
    CHECK(st.state.resource_version == "150");
    check_action(st, Kind::kWatch, 800ms);
    CHECK(st.state.failures == 1);
    CHECK(st.state.last_failure == kT0);
  }
}

TEST_CASE("a failed list is retried after a backoff", "[kube][watcher]") {
  const Step st = step(State{}, ListFailed{unavailable()}, kT0, 1.0);
  CHECK(st.state.phase == Phase::kListing);
  check_action(st, Kind::kList, 800ms);
}

namespace {

// Feeds `n` consecutive list failures one second apart and returns the delays.
std::vector<SteadyDuration> delays_of_failures(int n, double jitter, State s = {}) {
  std::vector<SteadyDuration> out;
  for (int i = 0; i < n; ++i) {
    Step st = step(s, ListFailed{unavailable()}, kT0 + i * 1s, jitter);
    out.push_back(st.action.delay);
    s = std::move(st.state);
  }
  return out;
}

}  // namespace

TEST_CASE("backoff doubles from 0.8 s and is capped at 30 s", "[kube][watcher]") {
  const std::vector<SteadyDuration> expected = {800ms, 1600ms, 3200ms, 6400ms, 12800ms, 25600ms, 30s, 30s};
  CHECK(delays_of_failures(8, 1.0) == expected);
  // Many failures stay at the cap (no overflow of the doubling).
  const auto many = delays_of_failures(70, 1.0);
  CHECK(std::all_of(many.begin() + 6, many.end(), [](auto d) { return d == 30s; }));
}

TEST_CASE("jitter scales the backoff", "[kube][watcher]") {
  CHECK(delays_of_failures(3, 0.5) == std::vector<SteadyDuration>{400ms, 800ms, 1600ms});
  CHECK(delays_of_failures(2, 1.25) == std::vector<SteadyDuration>{1000ms, 2000ms});
  CHECK(delays_of_failures(8, 0.5).back() == 15s);
}

TEST_CASE("failures of any kind share one backoff", "[kube][watcher]") {
  Step st = step(State{}, ListFailed{unavailable()}, kT0, 1.0);
  st = step(step(st.state, ListSucceeded{"1"}, kT0 + 1s, 1.0).state, StreamBroken{unavailable()}, kT0 + 2s,
            1.0);
  CHECK(st.action.delay == 1600ms);
  st = step(st.state, WatchOpenFailed{unavailable()}, kT0 + 3s, 1.0);
  CHECK(st.action.delay == 3200ms);
}

TEST_CASE("backoff resets after 2 minutes without failures", "[kube][watcher]") {
  Step st = step(State{}, ListFailed{unavailable()}, kT0, 1.0);
  st = step(st.state, ListFailed{unavailable()}, kT0 + 1s, 1.0);
  REQUIRE(st.action.delay == 1600ms);
  SECTION("just under 2 minutes later it keeps doubling") {
    CHECK(step(st.state, ListFailed{unavailable()}, kT0 + 1s + 2min - 1ms, 1.0).action.delay == 3200ms);
  }
  SECTION("2 minutes after the last failure it starts again from 0.8 s") {
    const Step reset = step(st.state, ListFailed{unavailable()}, kT0 + 1s + 2min, 1.0);
    CHECK(reset.action.delay == 800ms);
    CHECK(reset.state.failures == 1);
    CHECK(step(reset.state, ListFailed{unavailable()}, kT0 + 3min, 1.0).action.delay == 1600ms);
  }
  SECTION("successes in between do not reset it early") {
    const State ok = step(step(st.state, ListSucceeded{"5"}, kT0 + 2s, 1.0).state,
                          EventReceived{EventType::kAdded, "6", {}}, kT0 + 3s, 1.0)
                         .state;
    CHECK(step(ok, StreamBroken{unavailable()}, kT0 + 4s, 1.0).action.delay == 3200ms);
  }
}

TEST_CASE("a Retry-After longer than the backoff is waited for, a shorter one changes nothing",
          "[kube][watcher]") {
  ApiError throttled = repl::kube::decode_status(429, "", "7");
  REQUIRE(throttled.retry_after == 7s);
  Step st = step(watching("100"), WatchOpenFailed{throttled}, kT0, 1.0);
  check_action(st, Kind::kWatch, 7s);
  st = step(State{}, ListFailed{throttled}, kT0, 1.0);
  check_action(st, Kind::kList, 7s);
  throttled.retry_after = 0s;
  st = step(watching("100"), StreamBroken{throttled}, kT0, 1.0);
  check_action(st, Kind::kWatch, 800ms);  // the backoff alone
}
