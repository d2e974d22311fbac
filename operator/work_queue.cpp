#include "work_queue.hpp"

namespace repl {

void WorkQueue::add(const ObjectKey& key) {
  std::lock_guard lock(mu_);
  if (shutting_down_ || !dirty_.insert(key).second) return;
  if (processing_.contains(key)) return;  // done() will make it ready
  ready_.push_back(key);
  cv_.notify_one();
}

std::optional<ObjectKey> WorkQueue::get() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return shutting_down_ || !ready_.empty(); });
  if (ready_.empty()) return std::nullopt;
  ObjectKey key = std::move(ready_.front());
  ready_.pop_front();
  dirty_.erase(key);
  processing_.insert(key);
  return key;
}

void WorkQueue::done(const ObjectKey& key) {
  std::lock_guard lock(mu_);
  processing_.erase(key);
  if (dirty_.contains(key) && !shutting_down_) {
    ready_.push_back(key);
    cv_.notify_one();
  }
}

void WorkQueue::shut_down() {
  std::lock_guard lock(mu_);
  shutting_down_ = true;
  ready_.clear();
  cv_.notify_all();
}

std::size_t WorkQueue::depth() const {
  std::lock_guard lock(mu_);
  return ready_.size();
}

}  // namespace repl
