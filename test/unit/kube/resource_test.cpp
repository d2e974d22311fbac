// REST paths of resources and query escaping.
#include "kube/resource.hpp"

#include <catch2/catch.hpp>

using repl::kube::collection_path;
using repl::kube::object_path;

TEST_CASE("core resources live under /api, grouped ones under /apis/<group>", "[kube][resource]") {
  CHECK(collection_path(repl::kube::services(), "team-a") == "/api/v1/namespaces/team-a/services");
  CHECK(collection_path(repl::kube::services(), "") == "/api/v1/services");
  CHECK(collection_path(repl::kube::deployments(), "team-a") ==
        "/apis/apps/v1/namespaces/team-a/deployments");
  CHECK(collection_path(repl::kube::deployments(), "") == "/apis/apps/v1/deployments");
  CHECK(collection_path(repl::kube::repls(), "") == "/apis/peetcode.com/v1alpha1/repls");
  CHECK(collection_path(repl::kube::ingresses(), "x") == "/apis/networking.k8s.io/v1/namespaces/x/ingresses");
  CHECK(collection_path(repl::kube::network_policies(), "x") ==
        "/apis/networking.k8s.io/v1/namespaces/x/networkpolicies");
  CHECK(collection_path(repl::kube::custom_resource_definitions(), "") ==
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions");
  CHECK(object_path(repl::kube::repls(), "team-a", "abc") ==
        "/apis/peetcode.com/v1alpha1/namespaces/team-a/repls/abc");
  CHECK(object_path(repl::kube::services(), "team-a", "abc") == "/api/v1/namespaces/team-a/services/abc");
}

TEST_CASE("api_version and resource_for", "[kube][resource]") {
  CHECK(repl::kube::services().api_version() == "v1");
  CHECK(repl::kube::deployments().api_version() == "apps/v1");
  CHECK(repl::kube::repls().api_version() == "peetcode.com/v1alpha1");
  CHECK(repl::kube::resource_for("apps/v1", "Deployment") == repl::kube::deployments());
  CHECK(repl::kube::resource_for("v1", "Service") == repl::kube::services());
  CHECK(repl::kube::resource_for("networking.k8s.io/v1", "Ingress") == repl::kube::ingresses());
  CHECK(repl::kube::resource_for("networking.k8s.io/v1", "NetworkPolicy") == repl::kube::network_policies());
  CHECK(repl::kube::resource_for("peetcode.com/v1alpha1", "Repl") == repl::kube::repls());
  CHECK_FALSE(repl::kube::resource_for("v1", "Deployment"));
  CHECK_FALSE(repl::kube::resource_for("apps/v1beta1", "Deployment"));
  CHECK_FALSE(repl::kube::resource_for("v1", "ConfigMap"));
}

TEST_CASE("query_escape percent-encodes all but RFC 3986 unreserved characters", "[kube][resource]") {
  using repl::kube::query_escape;
  CHECK(query_escape("") == "");
  CHECK(query_escape("AZaz09-_.~") == "AZaz09-_.~");
  CHECK(query_escape("app=x,tier in (a,b)") == "app%3Dx%2Ctier%20in%20%28a%2Cb%29");
  CHECK(query_escape("a/b+c?d&e#f%g") == "a%2Fb%2Bc%3Fd%26e%23f%25g");
  CHECK(query_escape("\xC3\xBC") == "%C3%BC");
  CHECK(query_escape(std::string("\0\n\xff", 3)) == "%00%0A%FF");
}
