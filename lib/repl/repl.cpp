#include "repl/repl.hpp"

#include "common/json.hpp"
#include "kube/resource.hpp"

namespace repl {

using json::bool_at;
using json::int_at;
using json::member;
using json::string_at;

Result<Repl, ParseError> parse_repl(const rapidjson::Value& object) {
  const rapidjson::Value* meta = member(object, "metadata");
  if (meta == nullptr || !meta->IsObject()) return Fail(ParseError{"Repl has no metadata"});
  Repl r;
  r.key = {string_at(meta, "namespace"), string_at(meta, "name")};
  if (r.key.name.empty()) return Fail(ParseError{"Repl has no metadata.name"});
  r.uid = string_at(meta, "uid");
  r.resource_version = string_at(meta, "resourceVersion");
  r.generation = int_at(meta, "generation");
  r.deleting = member(meta, "deletionTimestamp") != nullptr;
  if (const rapidjson::Value* f = member(meta, "finalizers"); f != nullptr && f->IsArray()) {
    for (const auto& name : f->GetArray())
      r.finalizer = r.finalizer || (name.IsString() && name == kFinalizer);
  }
  const rapidjson::Value* annotations = member(meta, "annotations");
  r.force_delete = string_at(annotations, kForceDeleteAnnotation) == "true";
  r.last_activity = string_at(annotations, kLastActivityAnnotation);
  r.idle_suspended_at = string_at(annotations, kIdleSuspendedAnnotation);
  r.subject = string_at(annotations, kSubjectAnnotation);
  r.created = string_at(meta, "creationTimestamp");

  if (const rapidjson::Value* spec = member(object, "spec"); spec != nullptr && spec->IsObject()) {
    r.spec.user_id = string_at(spec, "userId");
    r.spec.language = string_at(spec, "language");
    r.spec.image = string_at(spec, "image");
    r.spec.suspended = bool_at(spec, "suspended");
    r.spec.idle_timeout = string_at(spec, "idleTimeout");
    r.spec.ttl_after_suspend = string_at(spec, "ttlAfterSuspend");
    r.spec.sync_interval_seconds = int_at(spec, "syncIntervalSeconds");
  }
  if (const rapidjson::Value* status = member(object, "status"); status != nullptr && status->IsObject()) {
    r.status.phase = string_at(status, "phase");
    r.status.observed_generation = int_at(status, "observedGeneration");
    const rapidjson::Value* urls = member(status, "urls");
    r.status.ide_url = string_at(urls, "ide");
    r.status.preview_url = string_at(urls, "preview");
    r.status.last_sync_time = string_at(status, "lastSyncTime");
    if (const rapidjson::Value* conds = member(status, "conditions"); conds != nullptr && conds->IsArray()) {
      for (const auto& c : conds->GetArray()) {
        const std::string type = string_at(&c, "type");
        std::optional<Condition>* slot = type == "Ready"       ? &r.status.ready
                                         : type == "Synced"    ? &r.status.synced
                                         : type == "Contested" ? &r.status.contested
                                                               : nullptr;
        if (slot == nullptr) continue;
        *slot = Condition{type,
                          string_at(&c, "status"),
                          string_at(&c, "reason"),
                          string_at(&c, "message"),
                          int_at(&c, "observedGeneration"),
                          string_at(&c, "lastTransitionTime")};
      }
    }
  }
  return r;
}

rapidjson::Document finalizer_apply_body(const ObjectKey& repl, bool keep) {
  rapidjson::Document body = kube::new_object(kube::repls(), repl.ns, repl.name);
  if (keep) {
    auto& a = body.GetAllocator();
    rapidjson::Value finalizers(rapidjson::kArrayType);
    finalizers.PushBack(rapidjson::StringRef(kFinalizer), a);
    body["metadata"].AddMember("finalizers", std::move(finalizers), a);
  }
  return body;
}

rapidjson::Document activity_patch_body(const std::string& at) {
  rapidjson::Document patch(rapidjson::kObjectType);
  auto& a = patch.GetAllocator();
  rapidjson::Value annotations(rapidjson::kObjectType);
  annotations.AddMember(rapidjson::StringRef(kLastActivityAnnotation), json::string_value(at, a), a);
  rapidjson::Value meta(rapidjson::kObjectType);
  meta.AddMember("annotations", std::move(annotations), a);
  patch.AddMember("metadata", std::move(meta), a);
  return patch;
}

}  // namespace repl
