#include "repl/status.hpp"

#include "common/json.hpp"
#include "common/time.hpp"
#include "kube/resource.hpp"

namespace repl {

namespace {

// `c` with the previous lastTransitionTime when its status is the same as before, else `now`.
Condition transitioned(Condition c, const std::optional<Condition>& before, const std::string& now) {
  c.last_transition_time = before && before->status == c.status ? before->last_transition_time : now;
  return c;
}

}  // namespace

bool idle_suspended(const Repl& repl) {
  if (!repl.spec.suspended || repl.deleting) return false;
  const auto at = parse_rfc3339(repl.idle_suspended_at);
  const auto active = parse_rfc3339(repl.last_activity);
  return at && (!active || *at >= *active);  // not a later suspend after a resume
}

bool final_sync_failed(const Repl& repl, const ChildObservation& seen) {
  if (seen.final_sync) return !seen.final_sync->ok;
  return repl.status.synced && repl.status.synced->status == "False";
}

ReplStatus compute_status(const Repl& repl, const ChildObservation& seen, const ReplUrls& urls,
                          const std::string& now) {
  ReplStatus s;
  s.observed_generation = repl.generation;
  s.ide_url = urls.ide;
  s.preview_url = urls.preview;
  Condition ready{"Ready", "False", "", "", repl.generation, ""};
  if (seen.failure_reason) {
    s.phase = "Failed";
    ready.reason = *seen.failure_reason;
    ready.message = seen.failure_message;
  } else if (seen.held) {
    s.phase = "Failed";
    ready.reason = "FinalSyncFailed";
    ready.message =
        "deletion held: the final sync to S3 failed, so the repl's last edits are not there; annotate " +
        std::string(kForceDeleteAnnotation) + "=true to delete it anyway";
  } else if (repl.spec.suspended || repl.deleting) {
    const std::string why = repl.deleting ? "the Repl is being deleted" : "spec.suspended is true";
    if (seen.pods) {
      s.phase = "Stopping";
      ready.reason = "Stopping";
      ready.message = why + ": the runner pod is stopping, after a final sync of its workspace to S3";
    } else if (idle_suspended(repl)) {
      s.phase = "Suspended";
      ready.reason = "Idle";
      ready.message = "suspended at " + repl.idle_suspended_at + " for being idle; /start resumes it";
    } else {
      s.phase = "Suspended";
      ready.reason = "Suspended";
      ready.message = why + ": the Deployment is scaled to zero";
    }
  } else if (const auto& d = seen.deployment;
             d && d->ready_replicas > 0 && d->observed_generation >= d->generation) {
    s.phase = "Ready";
    ready.status = "True";
    ready.reason = "DeploymentReady";
    ready.message = "the runner pod is ready";
  } else if (const std::optional<Problem>& p = d && d->problem ? d->problem : seen.pod_problem) {
    s.phase = "Failed";
    ready.reason = p->reason;
    ready.message = p->message;
  } else {
    s.phase = "Starting";
    ready.reason = "DeploymentNotReady";
    ready.message = "waiting for the runner pod to become ready";
  }
  s.ready = transitioned(std::move(ready), repl.status.ready, now);
  s.synced = repl.status.synced;
  s.last_sync_time = repl.status.last_sync_time;
  if (const auto& r = seen.sync_report; r && !seen.final_sync) {
    // A failed push is not the runner's problem: Ready stays as it is.
    s.synced = transitioned(Condition{"Synced", r->ok ? "True" : "False", r->ok ? "Synced" : "SyncFailed",
                                      r->message, repl.generation, ""},
                            repl.status.synced, now);
    if (r->changed) s.last_sync_time = r->at;
  }
  if (const auto& f = seen.final_sync) {
    s.synced = transitioned(
        Condition{"Synced", f->ok ? "True" : "False", f->ok ? "FinalSyncSucceeded" : "FinalSyncFailed",
                  f->message, repl.generation, ""},
        repl.status.synced, now);
    if (f->ok) s.last_sync_time = f->finished_at.empty() ? now : f->finished_at;
  }
  if (seen.contested) {
    s.contested =
        transitioned(Condition{"Contested", "True", "RepairBackoff", *seen.contested, repl.generation, ""},
                     repl.status.contested, now);
  }
  return s;
}

rapidjson::Document status_apply_body(const Repl& repl, const ReplStatus& st) {
  using rapidjson::Value;
  rapidjson::Document doc = kube::new_object(kube::repls(), repl.key.ns, repl.key.name);
  auto& a = doc.GetAllocator();
  const auto str = [&a](const std::string& s) { return json::string_value(s, a); };

  Value status(rapidjson::kObjectType);
  status.AddMember("phase", str(st.phase), a);
  status.AddMember("observedGeneration", Value(static_cast<int64_t>(st.observed_generation)), a);
  Value urls(rapidjson::kObjectType);
  urls.AddMember("ide", str(st.ide_url), a);
  urls.AddMember("preview", str(st.preview_url), a);
  status.AddMember("urls", std::move(urls), a);
  if (!st.last_sync_time.empty()) status.AddMember("lastSyncTime", str(st.last_sync_time), a);
  Value conditions(rapidjson::kArrayType);
  for (const auto* condition : {&st.ready, &st.synced, &st.contested}) {
    if (!*condition) continue;
    const Condition& c = **condition;
    Value cond(rapidjson::kObjectType);
    cond.AddMember("type", str(c.type), a);
    cond.AddMember("status", str(c.status), a);
    cond.AddMember("reason", str(c.reason), a);
    cond.AddMember("message", str(c.message), a);
    cond.AddMember("observedGeneration", Value(static_cast<int64_t>(c.observed_generation)), a);
    cond.AddMember("lastTransitionTime", str(c.last_transition_time), a);
    conditions.PushBack(std::move(cond), a);
  }
  status.AddMember("conditions", std::move(conditions), a);
  doc.AddMember("status", std::move(status), a);
  return doc;
}

}  // namespace repl
