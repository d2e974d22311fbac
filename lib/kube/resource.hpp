// REST paths of Kubernetes resources. A Resource names a collection by group, version and plural
// (group "" is the core API under /api); paths are built from it, never concatenated by callers.
//
// Pure value types and functions; thread-safe.
#pragma once

#include <rapidjson/document.h>

#include <optional>
#include <string>
#include <string_view>

namespace repl::kube {

struct Resource {
  std::string group;  // "" for the core group
  std::string version;
  std::string plural;
  std::string kind;

  std::string api_version() const { return group.empty() ? version : group + "/" + version; }
  bool operator==(const Resource&) const = default;
};

// The resources this project uses.
Resource repls();
Resource deployments();
Resource services();
Resource ingresses();
Resource network_policies();
Resource custom_resource_definitions();
Resource leases();  // coordination.k8s.io/v1, for leader election

// The resource for an object's apiVersion and kind, among those above.
std::optional<Resource> resource_for(std::string_view api_version, std::string_view kind);

// /apis/<group>/<version>[/namespaces/<ns>]/<plural>; an empty ns means all namespaces.
std::string collection_path(const Resource& r, std::string_view ns);
// .../<plural>/<name>
std::string object_path(const Resource& r, std::string_view ns, std::string_view name);

// {"apiVersion", "kind", "metadata": {"name", "namespace"}} of a new object of `r`: the start of
// every body the project sends.
rapidjson::Document new_object(const Resource& r, std::string_view ns, std::string_view name);

// Percent-encodes a query parameter value (RFC 3986 unreserved characters pass through).
std::string query_escape(std::string_view s);

}  // namespace repl::kube
