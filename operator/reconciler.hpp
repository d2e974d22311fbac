// Reconcile of one Repl: render its children, apply those whose managed fields differ from the
// cache (or that are missing), then write the status if it differs from what the Repl shows.
// A new Repl also gets the operator's finalizer (in the same round trip as its children); a Repl
// being deleted has its runner scaled to zero, and loses the finalizer once its pods are gone and
// their final sync to S3 was not seen to fail (or the force-delete annotation says to go anyway, or
// its namespace is being deleted).
// Level-based: it reads the Repl and its children as they are now and never depends on which event
// brought the key here. In steady state it sends nothing at all.
//
// A child another client keeps changing or deleting is put back with growing waits between, and
// the Repl's Contested condition says so; an apply refused as invalid is not sent again while
// nothing it depends on changed (write_ledger.hpp).
//
// Failures the user must fix (an invalid spec, a template that renders an object the API server
// refuses, a runner pod that cannot start) are reported in the Repl's status and as Events, and are
// not retried; transient ones (the API server unreachable, a conflict, a 403 an administrator can
// fix) are returned so the caller retries with backoff.
//
// Thread-safety: reconcile() may run on several threads at once, for different Repls.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "common/clock.hpp"
#include "common/result.hpp"
#include "events.hpp"
#include "kube/client.hpp"
#include "repl/children.hpp"
#include "repl/lifecycle.hpp"
#include "repl/observed.hpp"
#include "repl/repl.hpp"
#include "repl/status.hpp"
#include "write_ledger.hpp"

namespace repl {

inline constexpr const char* kFieldManager = "repl-operator";

// A child as the cache knows it.
struct LiveChild {
  std::uint64_t fingerprint = 0;  // of the fields we manage (Shape::fingerprint)
  // Deployments only (null for the other kinds): behind a pointer, so a Service's entry does not
  // carry a Deployment's room (the caches hold one per child).
  std::shared_ptr<const DeploymentState> deployment;
};

// What reconcile reads from the caches.
class ChildView {
 public:
  virtual ~ChildView() = default;
  virtual std::optional<LiveChild> child(const kube::Resource& resource, const ObjectKey& key) const = 0;
  // The first problem among the Repl's runner pods, if any.
  virtual std::optional<Problem> pod_problem(const ObjectKey& repl) const = 0;
  // Whether the Repl has runner pods (running or stopping).
  virtual bool has_pods(const ObjectKey& repl) const = 0;
  // The newest final sync of one of the Repl's pods, kept after the pod is gone until the Repl's
  // status shows it.
  virtual std::optional<FinalSync> final_sync(const ObjectKey& repl) const = 0;
  // How the Repl's running pod's last push went, if it is known.
  virtual std::optional<SyncReport> sync_report(const ObjectKey& repl) const = 0;
  // When the Repl's running pod last had live IDE connections, if known.
  virtual std::optional<WallTime> ide_activity(const ObjectKey& repl) const = 0;
  // What the API server answered to our apply of a child or of a Repl's status, so the next
  // reconcile does not act on a cache that has not seen our own write yet.
  virtual void wrote(const kube::Resource& resource, const rapidjson::Value& object) = 0;
};

class Reconciler final {
 public:
  // `clock` gives the calendar time (status times, idle and TTL deadlines).
  Reconciler(kube::Client& client, EventRecorder& events, Clock& clock, ChildSettings settings,
             std::vector<ChildTemplate> templates, LifecycleSettings lifecycle = {},
             WriteLedger::Options ledger = {});

  // Ok: done, with when to look again if a deadline (idle, TTL) is ahead.
  using Outcome = Result<std::optional<std::chrono::seconds>, kube::ApiError>;
  Outcome reconcile(const Repl& repl, ChildView& view);

  const std::vector<ChildTemplate>& templates() const { return templates_; }
  // The Repl is gone: what was kept of it (its ledger) goes too.
  void forget(const ObjectKey& repl) { ledger_.forget(repl); }

  // What reconciles ended on their own, for /metrics.
  struct Stats {
    std::uint64_t idle_suspends = 0;
    std::uint64_t ttl_deletions = 0;
    std::uint64_t sync_failures = 0;  // Synced turning False (a push or a final sync)
    std::uint64_t repairs = 0;        // children put back after another client changed or deleted them
    std::uint64_t repairs_held = 0;   // reconciles that held repairs back (see write_ledger.hpp)
  };
  Stats stats() const {
    return {idle_suspends_.load(), ttl_deletions_.load(), sync_failures_.load(), repairs_made_.load(),
            repairs_held_.load()};
  }

 private:
  // A Repl being deleted: stop its pods, then let it go (or hold it).
  Outcome finalize(const Repl& repl, ChildView& view);
  enum class Create { kYes, kNo };  // kNo: only children that exist are changed
  // Applies the children that differ (with the finalizer, if the Repl lacks it); fills `seen`.
  // Returns transient errors only.
  Result<void, kube::ApiError> apply_children(const Repl& repl, ChildView& view, ChildObservation& seen,
                                              Create create);
  // Takes out of `todo` the repairs (write_ledger.hpp) that must wait, and says so in `seen`.
  void hold_back_repairs(const Repl& repl, const std::vector<Child>& children,
                         const std::vector<std::uint64_t>& want, std::vector<std::size_t>& todo,
                         SteadyTime now, ChildObservation& seen);
  Result<void, kube::ApiError> write_status(const Repl& repl, ChildView& view, const ChildObservation& seen);
  // One child's apply, with the merge-patch fallback when `live` exists and the apply is refused;
  // `done` gets the answer (on a transport thread). `repl` and `child` must outlive it.
  void apply_child(const Repl& repl, const Child& child, bool live, kube::Client::Done done);
  // Server-side apply of finalizer_apply_body().
  void apply_finalizer(const Repl& repl, bool keep, kube::Client::Done done);
  Result<void, kube::ApiError> remove_finalizer(const Repl& repl, ChildView& view);
  // The idle suspend or the TTL's deletion, when due; else when to look again.
  // Sets the Repl's last activity from its IDE connections, when newer (see ChildView::ide_activity).
  Result<void, kube::ApiError> record_ide_activity(Repl& repl, const ChildView& view);
  Outcome end_of_life(const Repl& repl, bool stopped);

  kube::Client& client_;   // not owned; outlives this
  EventRecorder& events_;  // not owned; outlives this
  Clock& clock_;           // not owned; outlives this
  const ChildSettings settings_;
  const std::vector<ChildTemplate> templates_;
  const LifecycleSettings lifecycle_;
  WriteLedger ledger_;
  std::atomic<std::uint64_t> idle_suspends_{0}, ttl_deletions_{0}, sync_failures_{0}, repairs_made_{0},
      repairs_held_{0};
};

// Whether an apply error is the request's fault (so retrying the same request cannot help).
bool is_permanent(const kube::ApiError& e);

}  // namespace repl
