#include "kube/watcher.hpp"

#include <algorithm>
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
          const auto delay = backoff(s, now, jitter);
          return {std::move(s), {Kind::kList, delay}};
        } else if constexpr (std::is_same_v<T, WatchOpenFailed> || std::is_same_v<T, StreamBroken>) {
          if (in.error.is_gone()) return relist(std::move(s), now, jitter);
          const auto delay = backoff(s, now, jitter);
          return {std::move(s), {Kind::kWatch, delay}};
        } else if constexpr (std::is_same_v<T, EventReceived>) {
          if (in.type == EventType::kError) {
            if (in.error.is_gone()) return relist(std::move(s), now, jitter);
            const auto delay = backoff(s, now, jitter);
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

WatchRunner::WatchRunner(Client& client, Clock& clock, WatcherOptions options, WatchSink& sink)
    : client_(client), clock_(clock), options_(std::move(options)), sink_(sink) {}

void WatchRunner::stop() {
  std::lock_guard lock(mu_);
  stopping_ = true;
  if (stream_ != nullptr) stream_->cancel();
  cv_.notify_all();
}

bool WatchRunner::sleep_for(SteadyDuration d) {
  std::unique_lock lock(mu_);
  return sleep_until(clock_, clock_.now() + d, lock, cv_, [this] { return stopping_.load(); });
}

void WatchRunner::run() {
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> jitter(0.5, 1.5);
  std::uniform_int_distribution<int> timeout(300, 600);  // spread re-watches of many operators
  watcher::State state;
  watcher::Action action{watcher::Action::Kind::kList, {}};
  const auto feed = [&](const watcher::Input& in) {
    auto next = watcher::step(state, in, clock_.now(), jitter(rng));
    state = std::move(next.state);
    action = next.action;
  };
  const std::string& name = options_.name;
  const auto signal = [this](WatchSignal s) {
    if (options_.on_signal) options_.on_signal(s);
  };
  bool listed_once = false;
  bool watched_once = false;

  while (!stopping_) {
    if (action.delay > SteadyDuration::zero() && !sleep_for(action.delay)) break;
    if (action.kind == watcher::Action::Kind::kList) {
      sink_.begin_resync();
      auto rv = client_.list(options_.collection,
                             {options_.label_selector, options_.page_size, options_.field_selector},
                             [this](const rapidjson::Value& item) { sink_.resync_item(item); });
      if (!rv) {
        log::warn("list failed", {{"watcher", name}, {"error", rv.error().describe()}});
        signal(WatchSignal::kFailed);
        feed(watcher::ListFailed{rv.error()});
        continue;
      }
      sink_.end_resync();
      sink_.on_progress(*rv);
      signal(listed_once ? WatchSignal::kRelisted : WatchSignal::kListed);
      listed_once = true;
      log::debug("listed", {{"watcher", name}, {"resourceVersion", *rv}});
      feed(watcher::ListSucceeded{*rv});
      continue;
    }
    // kWatch
    auto stream = client_.watch(options_.collection, {state.resource_version, options_.label_selector,
                                                      timeout(rng), true, options_.field_selector});
    if (!stream) {
      log::warn("watch failed", {{"watcher", name}, {"error", stream.error().describe()}});
      signal(WatchSignal::kFailed);
      feed(watcher::WatchOpenFailed{stream.error()});
      continue;
    }
    if (watched_once) signal(WatchSignal::kRewatched);
    watched_once = true;
    {
      std::lock_guard lock(mu_);
      if (stopping_) break;
      stream_ = stream->get();
    }
    const auto opened = clock_.now();
    bool got_events = false;
    do {
      auto line = (*stream)->next();
      if (stopping_) break;
      if (!line) {
        log::warn("watch stream broke", {{"watcher", name}, {"error", line.error().describe()}});
        signal(WatchSignal::kFailed);
        feed(watcher::StreamBroken{line.error()});
      } else if (!line->has_value()) {
        // A watch that ends at once with nothing in it (a proxy that cuts streams, a server that
        // refuses them politely) is a failure, or we would spin re-opening it (as client-go does).
        if (!got_events && clock_.now() - opened < std::chrono::seconds(1)) {
          signal(WatchSignal::kFailed);
          feed(watcher::StreamBroken{transport_error("watch ended at once, without events")});
        } else {
          feed(watcher::StreamEnded{});
        }
      } else if (auto ev = parse_watch_event(**line); !ev) {
        log::warn("bad watch event", {{"watcher", name}, {"error", ev.error().describe()}});
        feed(watcher::StreamBroken{ev.error()});
      } else {
        got_events = true;
        if (ev->type == EventType::kError) {
          log::info("watch error event", {{"watcher", name}, {"error", ev->error.describe()}});
        } else if (ev->type == EventType::kBookmark) {
          sink_.on_progress(ev->resource_version);
        } else {
          sink_.on_event(ev->type, ev->object);
        }
        feed(watcher::EventReceived{ev->type, ev->resource_version, ev->error});
      }
    } while (action.kind == watcher::Action::Kind::kKeepReading && !stopping_);
    std::lock_guard lock(mu_);
    stream_ = nullptr;
  }
}

}  // namespace repl::kube
