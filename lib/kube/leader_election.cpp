#include "kube/leader_election.hpp"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <ctime>

#include "common/json.hpp"
#include "common/log.hpp"
#include "kube/resource.hpp"

namespace repl::kube {

using json::member;

namespace {

std::string seconds_str(std::chrono::seconds s) { return std::to_string(s.count()) + "s"; }

}  // namespace

Result<void, std::string> validate(const LeaderElectionConfig& config) {
  if (config.lease.ns.empty()) return Fail(std::string("the lease namespace is empty"));
  if (config.lease.name.empty()) return Fail(std::string("the lease name is empty"));
  if (config.identity.empty()) return Fail(std::string("the leader identity is empty"));
  if (config.retry_period <= std::chrono::seconds::zero()) {
    return Fail("retry period " + seconds_str(config.retry_period) + " must be positive");
  }
  if (config.renew_deadline.count() <= leader::kJitterFactor * config.retry_period.count()) {
    return Fail("renew deadline " + seconds_str(config.renew_deadline) + " must exceed 1.2 x retry period " +
                seconds_str(config.retry_period));
  }
  if (config.lease_duration <= config.renew_deadline) {
    return Fail("lease duration " + seconds_str(config.lease_duration) + " must exceed renew deadline " +
                seconds_str(config.renew_deadline));
  }
  return Ok{};
}

std::string default_leader_identity() {
  char host[256] = {};
  std::string name = gethostname(host, sizeof host - 1) == 0 && host[0] != '\0' ? host : "unknown";
  std::random_device rd;
  const std::uint64_t suffix = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(suffix));
  return name + "_" + hex;
}

std::string format_micro_time(WallTime t) {
  const std::int64_t us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  std::int64_t secs = us / 1'000'000;
  std::int64_t micros = us % 1'000'000;
  if (micros < 0) {  // before 1970: floor, not truncate
    micros += 1'000'000;
    --secs;
  }
  const std::time_t tt = static_cast<std::time_t>(secs);
  std::tm utc{};
  gmtime_r(&tt, &utc);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<long long>(micros));
  return buf;
}

namespace leader {

Result<ObservedLease, ApiError> parse_lease(const rapidjson::Value& lease) {
  if (!lease.IsObject()) return Fail(decode_error("Lease is not a JSON object"));
  ObservedLease out;
  out.resource_version = json::string_at(member(lease, "metadata"), "resourceVersion");
  if (out.resource_version.empty()) return Fail(decode_error("Lease without metadata.resourceVersion"));
  const rapidjson::Value* spec = member(lease, "spec");
  out.record.holder_identity = json::string_at(spec, "holderIdentity");
  out.record.lease_duration_seconds = json::int_at(spec, "leaseDurationSeconds");
  out.record.acquire_time = json::string_at(spec, "acquireTime");
  out.record.renew_time = json::string_at(spec, "renewTime");
  out.record.lease_transitions = json::int_at(spec, "leaseTransitions");
  return out;
}

namespace {

using Allocator = rapidjson::Document::AllocatorType;

void set_member(rapidjson::Value& object, const char* name, rapidjson::Value value, Allocator& a) {
  if (auto it = object.FindMember(name); it != object.MemberEnd()) {
    it->value = std::move(value);
  } else {
    object.AddMember(rapidjson::StringRef(name), std::move(value), a);
  }
}

void set_string(rapidjson::Value& object, const char* name, std::string_view s, Allocator& a) {
  set_member(object, name, rapidjson::Value(s.data(), static_cast<rapidjson::SizeType>(s.size()), a), a);
}

rapidjson::Value& object_member(rapidjson::Value& object, const char* name, Allocator& a) {
  auto it = object.FindMember(name);
  if (it == object.MemberEnd()) {
    object.AddMember(rapidjson::StringRef(name), rapidjson::Value(rapidjson::kObjectType), a);
    it = object.FindMember(name);
  }
  if (!it->value.IsObject()) it->value.SetObject();
  return it->value;
}

}  // namespace

rapidjson::Document lease_json(const ObjectKey& key, const LeaseRecord& record,
                               std::string_view resource_version, const rapidjson::Value* base) {
  rapidjson::Document doc;
  Allocator& a = doc.GetAllocator();
  if (base != nullptr && base->IsObject()) {
    doc.CopyFrom(*base, a);
  } else {
    doc.SetObject();
  }
  const Resource lease = leases();
  set_string(doc, "apiVersion", lease.api_version(), a);
  set_string(doc, "kind", lease.kind, a);
  rapidjson::Value& meta = object_member(doc, "metadata", a);
  set_string(meta, "name", key.name, a);
  set_string(meta, "namespace", key.ns, a);
  if (resource_version.empty()) {
    meta.RemoveMember("resourceVersion");
  } else {
    set_string(meta, "resourceVersion", resource_version, a);
  }
  rapidjson::Value& spec = object_member(doc, "spec", a);
  set_string(spec, "holderIdentity", record.holder_identity, a);
  set_member(spec, "leaseDurationSeconds", rapidjson::Value(record.lease_duration_seconds), a);
  set_string(spec, "acquireTime", record.acquire_time, a);
  set_string(spec, "renewTime", record.renew_time, a);
  set_member(spec, "leaseTransitions", rapidjson::Value(record.lease_transitions), a);
  return doc;
}

namespace {

using Kind = Action::Kind;
using MonoDuration = std::chrono::steady_clock::duration;

Action wait_until(MonoTime t) {
  Action a;
  a.kind = Kind::kWait;
  a.wake_at = t;
  return a;
}

Action read_now() {
  Action a;
  a.kind = Kind::kRead;
  return a;
}

MonoTime renew_deadline_at(const LeaderElectionConfig& c, const State& s) {
  return s.renewed_at + c.renew_deadline;
}

bool past_deadline(const LeaderElectionConfig& c, const State& s, MonoTime now) {
  return s.leading && now >= renew_deadline_at(c, s);
}

// The leader renews every retry_period, but wakes at its renew deadline at the latest so that a
// run of failures ends its leadership on time. Candidates spread their attempts with jitter.
Action retry_later(const LeaderElectionConfig& c, const State& s, MonoTime now, double jitter) {
  if (s.leading) return wait_until(std::min(now + c.retry_period, renew_deadline_at(c, s)));
  const auto delay = std::chrono::duration_cast<MonoDuration>(
      std::chrono::duration<double>(c.retry_period) * (1.0 + kJitterFactor * std::clamp(jitter, 0.0, 1.0)));
  return wait_until(now + delay);
}

Step lose(const LeaderElectionConfig& c, State s, MonoTime now, double jitter) {
  s.leading = false;
  Step out{std::move(s), {}, false, true};
  out.action = retry_later(c, out.state, now, jitter);
  return out;
}

// Our record: a renewal when `old` already names us (acquireTime and transitions kept), else a
// takeover (transitions + 1) or, without `old`, a creation.
LeaseRecord claim(const LeaderElectionConfig& c, const ObservedLease* old, WallTime wall_now) {
  LeaseRecord r;
  r.holder_identity = c.identity;
  r.lease_duration_seconds = c.lease_duration.count();
  r.acquire_time = r.renew_time = format_micro_time(wall_now);
  if (old != nullptr) {
    if (old->record.holder_identity == c.identity) {
      if (!old->record.acquire_time.empty()) r.acquire_time = old->record.acquire_time;
      r.lease_transitions = old->record.lease_transitions;
    } else {
      r.lease_transitions = old->record.lease_transitions + 1;
    }
  }
  return r;
}

Step write(State s, Kind kind, LeaseRecord record, MonoTime now) {
  s.write_sent_at = now;
  Action a;
  a.kind = kind;
  a.record = std::move(record);
  if (kind == Kind::kUpdate && s.observed) a.resource_version = s.observed->resource_version;
  return {std::move(s), std::move(a)};
}

// Whether another replica holds the lease: it names a holder other than us, and the record was
// last seen changing less than the holder's leaseDurationSeconds ago by our clock.
bool held_by_other(const LeaderElectionConfig& c, const State& s, MonoTime now) {
  if (!s.observed) return false;
  const LeaseRecord& r = s.observed->record;
  if (r.holder_identity.empty() || r.holder_identity == c.identity) return false;
  const auto duration = std::chrono::seconds(std::clamp<std::int64_t>(r.lease_duration_seconds, 0, INT_MAX));
  return now < s.observed_at + duration;
}

}  // namespace

Step step(const LeaderElectionConfig& config, const State& state, const Input& input, MonoTime now,
          WallTime wall_now, double jitter) {
  State s = state;
  return std::visit(
      [&](const auto& in) -> Step {
        using T = std::decay_t<decltype(in)>;
        if constexpr (std::is_same_v<T, Tick>) {
          if (past_deadline(config, s, now)) return lose(config, std::move(s), now, jitter);
          // The leader renews straight away with the version it last wrote; a candidate, or a
          // leader whose view may be out of date, reads first.
          if (s.leading && !s.stale && s.observed) {
            LeaseRecord r = claim(config, &*s.observed, wall_now);
            return write(std::move(s), Kind::kUpdate, std::move(r), now);
          }
          return {std::move(s), read_now()};
        } else if constexpr (std::is_same_v<T, ReadOk>) {
          if (!s.observed || *s.observed != in.lease) s.observed_at = now;
          s.observed = in.lease;
          s.stale = false;
          if (past_deadline(config, s, now)) return lose(config, std::move(s), now, jitter);
          const bool ours = in.lease.record.holder_identity == config.identity;
          if (s.leading && !ours) return lose(config, std::move(s), now, jitter);  // displaced
          if (!ours && held_by_other(config, s, now)) return {s, retry_later(config, s, now, jitter)};
          LeaseRecord r = claim(config, &*s.observed, wall_now);
          return write(std::move(s), Kind::kUpdate, std::move(r), now);
        } else if constexpr (std::is_same_v<T, ReadNotFound>) {
          s.observed.reset();
          s.stale = true;
          if (s.leading) return lose(config, std::move(s), now, jitter);  // deleted under us
          LeaseRecord r = claim(config, nullptr, wall_now);
          return write(std::move(s), Kind::kCreate, std::move(r), now);
        } else if constexpr (std::is_same_v<T, ReadFailed>) {
          s.stale = true;
          if (past_deadline(config, s, now)) return lose(config, std::move(s), now, jitter);
          return {s, retry_later(config, s, now, jitter)};
        } else if constexpr (std::is_same_v<T, WriteOk>) {
          s.observed = in.lease;
          s.observed_at = now;
          s.stale = false;
          s.conflicts = 0;
          // The server may have applied the write at any time after we sent it, so the renewal
          // counts from the sending; an answer slower than the renew deadline proves nothing.
          const bool ours = in.lease.record.holder_identity == config.identity;
          if (ours && now < s.write_sent_at + config.renew_deadline) {
            const bool started = !s.leading;
            s.leading = true;
            s.renewed_at = s.write_sent_at;
            Action a = retry_later(config, s, now, jitter);
            return {std::move(s), std::move(a), started, false};
          }
          if (s.leading) return lose(config, std::move(s), now, jitter);
          return {s, retry_later(config, s, now, jitter)};
        } else {  // WriteFailed
          s.stale = true;
          if (past_deadline(config, s, now)) return lose(config, std::move(s), now, jitter);
          if (in.error.is_conflict()) {
            // Someone wrote first: read what they wrote at once, but only once in a row, so a
            // server that keeps answering 409 cannot make us spin.
            if (++s.conflicts < 2) return {std::move(s), read_now()};
            s.conflicts = 0;
          }
          return {s, retry_later(config, s, now, jitter)};
        }
      },
      input);
}

std::optional<Action> release(const LeaderElectionConfig& config, const State& state, WallTime wall_now) {
  if (!state.observed || state.observed->record.holder_identity != config.identity) return std::nullopt;
  Action a;
  a.kind = Kind::kUpdate;
  a.record.holder_identity = "";
  a.record.lease_duration_seconds = 1;
  a.record.acquire_time = a.record.renew_time = format_micro_time(wall_now);
  a.record.lease_transitions = state.observed->record.lease_transitions;
  a.resource_version = state.observed->resource_version;
  return a;
}

}  // namespace leader

// ---- LeaderElector ----

namespace {

// Each answer leads to at most a few more requests (a 404 to a create, a 409 to one re-read, a read
// to a write) before the next wait; this bound only keeps a bug from making a hot loop of them.
constexpr int kMaxRequestsPerTick = 8;

}  // namespace

LeaderElector::LeaderElector(Client& client, LeaderElectionConfig config, LeaderCallbacks callbacks,
                             Clock& clock, ElectorClock wall)
    : client_(client),
      config_(std::move(config)),
      callbacks_(std::move(callbacks)),
      clock_(clock),
      wall_(std::move(wall)),
      path_(object_path(leases(), config_.lease.ns, config_.lease.name)),
      timer_(clock.make_timer()),
      rng_(std::random_device{}()) {
  action_.kind = leader::Action::Kind::kWait;  // the first wait is over at once: a read
}

LeaderElector::~LeaderElector() { stop(); }

bool LeaderElector::is_leader() const {
  return leading_.load() && clock_.now().time_since_epoch().count() < leader_until_.load();
}

void LeaderElector::start() {
  {
    std::lock_guard lock(mu_);
    if (phase_ != Phase::kIdle) return;
    phase_ = Phase::kRunning;
  }
  next();  // action_ is a wait due at once: this arms the timer, nothing more
}

void LeaderElector::stop() {
  std::lock_guard lock(mu_);
  stopping_ = true;
  if (phase_ == Phase::kIdle) {
    phase_ = Phase::kEnded;
    changed_.notify_all();
  } else if (waiting_) {
    const std::uint64_t seq = ++wait_seq_;
    timer_->wait_until(clock_.now(), [this, seq] { woke(seq); });  // ends on the executor, at once
  }
  // Otherwise a request is in flight: its answer ends the elector.
}

void LeaderElector::wait() {
  std::unique_lock lock(mu_);
  changed_.wait(lock, [this] { return phase_ != Phase::kRunning; });
}

double LeaderElector::jitter() {
  if (wall_.jitter) return wall_.jitter();
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
}

void LeaderElector::publish() {
  // The deadline first, so that a reader never pairs "leading" with a stale deadline.
  leader_until_ = (state_.renewed_at + config_.renew_deadline).time_since_epoch().count();
  leading_ = state_.leading;
}

void LeaderElector::feed(const leader::Input& input) {
  auto next = leader::step(config_, state_, input, clock_.now(), wall_.wall_now(), jitter());
  state_ = std::move(next.state);
  action_ = std::move(next.action);
  publish();
  const std::string lease = config_.lease.str();
  if (next.started_leading) {
    log::info("started leading", {{"lease", lease}, {"identity", config_.identity}});
    if (callbacks_.on_started_leading) callbacks_.on_started_leading();
  }
  if (next.stopped_leading) {
    log::warn("stopped leading", {{"lease", lease}, {"identity", config_.identity}});
    if (callbacks_.on_stopped_leading) callbacks_.on_stopped_leading();
  }
}

void LeaderElector::next() {
  using Kind = leader::Action::Kind;
  if (stopping_) return end();
  if (action_.kind == Kind::kWait) {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      waiting_ = true;
      const std::uint64_t seq = ++wait_seq_;
      timer_->wait_until(action_.wake_at, [this, seq] { woke(seq); });
      return;
    }
  } else if (requests_ == kMaxRequestsPerTick) {
    log::error("leader election made too many requests in a row; waiting", {{"lease", config_.lease.str()}});
    action_ = leader::Action{Kind::kWait, clock_.now() + config_.retry_period, {}, {}};
    return next();
  } else {
    ++requests_;
    return perform(action_, [this](leader::Input input) {
      feed(input);
      next();
    });
  }
  end();  // stopped while deciding to wait
}

void LeaderElector::woke(std::uint64_t seq) {
  {
    std::lock_guard lock(mu_);
    if (!waiting_ || seq != wait_seq_) return;  // a wait replaced meanwhile
    waiting_ = false;
  }
  if (stopping_) return end();
  requests_ = 0;
  feed(leader::Tick{});
  next();
}

void LeaderElector::perform(const leader::Action& action, std::function<void(leader::Input)> done) {
  using Kind = leader::Action::Kind;
  if (action.kind == Kind::kRead) {
    return client_.get_async(
        path_, [this, done = std::move(done)](Client::Answer got) { done(read_answer(std::move(got))); });
  }
  const bool create = action.kind == Kind::kCreate;
  const rapidjson::Document body =
      leader::lease_json(config_.lease, action.record, action.resource_version,
                         !create && last_lease_.IsObject() ? &last_lease_ : nullptr);
  auto answered = [this, done = std::move(done)](Client::Answer written) {
    done(write_answer(std::move(written)));
  };
  if (create)
    return client_.create_async(collection_path(leases(), config_.lease.ns), body, std::move(answered));
  client_.update_async(path_, body, std::move(answered));
}

Result<leader::ObservedLease, ApiError> LeaderElector::take_lease(rapidjson::Document lease,
                                                                  const char* what) {
  auto parsed = leader::parse_lease(lease);
  if (!parsed) {
    log::warn(what, {{"lease", config_.lease.str()}, {"error", parsed.error().describe()}});
    return parsed;
  }
  last_lease_ = std::move(lease);
  return parsed;
}

leader::Input LeaderElector::read_answer(Client::Answer got) {
  const std::string lease = config_.lease.str();
  if (!got) {
    if (got.error().is_not_found()) return leader::ReadNotFound{};
    log::warn("cannot read the lease", {{"lease", lease}, {"error", got.error().describe()}});
    return leader::ReadFailed{got.error()};
  }
  auto observed = take_lease(std::move(*got), "cannot read the lease");
  if (!observed) return leader::ReadFailed{observed.error()};
  const std::string& holder = observed->record.holder_identity;
  if (holder != config_.identity) log::debug("lease observed", {{"lease", lease}, {"holder", holder}});
  return leader::ReadOk{std::move(*observed)};
}

leader::Input LeaderElector::write_answer(Client::Answer written) {
  if (!written) {
    const std::string lease = config_.lease.str();
    if (written.error().is_conflict()) {
      log::debug("lease written by another replica first", {{"lease", lease}});
    } else {
      log::warn("cannot write the lease", {{"lease", lease}, {"error", written.error().describe()}});
    }
    return leader::WriteFailed{written.error()};
  }
  auto observed = take_lease(std::move(*written), "cannot read the written lease");
  if (!observed) return leader::WriteFailed{observed.error()};
  return leader::WriteOk{std::move(*observed)};
}

void LeaderElector::end() {
  const std::string lease = config_.lease.str();
  if (state_.leading) {
    state_.leading = false;
    publish();
    log::info("stopped leading", {{"lease", lease}, {"identity", config_.identity}, {"reason", "stopping"}});
    if (callbacks_.on_stopped_leading) callbacks_.on_stopped_leading();
  }
  // After the callback, so that leader-only work has stopped before a standby may start.
  const auto release = leader::release(config_, state_, wall_.wall_now());
  if (!release) return ended();
  const rapidjson::Document body =
      leader::lease_json(config_.lease, release->record, release->resource_version,
                         last_lease_.IsObject() ? &last_lease_ : nullptr);
  client_.update_async(path_, body, [this, lease](Client::Answer written) {
    if (!written) {
      // The lease then expires after its duration, as if we had crashed.
      log::warn("cannot release the lease", {{"lease", lease}, {"error", written.error().describe()}});
    } else {
      log::info("released the lease", {{"lease", lease}});
    }
    ended();
  });
}

void LeaderElector::ended() {
  std::lock_guard lock(mu_);
  phase_ = Phase::kEnded;
  changed_.notify_all();
}

}  // namespace repl::kube
