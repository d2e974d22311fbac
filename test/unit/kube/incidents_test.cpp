// IncidentLog: an API server's failures reported once per incident, with explicit time points.
#include "kube/incidents.hpp"

#include <catch2/catch.hpp>
#include <chrono>

namespace {

using namespace std::chrono_literals;
using repl::kube::FailureClass;
using repl::kube::IncidentLog;
using Kind = repl::kube::IncidentReport::Kind;

const repl::SteadyTime kT0{std::chrono::hours(1)};

}  // namespace

TEST_CASE("classify tells the server's trouble from answers about the request", "[kube][incidents]") {
  CHECK(repl::kube::classify(0) == FailureClass::kUnreachable);
  CHECK(repl::kube::classify(429) == FailureClass::kThrottled);
  CHECK(repl::kube::classify(500) == FailureClass::kServerError);
  CHECK(repl::kube::classify(503) == FailureClass::kServerError);
  for (int code : {200, 201, 400, 403, 404, 409, 410, 422}) {
    INFO(code);
    CHECK_FALSE(repl::kube::classify(code));
  }
  CHECK(repl::kube::is_server_failure(repl::kube::transport_error("reset")));
  CHECK(repl::kube::is_server_failure(repl::kube::decode_status(503, "")));
  CHECK_FALSE(repl::kube::is_server_failure(repl::kube::decode_status(409, "")));
  CHECK_FALSE(repl::kube::is_server_failure(repl::kube::decode_error("not JSON")));
}

TEST_CASE("an outage is one incident: reported when it starts and once it is over", "[kube][incidents]") {
  IncidentLog log;
  auto started = log.observe("PATCH", 0, kT0);
  REQUIRE(started.size() == 1);
  CHECK(started[0].kind == Kind::kStarted);
  CHECK(started[0].failure == FailureClass::kUnreachable);
  CHECK(started[0].verb == "PATCH");
  // 300 retries of every verb over a minute: nothing more is said.
  for (int i = 1; i <= 300; ++i) {
    CHECK(log.observe(i % 2 ? "PATCH" : "WATCH", 0, kT0 + i * 200ms).empty());
  }
  // Back: the first success starts the recovery; reported once ten quiet seconds have passed.
  const auto back = kT0 + 61s;
  CHECK(log.observe("PATCH", 200, back).empty());
  CHECK(log.observe("GET", 200, back + 9s).empty());
  const auto ended = log.observe("GET", 200, back + 10s);
  REQUIRE(ended.size() == 1);
  CHECK(ended[0].kind == Kind::kEnded);
  CHECK(ended[0].failures == 301);
  CHECK(ended[0].lasted == 61s);
  CHECK_FALSE(log.open(FailureClass::kUnreachable));
  CHECK(log.observe("GET", 200, back + 20s).empty());
}

TEST_CASE("a fault on one request in ten stays one incident", "[kube][incidents]") {
  IncidentLog log;
  std::size_t reports = 0;
  for (int i = 0; i < 1000; ++i)
    reports += log.observe("PATCH", i % 10 == 0 ? 503 : 200, kT0 + i * 100ms).size();
  CHECK(reports == 1);  // the start; it is still going on
  CHECK(log.open(FailureClass::kServerError));
}

TEST_CASE("a verb the fault never touched does not end the incident", "[kube][incidents]") {
  IncidentLog log;
  REQUIRE(log.observe("PATCH", 429, kT0).size() == 1);
  for (int i = 1; i < 100; ++i) CHECK(log.observe("LIST", 200, kT0 + i * 1s).empty());
  CHECK(log.open(FailureClass::kThrottled));
  CHECK(log.observe("PATCH", 200, kT0 + 100s).empty());
  CHECK(log.observe("LIST", 200, kT0 + 110s).size() == 1);
}

TEST_CASE("each class is its own incident, and a late outage is a new one", "[kube][incidents]") {
  IncidentLog log;
  CHECK(log.observe("PATCH", 429, kT0).size() == 1);
  CHECK(log.observe("PATCH", 500, kT0 + 1s).size() == 1);
  CHECK(log.observe("PATCH", 429, kT0 + 2s).empty());
  CHECK(log.observe("PATCH", 200, kT0 + 3s).empty());  // both recover from here
  // Nothing for an hour, then the server is unreachable: the two old incidents end, a new starts.
  const auto reports = log.observe("PATCH", 0, kT0 + 1h);
  REQUIRE(reports.size() == 3);
  CHECK(reports[0].kind == Kind::kEnded);
  CHECK(reports[0].failure == FailureClass::kThrottled);
  CHECK(reports[0].lasted == 3s);
  CHECK(reports[0].failures == 2);
  CHECK(reports[1].kind == Kind::kEnded);
  CHECK(reports[1].failure == FailureClass::kServerError);
  CHECK(reports[2].kind == Kind::kStarted);
  CHECK(reports[2].failure == FailureClass::kUnreachable);
}
