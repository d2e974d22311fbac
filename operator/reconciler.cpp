#include "reconciler.hpp"

#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>

#include "common/json.hpp"
#include "common/log.hpp"
#include "common/time.hpp"
#include "kube/resource.hpp"
#include "repl/validation.hpp"

namespace repl {

Reconciler::Reconciler(kube::Client& client, EventRecorder& events, Clock& clock, ChildSettings settings,
                       std::vector<ChildTemplate> templates, LifecycleSettings lifecycle,
                       WriteLedger::Options ledger)
    : client_(client),
      events_(events),
      clock_(clock),
      settings_(std::move(settings)),
      templates_(std::move(templates)),
      lifecycle_(lifecycle),
      ledger_(ledger) {}

namespace {

// The sooner of two "look again after"s.
std::optional<std::chrono::seconds> sooner(std::optional<std::chrono::seconds> a,
                                           std::optional<std::chrono::seconds> b) {
  if (!a) return b;
  if (!b) return a;
  return std::min(*a, *b);
}

}  // namespace

bool is_permanent(const kube::ApiError& e) {
  // 403 is not here: a missing RBAC rule is fixed by an administrator, and then a retry succeeds.
  return e.kind == kube::ApiError::Kind::kApi && (e.code == 400 || e.code == 422);
}

Reconciler::Outcome Reconciler::reconcile(const Repl& repl, ChildView& view) {
  using After = std::optional<std::chrono::seconds>;
  if (repl.deleting) return finalize(repl, view);
  ChildObservation seen;
  std::optional<FieldError> invalid = validate_repl_id(repl.key.name);
  if (!invalid) invalid = validate_user_id(repl.spec.user_id);
  if (!invalid && !repl.spec.language.empty()) invalid = validate_language(repl.spec.language);
  if (!invalid && !repl.spec.image.empty()) invalid = validate_image(repl.spec.image);
  if (!invalid && !repl.spec.idle_timeout.empty())
    invalid = validate_duration("spec.idleTimeout", repl.spec.idle_timeout);
  if (!invalid && !repl.spec.ttl_after_suspend.empty())
    invalid = validate_duration("spec.ttlAfterSuspend", repl.spec.ttl_after_suspend);
  if (!invalid && repl.spec.sync_interval_seconds != 0)
    invalid = validate_sync_interval(repl.spec.sync_interval_seconds);
  if (invalid) {
    seen.failure_reason = "InvalidSpec";
    seen.failure_message = invalid->field + ": " + invalid->message;
  } else if (auto applied = apply_children(repl, view, seen, Create::kYes); !applied) {
    return Fail(applied.error());
  }
  if (auto written = write_status(repl, view, seen); !written) return Fail(written.error());
  if (invalid) return After{};
  Repl current = repl;
  if (auto recorded = record_ide_activity(current, view); !recorded) return Fail(recorded.error());
  auto after = end_of_life(current, repl.spec.suspended && !seen.pods);
  if (!after) return after;
  return sooner(*after, seen.revisit);
}

Result<void, kube::ApiError> Reconciler::record_ide_activity(Repl& repl, const ChildView& view) {
  // Live IDE connections are activity, like the frontend's heartbeat: written to the same
  // annotation, when newer (the sidecar says so at most once a sync check interval, so this
  // writes at most that often), and counted at once by the idle timer below.
  if (repl.spec.suspended) return Ok{};
  const auto active = view.ide_activity(repl.key);
  if (!active) return Ok{};
  const auto last = parse_rfc3339(repl.last_activity);
  if (last && std::chrono::floor<std::chrono::seconds>(*active) <= *last)
    return Ok{};  // whole seconds, as written
  const std::string at = rfc3339(*active);
  auto patched = client_.merge_patch(kube::object_path(kube::repls(), repl.key.ns, repl.key.name),
                                     activity_patch_body(at));
  if (!patched)
    return patched.error().is_not_found() ? Result<void, kube::ApiError>(Ok{}) : Fail(patched.error());
  repl.last_activity = at;
  return Ok{};
}

Reconciler::Outcome Reconciler::end_of_life(const Repl& repl, bool stopped) {
  using Action = LifecycleDecision::Action;
  using After = std::optional<std::chrono::seconds>;
  const WallTime now = clock_.wall();
  const LifecycleDecision d = decide_lifecycle(repl, stopped, lifecycle_, now);
  if (d.next_check) {
    // A second late rather than early: the deadline is then past when the key comes back.
    return After{std::chrono::ceil<std::chrono::seconds>(*d.next_check - now) + std::chrono::seconds(1)};
  }
  const std::string path = kube::object_path(kube::repls(), repl.key.ns, repl.key.name);
  const std::string idle_for = std::to_string(d.limit.count()) + " s";
  if (d.action == Action::kSuspendIdle) {
    // spec.suspended, as /stop would; the shim's next /start takes it back. The annotation says why.
    rapidjson::Document patch(rapidjson::kObjectType);
    auto& a = patch.GetAllocator();
    rapidjson::Value annotations(rapidjson::kObjectType);
    annotations.AddMember(rapidjson::StringRef(kIdleSuspendedAnnotation), json::string_value(rfc3339(now), a),
                          a);
    rapidjson::Value meta(rapidjson::kObjectType);
    meta.AddMember("annotations", std::move(annotations), a);
    patch.AddMember("metadata", std::move(meta), a);
    rapidjson::Value spec(rapidjson::kObjectType);
    spec.AddMember("suspended", true, a);
    patch.AddMember("spec", std::move(spec), a);
    auto patched = client_.merge_patch(path, patch);
    if (!patched) return patched.error().is_not_found() ? Outcome(After{}) : Outcome(Fail(patched.error()));
    ++idle_suspends_;
    events_.record(repl, EventType::kNormal, "Idle",
                   "no activity since " + rfc3339(d.since) + " (idle timeout " + idle_for + "): suspended");
    log::info("idle: suspended", {{"repl", repl.key.str()}, {"since", rfc3339(d.since)}});
    return After{};
  }
  if (d.action == Action::kDeleteExpired) {
    // Its pod is gone and its final sync done: the finalizer lets it go at once.
    auto removed = client_.remove(path, repl.uid);
    if (!removed) {
      // Gone, or re-created under its name meanwhile (another uid): nothing of this one is left.
      if (removed.error().is_not_found() || removed.error().is_conflict()) return After{};
      return Fail(removed.error());
    }
    ++ttl_deletions_;
    events_.record(repl, EventType::kNormal, "Expired",
                   "suspended since " + rfc3339(d.since) + " (ttlAfterSuspend " + idle_for + "): deleted");
    log::info("expired: deleted", {{"repl", repl.key.str()}, {"since", rfc3339(d.since)}});
  }
  return After{};
}

Reconciler::Outcome Reconciler::finalize(const Repl& repl, ChildView& view) {
  using After = std::optional<std::chrono::seconds>;
  if (!repl.finalizer)
    return After{};  // nothing of ours holds it: its children go with it (garbage collection)
  ChildObservation seen;
  seen.pods = view.has_pods(repl.key);
  seen.final_sync = view.final_sync(repl.key);
  if (seen.pods) {
    // The runner stops first (its Deployment scaled to zero), and the sync sidecar after it, with a
    // final push to S3; the pods' end brings the key back here.
    Repl stopping = repl;
    stopping.spec.suspended = true;
    if (auto applied = apply_children(stopping, view, seen, Create::kNo); !applied)
      return Fail(applied.error());
    if (auto written = write_status(repl, view, seen); !written) return Fail(written.error());
    return seen.revisit;  // a held-back repair of the scale to zero
  }
  // Held only while there is someone to tell: not in a namespace that is going away.
  if (final_sync_failed(repl, seen) && !repl.force_delete) {
    auto ns = client_.get("/api/v1/namespaces/" + repl.key.ns);
    if (!ns && !ns.error().is_not_found()) return Fail(ns.error());
    const bool ns_going = !ns || json::member(json::member(*ns, "metadata"), "deletionTimestamp") != nullptr;
    if (!ns_going) {
      seen.held = true;
      if (auto written = write_status(repl, view, seen); !written) return Fail(written.error());
      return After{};
    }
  }
  if (auto removed = remove_finalizer(repl, view); !removed) return Fail(removed.error());
  return After{};
}

void Reconciler::apply_finalizer(const Repl& repl, bool keep, kube::Client::Done done) {
  client_.apply_async(kube::object_path(kube::repls(), repl.key.ns, repl.key.name),
                      finalizer_apply_body(repl.key, keep), kFieldManager, std::move(done));
}

Result<void, kube::ApiError> Reconciler::remove_finalizer(const Repl& repl, ChildView& view) {
  std::promise<kube::Client::Answer> answer;
  apply_finalizer(repl, false, [&answer](kube::Client::Answer a) { answer.set_value(std::move(a)); });
  auto removed = answer.get_future().get();
  if (!removed) {
    // Gone already; or, if its last finalizer went meanwhile, the apply would have made it anew and
    // was refused for the missing spec: there is nothing left to hold either way.
    if (removed.error().is_not_found() || removed.error().is_invalid()) return Ok{};
    return Fail(removed.error());
  }
  view.wrote(kube::repls(), *removed);
  log::info("released", {{"repl", repl.key.str()}});
  return Ok{};
}

Result<void, kube::ApiError> Reconciler::apply_children(const Repl& repl, ChildView& view,
                                                        ChildObservation& seen, Create create) {
  auto children = desired_children(repl, settings_, templates_);
  if (!children) {
    seen.failure_reason = "RenderFailed";
    seen.failure_message = children.error().message;
    return Ok{};
  }
  // Which children differ from what they should be (read from the caches, on this thread).
  std::vector<std::size_t> todo;
  std::vector<bool> live(children->size(), false);
  std::vector<std::uint64_t> want(children->size()), has(children->size(), 0);
  std::optional<std::string> refused_before;  // the first child whose apply would be refused again
  const SteadyTime now = clock_.now();
  ledger_.begin(repl.key, repl.uid);
  for (std::size_t i = 0; i < children->size(); ++i) {
    const Child& child = (*children)[i];
    const auto cached = view.child(child.resource, {repl.key.ns, child.name});
    live[i] = cached.has_value();
    want[i] = templates_[i].shape.fingerprint(child.object);
    if (cached) has[i] = cached->fingerprint;
    // Its state as cached, unless an apply below answers a newer one (or it is not applied now).
    if (cached && child.resource == kube::deployments() && cached->deployment)
      seen.deployment = *cached->deployment;
    if (cached && cached->fingerprint == want[i]) continue;  // every field we manage holds our value
    if (!cached && create == Create::kNo) continue;
    if (auto refused = ledger_.refused_before(repl.key, i, want[i], has[i], now)) {
      if (!refused_before) refused_before = std::move(refused->why);
      seen.revisit = sooner(seen.revisit, std::chrono::ceil<std::chrono::seconds>(refused->until - now));
      continue;
    }
    todo.push_back(i);
  }
  hold_back_repairs(repl, *children, want, todo, now, seen);
  const bool add_finalizer = !repl.finalizer && !repl.deleting;
  // Their applies, all in flight at once (a new Repl's children cost one round trip, not four, and
  // no thread each); this thread waits for the last answer, then takes them in template order.
  // The finalizer's apply, if any, goes with them and answers last.
  using Applied = Result<rapidjson::Document, kube::ApiError>;
  std::vector<std::optional<Applied>> answers(todo.size() + (add_finalizer ? 1 : 0));
  {
    std::mutex mu;
    std::condition_variable all_in;
    std::size_t pending = answers.size();
    const auto answer = [&](std::size_t k) {
      return [&, k](Applied applied) {
        std::lock_guard lock(mu);
        answers[k] = std::move(applied);
        if (--pending == 0) all_in.notify_one();
      };
    };
    for (std::size_t k = 0; k < todo.size(); ++k)
      apply_child(repl, (*children)[todo[k]], live[todo[k]], answer(k));
    if (add_finalizer) apply_finalizer(repl, true, answer(todo.size()));
    std::unique_lock lock(mu);
    all_in.wait(lock, [&] { return pending == 0; });
  }
  if (add_finalizer) {
    // Refused if the Repl is being deleted meanwhile (no finalizer may be added then) or is gone:
    // the retry sees which.
    Applied& finalized = *answers.back();
    if (!finalized) return Fail(finalized.error());
    view.wrote(kube::repls(), *finalized);
  }
  // Every apply that succeeded is taken in; then the first failure, if any, decides. One Event
  // says what was created and one what was restored (not one per child: Events are writes too).
  std::optional<std::size_t> failed;
  std::string created, restored;
  for (std::size_t k = 0; k < todo.size(); ++k) {
    const Child& child = (*children)[todo[k]];
    Applied& applied = *answers[k];
    if (!applied) {
      if (!failed) failed = k;
      if (is_permanent(applied.error())) {
        ledger_.refused(repl.key, todo[k], want[todo[k]], has[todo[k]],
                        child.resource.kind + " " + child.name + ": " + applied.error().message, now);
      }
      continue;
    }
    view.wrote(child.resource, *applied);
    const std::uint64_t holds = templates_[todo[k]].shape.fingerprint(*applied);
    ledger_.applied(repl.key, todo[k], holds == want[todo[k]] ? holds : 0);
    const std::string what = child.resource.kind + " " + child.name;
    std::string& list = live[todo[k]] ? restored : created;
    list += (list.empty() ? "" : ", ") + what;
    log::info(live[todo[k]] ? "restored" : "created", {{"repl", repl.key.str()}, {"child", what}});
    if (child.resource == kube::deployments()) seen.deployment = deployment_state(*applied);
  }
  if (!created.empty()) events_.record(repl, EventType::kNormal, "Created", "created " + created);
  if (!restored.empty()) {
    events_.record(repl, EventType::kNormal, "Updated", "updated " + restored + " to the desired state");
  }
  if (failed) {
    const Child& child = (*children)[todo[*failed]];
    const kube::ApiError& error = answers[*failed]->error();
    if (!is_permanent(error)) return Fail(error);
    seen.failure_reason = "ApplyFailed";
    seen.failure_message = child.resource.kind + " " + child.name + ": " + error.message;
    return Ok{};
  }
  if (refused_before) {
    seen.failure_reason = "ApplyFailed";
    seen.failure_message = *refused_before;
    return Ok{};
  }
  seen.pod_problem = view.pod_problem(repl.key);
  seen.pods = view.has_pods(repl.key);
  seen.final_sync = view.final_sync(repl.key);
  seen.sync_report = view.sync_report(repl.key);
  return Ok{};
}

void Reconciler::hold_back_repairs(const Repl& repl, const std::vector<Child>& children,
                                   const std::vector<std::uint64_t>& want, std::vector<std::size_t>& todo,
                                   SteadyTime now, ChildObservation& seen) {
  const auto is_repair = [&](std::size_t i) { return ledger_.is_repair(repl.key, i, want[i]); };
  std::vector<std::string> repairing;
  for (std::size_t i : todo) {
    if (is_repair(i)) repairing.push_back(children[i].resource.kind + " " + children[i].name);
  }
  if (!repairing.empty()) {
    const WriteLedger::Verdict verdict = ledger_.admit(repl.key, repairing, now);
    if (verdict.now) {
      repairs_made_ += repairing.size();
    } else {
      ++repairs_held_;
      std::erase_if(todo, is_repair);
      seen.revisit = sooner(seen.revisit, std::chrono::ceil<std::chrono::seconds>(verdict.wait));
      log::debug("repair held back", {{"repl", repl.key.str()}, {"wait", short_duration(verdict.wait)}});
    }
  }
  if (auto contest = ledger_.contested(repl.key, now)) {
    seen.contested = contest->message;
    seen.revisit = sooner(seen.revisit, std::chrono::ceil<std::chrono::seconds>(contest->until - now));
  }
}

void Reconciler::apply_child(const Repl& repl, const Child& child, bool live, kube::Client::Done done) {
  auto path = std::make_shared<std::string>(kube::object_path(child.resource, repl.key.ns, child.name));
  client_.apply_async(
      *path, child.object, kFieldManager,
      [this, &repl, &child, live, path, done = std::move(done)](kube::Client::Answer applied) {
        if (applied || !live || !applied.error().is_invalid()) return done(std::move(applied));
        // Someone changed the key of a list entry we own (a Service port number, a
        // containerPort): server-side apply merges by that key, so ours would come
        // back beside theirs and clash ("duplicate name"). A merge patch of the spec
        // replaces those lists whole, with exactly ours. Only the spec: metadata
        // lists (ownerReferences) of other managers stay as they are.
        log::info("apply refused, replacing lists",
                  {{"repl", repl.key.str()}, {"error", applied.error().message}});
        rapidjson::Document patch(rapidjson::kObjectType);
        if (const auto* spec = json::member(child.object, "spec")) {
          patch.AddMember("spec", rapidjson::Value(*spec, patch.GetAllocator()), patch.GetAllocator());
        }
        client_.merge_patch_async(*path, patch, std::move(done));
      });
}

Result<void, kube::ApiError> Reconciler::write_status(const Repl& repl, ChildView& view,
                                                      const ChildObservation& seen) {
  const ReplStatus status = compute_status(repl, seen, urls_for(repl, settings_), rfc3339(clock_.wall()));
  if (status == repl.status) return Ok{};
  const std::string path = kube::object_path(kube::repls(), repl.key.ns, repl.key.name) + "/status";
  auto written = client_.apply(path, status_apply_body(repl, status), kFieldManager);
  if (!written) {
    // The Repl was deleted meanwhile: nothing left to report on.
    if (written.error().is_not_found()) return Ok{};
    return Fail(written.error());
  }
  view.wrote(kube::repls(), *written);
  log::info("status", {{"repl", repl.key.str()}, {"phase", status.phase}});
  // A new failure (not the same one again) is worth an Event.
  const Condition& ready = *status.ready;
  const bool was_same = repl.status.ready && repl.status.ready->reason == ready.reason;
  if (status.phase == "Failed" && !was_same) {
    events_.record(repl, EventType::kWarning, ready.reason, ready.message);
  }
  if (status.contested && !repl.status.contested) {
    events_.record(repl, EventType::kWarning, "Contested", status.contested->message);
    log::warn("contested", {{"repl", repl.key.str()}, {"why", status.contested->message}});
  }
  if (status.synced && status.synced->status == "False" && status.synced != repl.status.synced) {
    ++sync_failures_;
    events_.record(repl, EventType::kWarning, status.synced->reason, status.synced->message);
  }
  return Ok{};
}

}  // namespace repl
