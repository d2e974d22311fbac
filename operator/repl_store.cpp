#include "repl_store.hpp"

#include <vector>

#include "common/log.hpp"

namespace repl {

std::optional<Repl> ReplStore::get(const ObjectKey& key) const {
  std::lock_guard lock(mu_);
  const auto it = repls_.find(key);
  if (it == repls_.end()) return std::nullopt;
  return it->second;
}

std::size_t ReplStore::size() const {
  std::lock_guard lock(mu_);
  return repls_.size();
}

bool ReplStore::wait_synced() {
  std::unique_lock lock(mu_);
  synced_cv_.wait(lock, [this] { return synced_ || wait_cancelled_; });
  return synced_;
}

void ReplStore::cancel_wait() {
  std::lock_guard lock(mu_);
  wait_cancelled_ = true;
  synced_cv_.notify_all();
}

void ReplStore::begin_resync() { incoming_.clear(); }

void ReplStore::resync_item(const rapidjson::Value& object) {
  auto r = parse_repl(object);
  if (!r) {
    log::warn("skipping unreadable Repl", {{"error", r.error().message}});
    return;
  }
  ObjectKey key = r->key;
  incoming_.insert_or_assign(std::move(key), std::move(*r));
}

void ReplStore::end_resync() {
  // Every listed key may have changed, and every key that is gone was deleted while we were not
  // watching: both need a reconcile. The callback runs outside the lock, as in on_event().
  std::vector<ObjectKey> changed;
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, _] : repls_) {
      if (!incoming_.contains(key)) changed.push_back(key);
    }
    repls_.swap(incoming_);
    incoming_.clear();
    synced_ = true;
    for (const auto& [key, _] : repls_) changed.push_back(key);
  }
  synced_cv_.notify_all();
  for (const auto& key : changed) on_change_(key);
}

void ReplStore::on_event(kube::EventType type, const rapidjson::Value& object) {
  auto r = parse_repl(object);
  if (!r) {
    log::warn("skipping unreadable Repl", {{"error", r.error().message}});
    return;
  }
  const ObjectKey key = r->key;
  {
    std::lock_guard lock(mu_);
    if (type == kube::EventType::kDeleted) {
      repls_.erase(key);
    } else {
      repls_.insert_or_assign(key, std::move(*r));
    }
  }
  on_change_(key);
}

}  // namespace repl
