// Failures of the API server as incidents, so an outage is logged once, not once per retry.
//
// Every finished request is observed (its verb and HTTP status, 0 when there was no answer). A
// failure of one class (unreachable: no answer; throttled: 429; server error: 5xx) opens an incident
// of that class, reported once; the failures after it are counted. A request of a verb that failed
// in it answering without such a failure starts its recovery (a verb the fault never touched proves
// nothing); a recovery that `quiet` passes without another failure of the class ends the incident,
// reported at the next request observed, with the count. So a fault hitting one request in ten
// stays one incident, and an outage long after the last one is a new one.
//
//   IncidentLog incidents;
//   for (const auto& report : incidents.observe("PATCH", 429, clock.now())) log(report);
//
// Pure: time is passed in. Thread-safety: none (the caller serialises, e.g. under a mutex).
#pragma once

#include <array>
#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.hpp"
#include "kube/client.hpp"
#include "kube/error.hpp"

namespace repl::kube {

enum class FailureClass { kUnreachable, kThrottled, kServerError };

// The class of a request's outcome, or std::nullopt when it is not an API server failure (2xx,
// and 4xx other than 429: answers about the request, not the server's health).
std::optional<FailureClass> classify(int code);
std::string_view describe(FailureClass c);
// Whether an error is the API server's trouble (an incident's), not an answer about the request.
bool is_server_failure(const ApiError& e);

struct IncidentReport {
  enum class Kind { kStarted, kEnded };
  Kind kind = Kind::kStarted;
  FailureClass failure = FailureClass::kUnreachable;
  std::string verb;            // kStarted: the request that failed first
  int code = 0;                // kStarted: its status
  std::uint64_t failures = 0;  // kEnded: failed requests in the incident
  SteadyDuration lasted{};     // kEnded: from the first failure to the start of the recovery
};

class IncidentLog {
 public:
  static constexpr auto kDefaultQuiet = std::chrono::seconds(10);
  explicit IncidentLog(SteadyDuration quiet = kDefaultQuiet) : quiet_(quiet) {}

  // What this request starts or ends (an incident over before it, and one it starts).
  std::vector<IncidentReport> observe(std::string_view verb, int code, SteadyTime now);
  bool open(FailureClass c) const { return incidents_[static_cast<std::size_t>(c)].has_value(); }

 private:
  struct Incident {
    SteadyTime started;
    std::uint64_t failures = 0;
    std::set<std::string, std::less<>> verbs;    // verbs that failed in it
    std::optional<SteadyTime> recovering_since;  // a failed verb's success, no failure since
  };
  const SteadyDuration quiet_;
  std::array<std::optional<Incident>, 3> incidents_;
};

// An observer for Client that logs the incidents of the requests it sees (a warning when one
// starts, a line when it ends) and passes every request on to `next`. Thread-safe.
Client::Observer incident_logger(Clock& clock, Client::Observer next = {});

}  // namespace repl::kube
