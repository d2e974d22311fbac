#include "repl_api.hpp"

#include "common/json.hpp"
#include "kube/resource.hpp"

namespace repl::shim {
namespace {

constexpr const char* kFieldManager = "repl-shim";

Result<Repl, kube::ApiError> to_repl(const rapidjson::Value& object) {
  auto r = parse_repl(object);
  if (!r) return Fail(kube::decode_error("not a Repl: " + r.error().message));
  return std::move(*r);
}

}  // namespace

Result<std::optional<Repl>, kube::ApiError> KubeReplApi::get(const std::string& repl_id) {
  auto object = client_.get(kube::object_path(kube::repls(), ns_, repl_id));
  if (!object) {
    if (object.error().is_not_found()) return std::optional<Repl>();
    return Fail(object.error());
  }
  auto r = to_repl(*object);
  if (!r) return Fail(r.error());
  return std::optional<Repl>(std::move(*r));
}

Result<Applied, kube::ApiError> KubeReplApi::apply(const StartRequest& request) {
  using rapidjson::Value;
  const kube::Resource r = kube::repls();
  rapidjson::Document doc = kube::new_object(r, ns_, request.repl_id);
  auto& a = doc.GetAllocator();
  const auto str = [&a](const std::string& s) { return json::string_value(s, a); };
  Value spec(rapidjson::kObjectType);
  spec.AddMember("userId", str(request.user_id), a);
  if (!request.language.empty()) spec.AddMember("language", str(request.language), a);
  spec.AddMember("suspended", request.suspended, a);
  if (!request.idle_timeout.empty()) spec.AddMember("idleTimeout", str(request.idle_timeout), a);
  if (!request.ttl_after_suspend.empty())
    spec.AddMember("ttlAfterSuspend", str(request.ttl_after_suspend), a);
  doc.AddMember("spec", std::move(spec), a);
  rapidjson::Value annotations(rapidjson::kObjectType);
  if (!request.last_activity.empty())
    annotations.AddMember(rapidjson::StringRef(kLastActivityAnnotation), str(request.last_activity), a);
  if (!request.subject.empty())
    annotations.AddMember(rapidjson::StringRef(kSubjectAnnotation), str(request.subject), a);
  if (!annotations.ObjectEmpty()) doc["metadata"].AddMember("annotations", std::move(annotations), a);

  bool created = false;
  auto object = client_.apply(kube::object_path(r, ns_, request.repl_id), doc, kFieldManager, true, &created);
  if (!object) return Fail(object.error());
  auto repl = to_repl(*object);
  if (!repl) return Fail(repl.error());
  return Applied{std::move(*repl), created};
}

Result<void, kube::ApiError> KubeReplApi::remove(const std::string& repl_id, const std::string& uid) {
  return client_.remove(kube::object_path(kube::repls(), ns_, repl_id), uid);
}

void KubeReplApi::wait_ready(const std::string& repl_id, std::chrono::milliseconds timeout, WaitDone done) {
  // Waiting first, then the read: a change after the read arrives through the shared watch.
  const auto waiter = waiters_.add(repl_id, timeout, std::move(done));
  waiters_.seed(waiter, get(repl_id));
}

Result<Repl, kube::ApiError> KubeReplApi::record_activity(const std::string& repl_id, const std::string& at) {
  auto object = client_.merge_patch(kube::object_path(kube::repls(), ns_, repl_id), activity_patch_body(at));
  if (!object) return Fail(object.error());
  return to_repl(*object);
}

bool KubeReplApi::reachable() { return client_.get("/version").has_value(); }

}  // namespace repl::shim
