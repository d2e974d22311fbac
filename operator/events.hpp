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
#include <optional>
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

// Sends one Event and calls `done` once when it is through (written, or given up), on any thread.
class EventSender {
 public:
  virtual ~EventSender() = default;
  virtual void send(const Repl& repl, EventType type, const std::string& reason, const std::string& message,
                    std::function<void()> done) = 0;
};

// POSTs the Event without blocking (an asynchronous request: no thread waits for it); a failure is
// logged and the Event dropped.
class ApiEventSender final : public EventSender {
 public:
  // `instance` names this operator replica (reportingInstance).
  ApiEventSender(kube::Client& client, std::string instance)
      : client_(client), instance_(std::move(instance)) {}
  void send(const Repl& repl, EventType type, const std::string& reason, const std::string& message,
            std::function<void()> done) override;

 private:
  kube::Client& client_;  // not owned
  const std::string instance_;
};

// Hands Events to a sender one at a time, in order, so a reconcile never waits for an Event's round
// trip (client-go's EventBroadcaster does the same) and the API server sees one Event request at a
// time. No thread of its own: the next Event goes out when the sender says the last is through. At
// most `capacity` Events wait; beyond that they are dropped and counted. The destructor lets what
// is queued go out for up to `drain` (Events recorded during shutdown are the ones worth reading),
// drops the rest, and waits for the one in flight (the transport's timeout bounds it, and
// Client::cancel_all ends it at once).
class AsyncEventRecorder final : public EventRecorder {
 public:
  explicit AsyncEventRecorder(EventSender& target, std::size_t capacity = 1000,
                              std::chrono::milliseconds drain = std::chrono::milliseconds(2000))
      : target_(target), capacity_(capacity), drain_(drain) {}
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
  // Under mu_: the next Event to send, unless one is in flight (its completion sends the next).
  std::optional<Pending> take_next();
  void send(Pending event);

  EventSender& target_;  // not owned
  const std::size_t capacity_;
  const std::chrono::milliseconds drain_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  std::size_t dropped_ = 0;
  bool in_flight_ = false;
  bool closed_ = false;  // the destructor gave up on the queue: nothing more is sent
};

}  // namespace repl
