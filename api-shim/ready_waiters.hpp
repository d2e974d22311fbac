// GET /repls/{replId}?wait=ready without a thread per waiting request: one watch of the namespace's
// Repls (a kube::WatchRunner on the shared io_context feeds this sink) and, per waiting request, a
// waiter with a timer of the injected clock. Nothing is cached: an event is decoded only when a
// waiter waits for its Repl.
//
//   auto id = waiters.add("abc", 30s, [respond](auto result) { ... });  // before reading the Repl
//   waiters.seed(id, api.get("abc"));   // what that read saw
//
// A waiter ends exactly once: when its Repl reports phase Ready (read or watched), when it is
// deleted (a DELETED event, or missing from a relist: std::nullopt), when its read failed (that
// error), or at the deadline (the Repl as last seen). Adding before reading leaves no gap: a change
// after the read arrives as an event. A deadline that passes before seed() ends the waiter with
// what seed() is given. finish_all() ends every waiter (shutdown): as last seen, or an error when
// nothing was seen yet.
//
// Thread-safety: every member from any thread. `done` runs without the lock held, on the thread
// that ended the waiter (the watch's, a timer's, or the caller of seed() or finish_all()). The
// clock's timers must not fire after the ReadyWaiters is destroyed (destroy it after its
// io_context has stopped, or with no waiter left).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "common/clock.hpp"
#include "common/result.hpp"
#include "kube/error.hpp"
#include "kube/watcher.hpp"
#include "repl/repl.hpp"

namespace repl::shim {

using WaitResult = Result<std::optional<Repl>, kube::ApiError>;
using WaitDone = std::function<void(WaitResult)>;

class ReadyWaiters final : public kube::WatchSink {
 public:
  using Id = std::uint64_t;

  explicit ReadyWaiters(Clock& clock) : clock_(clock) {}
  ~ReadyWaiters() override;  // finish_all()
  ReadyWaiters(const ReadyWaiters&) = delete;
  ReadyWaiters& operator=(const ReadyWaiters&) = delete;

  Id add(const std::string& repl_id, std::chrono::milliseconds timeout, WaitDone done);
  void seed(Id id, WaitResult read);
  void finish_all();
  std::size_t waiting() const;

  void begin_resync() override;
  void resync_item(const rapidjson::Value& object) override;
  void end_resync() override;
  void on_event(kube::EventType type, const rapidjson::Value& object) override;

 private:
  struct Waiter {
    std::string repl_id;
    WaitDone done;
    std::unique_ptr<Timer> timer;
    std::optional<Repl> last;
    bool watched = false;  // an event came: newer than any read
    bool seeded = false;
    bool expired = false;  // the deadline passed before seed()
  };
  using Ended = std::pair<WaitDone, WaitResult>;

  // Ends the waiter `it` points at with `result`: takes it out and returns what to call.
  Ended end(std::map<Id, Waiter>::iterator it, WaitResult result);
  void observed(const std::string& name, const rapidjson::Value* object);  // nullptr: deleted
  void expire(Id id);
  static void call(std::vector<Ended> ended);

  Clock& clock_;
  mutable std::mutex mu_;
  std::map<Id, Waiter> waiters_;
  std::multimap<std::string, Id> by_repl_;
  std::set<std::string> listed_;  // the names a relist in progress has seen
  Id next_id_ = 1;
};

}  // namespace repl::shim
