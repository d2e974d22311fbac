#include "repl/children.hpp"

#include <cmath>
#include <optional>
#include <regex>

#include "common/json.hpp"
#include "kube/config.hpp"
#include "repl/validation.hpp"

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

// The value of a quantity written the way the API server stores it (an integer without leading
// zeros and the largest suffix that keeps it whole: 500m, 1, 1500m, 256Mi, 2Gi, 1k); nullopt for
// any other form. A form the server rewrites ("0.5" is stored as "500m", "1024Mi" as "1Gi")
// would make every live Deployment differ from the desired one, and be applied again each time.
std::optional<long double> canonical_quantity(const std::string& q) {
  static const std::regex form("(0|[1-9][0-9]{0,17})(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?");
  std::smatch m;
  if (!std::regex_match(q, m, form)) return std::nullopt;
  const long double n = std::stold(m[1].str());
  const std::string suffix = m[2].str();
  static const std::vector<std::pair<std::string, long double>> decimal = {
      {"m", 1e-3L}, {"", 1}, {"k", 1e3L}, {"M", 1e6L}, {"G", 1e9L}, {"T", 1e12L}, {"P", 1e15L}, {"E", 1e18L}};
  static const std::vector<std::string> binary = {"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
  const auto whole_in_next = [&n](long double base) { return n != 0 && std::fmod(n, base) == 0; };
  for (std::size_t i = 0; i < decimal.size(); ++i) {
    if (decimal[i].first != suffix) continue;
    if (i + 1 < decimal.size() && whole_in_next(1000)) return std::nullopt;  // 1000m is 1, 2000 is 2k
    return n * decimal[i].second;
  }
  for (std::size_t i = 0; i < binary.size(); ++i) {
    if (binary[i] != suffix) continue;
    if (i + 1 < binary.size() && whole_in_next(1024)) return std::nullopt;  // 1024Mi is 1Gi
    return n * std::pow(1024.0L, static_cast<long double>(i + 1));
  }
  return std::nullopt;
}

}  // namespace

const std::set<std::string, std::less<>>& template_variables() {
  // Exactly the names template_values() gives a value to: one list, not two to keep in step.
  static const std::set<std::string, std::less<>> kVars = [] {
    std::set<std::string, std::less<>> names;
    for (const auto& [name, value] : template_values(Repl{}, ChildSettings{})) names.insert(name);
    return names;
  }();
  return kVars;
}

std::vector<std::string> settings_problems(const ChildSettings& s) {
  std::vector<std::string> problems;
  const auto check = [&problems](bool ok, const std::string& what) {
    if (!ok) problems.push_back(what);
  };
  const auto matches = [](const std::string& value, const char* pattern) {
    return std::regex_match(value, std::regex(pattern));
  };
  // S3 key prefixes: no leading or trailing slash (the operator adds them), no empty segment.
  const char* prefix = "[^/]+(/[^/]+)*";

  check(!s.runner_image.empty(), "the runner image is empty");
  check(!s.init_image.empty(), "the init image is empty");
  check(s.bucket.size() >= 3 && s.bucket.size() <= 63 && matches(s.bucket, "[a-z0-9][-.a-z0-9]*[a-z0-9]"),
        "bucket \"" + s.bucket + "\" is not an S3 bucket name (3-63 of a-z, 0-9, '.', '-')");
  check(s.s3_endpoint.empty() || matches(s.s3_endpoint, "https?://[^\\s/]+(/\\S*)?"),
        "S3 endpoint \"" + s.s3_endpoint + "\" must be an http:// or https:// URL");
  check(matches(s.s3_region, "[a-z0-9]+(-[a-z0-9]+)*"),
        "S3 region \"" + s.s3_region + "\" is not a region name");
  check(matches(s.code_prefix, prefix),
        "code prefix \"" + s.code_prefix + "\" must be a/b/c: no leading, trailing or double '/'");
  check(matches(s.base_prefix, prefix),
        "base prefix \"" + s.base_prefix + "\" must be a/b/c: no leading, trailing or double '/'");
  check(s.s3_credentials == "secret" || s.s3_credentials == "ambient",
        "S3 credentials must be \"secret\" or \"ambient\", not \"" + s.s3_credentials + "\"");
  check(is_dns_subdomain(s.aws_secret_name),
        "AWS Secret name \"" + s.aws_secret_name + "\" is not a Secret name");
  check(is_dns_subdomain(s.ide_domain), "IDE domain \"" + s.ide_domain + "\" is not a DNS name");
  check(is_dns_subdomain(s.preview_domain), "preview domain \"" + s.preview_domain + "\" is not a DNS name");
  check(!s.ingress_class.empty(), "the ingress class is empty");
  check(is_dns_label(s.ingress_namespace),
        "ingress namespace \"" + s.ingress_namespace + "\" is not a namespace name");
  check(s.url_scheme == "http" || s.url_scheme == "https",
        "URL scheme \"" + s.url_scheme + "\" must be http or https");
  struct Bounds {
    const char* what;
    const std::string& request;
    const std::string& limit;
  };
  for (const Bounds& b :
       {Bounds{"CPU", s.runner_cpu_request, s.runner_cpu_limit},
        Bounds{"memory", s.runner_memory_request, s.runner_memory_limit},
        Bounds{"ephemeral storage", s.runner_ephemeral_storage_request, s.runner_ephemeral_storage_limit}}) {
    const auto quantity = [&](const char* kind, const std::string& text) {
      auto value = canonical_quantity(text);
      check(value.has_value(),
            std::string("runner ") + b.what + " " + kind + " \"" + text +
                "\" is not a quantity in the API server's form (e.g. 500m, 1, 1500m, 256Mi, 2Gi)");
      return value;
    };
    const auto request = quantity("request", b.request);
    const auto limit = quantity("limit", b.limit);
    if (request && limit) {
      check(*request <= *limit, std::string("runner ") + b.what + " request \"" + b.request +
                                    "\" exceeds its limit \"" + b.limit + "\"");
    }
  }
  return problems;
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
          {"s3Endpoint", s.s3_endpoint},
          {"s3Region", s.s3_region},
          {"codePrefix", s.code_prefix},
          {"basePrefix", s.base_prefix},
          {"s3Credentials", s.s3_credentials},
          {"awsSecretName", s.aws_secret_name},
          {"ideDomain", s.ide_domain},
          {"previewDomain", s.preview_domain},
          {"ingressClass", s.ingress_class},
          {"ingressNamespace", s.ingress_namespace},
          {"replicas", std::int64_t{repl.spec.suspended ? 0 : 1}},
          {"runnerCpuRequest", s.runner_cpu_request},
          {"runnerCpuLimit", s.runner_cpu_limit},
          {"runnerMemoryRequest", s.runner_memory_request},
          {"runnerMemoryLimit", s.runner_memory_limit},
          {"runnerEphemeralStorageRequest", s.runner_ephemeral_storage_request},
          {"runnerEphemeralStorageLimit", s.runner_ephemeral_storage_limit}};
}

Result<std::vector<ChildTemplate>, render::RenderError> load_child_templates(const std::string& dir,
                                                                             bool network_policy) {
  std::vector<ChildTemplate> out;
  std::vector<std::pair<const char*, kube::Resource>> files = {{"deployment.yaml", kube::deployments()},
                                                               {"service.yaml", kube::services()},
                                                               {"ingress.yaml", kube::ingresses()}};
  if (network_policy) files.emplace_back("networkpolicy.yaml", kube::network_policies());
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
