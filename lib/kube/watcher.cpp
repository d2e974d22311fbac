#include "kube/watcher.hpp"

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <random>

#include "common/json.hpp"
#include "common/log.hpp"

namespace repl::kube {

using json::member;

namespace {

std::optional<EventType> parse_type(std::string_view t) {
  if (t == "ADDED") return EventType::kAdded;
  if (t == "MODIFIED") return EventType::kModified;
  if (t == "DELETED") return EventType::kDeleted;
  if (t == "BOOKMARK") return EventType::kBookmark;
  if (t == "ERROR") return EventType::kError;
  return std::nullopt;
}

}  // namespace

Result<WatchEvent, ApiError> parse_watch_event(std::string_view line) {
  rapidjson::Document doc;
  doc.Parse(line.data(), line.size());
  if (doc.HasParseError() || !doc.IsObject()) return Fail(decode_error("watch event is not a JSON object"));
  const rapidjson::Value* type = member(doc, "type");
  const rapidjson::Value* object = member(doc, "object");
  if (type == nullptr || !type->IsString() || object == nullptr || !object->IsObject()) {
    return Fail(decode_error("watch event without type or object"));
  }
  const auto parsed = parse_type(type->GetString());
  if (!parsed) return Fail(decode_error(std::string("unknown watch event type ") + type->GetString()));
  WatchEvent ev;
  ev.type = *parsed;
  if (ev.type == EventType::kError) {
    const rapidjson::Value* code = member(*object, "code");
    ev.error = decode_status(code != nullptr && code->IsInt() ? code->GetInt() : 500, to_json(*object));
  } else if (const rapidjson::Value* meta = member(*object, "metadata")) {
    if (const rapidjson::Value* rv = member(*meta, "resourceVersion"); rv != nullptr && rv->IsString()) {
      ev.resource_version.assign(rv->GetString(), rv->GetStringLength());
    }
  }
  ev.object.CopyFrom(*object, ev.object.GetAllocator());
  return ev;
}

namespace watcher {
namespace {

using Phase = State::Phase;
using Kind = Action::Kind;

// Counts a failure and returns the delay before the next attempt.
SteadyDuration backoff(State& s, SteadyTime now, double jitter) {
  if (s.last_failure && now - *s.last_failure >= kBackoffReset) {
    s.failures = 0;
    s.gone_in_a_row = 0;
  }
  s.last_failure = now;
  const int doublings = std::min(s.failures, 16);
  ++s.failures;
  const auto base = std::min<SteadyDuration>(kInitialBackoff * (1LL << doublings), kMaxBackoff);
  return std::min<SteadyDuration>(std::chrono::duration_cast<SteadyDuration>(base * jitter), kMaxBackoff);
}

// The backoff, or longer when the server said how long to wait (Retry-After).
SteadyDuration backoff(State& s, SteadyTime now, double jitter, const ApiError& error) {
  return std::max<SteadyDuration>(backoff(s, now, jitter), error.retry_after);
}

// After 410 Gone: list again, at once, as after an outage, when the old version has been compacted.
// A server that keeps answering 410 to fresh versions (no healthy event in between) is failing, so
// the second 410 in a row waits for the backoff instead of spinning.
Step relist(State s, SteadyTime now, double jitter) {
  s.phase = Phase::kListing;
  s.resource_version.clear();
  const auto delay = backoff(s, now, jitter);
  ++s.gone_in_a_row;
  const Action action{Kind::kList, s.gone_in_a_row == 1 ? SteadyDuration{} : delay};
  return {std::move(s), action};
}

}  // namespace

Step step(const State& state, const Input& input, SteadyTime now, double jitter) {
  State s = state;
  return std::visit(
      [&](const auto& in) -> Step {
        using T = std::decay_t<decltype(in)>;
        if constexpr (std::is_same_v<T, ListSucceeded>) {
          s.phase = Phase::kWatching;
          s.resource_version = in.resource_version;
          return {std::move(s), {Kind::kWatch, {}}};
        } else if constexpr (std::is_same_v<T, ListFailed>) {
          const auto delay = backoff(s, now, jitter, in.error);
          return {std::move(s), {Kind::kList, delay}};
        } else if constexpr (std::is_same_v<T, WatchOpenFailed> || std::is_same_v<T, StreamBroken>) {
          if (in.error.is_gone()) return relist(std::move(s), now, jitter);
          const auto delay = backoff(s, now, jitter, in.error);
          return {std::move(s), {Kind::kWatch, delay}};
        } else if constexpr (std::is_same_v<T, EventReceived>) {
          if (in.type == EventType::kError) {
            if (in.error.is_gone()) return relist(std::move(s), now, jitter);
            const auto delay = backoff(s, now, jitter, in.error);
            return {std::move(s), {Kind::kWatch, delay}};
          }
          if (!in.resource_version.empty()) s.resource_version = in.resource_version;
          s.gone_in_a_row = 0;  // a healthy event
          return {std::move(s), {Kind::kKeepReading, {}}};
        } else {  // StreamEnded: the server's timeoutSeconds passed; carry on from where we are.
          s.gone_in_a_row = 0;
          return {std::move(s), {Kind::kWatch, {}}};
        }
      },
      input);
}

}  // namespace watcher

// The runner's state and its chain of operations. Each operation's callback holds the Loop (a
// shared_ptr), so a callback that comes late finds it alive; after stop() such a callback only
// ends the loop (resume), and touches neither the client nor the sink.
class WatchRunner::Loop final : public std::enable_shared_from_this<Loop> {
 public:
  Loop(Client& client, Clock& clock, boost::asio::any_io_executor executor, WatcherOptions options,
       WatchSink& sink)
      : client_(client),
        clock_(clock),
        executor_(std::move(executor)),
        options_(std::move(options)),
        sink_(sink),
        timer_(clock.make_timer()),
        stall_timer_(clock.make_timer()),
        rng_(std::random_device{}()) {}

  void start() {
    std::lock_guard lock(mu_);
    if (started_ || stopping_) return;
    started_ = true;
    boost::asio::post(executor_, [self = shared_from_this()] { self->act(); });
  }

  void stop() {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    if (!started_) return finish();
    if (stream_ != nullptr) stream_->cancel();
    if (sleeping_) {
      timer_->cancel();
      finish();
    }
  }

  void wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return finished_ || !started_; });
  }

 private:
  using Kind = watcher::Action::Kind;

  // Under mu_: the loop is over; wait() returns.
  void finish() {
    finished_ = true;
    sleeping_ = false;
    stall_timer_->cancel();
    stream_.reset();
    cv_.notify_all();
  }

  // Whether the loop may go on (and start an operation); if not, it ends here.
  bool may_continue() {
    std::lock_guard lock(mu_);
    if (stopping_) finish();
    return !stopping_;
  }

  // The callback of an operation: runs `next` on the executor, unless the runner was stopped.
  template <typename Fn>
  void resume(Fn next) {
    boost::asio::post(executor_, [self = shared_from_this(), next = std::move(next)]() mutable {
      {
        std::lock_guard lock(self->mu_);
        self->sleeping_ = false;
      }
      if (self->may_continue()) next(*self);
    });
  }

  void feed(const watcher::Input& in) {
    auto next = watcher::step(state_, in, clock_.now(), jitter_(rng_));
    state_ = std::move(next.state);
    action_ = next.action;
  }
  void signal(WatchSignal s) const {
    if (options_.on_signal) options_.on_signal(s);
  }

  // A failed request or a broken stream: a warning if it opens an incident, else a debug line.
  void failed(const char* what, const ApiError& error) {
    signal(WatchSignal::kFailed);
    const std::string described = error.describe();
    const std::string retry_after = std::to_string(error.retry_after.count());
    if (incident_) {
      ++incident_->failures;
      log::debug(what, {{"watcher", options_.name}, {"error", described}, {"retry_after_s", retry_after}});
      return;
    }
    incident_ = Incident{clock_.now(), 1};
    log::warn(what, {{"watcher", options_.name},
                     {"error", described},
                     {"retry_after_s", retry_after},
                     {"note", "retrying with backoff; logged again when it recovers"}});
  }
  // A list done or an event read: the incident, if any, is over.
  void recovered() {
    if (!incident_) return;
    const auto lasted =
        std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now() - incident_->since);
    log::info("watch recovered", {{"watcher", options_.name},
                                  {"failures", std::to_string(incident_->failures)},
                                  {"after_ms", std::to_string(lasted.count())}});
    incident_.reset();
    signal(WatchSignal::kRecovered);
  }

  // Carries out action_: after its delay, a list or a watch.
  void act() {
    if (action_.delay > SteadyDuration::zero()) {
      std::lock_guard lock(mu_);
      if (stopping_) return finish();
      sleeping_ = true;
      timer_->wait_until(clock_.now() + action_.delay, [self = shared_from_this()] {
        self->resume([](Loop& loop) {
          loop.action_.delay = {};
          loop.act();
        });
      });
      return;
    }
    if (!may_continue()) return;
    if (action_.kind == Kind::kList) {
      sink_.begin_resync();
      client_.list_async(
          options_.collection, {options_.label_selector, options_.page_size, options_.field_selector},
          [self = shared_from_this()](const rapidjson::Value& item) {
            if (!self->stopping_) self->sink_.resync_item(item);
          },
          [self = shared_from_this()](Client::ListResult rv) {
            self->resume([rv = std::move(rv)](Loop& loop) { loop.listed(rv); });
          });
      return;
    }
    client_.watch_async(
        options_.collection,
        {state_.resource_version, options_.label_selector, timeout_(rng_), true, options_.field_selector},
        [self = shared_from_this()](Transport::StreamResult stream) {
          self->resume([stream = std::move(stream)](Loop& loop) mutable { loop.opened(std::move(stream)); });
        });
  }

  void listed(const Client::ListResult& rv) {
    if (!rv) {
      failed("list failed", rv.error());
      feed(watcher::ListFailed{rv.error()});
      return act();
    }
    recovered();
    sink_.end_resync();
    sink_.on_progress(*rv);
    signal(listed_once_ ? WatchSignal::kRelisted : WatchSignal::kListed);
    listed_once_ = true;
    log::debug("listed", {{"watcher", options_.name}, {"resourceVersion", *rv}});
    feed(watcher::ListSucceeded{*rv});
    act();
  }

  void opened(Transport::StreamResult stream) {
    if (!stream) {
      failed("watch failed", stream.error());
      feed(watcher::WatchOpenFailed{stream.error()});
      return act();
    }
    if (watched_once_) signal(WatchSignal::kRewatched);
    watched_once_ = true;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return finish();
      stream_ = std::move(*stream);
      last_line_at_ = clock_.now();
      arm_stall_deadline(last_line_at_ + options_.stall_timeout);
    }
    opened_at_ = clock_.now();
    got_events_ = false;
    read();
  }

  void read() {
    stream_->next_async([self = shared_from_this()](LineStream::Line line) {
      self->resume([line = std::move(line)](Loop& loop) mutable { loop.got(std::move(line)); });
    });
  }

  // The open stream's read deadline: one timer per stream, not per line. When it fires it looks at
  // when the last line came, and waits again or cancels the stream.
  void arm_stall_deadline(SteadyTime at) {
    if (options_.stall_timeout <= SteadyDuration::zero()) return;
    stall_timer_->wait_until(at, [self = shared_from_this(), stream = streams_] {
      std::lock_guard lock(self->mu_);
      if (stream != self->streams_ || self->stream_ == nullptr || self->stopping_) return;  // stale
      const auto due = self->last_line_at_ + self->options_.stall_timeout;
      if (self->clock_.now() < due) return self->arm_stall_deadline(due);
      self->stalled_ = true;
      self->stream_->cancel();
    });
  }

  void got(LineStream::Line line) {
    const std::string& name = options_.name;
    bool stalled = false;
    {
      std::lock_guard lock(mu_);
      last_line_at_ = clock_.now();
      stalled = stalled_;
    }
    if (stalled) {
      // Whatever the cancelled read returned: a line that raced the deadline is read again by the
      // next watch, which starts from the last version taken in.
      const auto secs = std::chrono::duration_cast<std::chrono::seconds>(options_.stall_timeout).count();
      const ApiError error =
          transport_error("watch stalled: no event or bookmark for " + std::to_string(secs) + " s");
      failed("watch stalled", error);
      feed(watcher::StreamBroken{error});
    } else if (!line) {
      failed("watch stream broke", line.error());
      feed(watcher::StreamBroken{line.error()});
    } else if (!line->has_value()) {
      // A watch that ends at once with nothing in it (a proxy that cuts streams, a server that
      // refuses them politely) is a failure, or we would spin re-opening it (as client-go does).
      if (!got_events_ && clock_.now() - opened_at_ < std::chrono::seconds(1)) {
        const ApiError error = transport_error("watch ended at once, without events");
        failed("watch ended at once", error);
        feed(watcher::StreamBroken{error});
      } else {
        feed(watcher::StreamEnded{});
      }
    } else if (auto ev = parse_watch_event(**line); !ev) {
      failed("bad watch event", ev.error());
      feed(watcher::StreamBroken{ev.error()});
    } else {
      got_events_ = true;
      recovered();
      if (ev->type == EventType::kError) {
        log::info("watch error event", {{"watcher", name}, {"error", ev->error.describe()}});
      } else if (ev->type == EventType::kBookmark) {
        sink_.on_progress(ev->resource_version);
      } else {
        sink_.on_event(ev->type, ev->object);
      }
      feed(watcher::EventReceived{ev->type, ev->resource_version, ev->error});
    }
    if (action_.kind == Kind::kKeepReading) return read();
    {
      std::lock_guard lock(mu_);
      stream_.reset();
      ++streams_;  // the stall deadline of this stream is void
      stalled_ = false;
      stall_timer_->cancel();
    }
    act();
  }

  Client& client_;
  Clock& clock_;
  const boost::asio::any_io_executor executor_;
  const WatcherOptions options_;
  WatchSink& sink_;
  const std::unique_ptr<Timer> timer_;        // the backoff's; armed and cancelled under mu_
  const std::unique_ptr<Timer> stall_timer_;  // the open stream's read deadline; under mu_ too

  // The loop's own state: touched by one operation's continuation at a time.
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> jitter_{0.5, 1.5};
  std::uniform_int_distribution<int> timeout_{300, 600};  // spread re-watches of many operators
  watcher::State state_;
  watcher::Action action_{Kind::kList, {}};
  bool listed_once_ = false;
  bool watched_once_ = false;
  SteadyTime opened_at_{};
  bool got_events_ = false;
  struct Incident {
    SteadyTime since;
    int failures = 0;
  };
  std::optional<Incident> incident_;  // failures since the last success

  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> stopping_{false};
  bool started_ = false;
  bool sleeping_ = false;  // waiting for timer_
  bool finished_ = false;
  std::uint64_t streams_ = 0;           // streams ended: tells a stall deadline whether it is stale
  SteadyTime last_line_at_{};           // of the open stream (or when it opened)
  bool stalled_ = false;                // the open stream was cancelled by its deadline
  std::unique_ptr<LineStream> stream_;  // open while reading; set and reset on the loop's turn
};

WatchRunner::WatchRunner(Client& client, Clock& clock, boost::asio::any_io_executor executor,
                         WatcherOptions options, WatchSink& sink)
    : loop_(std::make_shared<Loop>(client, clock, std::move(executor), std::move(options), sink)) {}

WatchRunner::~WatchRunner() {
  stop();
  wait();
}

void WatchRunner::start() { loop_->start(); }
void WatchRunner::stop() { loop_->stop(); }
void WatchRunner::wait() { loop_->wait(); }

}  // namespace repl::kube
