#include "repl/children.hpp"

#include "common/json.hpp"
#include "kube/config.hpp"

namespace repl {
namespace {

using rapidjson::Value;
using Allocator = rapidjson::Document::AllocatorType;

Value str_value(const std::string& s, Allocator& a) {
  return Value(s.c_str(), static_cast<rapidjson::SizeType>(s.size()), a);
}

// Returns obj[name], creating it as an empty object when missing or not an object.
Value& object_member(Value& obj, const char* name, Allocator& a) {
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd()) {
    obj.AddMember(Value(name, a), Value(rapidjson::kObjectType), a);
    it = obj.FindMember(name);
  }
  if (!it->value.IsObject()) it->value.SetObject();
  return it->value;
}

void set_string(Value& obj, const char* name, const std::string& value, Allocator& a) {
  if (auto it = obj.FindMember(name); it != obj.MemberEnd()) {
    it->value = str_value(value, a);
  } else {
    obj.AddMember(Value(name, a), str_value(value, a), a);
  }
}

void merge_labels(Value& meta, const std::map<std::string, std::string>& labels, Allocator& a) {
  Value& l = object_member(meta, "labels", a);
  for (const auto& [k, v] : labels) {
    if (auto it = l.FindMember(k.c_str()); it != l.MemberEnd()) {
      it->value = str_value(v, a);
    } else {
      l.AddMember(str_value(k, a), str_value(v, a), a);
    }
  }
}

void set_owner(Value& meta, const Repl& repl, Allocator& a) {
  const kube::Resource r = kube::repls();
  Value owner(rapidjson::kObjectType);
  owner.AddMember("apiVersion", str_value(r.api_version(), a), a);
  owner.AddMember("kind", str_value(r.kind, a), a);
  owner.AddMember("name", str_value(repl.key.name, a), a);
  owner.AddMember("uid", str_value(repl.uid, a), a);
  owner.AddMember("controller", true, a);
  owner.AddMember("blockOwnerDeletion", true, a);
  Value owners(rapidjson::kArrayType);
  owners.PushBack(std::move(owner), a);
  meta.RemoveMember("ownerReferences");
  meta.AddMember("ownerReferences", std::move(owners), a);
}

Result<Child, render::RenderError> render_child(const ChildTemplate& t, const Repl& repl,
                                                const render::Values& values) {
  auto doc = t.tmpl.render(values);
  if (!doc) return Fail(doc.error());
  const std::string api_version = json::string_at(&*doc, "apiVersion");
  const std::string kind = json::string_at(&*doc, "kind");
  if (api_version != t.resource.api_version() || kind != t.resource.kind) {
    return Fail(render::RenderError{t.tmpl.source() + ": must render a " + t.resource.kind + " (" +
                                    t.resource.api_version() + "), not " + kind + " (" + api_version + ")"});
  }
  auto& a = doc->GetAllocator();
  Value& meta = object_member(*doc, "metadata", a);
  const std::string name = json::string_at(&meta, "name");
  if (name.empty()) return Fail(render::RenderError{t.tmpl.source() + ": metadata.name is empty"});
  set_string(meta, "namespace", repl.key.ns, a);
  const auto labels = common_labels(repl);
  merge_labels(meta, labels, a);
  set_owner(meta, repl, a);
  if (t.resource == kube::deployments()) {
    Value& pod_meta =
        object_member(object_member(object_member(*doc, "spec", a), "template", a), "metadata", a);
    merge_labels(pod_meta, labels, a);
  }
  return Child{t.resource, name, std::move(*doc)};
}

}  // namespace

const std::set<std::string, std::less<>>& template_variables() {
  static const std::set<std::string, std::less<>> kVars = {
      "replId", "userId",    "namespace",     "language",     "image",         "initImage",
      "bucket", "ideDomain", "previewDomain", "ingressClass", "awsSecretName", "replicas"};
  return kVars;
}

ReplUrls urls_for(const Repl& repl, const ChildSettings& s) {
  return {s.url_scheme + "://" + repl.key.name + "." + s.ide_domain,
          s.url_scheme + "://" + repl.key.name + "." + s.preview_domain};
}

std::map<std::string, std::string> common_labels(const Repl& repl) {
  return {{"app.kubernetes.io/name", "repl"},
          {"app.kubernetes.io/managed-by", "repl-operator"},
          {"app.kubernetes.io/instance", repl.key.name},
          {"peetcode.com/repl", repl.key.name},
          {"peetcode.com/user", repl.spec.user_id}};
}

render::Values template_values(const Repl& repl, const ChildSettings& s) {
  return {{"replId", repl.key.name},
          {"userId", repl.spec.user_id},
          {"namespace", repl.key.ns},
          {"language", repl.spec.language},
          {"image", repl.spec.image.empty() ? s.runner_image : repl.spec.image},
          {"initImage", s.init_image},
          {"bucket", s.bucket},
          {"ideDomain", s.ide_domain},
          {"previewDomain", s.preview_domain},
          {"ingressClass", s.ingress_class},
          {"awsSecretName", s.aws_secret_name},
          {"replicas", std::int64_t{repl.spec.suspended ? 0 : 1}}};
}

Result<std::vector<ChildTemplate>, render::RenderError> load_child_templates(const std::string& dir) {
  std::vector<ChildTemplate> out;
  const std::pair<const char*, kube::Resource> files[] = {{"deployment.yaml", kube::deployments()},
                                                          {"service.yaml", kube::services()},
                                                          {"ingress.yaml", kube::ingresses()}};
  for (const auto& [file, resource] : files) {
    const std::string path = dir + "/" + file;
    auto text = kube::read_file(path);
    if (!text) return Fail(render::RenderError{text.error().message});
    auto t = render::Template::parse(path, *text, template_variables());
    if (!t) return Fail(t.error());
    out.push_back({resource, std::move(*t), Shape{}});
  }
  // Render once with sample values, so a template that cannot work fails now, at start-up; the
  // render's structure is every Repl's (values never change structure).
  Repl sample;
  sample.key = {"default", "sample"};
  sample.uid = "00000000-0000-0000-0000-000000000000";
  sample.spec.user_id = "sample";
  auto probe = desired_children(sample, ChildSettings{}, out);
  if (!probe) return Fail(probe.error());
  for (std::size_t i = 0; i < out.size(); ++i) out[i].shape = Shape::of((*probe)[i].object);
  return out;
}

Result<std::vector<Child>, render::RenderError> desired_children(
    const Repl& repl, const ChildSettings& settings, const std::vector<ChildTemplate>& templates) {
  const render::Values values = template_values(repl, settings);
  std::vector<Child> out;
  out.reserve(templates.size());
  for (const auto& t : templates) {
    auto child = render_child(t, repl, values);
    if (!child) return Fail(child.error());
    out.push_back(std::move(*child));
  }
  return out;
}

}  // namespace repl
