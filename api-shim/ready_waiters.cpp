#include "ready_waiters.hpp"

#include <utility>
#include <vector>

#include "common/json.hpp"

namespace repl::shim {
namespace {

bool is_ready(const std::optional<Repl>& r) { return r && r->status.phase == "Ready"; }

}  // namespace

ReadyWaiters::~ReadyWaiters() { finish_all(); }

ReadyWaiters::Id ReadyWaiters::add(const std::string& repl_id, std::chrono::milliseconds timeout,
                                   WaitDone done) {
  std::lock_guard lock(mu_);
  const Id id = next_id_++;
  Waiter& w = waiters_[id];
  w.repl_id = repl_id;
  w.done = std::move(done);
  w.timer = clock_.make_timer();
  by_repl_.emplace(repl_id, id);
  // Armed under the lock: the callback takes it too, so it cannot run before the waiter is whole.
  w.timer->wait_until(clock_.now() + timeout, [this, id] { expire(id); });
  return id;
}

void ReadyWaiters::seed(Id id, WaitResult read) {
  std::vector<Ended> ended;
  {
    std::lock_guard lock(mu_);
    const auto it = waiters_.find(id);
    if (it == waiters_.end()) return;  // ended already (an event, or finish_all)
    Waiter& w = it->second;
    w.seeded = true;
    if (!read || !*read || is_ready(*read) || w.expired) {
      ended.push_back(end(it, std::move(read)));
    } else if (!w.watched) {
      w.last = std::move(**read);
    }
  }
  call(std::move(ended));
}

void ReadyWaiters::finish_all() {
  std::vector<Ended> ended;
  {
    std::lock_guard lock(mu_);
    while (!waiters_.empty()) {
      auto it = waiters_.begin();
      WaitResult r = it->second.last ? WaitResult(it->second.last)
                                     : WaitResult(Fail(kube::ApiError{kube::ApiError::Kind::kTransport, 0, "",
                                                                      "the shim is stopping"}));
      ended.push_back(end(it, std::move(r)));
    }
  }
  call(std::move(ended));
}

std::size_t ReadyWaiters::waiting() const {
  std::lock_guard lock(mu_);
  return waiters_.size();
}

void ReadyWaiters::begin_resync() {
  std::lock_guard lock(mu_);
  listed_.clear();
}

void ReadyWaiters::resync_item(const rapidjson::Value& object) {
  const std::string name = json::string_at(json::member(object, "metadata"), "name");
  {
    std::lock_guard lock(mu_);
    if (!by_repl_.contains(name)) return;
    listed_.insert(name);
  }
  observed(name, &object);
}

void ReadyWaiters::end_resync() {
  // A Repl waited for that the relist did not return was deleted meanwhile.
  std::vector<std::string> gone;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, id] : by_repl_) {
      if (!listed_.contains(name) && (gone.empty() || gone.back() != name)) gone.push_back(name);
    }
    listed_.clear();
  }
  for (const auto& name : gone) observed(name, nullptr);
}

void ReadyWaiters::on_event(kube::EventType type, const rapidjson::Value& object) {
  if (type != kube::EventType::kAdded && type != kube::EventType::kModified &&
      type != kube::EventType::kDeleted)
    return;
  const std::string name = json::string_at(json::member(object, "metadata"), "name");
  observed(name, type == kube::EventType::kDeleted ? nullptr : &object);
}

void ReadyWaiters::observed(const std::string& name, const rapidjson::Value* object) {
  std::vector<Ended> ended;
  {
    std::lock_guard lock(mu_);
    auto [first, last] = by_repl_.equal_range(name);
    if (first == last) return;
    std::optional<Repl> repl;
    if (object) {
      auto parsed = parse_repl(*object);
      if (!parsed) return;  // the CRD's schema admitted it; a shape we cannot read waits on
      repl = std::move(*parsed);
    }
    std::vector<Id> ids;
    for (auto i = first; i != last; ++i) ids.push_back(i->second);
    for (const Id id : ids) {
      const auto it = waiters_.find(id);
      if (!repl || is_ready(repl)) {
        ended.push_back(end(it, repl));
      } else {
        it->second.last = repl;
        it->second.watched = true;
      }
    }
  }
  call(std::move(ended));
}

void ReadyWaiters::expire(Id id) {
  std::vector<Ended> ended;
  {
    std::lock_guard lock(mu_);
    const auto it = waiters_.find(id);
    if (it == waiters_.end()) return;
    if (!it->second.seeded) {
      it->second.expired = true;  // seed() answers with what the read saw
      return;
    }
    ended.push_back(end(it, it->second.last));
  }
  call(std::move(ended));
}

ReadyWaiters::Ended ReadyWaiters::end(std::map<Id, Waiter>::iterator it, WaitResult result) {
  auto [first, last] = by_repl_.equal_range(it->second.repl_id);
  for (auto i = first; i != last; ++i) {
    if (i->second == it->first) {
      by_repl_.erase(i);
      break;
    }
  }
  it->second.timer->cancel();
  Ended e{std::move(it->second.done), std::move(result)};
  waiters_.erase(it);
  return e;
}

void ReadyWaiters::call(std::vector<Ended> ended) {
  for (auto& [done, result] : ended) done(std::move(result));
}

}  // namespace repl::shim
