#include "reconciler.hpp"

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
  for (std::size_t i = 0; i < children->size(); ++i) {
    const Child& child = (*children)[i];
    const auto live = view.child(child.resource, {repl.key.ns, child.name});
    const bool is_deployment = child.resource == kube::deployments();
    if (live && live->fingerprint == templates_[i].shape.fingerprint(child.object)) {
      if (is_deployment) seen.deployment = live->deployment;
      continue;  // every field we manage already holds our value
    }
    const std::string path = kube::object_path(child.resource, repl.key.ns, child.name);
    auto applied = client_.apply(path, child.object, kFieldManager);
    if (!applied && live && applied.error().is_invalid()) {
      // Someone changed the key of a list entry we own (a Service port number, a containerPort):
      // server-side apply merges by that key, so ours would come back beside theirs and clash
      // ("duplicate name"). A merge patch of the spec replaces those lists whole, with exactly ours.
      // Only the spec: metadata lists (ownerReferences) of other managers stay as they are.
      log::info("apply refused, replacing lists",
                {{"repl", repl.key.str()}, {"error", applied.error().message}});
      rapidjson::Document patch(rapidjson::kObjectType);
      if (const auto* spec = json::member(child.object, "spec")) {
        patch.AddMember("spec", rapidjson::Value(*spec, patch.GetAllocator()), patch.GetAllocator());
      }
      applied = client_.merge_patch(path, patch);
    }
    if (!applied) {
      if (!is_permanent(applied.error())) return Fail(applied.error());
      seen.failure_reason = "ApplyFailed";
      seen.failure_message = child.resource.kind + " " + child.name + ": " + applied.error().message;
      return Ok{};
    }
    view.wrote(child.resource, *applied);
    const std::string what = child.resource.kind + " " + child.name;
    if (live) {
      log::info("restored", {{"repl", repl.key.str()}, {"child", what}});
      events_.record(repl, EventType::kNormal, "Updated", "updated " + what + " to the desired state");
    } else {
      log::info("created", {{"repl", repl.key.str()}, {"child", what}});
      events_.record(repl, EventType::kNormal, "Created", "created " + what);
    }
    if (is_deployment) seen.deployment = deployment_state(*applied);
  }
  seen.pod_problem = view.pod_problem(repl.key);
  return Ok{};
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
