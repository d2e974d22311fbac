#include "work_queue.hpp"

#include <algorithm>

namespace repl {

WorkQueue::WorkQueue(Options options) : options_(options), tokens_(options.bucket_burst) {}

void WorkQueue::schedule(const ObjectKey& key, TimePoint due) {
  if (const auto it = by_key_.find(key); it != by_key_.end()) {
    if (it->second->due <= due) return;  // the earlier one stays
    by_due_.erase(it->second);
    by_key_.erase(it);
  }
  const auto [pos, inserted] = by_due_.insert(Entry{due, seq_++, key});
  by_key_.emplace(key, pos);
}

WorkQueue::Duration WorkQueue::bucket_delay(TimePoint now) {
  // Refill since the last reservation, then reserve one token; a negative balance is the wait.
  if (bucket_time_ && now > *bucket_time_) {
    const double elapsed = std::chrono::duration<double>(now - *bucket_time_).count();
    tokens_ = std::min(options_.bucket_burst, tokens_ + elapsed * options_.bucket_qps);
  }
  if (!bucket_time_ || now > *bucket_time_) bucket_time_ = now;
  tokens_ -= 1;
  if (tokens_ >= 0) return Duration::zero();
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(-tokens_ / options_.bucket_qps));
}

WorkQueue::Duration WorkQueue::add_rate_limited(const ObjectKey& key, TimePoint now, Duration at_least) {
  const int n = failures_[key]++;
  Duration backoff = options_.max_delay;
  if (n < 40) {  // beyond that 2^n overflows, and the cap has long been reached
    backoff = std::min(options_.max_delay, options_.base_delay * (std::int64_t{1} << n));
  }
  const Duration delay = std::max({backoff, bucket_delay(now), at_least});
  schedule(key, now + delay);
  return delay;
}

std::size_t WorkQueue::retry_failed_now(TimePoint now) {
  std::size_t n = 0;
  for (const auto& [key, failures] : failures_) {
    const auto it = by_key_.find(key);
    if (it == by_key_.end() || it->second->due <= now) continue;  // not waiting, or due already
    schedule(key, now + bucket_delay(now));
    ++n;
  }
  return n;
}

std::optional<ObjectKey> WorkQueue::pop(TimePoint now) {
  for (auto it = by_due_.begin(); it != by_due_.end() && it->due <= now; ++it) {
    if (held_.contains(it->key)) continue;  // at most one worker per key
    ObjectKey key = it->key;
    by_key_.erase(key);
    by_due_.erase(it);
    held_.insert(key);
    return key;
  }
  return std::nullopt;
}

std::optional<WorkQueue::TimePoint> WorkQueue::next_due() const {
  for (const Entry& e : by_due_) {
    if (!held_.contains(e.key)) return e.due;
  }
  return std::nullopt;
}

int WorkQueue::failures(const ObjectKey& key) const {
  const auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

std::size_t WorkQueue::due(TimePoint now) const {
  std::size_t n = 0;
  for (auto it = by_due_.begin(); it != by_due_.end() && it->due <= now; ++it) ++n;
  return n;
}

}  // namespace repl
