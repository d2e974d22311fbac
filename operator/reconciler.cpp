#include "reconciler.hpp"

#include "common/json.hpp"
#include "common/log.hpp"
#include "repl/status.hpp"
#include "repl/validation.hpp"

namespace repl {

Reconciler::Reconciler(kube::Client& client, ChildSettings settings, std::vector<ChildTemplate> templates)
    : client_(client), settings_(std::move(settings)), templates_(std::move(templates)) {}

bool is_permanent(const kube::ApiError& e) {
  // 403 is not here: a missing RBAC rule is fixed by an administrator, and then a retry succeeds.
  return e.kind == kube::ApiError::Kind::kApi && (e.code == 400 || e.code == 422);
}

Result<void, kube::ApiError> Reconciler::reconcile(const Repl& repl) {
  if (repl.deleting) return Ok{};  // owned children go with it (garbage collection)
  ChildObservation seen;
  std::optional<FieldError> invalid = validate_repl_id(repl.key.name);
  if (!invalid) invalid = validate_user_id(repl.spec.user_id);
  if (!invalid && !repl.spec.language.empty()) invalid = validate_language(repl.spec.language);
  if (!invalid && !repl.spec.image.empty()) invalid = validate_image(repl.spec.image);
  if (invalid) {
    seen.failure_reason = "InvalidSpec";
    seen.failure_message = invalid->field + ": " + invalid->message;
  } else if (auto applied = apply_children(repl, seen); !applied) {
    return applied;
  }
  return write_status(repl, seen);
}

Result<void, kube::ApiError> Reconciler::apply_children(const Repl& repl, ChildObservation& seen) {
  auto children = desired_children(repl, settings_, templates_);
  if (!children) {
    seen.failure_reason = "RenderFailed";
    seen.failure_message = children.error().message;
    return Ok{};
  }
  for (const Child& child : *children) {
    const std::string path = kube::object_path(child.resource, repl.key.ns, child.name);
    auto applied = client_.apply(path, child.object, kFieldManager);
    if (!applied) {
      if (!is_permanent(applied.error())) return Fail(applied.error());
      seen.failure_reason = "ApplyFailed";
      seen.failure_message = child.resource.kind + " " + child.name + ": " + applied.error().message;
      return Ok{};
    }
    if (child.resource == kube::deployments()) {
      seen.deployment_ready_replicas = json::int_at(json::member(*applied, "status"), "readyReplicas");
    }
  }
  log::debug("applied children", {{"repl", repl.key.str()}});
  return Ok{};
}

Result<void, kube::ApiError> Reconciler::write_status(const Repl& repl, const ChildObservation& seen) {
  const ReplStatus status = compute_status(repl, seen, urls_for(repl, settings_), rfc3339_now());
  if (status == repl.status) return Ok{};
  const std::string path = kube::object_path(kube::repls(), repl.key.ns, repl.key.name) + "/status";
  auto written = client_.apply(path, status_apply_body(repl, status), kFieldManager);
  if (!written) {
    // The Repl was deleted meanwhile: nothing left to report on.
    if (written.error().is_not_found()) return Ok{};
    return Fail(written.error());
  }
  log::info("status", {{"repl", repl.key.str()}, {"phase", status.phase}});
  return Ok{};
}

}  // namespace repl
