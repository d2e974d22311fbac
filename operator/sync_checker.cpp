#include "sync_checker.hpp"

#include "common/log.hpp"

namespace repl {

namespace {
constexpr std::size_t kInFlight = 4;
}  // namespace

struct SyncChecker::Round {
  SteadyTime began;
  std::vector<std::pair<ObjectKey, ObjectKey>> pods;
  std::size_t next = 0;
  std::size_t pending = 0;
  std::map<ObjectKey, SyncReport> reports;  // what this round read
  std::map<ObjectKey, WallTime> active;
};

SyncChecker::SyncChecker(kube::Client& client, Clock& clock, std::chrono::seconds interval,
                         Candidates candidates, OnChange on_change)
    : client_(client),
      clock_(clock),
      interval_(interval),
      candidates_(std::move(candidates)),
      on_change_(std::move(on_change)),
      timer_(clock.make_timer()) {}

SyncChecker::~SyncChecker() { stop(); }

std::string SyncChecker::log_path(const ObjectKey& pod, std::chrono::seconds interval) {
  return "/api/v1/namespaces/" + pod.ns + "/pods/" + pod.name + "/log?container=" + kSyncContainer +
         "&sinceSeconds=" + std::to_string(2 * interval.count()) + "&tailLines=100&timestamps=true";
}

void SyncChecker::start() {
  std::lock_guard lock(mu_);
  stopped_ = false;
  arm();
}

void SyncChecker::stop() {
  std::lock_guard lock(mu_);
  stopped_ = true;
  timer_->cancel();
}

SyncChecker::Stats SyncChecker::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

std::optional<WallTime> SyncChecker::activity(const ObjectKey& repl) const {
  std::lock_guard lock(mu_);
  const auto it = active_.find(repl);
  if (it == active_.end()) return std::nullopt;
  return it->second;
}

std::optional<SyncReport> SyncChecker::report(const ObjectKey& repl) const {
  std::lock_guard lock(mu_);
  const auto it = reports_.find(repl);
  if (it == reports_.end()) return std::nullopt;
  return it->second;
}

void SyncChecker::arm() {  // requires mu_
  if (stopped_ || interval_.count() <= 0) return;
  timer_->wait_until(clock_.now() + interval_, [this] { begin_round(); });
}

void SyncChecker::begin_round() {
  auto round = std::make_shared<Round>();
  round->began = clock_.now();
  round->pods = candidates_();
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    round->pending = round->pods.size();
  }
  if (round->pods.empty()) return finish(round);
  for (std::size_t i = 0; i < kInFlight; ++i) next(round);
}

void SyncChecker::next(const std::shared_ptr<Round>& round) {
  std::pair<ObjectKey, ObjectKey> target;
  {
    std::lock_guard lock(mu_);
    if (round->next >= round->pods.size()) return;
    target = round->pods[round->next++];
  }
  client_.get_text_async(log_path(target.first, interval_), [this, round, repl = target.second](auto answer) {
    bool last = false;
    {
      std::lock_guard lock(mu_);
      ++stats_.reads;
      if (!answer) ++stats_.failed_reads;
      if (answer) {
        if (auto report = parse_sync_log(*answer)) round->reports[repl] = std::move(*report);
        if (auto at = parse_activity_log(*answer)) round->active[repl] = *at;
      } else if (!answer.error().is_not_found()) {
        log::debug("cannot read a sync sidecar's log",
                   {{"repl", repl.str()}, {"error", answer.error().describe()}});
      }
      last = --round->pending == 0;
    }
    if (last) return finish(round);
    next(round);
  });
}

void SyncChecker::finish(const std::shared_ptr<Round>& round) {
  std::vector<ObjectKey> changed;
  {
    std::lock_guard lock(mu_);
    for (const auto& [repl, report] : round->reports) {
      const auto old = reports_.find(repl);
      if (old == reports_.end() || old->second != report) changed.push_back(repl);
    }
    for (const auto& [repl, at] : round->active) {
      const auto old = active_.find(repl);
      if (old == active_.end() || old->second != at) changed.push_back(repl);
    }
    reports_ = std::move(round->reports);
    active_ = std::move(round->active);
    stats_.last_round = clock_.now() - round->began;
    arm();
  }
  for (const auto& repl : changed) on_change_(repl);
}

}  // namespace repl
