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
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/clock.hpp"
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
  ApiEventSender(kube::Client& client, Clock& clock, std::string instance)
      : client_(client), clock_(clock), instance_(std::move(instance)) {}
  void send(const Repl& repl, EventType type, const std::string& reason, const std::string& message,
            std::function<void()> done) override;

 private:
  kube::Client& client_;  // not owned
  Clock& clock_;          // not owned
  const std::string instance_;
};

// Hands Events to a sender one at a time, in order, so a reconcile never waits for an Event's round
// trip (client-go's EventBroadcaster does the same) and the API server sees one Event request at a
// time. No thread of its own: the next Event goes out when the sender says the last is through. At
// most `capacity` Events wait; beyond that they are dropped and counted. drain() (also the
// destructor's, if not called before) lets what is queued go out for up to `drain` of `clock`
// (Events recorded during shutdown are the ones worth reading), drops the rest, and waits for the
// one in flight (the transport's timeout bounds it, and Client::cancel_all ends it at once). The
// clock's timers must still run then (in the operator: before its io_context stops).
class AsyncEventRecorder final : public EventRecorder {
 public:
  AsyncEventRecorder(EventSender& target, Clock& clock, std::size_t capacity = 1000,
                     std::chrono::milliseconds drain = std::chrono::milliseconds(2000))
      : target_(target), clock_(clock), capacity_(capacity), drain_(drain) {}
  ~AsyncEventRecorder() override { drain(); }
  AsyncEventRecorder(const AsyncEventRecorder&) = delete;
  AsyncEventRecorder& operator=(const AsyncEventRecorder&) = delete;

  void record(const Repl& repl, EventType type, const std::string& reason,
              const std::string& message) override;
  std::size_t dropped() const;
  // Blocks as described above; afterwards nothing more is sent. Any thread, once.
  void drain();

 private:
  struct Pending {
    Repl repl;
    EventType type;
    std::string reason;
    std::string message;
  };
  // What the drain's timer touches: it may fire while (or after) the recorder goes.
  struct Sync {
    std::mutex mu;
    std::condition_variable cv;
    bool give_up = false;  // the drain time is over
  };
  // Under sync_->mu: the next Event to send, unless one is in flight (its completion sends the next).
  std::optional<Pending> take_next();
  void send(Pending event);

  EventSender& target_;  // not owned
  Clock& clock_;         // not owned
  const std::size_t capacity_;
  const std::chrono::milliseconds drain_;
  const std::shared_ptr<Sync> sync_ = std::make_shared<Sync>();
  std::deque<Pending> queue_;
  std::size_t dropped_ = 0;
  bool in_flight_ = false;
  bool closed_ = false;  // drained: nothing more is sent
};

}  // namespace repl
