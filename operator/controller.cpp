#include "controller.hpp"

#include <algorithm>

#include "common/json.hpp"
#include "common/log.hpp"
#include "kube/incidents.hpp"
#include "kube/resource.hpp"

namespace repl {

Controller::Controller(kube::Client& client, Reconciler& reconciler, OperatorMetrics& metrics, Clock& clock,
                       const boost::asio::any_io_executor& io_executor,
                       boost::asio::any_io_executor reconcile_executor, ControllerOptions options)
    : reconciler_(reconciler),
      metrics_(metrics),
      clock_(clock),
      options_(std::move(options)),
      dispatcher_(std::move(reconcile_executor), clock, options_.workers,
                  [this](const ObjectKey& key) { return reconcile(key); }),
      repls_([this](const ObjectKey& key) { dispatcher_.add(key); }),
      pods_(
          "pods",
          [this](const rapidjson::Value& pod) -> std::optional<Store<PodState>::Item> {
            auto state = pod_state(pod);
            if (!state) return std::nullopt;
            if (state->final_sync) saw_final_sync(state->repl, *state->final_sync);
            const auto* meta = json::member(pod, "metadata");
            return Store<PodState>::Item{
                {json::string_at(meta, "namespace"), json::string_at(meta, "name")}, state->repl, *state};
          },
          [this](const ObjectKey& k) { dispatcher_.add(k); }),
      // Only Events about pods in the pod cache are kept: the field selector narrows the stream to
      // failures of pods, and the rest of the cluster's are dropped on arrival.
      pull_failures_(
          "pull-failures",
          [this](const rapidjson::Value& event) -> std::optional<Store<PullFailure>::Item> {
            auto failure = pull_failure(event);
            if (!failure || !pods_.get(failure->pod)) return std::nullopt;
            const auto* meta = json::member(event, "metadata");
            return Store<PullFailure>::Item{
                {json::string_at(meta, "namespace"), json::string_at(meta, "name")}, failure->pod, *failure};
          },
          [this](const ObjectKey& pod) {
            if (auto state = pods_.get(pod)) dispatcher_.add(state->repl);
          }),
      sync_checker_(
          client, clock, options_.sync_check_interval,
          [this] {
            std::vector<std::pair<ObjectKey, ObjectKey>> running;
            pods_.for_each([&running](const ObjectKey& pod, const PodState& s) {
              if (s.syncing) running.emplace_back(pod, s.repl);
            });
            return running;
          },
          [this](const ObjectKey& repl) { dispatcher_.add(repl); }),
      leading_(options_.leading_at_start) {
  // Pages of 50: a LIST page is held whole, as text and as a document, while its items are
  // stored, and the watches list at once, so the page size sets the start-up peak. At 10,000
  // suspended Repls (2026-12-03): pages of 100 peaked at 40-41 MB, 50 at 37-38 MB, 25 at 36-37 MB;
  // the sync took 4.8-7.8 s, 5.2-7.3 s and 7.9-8.3 s (500, client-go's default, peaked at 88 MB).
  constexpr int kPageSize = 50;
  const auto watch = [&](kube::WatchSink& sink, const kube::Resource& r, const char* name,
                         const std::string& selector, const std::string& field_selector = "",
                         std::function<void(kube::WatchSignal)> also = {}) {
    auto observe = [metrics = metrics_.watch_observer(name), also = std::move(also)](kube::WatchSignal s) {
      metrics(s);
      if (also) also(s);
    };
    watchers_.push_back(std::make_unique<kube::WatchRunner>(
        client, clock_, io_executor,
        kube::WatcherOptions{kube::collection_path(r, options_.ns), selector, kPageSize, name,
                             std::move(observe), field_selector, options_.watch_stall_timeout},
        sink));
  };
  // When the Repls' watch recovers from failures, the API server answers again: the Repls whose
  // reconciles failed meanwhile are retried now, not at the end of backoffs grown during the outage.
  watch(repls_, kube::repls(), "repls", "", "", [this](kube::WatchSignal s) {
    if (s != kube::WatchSignal::kRecovered) return;
    if (const std::size_t n = dispatcher_.retry_failed_now(); n > 0)
      log::info("API server back: retrying failed reconciles now", {{"repls", std::to_string(n)}});
  });
  for (const auto& t : reconciler_.templates()) {
    auto store = std::make_unique<ChildStore>(
        t.resource.plural, child_parser(t), [this](const ObjectKey& k) { dispatcher_.add(k); },
        ChildStore::OwnerIndex::kNone);
    watch(*store, t.resource, t.resource.plural.c_str(), kManagedSelector);
    children_.push_back({t.resource, std::move(store)});
  }
  watch(pods_, kube::Resource{"", "v1", "pods", "Pod"}, "pods", kManagedSelector);
  watch(pull_failures_, kube::Resource{"", "v1", "events", "Event"}, "pull-failures", "",
        "involvedObject.kind=Pod,reason=Failed");

  const auto queue = [this](auto field) {
    return [this, field] { return static_cast<double>(dispatcher_.stats().*field); };
  };
  metrics_.add_gauge("repl_operator_workqueue_depth", "Repl keys due, waiting for a reconcile.",
                     queue(&Dispatcher::Stats::depth));
  metrics_.add_gauge("repl_operator_workqueue_delayed",
                     "Repl keys waiting for a later time: a backoff, an idle or TTL deadline.",
                     queue(&Dispatcher::Stats::delayed));
  metrics_.add_gauge("repl_operator_workqueue_in_flight", "Reconciles running now.",
                     queue(&Dispatcher::Stats::in_flight));
  metrics_.add_counter("repl_operator_workqueue_adds_total", "Keys added to the queue.",
                       queue(&Dispatcher::Stats::adds));
  metrics_.add_counter("repl_operator_workqueue_retries_total", "Keys put back after a failed reconcile.",
                       queue(&Dispatcher::Stats::retries));
  metrics_.add_counter("repl_operator_reconcile_panics_total",
                       "Reconciles that threw an exception (each logged and retried with backoff).",
                       queue(&Dispatcher::Stats::panics));
  metrics_.add_gauge("repl_operator_cached_repls", "Repls in the cache.",
                     [this] { return static_cast<double>(repls_.size()); });
  metrics_.registry().labelled_gauge_func(
      "repl_operator_repls", "Repls by the phase their status shows (\"\" before the first status).", "phase",
      [this] {
        std::map<std::string, double> by_phase = {{"Pending", 0},  {"Starting", 0},  {"Ready", 0},
                                                  {"Stopping", 0}, {"Suspended", 0}, {"Failed", 0}};
        repls_.for_each([&by_phase](const ObjectKey&, const Repl& r) { by_phase[r.status.phase] += 1; });
        return metrics::Registry::LabelledValues(by_phase.begin(), by_phase.end());
      });
  const auto ended = [this](auto field) {
    return [this, field] { return static_cast<double>(reconciler_.stats().*field); };
  };
  metrics_.add_counter("repl_operator_idle_suspends_total", "Repls the operator suspended for being idle.",
                       ended(&Reconciler::Stats::idle_suspends));
  metrics_.add_counter("repl_operator_ttl_deletions_total",
                       "Repls the operator deleted for being suspended longer than their ttlAfterSuspend.",
                       ended(&Reconciler::Stats::ttl_deletions));
  metrics_.add_counter(
      "repl_operator_sync_failures_total",
      "Syncs of a workspace to S3 seen failing (a running pod's push or a final sync), each once, as its "
      "Repl's Synced condition turns False.",
      ended(&Reconciler::Stats::sync_failures));
  metrics_.add_counter("repl_operator_repairs_total",
                       "Children put back after another client changed or deleted them.",
                       ended(&Reconciler::Stats::repairs));
  metrics_.add_counter("repl_operator_repairs_held_total",
                       "Reconciles that held repairs back because another client keeps undoing them (the "
                       "Repl's Contested condition).",
                       ended(&Reconciler::Stats::repairs_held));
  const auto checks = [this](auto field) {
    return [this, field] { return static_cast<double>(sync_checker_.stats().*field); };
  };
  metrics_.add_counter("repl_operator_sync_check_reads_total",
                       "Reads of a running sync sidecar's last log line (GET pods/log), failed ones too.",
                       checks(&SyncChecker::Stats::reads));
  metrics_.add_counter("repl_operator_sync_check_read_failures_total",
                       "Reads of a sync sidecar's log that failed (the pod gone, the kubelet unreachable).",
                       checks(&SyncChecker::Stats::failed_reads));
  metrics_.add_gauge(
      "repl_operator_sync_check_round_seconds",
      "How long the last round of sync checks (every running pod's log, four at a time) took.",
      [this] { return std::chrono::duration<double>(sync_checker_.stats().last_round).count(); });
}

Controller::~Controller() { stop(); }

Controller::ChildStore::Parse Controller::child_parser(const ChildTemplate& t) {
  const Shape* shape = &t.shape;
  const bool is_deployment = t.resource == kube::deployments();
  return [shape, is_deployment](const rapidjson::Value& object) -> std::optional<ChildStore::Item> {
    auto owner = controlling_repl(object);
    if (!owner) return std::nullopt;
    const auto* meta = json::member(object, "metadata");
    LiveChild live{shape->fingerprint(object), nullptr};
    if (is_deployment) live.deployment = std::make_shared<const DeploymentState>(deployment_state(object));
    return ChildStore::Item{
        {json::string_at(meta, "namespace"), json::string_at(meta, "name")}, *owner, live};
  };
}

Controller::ChildStore* Controller::child_store(const kube::Resource& resource) const {
  for (const auto& c : children_) {
    if (c.resource == resource) return c.store.get();
  }
  return nullptr;
}

std::optional<LiveChild> Controller::child(const kube::Resource& resource, const ObjectKey& key) const {
  const ChildStore* store = child_store(resource);
  return store != nullptr ? store->get(key) : std::nullopt;
}

void Controller::wrote(const kube::Resource& resource, const rapidjson::Value& object) {
  if (resource == kube::repls()) {
    repls_.write_through(object);
    // A status that shows the final sync we kept: the Repl holds it now.
    if (auto repl = parse_repl(object); repl && repl->status.synced) {
      std::lock_guard lock(final_syncs_mu_);
      const auto it = final_syncs_.find(repl->key);
      if (it != final_syncs_.end() && it->second.message == repl->status.synced->message)
        final_syncs_.erase(it);
    }
  }
  if (ChildStore* store = child_store(resource)) store->write_through(object);
}

void Controller::saw_final_sync(const ObjectKey& repl, const FinalSync& sync) {
  // Every later event about the stopped pod shows it again: once on the Repl, it is not kept.
  if (const auto r = repls_.get(repl); r && r->status.synced && r->status.synced->message == sync.message)
    return;
  {
    std::lock_guard lock(final_syncs_mu_);
    auto [it, added] = final_syncs_.try_emplace(repl, sync);
    if (!added) {
      if (it->second == sync || it->second.finished_at > sync.finished_at) return;  // RFC 3339 sorts as text
      it->second = sync;
    }
  }
  if (sync.seconds >= 0) metrics_.final_sync(sync.ok, sync.seconds);
}

std::optional<FinalSync> Controller::final_sync(const ObjectKey& repl) const {
  std::lock_guard lock(final_syncs_mu_);
  const auto it = final_syncs_.find(repl);
  if (it == final_syncs_.end()) return std::nullopt;
  return it->second;
}

std::optional<SyncReport> Controller::sync_report(const ObjectKey& repl) const {
  return sync_checker_.report(repl);
}

std::optional<WallTime> Controller::ide_activity(const ObjectKey& repl) const {
  return sync_checker_.activity(repl);
}

bool Controller::has_pods(const ObjectKey& repl) const {
  bool any = false;
  pods_.for_owner(repl, [&any](const PodState&) { any = true; });
  return any;
}

std::optional<Problem> Controller::pod_problem(const ObjectKey& repl) const {
  std::optional<Problem> found;
  std::vector<std::pair<ObjectKey, PodState>> pods;
  pods_.for_owner_items(repl, [&](const ObjectKey& pod, const PodState& s) {
    if (!found && s.problem) found = s.problem;
    pods.emplace_back(pod, s);
  });
  // A pull failure the pod's status does not show yet: an Event about this very pod (its uid) and
  // one of its containers that has not started since.
  for (const auto& [pod, state] : pods) {
    if (found) break;
    pull_failures_.for_owner(pod, [&, &state = state](const PullFailure& f) {
      const auto& waiting = state.not_started;
      if (!found && f.pod_uid == state.uid &&
          std::find(waiting.begin(), waiting.end(), f.container) != waiting.end()) {
        found = f.problem;
      }
    });
  }
  return found;
}

bool Controller::synced() const {
  for (const auto& c : children_) {
    if (!c.store->synced()) return false;
  }
  return repls_.synced() && pods_.synced() && pull_failures_.synced();
}

ReconcileOutcome Controller::reconcile(const ObjectKey& key) {
  const auto repl = repls_.get(key);
  if (!repl) {  // deleted: its children go with it
    reconciler_.forget(key);
    std::lock_guard lock(final_syncs_mu_);
    final_syncs_.erase(key);
    return ReconcileOutcome::done();
  }
  if (!options_.may_write()) return ReconcileOutcome::requeue_after(std::chrono::seconds(1));
  const auto started = clock_.now();
  auto result = reconciler_.reconcile(*repl, *this);
  const auto took = clock_.now() - started;
  metrics_.reconciled(result.has_value(), took);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(took);
  if (!result) {
    // The API server's own trouble is logged once per incident (kube::incident_logger), not once
    // per Repl and retry.
    const kube::ApiError& error = result.error();
    log::write(kube::is_server_failure(error) ? log::Level::kDebug : log::Level::kWarn, "reconcile failed",
               {{"repl", key.str()}, {"error", error.describe()}});
    return ReconcileOutcome::retry(error.retry_after);
  }
  log::debug("reconciled", {{"repl", key.str()}, {"ms", std::to_string(ms.count())}});
  if (*result) return ReconcileOutcome::requeue_after(**result);  // an idle or TTL deadline ahead
  return ReconcileOutcome::done();
}

void Controller::set_leading(bool leading) {
  Change change = Change::kNone;
  {
    std::lock_guard lock(state_mu_);
    leading_ = leading;
    change = update_dispatching();
  }
  apply(change);
}

Controller::Change Controller::update_dispatching() {
  const bool should = synced_all_ && leading_ && !stopping_;
  if (should == dispatching_) return Change::kNone;
  dispatching_ = should;
  return should ? Change::kStart : Change::kStop;
}

void Controller::apply(Change change) {
  if (change == Change::kStart) dispatcher_.start();
  if (change == Change::kStop && !dispatcher_.stop(options_.shutdown_grace)) {
    log::warn("reconciles still running after the grace period");
  }
}

void Controller::run() {
  for (auto& w : watchers_) w->start();

  // Workers start only after every cache holds its first list: until then the view is partial.
  bool synced = repls_.wait_synced() && pods_.wait_synced() && pull_failures_.wait_synced();
  for (const auto& c : children_) synced = synced && c.store->wait_synced();
  if (synced) {
    std::size_t children = 0;
    for (const auto& c : children_) children += c.store->size();
    log::info("caches synced",
              {{"repls", std::to_string(repls_.size())}, {"children", std::to_string(children)}});
    options_.on_synced();
    sync_checker_.start();
    Change change = Change::kNone;
    {
      std::lock_guard lock(state_mu_);
      synced_all_ = true;
      change = update_dispatching();
    }
    apply(change);
  }
  for (auto& w : watchers_) w->wait();
}

void Controller::stop() {
  if (stopping_.exchange(true)) return;
  Change change = Change::kNone;
  {
    std::lock_guard lock(state_mu_);
    change = update_dispatching();
  }
  apply(change);  // waits for in-flight reconciles, up to the grace period
  sync_checker_.stop();
  for (auto& w : watchers_) w->stop();
  repls_.cancel_wait();
  for (const auto& c : children_) c.store->cancel_wait();
  pods_.cancel_wait();
  pull_failures_.cancel_wait();
}

}  // namespace repl
