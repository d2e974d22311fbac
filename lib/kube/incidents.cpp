#include "kube/incidents.hpp"

#include <memory>
#include <mutex>

#include "common/log.hpp"

namespace repl::kube {

std::optional<FailureClass> classify(int code) {
  if (code == 0) return FailureClass::kUnreachable;
  if (code == 429) return FailureClass::kThrottled;
  if (code >= 500) return FailureClass::kServerError;
  return std::nullopt;
}

std::string_view describe(FailureClass c) {
  switch (c) {
    case FailureClass::kUnreachable:
      return "API server unreachable";
    case FailureClass::kThrottled:
      return "API server throttling (429)";
    case FailureClass::kServerError:
      return "API server errors (5xx)";
  }
  return "API server failing";
}

bool is_server_failure(const ApiError& e) {
  return e.kind == ApiError::Kind::kTransport || (e.kind == ApiError::Kind::kApi && classify(e.code));
}

std::vector<IncidentReport> IncidentLog::observe(std::string_view verb, int code, SteadyTime now) {
  std::vector<IncidentReport> reports;
  for (std::size_t c = 0; c < incidents_.size(); ++c) {
    auto& incident = incidents_[c];
    if (!incident || !incident->recovering_since || now - *incident->recovering_since < quiet_) continue;
    reports.push_back({IncidentReport::Kind::kEnded, static_cast<FailureClass>(c), "", 0, incident->failures,
                       *incident->recovering_since - incident->started});
    incident.reset();
  }
  if (const auto failure = classify(code)) {
    auto& incident = incidents_[static_cast<std::size_t>(*failure)];
    if (!incident) {
      incident = Incident{now, 1, {std::string(verb)}, std::nullopt};
      reports.push_back({IncidentReport::Kind::kStarted, *failure, std::string(verb), code, 1, {}});
      return reports;
    }
    ++incident->failures;
    incident->recovering_since.reset();
    incident->verbs.emplace(verb);
    return reports;
  }
  for (auto& incident : incidents_) {
    if (incident && !incident->recovering_since && incident->verbs.contains(verb))
      incident->recovering_since = now;
  }
  return reports;
}

Client::Observer incident_logger(Clock& clock, Client::Observer next) {
  struct Shared {
    std::mutex mu;
    IncidentLog incidents;
  };
  auto shared = std::make_shared<Shared>();
  return [shared, &clock, next = std::move(next)](std::string_view verb, int code) {
    std::vector<IncidentReport> reports;
    {
      std::lock_guard lock(shared->mu);
      reports = shared->incidents.observe(verb, code, clock.now());
    }
    for (const auto& r : reports) {
      if (r.kind == IncidentReport::Kind::kStarted) {
        log::warn("API requests failing",
                  {{"incident", describe(r.failure)},
                   {"verb", r.verb},
                   {"code", std::to_string(r.code)},
                   {"note", "retried with backoff; logged once, and again when over"}});
      } else {
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(r.lasted).count();
        log::info("API requests recovered", {{"incident", describe(r.failure)},
                                             {"failures", std::to_string(r.failures)},
                                             {"lasted_ms", std::to_string(ms)}});
      }
    }
    if (next) next(verb, code);
  };
}

}  // namespace repl::kube
