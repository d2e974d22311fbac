// Kubernetes Events on a Repl, so `kubectl describe repl` tells what the operator did and what went
// wrong: created or restored children, failures a user must act on.
//
// Recording never fails the caller: an Event that cannot be written is logged and dropped (Events
// are best-effort in Kubernetes too). Thread-safety: record() from any thread.
#pragma once

#include <rapidjson/document.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

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

// Records through another recorder on a thread of its own, so a reconcile never waits for an
// Event's round trip (client-go's EventBroadcaster does the same). At most `capacity` Events wait;
// beyond that they are dropped and counted. The destructor sends what is queued, for up to
// `drain` (Events recorded during shutdown are the ones worth reading), then stops.
class AsyncEventRecorder final : public EventRecorder {
 public:
  AsyncEventRecorder(EventRecorder& target, std::size_t capacity = 1000,
                     std::chrono::milliseconds drain = std::chrono::milliseconds(2000));
  ~AsyncEventRecorder() override;
  AsyncEventRecorder(const AsyncEventRecorder&) = delete;
  AsyncEventRecorder& operator=(const AsyncEventRecorder&) = delete;

  void record(const Repl& repl, EventType type, const std::string& reason,
              const std::string& message) override;
  std::size_t dropped() const;

 private:
  struct Pending {
    Repl repl;
    EventType type;
    std::string reason;
    std::string message;
  };
  void run();

  EventRecorder& target_;  // not owned
  const std::size_t capacity_;
  const std::chrono::milliseconds drain_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  std::size_t dropped_ = 0;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point deadline_{};
  std::thread thread_;
};

}  // namespace repl
