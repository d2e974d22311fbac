// The kube client against the real API server: TLS with the kubeconfig's client certificate and
// CA, bearer tokens, paged LIST, server-side apply, DELETE, watch, and the server's Status decoded
// into typed errors.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>

#include "common/json.hpp"
#include "integration/support.hpp"
#include "kube/client.hpp"
#include "kube/config.hpp"
#include "kube/resource.hpp"
#include "kube/watcher.hpp"

using namespace repl;
using namespace repl::test;

namespace {

kube::Client client_for(const std::string& kubeconfig) {
  auto cfg = kube::load_kubeconfig(kubeconfig);
  INFO((cfg ? "" : cfg.error().message));
  REQUIRE(cfg);
  auto transport = kube::make_http_transport(*cfg);
  INFO((transport ? "" : transport.error().message));
  REQUIRE(transport);
  return kube::Client(*transport);
}

const kube::Resource kConfigMaps{"", "v1", "configmaps", "ConfigMap"};

rapidjson::Document config_map(const std::string& ns, const std::string& name, const std::string& value) {
  rapidjson::Document d;
  const std::string json = R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":")" + name +
                           R"(","namespace":")" + ns + R"("},"data":{"k":")" + value + R"("}})";
  d.Parse(json.c_str());
  return d;
}

}  // namespace

TEST_CASE("the client authenticates with a client certificate and gets an object", "[kube-client]") {
  auto client = client_for(admin_kubeconfig());
  auto ns = client.get("/api/v1/namespaces/default");
  INFO((ns ? "" : ns.error().describe()));
  REQUIRE(ns);
  CHECK(json::string_at(json::member(*ns, "metadata"), "name") == "default");
}

TEST_CASE("errors carry the API server's Status", "[kube-client]") {
  auto client = client_for(admin_kubeconfig());
  auto missing = client.get("/api/v1/namespaces/default/configmaps/no-such-thing");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().is_not_found());
  CHECK(missing.error().reason == "NotFound");
  CHECK_THAT(missing.error().message, Catch::Contains("no-such-thing"));

  // A token user without RBAC rights is authenticated, then forbidden.
  auto nobody = client_for(nobody_kubeconfig());
  auto forbidden = nobody.get("/api/v1/namespaces/default/configmaps");
  REQUIRE_FALSE(forbidden);
  CHECK(forbidden.error().code == 403);
  CHECK(forbidden.error().reason == "Forbidden");
  CHECK_THAT(forbidden.error().message, Catch::Contains("User \"nobody\""));

  // An apply the server finds invalid: 422 with the field in the message.
  auto bad = config_map("default", "Not_A_Valid_Name", "v");
  auto invalid =
      client.apply(kube::object_path(kConfigMaps, "default", "Not_A_Valid_Name"), bad, "repl-test");
  REQUIRE_FALSE(invalid);
  CHECK(invalid.error().is_invalid());
  CHECK(invalid.error().reason == "Invalid");
}

TEST_CASE("an unreachable server is a transport error, not an exception", "[kube-client]") {
  auto cfg = kube::load_kubeconfig(admin_kubeconfig());
  REQUIRE(cfg);
  cfg->server = "https://127.0.0.1:1";  // nothing listens on port 1
  auto transport = kube::make_http_transport(*cfg);
  REQUIRE(transport);
  kube::Client client(*transport);
  auto r = client.get("/api/v1/namespaces");
  REQUIRE_FALSE(r);
  CHECK(r.error().kind == kube::ApiError::Kind::kTransport);
}

TEST_CASE("apply creates, lists page by page, watches and deletes", "[kube-client]") {
  const std::string ns = fresh_namespace("client");
  auto client = client_for(admin_kubeconfig());
  std::string cm0_version;
  for (int i = 0; i < 7; ++i) {
    const std::string name = "cm-" + std::to_string(i);
    auto applied =
        client.apply(kube::object_path(kConfigMaps, ns, name), config_map(ns, name, "v1"), "repl-test");
    INFO((applied ? "" : applied.error().describe()));
    REQUIRE(applied);
    if (i == 0) cm0_version = json::string_at(json::member(*applied, "metadata"), "resourceVersion");
  }
  REQUIRE_FALSE(cm0_version.empty());

  // Seven objects through pages of two: every one arrives once, in order.
  std::vector<std::string> names;
  auto rv =
      client.list(kube::collection_path(kConfigMaps, ns), {"", 2, ""}, [&](const rapidjson::Value& item) {
        names.push_back(json::string_at(json::member(item, "metadata"), "name"));
      });
  REQUIRE(rv);
  CHECK_FALSE(rv->empty());
  std::vector<std::string> expected;
  for (int i = 0; i < 7; ++i) expected.push_back("cm-" + std::to_string(i));
  // kube-root-ca.crt is not published here (no controller-manager), so only ours are listed.
  CHECK(names == expected);

  // Re-applying the same content is a no-op on the server: the resourceVersion of the first apply stays.
  auto same =
      client.apply(kube::object_path(kConfigMaps, ns, "cm-0"), config_map(ns, "cm-0", "v1"), "repl-test");
  REQUIRE(same);
  CHECK(json::string_at(json::member(*same, "metadata"), "resourceVersion") == cm0_version);
  // A real change does get a new one.
  auto changed =
      client.apply(kube::object_path(kConfigMaps, ns, "cm-0"), config_map(ns, "cm-0", "v2"), "repl-test");
  REQUIRE(changed);
  CHECK(json::string_at(json::member(*changed, "metadata"), "resourceVersion") != cm0_version);

  // A watch from the list's version sees the changes and the deletion made after it, in order.
  auto stream = client.watch(kube::collection_path(kConfigMaps, ns), {*rv, "", 30, true, ""});
  REQUIRE(stream);
  REQUIRE(
      client.apply(kube::object_path(kConfigMaps, ns, "cm-3"), config_map(ns, "cm-3", "v2"), "repl-test"));
  REQUIRE(client.remove(kube::object_path(kConfigMaps, ns, "cm-4")));
  std::vector<std::string> seen;
  while (seen.size() < 3) {
    auto line = (*stream)->next();
    REQUIRE(line);
    REQUIRE(line->has_value());
    auto ev = kube::parse_watch_event(**line);
    REQUIRE(ev);
    if (ev->type == kube::EventType::kBookmark) continue;
    seen.push_back((ev->type == kube::EventType::kModified  ? "MODIFIED "
                    : ev->type == kube::EventType::kDeleted ? "DELETED "
                                                            : "OTHER ") +
                   json::string_at(json::member(ev->object, "metadata"), "name"));
  }
  CHECK(seen == std::vector<std::string>{"MODIFIED cm-0", "MODIFIED cm-3", "DELETED cm-4"});
  CHECK(client.get(kube::object_path(kConfigMaps, ns, "cm-4")).error().is_not_found());
}

TEST_CASE("a rotated token file is read again", "[kube-client]") {
  auto cfg = kube::load_kubeconfig(nobody_kubeconfig());
  REQUIRE(cfg);
  const std::string good = cfg->token;
  char path[] = "/tmp/repl-token.XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  const auto write_token = [&](const std::string& t) { std::ofstream(path, std::ios::trunc) << t << "\n"; };
  write_token("not-a-valid-token");
  cfg->token.clear();
  cfg->token_file = path;
  cfg->token_refresh = std::chrono::milliseconds(200);
  auto transport = kube::make_http_transport(*cfg);
  REQUIRE(transport);
  kube::Client client(*transport);
  const auto code = [&] {
    auto r = client.get("/api/v1/namespaces/default/configmaps");
    return r ? 200 : r.error().code;
  };
  CHECK(code() == 401);  // unknown token: not authenticated
  write_token(good);
  // Within the refresh interval the old token is still used; after it, the new one.
  CHECK(eventually(std::chrono::seconds(3),
                   [&] { return code() == 403; }));  // "nobody": authenticated, no rights
  unlink(path);
}
