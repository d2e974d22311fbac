#include "reconciler.hpp"

#include <condition_variable>
#include <memory>
#include <mutex>

#include "common/json.hpp"
#include "common/log.hpp"
#include "repl/validation.hpp"

namespace repl {

Reconciler::Reconciler(kube::Client& client, EventRecorder& events, ChildSettings settings,
                       std::vector<ChildTemplate> templates)
    : client_(client), events_(events), settings_(std::move(settings)), templates_(std::move(templates)) {}

bool is_permanent(const kube::ApiError& e) {
  // 403 is not here: a missing RBAC rule is fixed by an administrator, and then a retry succeeds.
  return e.kind == kube::ApiError::Kind::kApi && (e.code == 400 || e.code == 422);
}

Result<void, kube::ApiError> Reconciler::reconcile(const Repl& repl, ChildView& view) {
  if (repl.deleting) return Ok{};  // owned children go with it (garbage collection)
  ChildObservation seen;
  std::optional<FieldError> invalid = validate_repl_id(repl.key.name);
  if (!invalid) invalid = validate_user_id(repl.spec.user_id);
  if (!invalid && !repl.spec.language.empty()) invalid = validate_language(repl.spec.language);
  if (!invalid && !repl.spec.image.empty()) invalid = validate_image(repl.spec.image);
  if (invalid) {
    seen.failure_reason = "InvalidSpec";
    seen.failure_message = invalid->field + ": " + invalid->message;
  } else if (auto applied = apply_children(repl, view, seen); !applied) {
    return applied;
  }
  return write_status(repl, view, seen);
}

Result<void, kube::ApiError> Reconciler::apply_children(const Repl& repl, ChildView& view,
                                                        ChildObservation& seen) {
  auto children = desired_children(repl, settings_, templates_);
  if (!children) {
    seen.failure_reason = "RenderFailed";
    seen.failure_message = children.error().message;
    return Ok{};
  }
  // Which children differ from what they should be (read from the caches, on this thread).
  std::vector<std::size_t> todo;
  std::vector<bool> live(children->size(), false);
  for (std::size_t i = 0; i < children->size(); ++i) {
    const Child& child = (*children)[i];
    const auto cached = view.child(child.resource, {repl.key.ns, child.name});
    live[i] = cached.has_value();
    if (cached && cached->fingerprint == templates_[i].shape.fingerprint(child.object)) {
      if (child.resource == kube::deployments() && cached->deployment) seen.deployment = *cached->deployment;
      continue;  // every field we manage already holds our value
    }
    todo.push_back(i);
  }
  // Their applies, all in flight at once (a new Repl's children cost one round trip, not four, and
  // no thread each); this thread waits for the last answer, then takes them in template order.
  using Applied = Result<rapidjson::Document, kube::ApiError>;
  std::vector<std::optional<Applied>> answers(todo.size());
  {
    std::mutex mu;
    std::condition_variable all_in;
    std::size_t pending = todo.size();
    for (std::size_t k = 0; k < todo.size(); ++k) {
      apply_child(repl, (*children)[todo[k]], live[todo[k]], [&, k](Applied applied) {
        std::lock_guard lock(mu);
        answers[k] = std::move(applied);
        if (--pending == 0) all_in.notify_one();
      });
    }
    std::unique_lock lock(mu);
    all_in.wait(lock, [&] { return pending == 0; });
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
      continue;
    }
    view.wrote(child.resource, *applied);
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
  seen.pod_problem = view.pod_problem(repl.key);
  return Ok{};
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
  const ReplStatus status = compute_status(repl, seen, urls_for(repl, settings_), rfc3339_now());
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
  return Ok{};
}

}  // namespace repl
