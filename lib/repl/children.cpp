#include "repl/children.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>
#include <regex>
#include <string_view>

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

// The TCP port an S3 endpoint URL reaches: its explicit port, else 80 for http:// and 443 for
// https:// and for AWS's own endpoints (an empty `url`); nullopt when its port is no TCP port.
std::optional<int> endpoint_port(const std::string& url) {
  if (url.empty()) return 443;
  const std::size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return std::nullopt;
  const int default_port = url.compare(0, scheme_end, "https") == 0 ? 443 : 80;
  std::string_view authority = std::string_view(url).substr(scheme_end + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (const std::size_t at = authority.rfind('@'); at != std::string_view::npos)
    authority.remove_prefix(at + 1);
  // An IPv6 literal ([fd00::1]:9000) holds colons of its own.
  const std::size_t host_end = authority.starts_with('[') ? authority.find(']') : 0;
  if (host_end == std::string_view::npos) return std::nullopt;
  const std::size_t colon = authority.find(':', host_end);
  if (colon == std::string_view::npos || colon + 1 == authority.size()) return default_port;
  const std::string_view digits = authority.substr(colon + 1);
  int port = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (ec != std::errc{} || end != digits.data() + digits.size() || port < 1 || port > 65535)
    return std::nullopt;
  return port;
}

// Why `cidr` is not an IPv4 or IPv6 CIDR in canonical form (the address as inet_ntop writes it, no
// bit set past the prefix, a prefix length without leading zeros), or nullopt when it is. API
// servers with strict IP validation refuse other forms, and 10.88.0.1/16 reads as all of
// 10.88.0.0/16, which is seldom what was meant.
std::optional<std::string> cidr_problem(const std::string& cidr) {
  const std::size_t slash = cidr.find('/');
  if (slash == std::string::npos) return "has no prefix length (e.g. 10.88.0.1/32 for one address)";
  const std::string address = cidr.substr(0, slash);
  const std::string length = cidr.substr(slash + 1);
  const int family = address.find(':') == std::string::npos ? AF_INET : AF_INET6;
  const int max_bits = family == AF_INET ? 32 : 128;
  unsigned char bytes[16] = {};
  if (inet_pton(family, address.c_str(), bytes) != 1)
    return "is not an IPv4 or IPv6 address and a prefix length";
  int bits = -1;
  const auto [end, ec] = std::from_chars(length.data(), length.data() + length.size(), bits);
  if (ec != std::errc{} || end != length.data() + length.size() || bits < 0 || bits > max_bits) {
    return "has a prefix length that is not 0.." + std::to_string(max_bits);
  }
  for (int i = 0; i < max_bits / 8; ++i) {
    const int kept = std::clamp(bits - 8 * i, 0, 8);
    bytes[i] &= static_cast<unsigned char>(0xff00 >> kept);
  }
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(family, bytes, text, sizeof text);
  const std::string canonical = std::string(text) + "/" + std::to_string(bits);
  if (canonical != cidr) return "is not in canonical form: write " + canonical;
  return std::nullopt;
}

std::set<std::string, std::less<>> names_of(const render::Values& values) {
  std::set<std::string, std::less<>> names;
  for (const auto& [name, value] : values) names.insert(name);
  return names;
}

}  // namespace

const std::set<std::string, std::less<>>& template_variables() {
  // Exactly the names template_values() gives a value to: one list, not two to keep in step.
  static const std::set<std::string, std::less<>> kVars = names_of(template_values(Repl{}, ChildSettings{}));
  return kVars;
}

const std::set<std::string, std::less<>>& condition_variables() {
  static const std::set<std::string, std::less<>> kVars = names_of(settings_values(ChildSettings{}));
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
  const bool endpoint_is_url = s.s3_endpoint.empty() || matches(s.s3_endpoint, "https?://[^\\s/]+(/\\S*)?");
  check(endpoint_is_url, "S3 endpoint \"" + s.s3_endpoint + "\" must be an http:// or https:// URL");
  check(!endpoint_is_url || endpoint_port(s.s3_endpoint).has_value(),
        "S3 endpoint \"" + s.s3_endpoint + "\" has a port that is not 1..65535");
  if (!s.s3_egress_cidr.empty()) {
    const auto why = cidr_problem(s.s3_egress_cidr);
    check(!why.has_value(), "S3 egress CIDR \"" + s.s3_egress_cidr + "\" " + why.value_or(""));
    check(!s.s3_endpoint.empty(),
          "S3 egress CIDR \"" + s.s3_egress_cidr +
              "\" needs an S3 endpoint: the rule opens the endpoint's port, and AWS's "
              "own endpoints are public addresses, which the NetworkPolicy lets out already");
  }
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
  // An int holds at most 2147483647, which is also the API server's largest uid and gid.
  check(s.runner_uid >= 1,
        "runner uid " + std::to_string(s.runner_uid) + " must be 1..2147483647" +
            (s.runner_uid == 0 ? " (0 is root, which the pod's runAsNonRoot refuses)" : ""));
  check(s.runner_gid >= 1, "runner gid " + std::to_string(s.runner_gid) + " must be 1..2147483647" +
                               (s.runner_gid == 0 ? " (0 is the root group)" : ""));
  check(s.sync_interval_seconds >= 1,
        "sync interval " + std::to_string(s.sync_interval_seconds) + " s must be at least 1 s");
  // The final sync gets the grace period less 5 s (the runner's stop): at least one attempt.
  check(s.termination_grace_period_seconds >= 10, "termination grace period " +
                                                      std::to_string(s.termination_grace_period_seconds) +
                                                      " s must be at least 10 s (the final sync's time)");
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

render::Values settings_values(const ChildSettings& s) {
  return {{"initImage", s.init_image},
          {"bucket", s.bucket},
          {"s3Endpoint", s.s3_endpoint},
          // 0 only for an endpoint settings_problems() refuses.
          {"s3EndpointPort", std::int64_t{endpoint_port(s.s3_endpoint).value_or(0)}},
          {"s3EgressCidr", s.s3_egress_cidr},
          {"s3Region", s.s3_region},
          {"codePrefix", s.code_prefix},
          {"basePrefix", s.base_prefix},
          {"s3Credentials", s.s3_credentials},
          {"awsSecretName", s.aws_secret_name},
          {"ideDomain", s.ide_domain},
          {"previewDomain", s.preview_domain},
          {"ingressClass", s.ingress_class},
          {"ingressNamespace", s.ingress_namespace},
          {"runnerCpuRequest", s.runner_cpu_request},
          {"runnerCpuLimit", s.runner_cpu_limit},
          {"runnerMemoryRequest", s.runner_memory_request},
          {"runnerMemoryLimit", s.runner_memory_limit},
          {"runnerEphemeralStorageRequest", s.runner_ephemeral_storage_request},
          {"runnerEphemeralStorageLimit", s.runner_ephemeral_storage_limit},
          {"runnerUid", std::int64_t{s.runner_uid}},
          {"runnerGid", std::int64_t{s.runner_gid}},
          {"syncIntervalSeconds", std::int64_t{s.sync_interval_seconds}},
          {"terminationGracePeriodSeconds", std::int64_t{s.termination_grace_period_seconds}},
          {"activityReportSeconds", std::int64_t{s.activity_report_seconds}}};
}

render::Values template_values(const Repl& repl, const ChildSettings& s) {
  render::Values values = settings_values(s);
  values.insert({{"replId", repl.key.name},
                 {"userId", repl.spec.user_id},
                 {"namespace", repl.key.ns},
                 {"language", repl.spec.language},
                 {"image", repl.spec.image.empty() ? s.runner_image : repl.spec.image},
                 {"replicas", std::int64_t{repl.spec.suspended ? 0 : 1}}});
  if (repl.spec.sync_interval_seconds > 0) values["syncIntervalSeconds"] = repl.spec.sync_interval_seconds;
  return values;
}

Result<std::vector<ChildTemplate>, render::RenderError> load_child_templates(const std::string& dir,
                                                                             bool network_policy,
                                                                             const ChildSettings& settings) {
  std::vector<ChildTemplate> out;
  std::vector<std::pair<const char*, kube::Resource>> files = {{"deployment.yaml", kube::deployments()},
                                                               {"service.yaml", kube::services()},
                                                               {"ingress.yaml", kube::ingresses()}};
  if (network_policy) files.emplace_back("networkpolicy.yaml", kube::network_policies());
  for (const auto& [file, resource] : files) {
    const std::string path = dir + "/" + file;
    auto text = kube::read_file(path);
    if (!text) return Fail(render::RenderError{text.error().message});
    auto t = render::Template::parse(path, *text, template_variables(), condition_variables());
    if (!t) return Fail(t.error());
    out.push_back({resource, std::move(*t), Shape{}});
  }
  // Render once for a sample Repl, so a template that cannot work fails now, at start-up; the
  // render's structure is every Repl's (only the settings decide `!if` items, and values never
  // change structure otherwise).
  Repl sample;
  sample.key = {"default", "sample"};
  sample.uid = "00000000-0000-0000-0000-000000000000";
  sample.spec.user_id = "sample";
  auto probe = desired_children(sample, settings, out);
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
