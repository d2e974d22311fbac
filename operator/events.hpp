// Kubernetes Events on a Repl, so `kubectl describe repl` tells what the operator did and what went
// wrong: created or restored children, failures a user must act on.
//
// Recording never fails the caller: an Event that cannot be written is logged and dropped (Events
// are best-effort in Kubernetes too). Thread-safety: record() from any thread.
#pragma once

#include <rapidjson/document.h>

#include <string>

#include "kube/client.hpp"
#include "repl/repl.hpp"

namespace repl {

enum class EventType { kNormal, kWarning };

class EventRecorder {
 public:
  virtual ~EventRecorder() = default;
  virtual void record(const Repl& repl, EventType type, const std::string& reason,
                      const std::string& message) = 0;
};

// The core/v1 Event object for `repl` (pure; `now` is RFC 3339).
rapidjson::Document event_object(const Repl& repl, EventType type, const std::string& reason,
                                 const std::string& message, const std::string& now,
                                 const std::string& instance);

class ApiEventRecorder final : public EventRecorder {
 public:
  // `instance` names this operator replica (reportingInstance).
  ApiEventRecorder(kube::Client& client, std::string instance)
      : client_(client), instance_(std::move(instance)) {}
  void record(const Repl& repl, EventType type, const std::string& reason,
              const std::string& message) override;

 private:
  kube::Client& client_;  // not owned
  const std::string instance_;
};

}  // namespace repl
