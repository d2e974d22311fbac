#include "events.hpp"

#include "common/json.hpp"
#include "common/log.hpp"
#include "common/time.hpp"
#include "kube/resource.hpp"
#include "repl/status.hpp"

namespace repl {

rapidjson::Document event_object(const Repl& repl, EventType type, const std::string& reason,
                                 const std::string& message, const std::string& now,
                                 const std::string& instance) {
  using rapidjson::Value;
  rapidjson::Document doc(rapidjson::kObjectType);
  auto& a = doc.GetAllocator();
  const auto str = [&a](const std::string& s) { return json::string_value(s, a); };
  const kube::Resource r = kube::repls();
  doc.AddMember("apiVersion", "v1", a);
  doc.AddMember("kind", "Event", a);
  Value meta(rapidjson::kObjectType);
  meta.AddMember("generateName", str(repl.key.name + "."), a);
  meta.AddMember("namespace", str(repl.key.ns), a);
  doc.AddMember("metadata", std::move(meta), a);
  Value involved(rapidjson::kObjectType);
  involved.AddMember("apiVersion", str(r.api_version()), a);
  involved.AddMember("kind", str(r.kind), a);
  involved.AddMember("name", str(repl.key.name), a);
  involved.AddMember("namespace", str(repl.key.ns), a);
  involved.AddMember("uid", str(repl.uid), a);
  doc.AddMember("involvedObject", std::move(involved), a);
  doc.AddMember("reason", str(reason), a);
  doc.AddMember("message", str(message), a);
  doc.AddMember("type", rapidjson::StringRef(type == EventType::kWarning ? "Warning" : "Normal"), a);
  Value source(rapidjson::kObjectType);
  source.AddMember("component", "repl-operator", a);
  doc.AddMember("source", std::move(source), a);
  doc.AddMember("reportingComponent", "repl-operator", a);
  doc.AddMember("reportingInstance", str(instance), a);
  doc.AddMember("firstTimestamp", str(now), a);
  doc.AddMember("lastTimestamp", str(now), a);
  doc.AddMember("count", 1, a);
  return doc;
}

void ApiEventSender::send(const Repl& repl, EventType type, const std::string& reason,
                          const std::string& message, std::function<void()> done) {
  const kube::Resource events{"", "v1", "events", "Event"};
  auto body = event_object(repl, type, reason, message, rfc3339(clock_.wall()), instance_);
  client_.create_async(kube::collection_path(events, repl.key.ns), body,
                       [key = repl.key.str(), reason, done = std::move(done)](kube::Client::Answer r) {
                         if (!r) {
                           log::warn("cannot record event",
                                     {{"repl", key}, {"reason", reason}, {"error", r.error().describe()}});
                         }
                         done();
                       });
}

void AsyncEventRecorder::drain() {
  {
    std::lock_guard lock(sync_->mu);
    if (closed_) return;  // drained already (the destructor after an explicit drain)
  }
  auto give_up = clock_.make_timer();
  give_up->wait_until(clock_.now() + drain_, [sync = sync_] {
    std::lock_guard lock(sync->mu);
    sync->give_up = true;
    sync->cv.notify_all();
  });
  std::unique_lock lock(sync_->mu);
  sync_->cv.wait(lock, [this] { return !in_flight_ && (queue_.empty() || closed_ || sync_->give_up); });
  if (!closed_ && !queue_.empty()) {
    log::warn("events not recorded at shutdown", {{"count", std::to_string(queue_.size())}});
  }
  closed_ = true;
  queue_.clear();
}

void AsyncEventRecorder::record(const Repl& repl, EventType type, const std::string& reason,
                                const std::string& message) {
  std::optional<Pending> next;
  {
    std::lock_guard lock(sync_->mu);
    if (queue_.size() >= capacity_) {
      ++dropped_;
      return;
    }
    queue_.push_back({repl, type, reason, message});
    next = take_next();
  }
  if (next) send(std::move(*next));
}

std::optional<AsyncEventRecorder::Pending> AsyncEventRecorder::take_next() {
  if (in_flight_ || closed_ || sync_->give_up || queue_.empty()) return std::nullopt;
  in_flight_ = true;
  Pending next = std::move(queue_.front());
  queue_.pop_front();
  return next;
}

void AsyncEventRecorder::send(Pending event) {
  target_.send(event.repl, event.type, event.reason, event.message, [this] {
    std::optional<Pending> next;
    {
      std::lock_guard lock(sync_->mu);
      in_flight_ = false;
      next = take_next();
      // Once nothing is in flight drain() may return: `this` is not touched after this.
      if (!next) return sync_->cv.notify_all();
    }
    send(std::move(*next));
  });
}

std::size_t AsyncEventRecorder::dropped() const {
  std::lock_guard lock(sync_->mu);
  return dropped_;
}

}  // namespace repl
