#include "repl_api.hpp"

#include "common/json.hpp"
#include "kube/resource.hpp"
#include "kube/watcher.hpp"

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
  doc.AddMember("spec", std::move(spec), a);

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

Result<std::optional<Repl>, kube::ApiError> KubeReplApi::wait_ready(
    const std::string& repl_id, std::chrono::steady_clock::time_point deadline) {
  // Read, then watch this one object from the version read, until Ready, deleted, or the deadline
  // (the server ends the watch then: timeoutSeconds). No polling.
  auto current = get(repl_id);
  if (!current || !*current || (*current)->status.phase == "Ready") return current;
  std::string version = (*current)->resource_version;
  std::optional<Repl> last = std::move(*current);
  while (true) {
    // The server ends the watch after whole seconds: round up, so the wait is never cut short.
    const auto left = std::chrono::ceil<std::chrono::seconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() < 1) return last;
    auto stream =
        client_.watch(kube::collection_path(kube::repls(), ns_),
                      {version, "", static_cast<int>(left.count()), false, "metadata.name=" + repl_id});
    if (!stream) return Fail(stream.error());
    while (true) {
      auto line = (*stream)->next();
      if (!line) return Fail(line.error());
      if (!line->has_value()) break;  // the server's timeout: loop checks the deadline
      auto ev = kube::parse_watch_event(**line);
      if (!ev) return Fail(ev.error());
      if (ev->type == kube::EventType::kError) return Fail(ev->error);
      if (ev->type == kube::EventType::kDeleted) return std::optional<Repl>();
      if (ev->type == kube::EventType::kBookmark) continue;
      version = ev->resource_version;
      auto r = to_repl(ev->object);
      if (!r) return Fail(r.error());
      last = std::move(*r);
      if (last->status.phase == "Ready") return last;
    }
  }
}

bool KubeReplApi::reachable() { return client_.get("/version").has_value(); }

}  // namespace repl::shim
