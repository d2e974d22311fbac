// The controller: watchers keep caches of Repls, of each kind of child the templates render
// (Deployments, Services, Ingresses, NetworkPolicies) and of the runner Pods the operator manages
// (label-selected, so nothing else is cached), and the kubelet's image-pull failure Events about
// those pods; every change maps to the key of the Repl it belongs to and goes to the Dispatcher, whose
// workers call the Reconciler with this controller as its view of the caches.
//
// Threads: none of its own. The watchers run on `io_executor` (each a chain of asynchronous
// requests and reads, see kube/watcher.hpp); reconciles run on `reconcile_executor` (a fixed pool
// of at least `workers` threads); every wait (the queue's delays, the watchers' backoffs) is a
// timer of the caller's Clock, so the whole controller runs in virtual time in tests.
//
// Lifecycle: run() starts the watchers and blocks the calling thread until they have all ended. Reconciles
// start only after every cache has synced and while set_leading(true) (always, without leader election).
// stop() may be called from any thread: it hands out no more keys, gives in-flight reconciles
// `grace` to finish and ends the watches; a watcher blocked in a request ends when that request
// does (the caller cancels the transport's requests to make that prompt).
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "dispatcher.hpp"
#include "kube/client.hpp"
#include "kube/watcher.hpp"
#include "operator_metrics.hpp"
#include "reconciler.hpp"
#include "repl_store.hpp"
#include "store.hpp"
#include "sync_checker.hpp"

namespace repl {

struct ControllerOptions {
  std::string ns;  // empty: all namespaces
  int workers = 4;
  std::chrono::milliseconds shutdown_grace{10000};
  bool leading_at_start = true;  // false with leader election: reconciles wait for set_leading(true)
  // Asked before every reconcile: false means this replica must not write now (its Lease is about
  // to expire, even if nobody has said so yet); the key is put back for later.
  std::function<bool()> may_write = [] { return true; };
  // Called once, on run()'s thread, when every cache holds its first list.
  std::function<void()> on_synced = [] {};
  // How often running sync sidecars' last log lines are read (see sync_checker.hpp); 0: never.
  std::chrono::seconds sync_check_interval{60};
  // A watch that yields nothing (no event, no bookmark) for this long is replaced; zero: never.
  SteadyDuration watch_stall_timeout = kube::kDefaultStallTimeout;
};

// The label selector of everything the operator creates.
inline constexpr const char* kManagedSelector = "app.kubernetes.io/managed-by=repl-operator";

class Controller final : public ChildView {
 public:
  Controller(kube::Client& client, Reconciler& reconciler, OperatorMetrics& metrics, Clock& clock,
             const boost::asio::any_io_executor& io_executor, boost::asio::any_io_executor reconcile_executor,
             ControllerOptions options);
  ~Controller() override;

  void run();
  void stop();
  // Reconciles run only while leading (and synced). Any thread.
  void set_leading(bool leading);

  bool synced() const;

  std::optional<LiveChild> child(const kube::Resource& resource, const ObjectKey& key) const override;
  std::optional<Problem> pod_problem(const ObjectKey& repl) const override;
  bool has_pods(const ObjectKey& repl) const override;
  std::optional<FinalSync> final_sync(const ObjectKey& repl) const override;
  std::optional<SyncReport> sync_report(const ObjectKey& repl) const override;
  std::optional<WallTime> ide_activity(const ObjectKey& repl) const override;
  void wrote(const kube::Resource& resource, const rapidjson::Value& object) override;

 private:
  using ChildStore = Store<LiveChild>;
  struct ChildCache {
    kube::Resource resource;
    std::unique_ptr<ChildStore> store;
  };
  ChildStore* child_store(const kube::Resource& resource) const;
  ReconcileOutcome reconcile(const ObjectKey& key);
  static ChildStore::Parse child_parser(const ChildTemplate& t);
  // Works out whether reconciles should run now (under state_mu_); the caller starts or stops the
  // dispatcher outside the lock, since stopping waits for in-flight reconciles.
  enum class Change { kNone, kStart, kStop };
  Change update_dispatching();
  void apply(Change change);

  Reconciler& reconciler_;    // not owned
  OperatorMetrics& metrics_;  // not owned
  Clock& clock_;              // not owned
  const ControllerOptions options_;
  Dispatcher dispatcher_;
  ReplStore repls_;
  std::vector<ChildCache> children_;  // one per template, in template order
  Store<PodState> pods_;
  Store<PullFailure> pull_failures_;  // keyed by Event, owned by the pod they are about
  // The newest final sync seen per Repl (from a stopping pod's status, or the last state its
  // deletion carried), until the Repl's status shows it or the Repl is gone: the pod and the
  // event that showed it may be gone before the Repl's reconcile runs.
  mutable std::mutex final_syncs_mu_;
  std::map<ObjectKey, FinalSync> final_syncs_;
  void saw_final_sync(const ObjectKey& repl, const FinalSync& sync);
  SyncChecker sync_checker_;
  std::vector<std::unique_ptr<kube::WatchRunner>> watchers_;
  std::mutex state_mu_;
  bool synced_all_ = false;
  bool leading_;
  bool dispatching_ = false;
  std::atomic<bool> stopping_{false};
};

}  // namespace repl
