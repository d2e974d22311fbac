#include "events.hpp"

#include "common/json.hpp"
#include "common/log.hpp"
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

void ApiEventRecorder::record(const Repl& repl, EventType type, const std::string& reason,
                              const std::string& message) {
  const kube::Resource events{"", "v1", "events", "Event"};
  auto body = event_object(repl, type, reason, message, rfc3339_now(), instance_);
  if (auto r = client_.create(kube::collection_path(events, repl.key.ns), body); !r) {
    log::warn("cannot record event",
              {{"repl", repl.key.str()}, {"reason", reason}, {"error", r.error().describe()}});
  }
}

AsyncEventRecorder::AsyncEventRecorder(EventRecorder& target, std::size_t capacity,
                                       std::chrono::milliseconds drain)
    : target_(target), capacity_(capacity), drain_(drain), thread_([this] { run(); }) {}

AsyncEventRecorder::~AsyncEventRecorder() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    deadline_ = std::chrono::steady_clock::now() + drain_;
  }
  cv_.notify_all();
  thread_.join();
}

void AsyncEventRecorder::record(const Repl& repl, EventType type, const std::string& reason,
                                const std::string& message) {
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= capacity_) {
      ++dropped_;
      return;
    }
    queue_.push_back({repl, type, reason, message});
  }
  cv_.notify_one();
}

std::size_t AsyncEventRecorder::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

void AsyncEventRecorder::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    // Woken with an empty queue only when stopping; past the deadline the rest is given up.
    if (queue_.empty() || (stopping_ && std::chrono::steady_clock::now() >= deadline_)) break;
    Pending next = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    target_.record(next.repl, next.type, next.reason, next.message);
    lock.lock();
  }
  if (!queue_.empty()) {
    log::warn("events not recorded at shutdown", {{"count", std::to_string(queue_.size())}});
  }
}

}  // namespace repl
