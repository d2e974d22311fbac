// Leader election over a coordination.k8s.io/v1 Lease, as client-go's leaderelection package does
// it, so that of several operator replicas only one reconciles at a time.
//
// Every replica reads the Lease named in the config. A missing Lease is created naming us. A Lease
// held by someone else is taken over (PUT with the read resourceVersion as precondition,
// leaseTransitions + 1) only once its record (holder, times, resourceVersion) has not been seen to
// change for the holder's leaseDurationSeconds *by our own monotonic clock*: the renewTime written
// by the holder is never compared with our wall clock, so clock skew between nodes cannot make a
// replica steal a live lease. The leader renews every retry_period (PUT, renewTime = now); when no
// renewal has succeeded for renew_deadline (< lease_duration) it stops leading before anyone else
// may start. A 409 on any write means another replica wrote first: we re-read. On stop the leader
// writes holderIdentity "" and leaseDurationSeconds 1, so a standby takes over at once (client-go's
// ReleaseOnCancel).
//
//   Tick ──> Read ──NotFound──> Create ──ok──> leading ──retry_period──> Update (renew) ──ok──┐
//             │  ──held by another, seen changing < its duration ago──> wait retry_period·jitter
//             │  ──free, expired or ours──> Update (acquire) ──409──> Read at once
//             └─ failure ──> wait; while leading, a failure past renew_deadline ends leadership
//
// leader::step() is the whole state machine, a pure function of (config, state, input, monotonic
// now, wall now, jitter). LeaderElector is the I/O around it, with no thread of its own: the
// requests the machine asks for are asynchronous, its waits are timers of the injected Clock (on
// the shared io_context), so tests drive it in virtual time.
//
// After losing the lease the elector keeps competing, so on_started_leading and
// on_stopped_leading alternate, starting with started. Work that cannot be restarted should end the
// process in on_stopped_leading (kube-controller-manager does).
//
// Ownership: LeaderElector borrows the Client and the Clock, which must outlive it.
// Thread-safety: leader::* are pure. The elector's steps run one at a time, on the clock's executor
// or the transport's thread that answered; the callbacks run there. start(), stop(), wait() and
// is_leader() may be called from any thread; stop() and is_leader() also from the callbacks.
#pragma once

#include <rapidjson/document.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <variant>

#include "common/clock.hpp"
#include "common/object_key.hpp"
#include "common/result.hpp"
#include "kube/client.hpp"
#include "kube/error.hpp"

namespace repl::kube {

using MonoTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;

struct LeaderElectionConfig {
  ObjectKey lease;                          // namespace and name of the Lease
  std::string identity;                     // unique per replica; see default_leader_identity()
  std::chrono::seconds lease_duration{15};  // how long a standby waits before taking over
  std::chrono::seconds renew_deadline{10};  // the leader gives up after failing to renew this long
  std::chrono::seconds retry_period{2};     // between attempts to acquire or renew
};

// Checks what client-go checks: lease_duration > renew_deadline > 1.2 · retry_period > 0, a
// non-empty identity and lease name and namespace. The message names the offending setting.
Result<void, std::string> validate(const LeaderElectionConfig& config);

// "<hostname>_<16 random hex digits>": unique across restarts of the same pod, as client-go's
// users make it.
std::string default_leader_identity();

// "2006-01-02T15:04:05.000000Z": the RFC 3339 microsecond form of a MicroTime field, in UTC.
std::string format_micro_time(WallTime t);

namespace leader {

// The election fields of a Lease's spec. The times are kept as the holder wrote them: they are
// written for humans and other tools, never trusted for expiry.
struct LeaseRecord {
  std::string holder_identity;  // "" when nobody holds it
  std::int64_t lease_duration_seconds = 0;
  std::string acquire_time;
  std::string renew_time;
  std::int64_t lease_transitions = 0;

  bool operator==(const LeaseRecord&) const = default;
};

struct ObservedLease {
  LeaseRecord record;
  std::string resource_version;

  bool operator==(const ObservedLease&) const = default;
};

// Reads the record and metadata.resourceVersion out of a Lease; a decode error when `lease` is not
// an object or has no resourceVersion. Missing spec fields read as empty / 0.
Result<ObservedLease, ApiError> parse_lease(const rapidjson::Value& lease);

// The Lease to POST or PUT: `base` (the Lease last read, whose other metadata and spec fields are
// kept; may be null) with apiVersion, kind, name and namespace set, metadata.resourceVersion set to
// `resource_version` (dropped when empty) and the record's fields in spec.
rapidjson::Document lease_json(const ObjectKey& key, const LeaseRecord& record,
                               std::string_view resource_version, const rapidjson::Value* base = nullptr);

struct State {
  std::optional<ObservedLease> observed;  // last read or written; none before a read or after 404
  MonoTime observed_at{};                 // when `observed` was last seen to change, by our clock
  bool leading = false;
  MonoTime renewed_at{};     // while leading: when the last successful write was sent
  MonoTime write_sent_at{};  // when the create/update now in flight was decided (= sent)
  bool stale = true;         // `observed` may be out of date: read before writing
  int conflicts = 0;         // consecutive 409s
};

struct Tick {};  // the wait the machine asked for is over
struct ReadOk {
  ObservedLease lease;
};
struct ReadNotFound {};
struct ReadFailed {
  ApiError error;
};
struct WriteOk {  // the create/update succeeded; `lease` is the server's answer
  ObservedLease lease;
};
struct WriteFailed {  // a 409 included: the machine tells it apart
  ApiError error;
};
using Input = std::variant<Tick, ReadOk, ReadNotFound, ReadFailed, WriteOk, WriteFailed>;

struct Action {
  enum class Kind { kWait, kRead, kCreate, kUpdate };
  Kind kind = Kind::kWait;
  MonoTime wake_at{};            // kWait: feed Tick at this time
  LeaseRecord record;            // kCreate, kUpdate: the spec to write
  std::string resource_version;  // kUpdate: the precondition
};

struct Step {
  State state;
  Action action;
  bool started_leading = false;  // this step made us the leader
  bool stopped_leading = false;  // this step ended our leadership
};

// Candidates retry after retry_period · (1 + kJitterFactor · jitter), jitter in [0, 1), so that
// replicas started together spread out; the leader renews every retry_period exactly.
inline constexpr double kJitterFactor = 1.2;

Step step(const LeaderElectionConfig& config, const State& state, const Input& input, MonoTime now,
          WallTime wall_now, double jitter);

// The release write when the last observed record names us (holder cleared, duration 1 s,
// transitions kept, with the observed resourceVersion), else nothing to do.
std::optional<Action> release(const LeaderElectionConfig& config, const State& state, WallTime wall_now);

}  // namespace leader

// The wall clock (written into the Lease, never used for expiry) and the jitter of LeaderElector;
// the monotonic time and the timers come from its Clock. The defaults are the system clock and a
// random jitter; tests substitute their own.
struct ElectorClock {
  std::function<WallTime()> wall_now = [] { return std::chrono::system_clock::now(); };
  std::function<double()> jitter;  // in [0, 1); empty: uniformly random
};

struct LeaderCallbacks {
  std::function<void()> on_started_leading;  // optional
  std::function<void()> on_stopped_leading;  // optional; called before the lease is released
};

class LeaderElector final {
 public:
  // `config` must pass validate(). `clock` gives the monotonic time and the waits.
  LeaderElector(Client& client, LeaderElectionConfig config, LeaderCallbacks callbacks, Clock& clock,
                ElectorClock wall = {});
  ~LeaderElector();  // stop(); once started, it must have ended (wait()) before it is destroyed
  LeaderElector(const LeaderElector&) = delete;
  LeaderElector& operator=(const LeaderElector&) = delete;

  // Competes for the lease from now on (the first read on the clock's executor) until stop().
  void start();
  // Any thread, never blocks. Once the request in flight is answered (Client::cancel_all makes
  // that prompt), or at once when it was waiting, the elector stops leading (on_stopped_leading)
  // and releases the lease if it names us.
  void stop();
  // Blocks until the elector has ended after stop(), the release answered (at once if it never
  // started).
  void wait();
  // True while we hold the lease and our last successful renewal is younger than renew_deadline;
  // turns false at that deadline by itself, even while a request is still in flight.
  bool is_leader() const;

 private:
  enum class Phase { kIdle, kRunning, kEnded };
  void next();                   // performs the action asked for, or waits for it
  void woke(std::uint64_t seq);  // the wait `seq` is over
  void end();                    // stops leading and releases the lease
  void ended();
  void perform(const leader::Action& action, std::function<void(leader::Input)> done);
  // The Lease an answer carries, kept as the base of the next write; a decode error (logged as
  // `what`) when it is not one.
  Result<leader::ObservedLease, ApiError> take_lease(rapidjson::Document lease, const char* what);
  leader::Input read_answer(Client::Answer got);
  leader::Input write_answer(Client::Answer written);
  void feed(const leader::Input& input);
  void publish();
  double jitter();

  Client& client_;  // not owned
  const LeaderElectionConfig config_;
  const LeaderCallbacks callbacks_;
  Clock& clock_;  // not owned
  const ElectorClock wall_;
  const std::string path_;  // of the Lease object
  const std::unique_ptr<Timer> timer_;

  // Touched by the elector's steps only (one at a time).
  leader::State state_;
  leader::Action action_;
  int requests_ = 0;                // since the last wait
  rapidjson::Document last_lease_;  // the Lease last read or written, the base of the next write
  std::mt19937_64 rng_;

  // Read by any thread.
  std::atomic<bool> stopping_{false};
  std::atomic<bool> leading_{false};
  std::atomic<std::int64_t> leader_until_{0};  // MonoTime ticks: renewed_at + renew_deadline

  // Under mu_: where the steps are, for stop() and wait().
  std::mutex mu_;
  std::condition_variable changed_;
  Phase phase_ = Phase::kIdle;
  bool waiting_ = false;        // a wait of timer_ is armed
  std::uint64_t wait_seq_ = 0;  // of the wait armed last
};

}  // namespace repl::kube
