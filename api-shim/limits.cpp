#include "limits.hpp"

#include <algorithm>
#include <cmath>

#include "common/json.hpp"

namespace repl::shim {
namespace {

// Buckets kept before the full ones are dropped.
constexpr std::size_t kMaxBuckets = 10000;

}  // namespace

void Quota::put(std::map<std::string, Seen>& into, const rapidjson::Value& object) {
  const rapidjson::Value* meta = json::member(object, "metadata");
  const rapidjson::Value* spec = json::member(object, "spec");
  const std::string name = json::string_at(meta, "name");
  if (name.empty()) return;
  // Deleting Repls still run until their final sync, and count until they are gone.
  into[name] = Seen{json::string_at(spec, "userId"), !json::bool_at(spec, "suspended")};
  if (&into == &repls_ && into[name].running) reserved_.erase(name);
}

void Quota::begin_resync() {
  std::lock_guard lock(mu_);
  listing_.clear();
}

void Quota::resync_item(const rapidjson::Value& object) {
  std::lock_guard lock(mu_);
  put(listing_, object);
}

void Quota::end_resync() {
  std::lock_guard lock(mu_);
  repls_ = std::move(listing_);
  listing_.clear();
  for (const auto& [name, seen] : repls_) {
    if (seen.running) reserved_.erase(name);
  }
  synced_ = true;
}

void Quota::on_event(kube::EventType type, const rapidjson::Value& object) {
  std::lock_guard lock(mu_);
  if (type == kube::EventType::kDeleted) {
    repls_.erase(json::string_at(json::member(object, "metadata"), "name"));
    return;
  }
  put(repls_, object);
}

void Quota::forget_expired() {
  const SteadyTime now = clock_.now();
  std::erase_if(reserved_, [now](const auto& r) { return r.second.until <= now; });
}

int Quota::running_locked(const std::string& user) const {
  int n = 0;
  for (const auto& [name, seen] : repls_) n += seen.running && seen.user == user;
  for (const auto& [name, r] : reserved_) n += r.user == user;
  return n;
}

int Quota::running(const std::string& user) {
  std::lock_guard lock(mu_);
  forget_expired();
  return running_locked(user);
}

bool Quota::synced() const {
  std::lock_guard lock(mu_);
  return synced_ || (limits_.per_user <= 0 && limits_.total <= 0);
}

Quota::Verdict Quota::admit(const std::string& repl, const std::string& user, bool* reserved) {
  std::lock_guard lock(mu_);
  if (reserved != nullptr) *reserved = false;
  if (limits_.per_user <= 0 && limits_.total <= 0) return Verdict::kAdmitted;
  if (!synced_) return Verdict::kNotSynced;
  forget_expired();
  const auto seen = repls_.find(repl);
  if ((seen != repls_.end() && seen->second.running) || reserved_.contains(repl)) return Verdict::kAdmitted;
  if (limits_.per_user > 0 && running_locked(user) >= limits_.per_user) return Verdict::kUserFull;
  if (limits_.total > 0) {
    std::size_t total = reserved_.size();
    for (const auto& [name, s] : repls_) total += s.running;
    if (total >= static_cast<std::size_t>(limits_.total)) return Verdict::kTotalFull;
  }
  reserved_[repl] = Reserved{user, clock_.now() + limits_.reservation};
  if (reserved != nullptr) *reserved = true;
  return Verdict::kAdmitted;
}

void Quota::release(const std::string& repl) {
  std::lock_guard lock(mu_);
  reserved_.erase(repl);
}

double TokenBuckets::refilled(const Bucket& b, SteadyTime now) const {
  const double elapsed = std::chrono::duration<double>(now - b.at).count();
  return std::min<double>(burst_, b.tokens + std::max(0.0, elapsed) * per_second_);
}

std::optional<std::chrono::seconds> TokenBuckets::take(const std::string& key, SteadyTime now) {
  std::lock_guard lock(mu_);
  if (buckets_.size() >= kMaxBuckets) {
    std::erase_if(buckets_, [&](const auto& b) { return refilled(b.second, now) >= burst_; });
  }
  auto [it, fresh] = buckets_.try_emplace(key, Bucket{static_cast<double>(burst_), now});
  Bucket& b = it->second;
  b.tokens = refilled(b, now);
  b.at = now;
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return std::nullopt;
  }
  const double wait = per_second_ > 0 ? (1 - b.tokens) / per_second_ : 60;
  return std::chrono::seconds(static_cast<std::int64_t>(std::ceil(wait)));
}

std::size_t TokenBuckets::size() const {
  std::lock_guard lock(mu_);
  return buckets_.size();
}

}  // namespace repl::shim
