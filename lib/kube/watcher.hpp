// The watcher: keeps a local view of one collection current by LIST, then WATCH from the list's
// resourceVersion, as kube-rs's watcher and client-go's reflector do.
//
//   Listing --list ok--> Watching(rv) --event/bookmark--> Watching(rv')
//      ^                     |  stream ended normally --> watch again from rv'
//      |                     |  410 Gone (HTTP or ERROR event) --> Listing (at once, unless the
//      |                     |      last answer was a 410 too: then after the backoff)
//      +---------------------+  any other failure --> the same step again after a backoff
//
// step() is the whole state machine, a pure function of (state, input, now, jitter); WatchRunner
// is the I/O that drives it. Backoff: 0.8 s doubling, scaled by a jitter in [0.5, 1.5), at most
// 30 s, reset after 2 minutes without failures.
//
// Thread-safety: step() is pure. A WatchRunner holds no thread: see its comment.
#pragma once

#include <rapidjson/document.h>

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/clock.hpp"
#include "common/result.hpp"
#include "kube/client.hpp"
#include "kube/error.hpp"

namespace repl::kube {

enum class EventType { kAdded, kModified, kDeleted, kBookmark, kError };

struct WatchEvent {
  EventType type = EventType::kError;
  std::string resource_version;  // of the object (or bookmark)
  rapidjson::Document object;    // the object; for kError, the Status
  ApiError error;                // for kError, the decoded Status
};

// Parses one line of a watch stream. A line that is not a watch event is a decode error.
Result<WatchEvent, ApiError> parse_watch_event(std::string_view line);

namespace watcher {

struct State {
  enum class Phase { kListing, kWatching };
  Phase phase = Phase::kListing;
  std::string resource_version;  // meaningful while watching
  int failures = 0;              // consecutive, for the backoff
  std::optional<SteadyTime> last_failure;
  int gone_in_a_row = 0;  // 410s with no healthy event between them
};

struct ListSucceeded {
  std::string resource_version;
};
struct ListFailed {
  ApiError error;
};
struct WatchOpenFailed {
  ApiError error;
};
struct EventReceived {
  EventType type;
  std::string resource_version;
  ApiError error;  // for kError
};
struct StreamEnded {};
struct StreamBroken {
  ApiError error;
};
using Input =
    std::variant<ListSucceeded, ListFailed, WatchOpenFailed, EventReceived, StreamEnded, StreamBroken>;

struct Action {
  enum class Kind { kList, kWatch, kKeepReading };
  Kind kind = Kind::kList;
  SteadyDuration delay{};  // wait this long before acting
};

struct Step {
  State state;
  Action action;
};

inline constexpr auto kInitialBackoff = std::chrono::milliseconds(800);
inline constexpr auto kMaxBackoff = std::chrono::seconds(30);
inline constexpr auto kBackoffReset = std::chrono::minutes(2);

// `jitter` in [0.5, 1.5) scales a backoff delay.
Step step(const State& state, const Input& input, SteadyTime now, double jitter);

}  // namespace watcher

// Receives the watcher's view of the collection. A (re)list is delivered as begin_resync, one
// resync_item per object, end_resync: the sink replaces its contents with exactly those objects.
// on_progress(rv) says that every change up to resourceVersion rv has been delivered: after each
// list (its version) and for each bookmark.
class WatchSink {
 public:
  virtual ~WatchSink() = default;
  virtual void begin_resync() = 0;
  virtual void resync_item(const rapidjson::Value& object) = 0;
  virtual void end_resync() = 0;
  virtual void on_event(EventType type, const rapidjson::Value& object) = 0;
  virtual void on_progress(const std::string& /*resource_version*/) {}
};

// One watch feeding several sinks, in order (e.g. the shim's waits and its quota).
class SinkTee final : public WatchSink {
 public:
  explicit SinkTee(std::vector<WatchSink*> sinks) : sinks_(std::move(sinks)) {}
  void begin_resync() override {
    for (auto* s : sinks_) s->begin_resync();
  }
  void resync_item(const rapidjson::Value& object) override {
    for (auto* s : sinks_) s->resync_item(object);
  }
  void end_resync() override {
    for (auto* s : sinks_) s->end_resync();
  }
  void on_event(EventType type, const rapidjson::Value& object) override {
    for (auto* s : sinks_) s->on_event(type, object);
  }
  void on_progress(const std::string& resource_version) override {
    for (auto* s : sinks_) s->on_progress(resource_version);
  }

 private:
  std::vector<WatchSink*> sinks_;  // not owned
};

// What a WatchRunner tells its observer (for metrics): a list done (the first, or a relist), a
// watch opened again after the stream ended or broke, a failed request.
// kRecovered: a list done or an event read after failures (the API server answers again).
enum class WatchSignal { kListed, kRelisted, kRewatched, kFailed, kRecovered };

// The API server's watch cache sends every watcher a bookmark about once a minute (and one just
// before timeoutSeconds): a stream silent for three minutes is stalled (a proxy or load balancer
// holding a connection whose other side is gone), so it is cancelled and watched again.
inline constexpr SteadyDuration kDefaultStallTimeout = std::chrono::minutes(3);

struct WatcherOptions {
  std::string collection;  // e.g. collection_path(repls(), "")
  std::string label_selector;
  int page_size = 500;
  std::string name;                                 // for logs
  std::function<void(WatchSignal)> on_signal = {};  // called on the watcher's thread
  std::string field_selector = {};
  SteadyDuration stall_timeout = kDefaultStallTimeout;  // zero: never
};

// The I/O around step(): lists, watches and feeds the sink until stop() is called. An open stream
// that yields no line for options.stall_timeout is cancelled and counts as broken. Failures are
// logged once per incident: a warning at the first, the ones after it at debug level, and one line
// when the watcher recovers (a list done or an event read), with how many failed and for how long.
// It holds no
// thread: every request, read and backoff is an asynchronous operation (the transport's, or a timer
// of `clock`, which must outlive the runner), one at a time, and the runner's own code runs between
// them on `executor`. The sink and the observer are called from one thread at a time (the
// executor's; a list's items from the transport's), and never after wait() has returned.
class WatchRunner {
 public:
  WatchRunner(Client& client, Clock& clock, boost::asio::any_io_executor executor, WatcherOptions options,
              WatchSink& sink);
  ~WatchRunner();  // stop(), then wait()
  WatchRunner(const WatchRunner&) = delete;
  WatchRunner& operator=(const WatchRunner&) = delete;

  // Starts listing; returns at once.
  void start();
  // Any thread: ends the runner promptly. A backoff is cut short and an open stream cancelled; a
  // request in flight ends when the transport answers it (Client::cancel_all makes that prompt).
  void stop();
  // Blocks until the runner has ended after stop() (at once if it never started).
  void wait();

 private:
  class Loop;
  std::shared_ptr<Loop> loop_;
};

}  // namespace repl::kube
