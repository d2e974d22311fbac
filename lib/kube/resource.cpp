#include "kube/resource.hpp"

#include <array>

#include "common/json.hpp"

namespace repl::kube {

Resource repls() { return {"peetcode.com", "v1alpha1", "repls", "Repl"}; }
Resource deployments() { return {"apps", "v1", "deployments", "Deployment"}; }
Resource services() { return {"", "v1", "services", "Service"}; }
Resource ingresses() { return {"networking.k8s.io", "v1", "ingresses", "Ingress"}; }
Resource network_policies() { return {"networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"}; }
Resource custom_resource_definitions() {
  return {"apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition"};
}
Resource leases() { return {"coordination.k8s.io", "v1", "leases", "Lease"}; }

std::optional<Resource> resource_for(std::string_view api_version, std::string_view kind) {
  for (const Resource& r : std::array{repls(), deployments(), services(), ingresses(), network_policies()}) {
    if (r.api_version() == api_version && r.kind == kind) return r;
  }
  return std::nullopt;
}

std::string collection_path(const Resource& r, std::string_view ns) {
  std::string path = r.group.empty() ? "/api/" + r.version : "/apis/" + r.group + "/" + r.version;
  if (!ns.empty()) path += "/namespaces/" + std::string(ns);
  return path + "/" + r.plural;
}

std::string object_path(const Resource& r, std::string_view ns, std::string_view name) {
  return collection_path(r, ns) + "/" + std::string(name);
}

rapidjson::Document new_object(const Resource& r, std::string_view ns, std::string_view name) {
  rapidjson::Document doc(rapidjson::kObjectType);
  auto& a = doc.GetAllocator();
  doc.AddMember("apiVersion", json::string_value(r.api_version(), a), a);
  doc.AddMember("kind", json::string_value(r.kind, a), a);
  rapidjson::Value meta(rapidjson::kObjectType);
  meta.AddMember("name", json::string_value(name, a), a);
  meta.AddMember("namespace", json::string_value(ns, a), a);
  doc.AddMember("metadata", std::move(meta), a);
  return doc;
}

std::string query_escape(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                            c == '-' || c == '_' || c == '.' || c == '~';
    if (unreserved) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace repl::kube
