// kube::Client over a scripted transport: request shapes (method, path, query, content type, body)
// and how answers become values or ApiErrors.
#include "kube/client.hpp"

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "kube/resource.hpp"
#include "unit/support/fake_transport.hpp"
#include "unit/support/json.hpp"
#include "unit/support/status_json.hpp"

namespace {

using repl::Result;
using repl::kube::ApiError;
using repl::kube::Client;
using repl::test::FakeTransport;
using repl::test::path_of;
using repl::test::query_params;
using Params = std::vector<std::pair<std::string, std::string>>;

struct Fixture {
  std::shared_ptr<FakeTransport> transport = std::make_shared<FakeTransport>();
  Client client{transport};
};

std::string list_page(const std::vector<std::string>& names, const std::string& rv, const std::string& cont) {
  std::string items;
  for (const auto& n : names)
    items += std::string(items.empty() ? "" : ",") + R"({"metadata":{"name":")" + n + R"("}})";
  return R"({"kind":"ReplList","apiVersion":"peetcode.com/v1alpha1","metadata":{"resourceVersion":")" + rv +
         R"(","continue":")" + cont + R"("},"items":[)" + items + "]}";
}

const std::string kRepls = "/apis/peetcode.com/v1alpha1/repls";

// Lists kRepls, collecting item names.
Result<std::string, ApiError> list_names(Client& client, const repl::kube::ListOptions& options,
                                         std::vector<std::string>& names) {
  return client.list(kRepls, options, [&names](const rapidjson::Value& item) {
    names.emplace_back(item["metadata"]["name"].GetString());
  });
}

}  // namespace

TEST_CASE("list follows continue tokens to the last page and returns its resourceVersion", "[kube][client]") {
  Fixture f;
  f.transport->respond(200, list_page({"a", "b"}, "100", "tok/1+=="));
  f.transport->respond(200, list_page({"c"}, "101", "tok 2"));
  f.transport->respond(200, list_page({"d"}, "102", ""));
  std::vector<std::string> names;
  auto rv = list_names(f.client, {"app=repl,tier in (a)", 2, "involvedObject.kind=Pod"}, names);
  REQUIRE(rv);
  CHECK(*rv == "102");
  CHECK(names == std::vector<std::string>{"a", "b", "c", "d"});
  REQUIRE(f.transport->requests.size() == 3);
  for (const auto& r : f.transport->requests) {
    CHECK(r.method == "GET");
    CHECK(path_of(r.target) == kRepls);
    CHECK(r.body.empty());
  }
  const std::string selector = "app%3Drepl%2Ctier%20in%20%28a%29";
  const std::string fields = "involvedObject.kind%3DPod";
  CHECK(query_params(f.transport->requests[0].target) ==
        Params{{"limit", "2"}, {"labelSelector", selector}, {"fieldSelector", fields}});
  CHECK(query_params(f.transport->requests[1].target) == Params{{"limit", "2"},
                                                                {"labelSelector", selector},
                                                                {"fieldSelector", fields},
                                                                {"continue", "tok%2F1%2B%3D%3D"}});
  CHECK(query_params(f.transport->requests[2].target) ==
        Params{
            {"limit", "2"}, {"labelSelector", selector}, {"fieldSelector", fields}, {"continue", "tok%202"}});
}

TEST_CASE("list without a selector sends only the page size", "[kube][client]") {
  Fixture f;
  f.transport->respond(200, R"({"metadata":{"resourceVersion":"7"},"items":[]})");
  std::vector<std::string> names;
  auto rv = list_names(f.client, {}, names);
  REQUIRE(rv);
  CHECK(*rv == "7");
  CHECK(names.empty());
  CHECK(f.transport->requests.at(0).target == kRepls + "?limit=500");
}

TEST_CASE("a 410 while paging is returned as an error after the pages before it", "[kube][client]") {
  Fixture f;
  f.transport->respond(200, list_page({"a"}, "100", "tok1"));
  f.transport->respond(410,
                       repl::test::status_json(410, "Expired", "The provided continue parameter is too old"));
  std::vector<std::string> names;
  auto rv = list_names(f.client, {}, names);
  REQUIRE_FALSE(rv);
  CHECK(rv.error().is_gone());
  CHECK(rv.error().message == "The provided continue parameter is too old");
  CHECK(names == std::vector<std::string>{"a"});
  CHECK(f.transport->requests.size() == 2);
}

TEST_CASE("list refuses answers that are not lists", "[kube][client]") {
  Fixture f;
  const std::string body = GENERATE(as<std::string>{}, R"({"items":[]})", R"({"metadata":{},"items":{}})",
                                    R"({"metadata":{"resourceVersion":5},"items":[]})", "", "[]");
  INFO(body);
  f.transport->respond(200, body);
  std::vector<std::string> names;
  auto rv = list_names(f.client, {}, names);
  REQUIRE_FALSE(rv);
  CHECK(rv.error().kind == ApiError::Kind::kDecode);
}

TEST_CASE("apply sends a forced server-side apply PATCH with the object as body", "[kube][client]") {
  Fixture f;
  f.transport->respond(200, R"({"kind":"Deployment","status":{"readyReplicas":1}})");
  const auto object =
      repl::test::parse_json(R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"}})");
  const std::string path = repl::kube::object_path(repl::kube::deployments(), "team-a", "x");
  auto applied = f.client.apply(path, object, "repl operator");
  REQUIRE(applied);
  CHECK((*applied)["status"]["readyReplicas"].GetInt() == 1);
  REQUIRE(f.transport->requests.size() == 1);
  const auto& r = f.transport->requests[0];
  CHECK(r.method == "PATCH");
  CHECK(r.content_type == "application/apply-patch+yaml");
  CHECK(path_of(r.target) == "/apis/apps/v1/namespaces/team-a/deployments/x");
  CHECK(query_params(r.target) == Params{{"fieldManager", "repl%20operator"}, {"force", "true"}});
  CHECK(repl::kube::to_json(repl::test::parse_json(r.body)) == repl::kube::to_json(object));

  SECTION("without force") {
    f.transport->respond(200, "{}");
    REQUIRE(f.client.apply(path, object, "m", false));
    CHECK(query_params(f.transport->requests.at(1).target) == Params{{"fieldManager", "m"}});
  }
}

TEST_CASE("a non-2xx answer becomes an ApiError with the Status' code, reason and message",
          "[kube][client]") {
  Fixture f;
  f.transport->respond(422, repl::test::status_json(422, "Invalid", "Deployment.apps \\\"x\\\" is invalid"));
  auto applied =
      f.client.apply("/apis/apps/v1/namespaces/a/deployments/x", repl::test::parse_json("{}"), "m");
  REQUIRE_FALSE(applied);
  CHECK(applied.error().kind == ApiError::Kind::kApi);
  CHECK(applied.error().code == 422);
  CHECK(applied.error().reason == "Invalid");
  CHECK(applied.error().message == "Deployment.apps \"x\" is invalid");
  CHECK(applied.error().is_invalid());
}

TEST_CASE("transport failures and unreadable answers keep their kind", "[kube][client]") {
  Fixture f;
  SECTION("transport") {
    f.transport->fail(repl::kube::transport_error("connection refused"));
    auto got = f.client.get("/api/v1/namespaces/a/services/x");
    REQUIRE_FALSE(got);
    CHECK(got.error().kind == ApiError::Kind::kTransport);
    CHECK(got.error().message == "connection refused");
  }
  SECTION("a 200 that is not JSON") {
    f.transport->respond(200, "<html>hello</html>");
    auto got = f.client.get("/api/v1/namespaces/a/services/x");
    REQUIRE_FALSE(got);
    CHECK(got.error().kind == ApiError::Kind::kDecode);
    CHECK_THAT(got.error().message, Catch::Contains("GET /api/v1/namespaces/a/services/x"));
  }
  SECTION("any 2xx is a success") {
    f.transport->respond(201, R"({"kind":"Service"})");
    auto got = f.client.get("/x");
    REQUIRE(got);
    CHECK(std::string((*got)["kind"].GetString()) == "Service");
  }
  SECTION("3xx is not") {
    f.transport->respond(302, "");
    auto got = f.client.get("/x");
    REQUIRE_FALSE(got);
    CHECK(got.error().code == 302);
  }
}

TEST_CASE("get and remove send bare GET and DELETE requests", "[kube][client]") {
  Fixture f;
  f.transport->respond(200, R"({"kind":"Repl"})");
  f.transport->respond(200, R"({"kind":"Status","status":"Success"})");
  f.transport->respond(404, repl::test::status_json(404, "NotFound", "gone"));
  const std::string path = repl::kube::object_path(repl::kube::repls(), "a", "x");
  REQUIRE(f.client.get(path));
  REQUIRE(f.client.remove(path));
  auto missing = f.client.remove(path);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().is_not_found());
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(f.transport->requests[i].target == path);
    CHECK(f.transport->requests[i].method == (i == 0 ? "GET" : "DELETE"));
  }
}

TEST_CASE("watch opens a stream with watch, resourceVersion, bookmarks and a timeout", "[kube][client]") {
  Fixture f;
  f.transport->stream({R"({"type":"ADDED","object":{}})"});
  auto stream = f.client.watch(kRepls, {"100", "app=repl", 321, true, "metadata.name=abc"});
  REQUIRE(stream);
  auto line = (*stream)->next();
  REQUIRE(line);
  CHECK(**line == R"({"type":"ADDED","object":{}})");
  const auto& r = f.transport->requests.at(0);
  CHECK(r.method == "GET");
  CHECK(path_of(r.target) == kRepls);
  CHECK(query_params(r.target) == Params{{"watch", "true"},
                                         {"resourceVersion", "100"},
                                         {"labelSelector", "app%3Drepl"},
                                         {"timeoutSeconds", "321"},
                                         {"allowWatchBookmarks", "true"},
                                         {"fieldSelector", "metadata.name%3Dabc"}});
  SECTION("optional parameters are left out") {
    f.transport->stream({});
    REQUIRE(f.client.watch(kRepls, {"", "", 300, false, ""}));
    CHECK(query_params(f.transport->requests.at(1).target) ==
          Params{{"watch", "true"}, {"timeoutSeconds", "300"}});
  }
  SECTION("a failure to open is returned as it is") {
    f.transport->fail_stream(repl::kube::decode_status(410, repl::test::status_json(410, "Expired", "old")));
    auto failed = f.client.watch(kRepls, {});
    REQUIRE_FALSE(failed);
    CHECK(failed.error().is_gone());
  }
}

TEST_CASE("apply tells whether it created the object", "[kube][client]") {
  Fixture f;
  const auto object =
      repl::test::parse_json(R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"x"}})");
  const std::string path = repl::kube::object_path(repl::kube::services(), "a", "x");
  bool created = false;
  f.transport->respond(201, R"({"kind":"Service"})");
  REQUIRE(f.client.apply(path, object, "m", true, &created));
  CHECK(created);
  f.transport->respond(200, R"({"kind":"Service"})");
  REQUIRE(f.client.apply(path, object, "m", true, &created));
  CHECK_FALSE(created);
  SECTION("a refused apply created nothing") {
    created = true;
    f.transport->respond(422, repl::test::status_json(422, "Invalid", "bad"));
    REQUIRE_FALSE(f.client.apply(path, object, "m", true, &created));
    CHECK_FALSE(created);
  }
  SECTION("nor did one that never reached the server") {
    created = true;
    f.transport->fail(repl::kube::transport_error("connection refused"));
    REQUIRE_FALSE(f.client.apply(path, object, "m", true, &created));
    CHECK_FALSE(created);
  }
  SECTION("the flag is optional") {
    f.transport->respond(201, "{}");
    CHECK(f.client.apply(path, object, "m"));
  }
}

TEST_CASE("remove with a uid sends DeleteOptions with that precondition", "[kube][client]") {
  Fixture f;
  const std::string path = repl::kube::object_path(repl::kube::deployments(), "a", "x");
  f.transport->respond(200, R"({"kind":"Status","status":"Success"})");
  REQUIRE(f.client.remove(path, "0d1f7c44-aaaa-\"quoted\""));
  const auto& r = f.transport->requests.at(0);
  CHECK(r.method == "DELETE");
  CHECK(r.target == path);
  CHECK(r.content_type == "application/json");
  const auto body = repl::test::parse_json(r.body);
  CHECK(repl::test::string_at(body, "/kind") == "DeleteOptions");
  CHECK(repl::test::string_at(body, "/apiVersion") == "v1");
  CHECK(repl::test::string_at(body, "/preconditions/uid") == "0d1f7c44-aaaa-\"quoted\"");
  CHECK(body["preconditions"].MemberCount() == 1);
  SECTION("a 409 says the name now belongs to another object") {
    f.transport->respond(
        409, repl::test::status_json(409, "Conflict", "Precondition failed: UID in precondition"));
    auto r2 = f.client.remove(path, "old-uid");
    REQUIRE_FALSE(r2);
    CHECK(r2.error().is_conflict());
  }
  SECTION("without a uid there is no body") {
    f.transport->respond(200, R"({"kind":"Status","status":"Success"})");
    REQUIRE(f.client.remove(path));
    f.transport->respond(200, R"({"kind":"Status","status":"Success"})");
    REQUIRE(f.client.remove(path, ""));
    for (std::size_t i : {1, 2}) {
      CHECK(f.transport->requests.at(i).method == "DELETE");
      CHECK(f.transport->requests.at(i).body.empty());
      CHECK(f.transport->requests.at(i).content_type.empty());
    }
  }
}

TEST_CASE("merge_patch sends a JSON merge patch", "[kube][client]") {
  Fixture f;
  f.transport->respond(200, R"({"kind":"Service","metadata":{"resourceVersion":"9"}})");
  const auto patch = repl::test::parse_json(R"({"spec":{"ports":[{"name":"ws","port":3001}]}})");
  const std::string path = repl::kube::object_path(repl::kube::services(), "a", "x");
  auto patched = f.client.merge_patch(path, patch);
  REQUIRE(patched);
  CHECK(repl::test::string_at(*patched, "/metadata/resourceVersion") == "9");
  const auto& r = f.transport->requests.at(0);
  CHECK(r.method == "PATCH");
  CHECK(r.target == path);  // no fieldManager, no force
  CHECK(r.content_type == "application/merge-patch+json");
  CHECK(repl::kube::to_json(repl::test::parse_json(r.body)) == repl::kube::to_json(patch));
}

TEST_CASE("watch URL-escapes the field selector", "[kube][client]") {
  Fixture f;
  f.transport->stream({});
  repl::kube::WatchOptions options;
  options.field_selector = "metadata.name=a b,metadata.namespace!=x&y";
  REQUIRE(f.client.watch(kRepls, options));
  CHECK(query_params(f.transport->requests.at(0).target).back() ==
        std::pair<std::string, std::string>{"fieldSelector",
                                            "metadata.name%3Da%20b%2Cmetadata.namespace%21%3Dx%26y"});
}

TEST_CASE("a gated client sends no write while its gate says no, and reads as ever", "[kube][client]") {
  Fixture f;
  bool leading = false;
  std::vector<std::pair<std::string, int>> observed;
  Client observed_client(f.transport,
                         [&](std::string_view verb, int code) { observed.emplace_back(verb, code); });
  Client writer = observed_client.gated([&leading] { return leading; });
  rapidjson::Document obj;
  obj.Parse(R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"a"}})");
  const std::string path = "/api/v1/namespaces/ns/services/a";

  const auto applied = writer.apply(path, obj, "repl-operator");
  REQUIRE_FALSE(applied);
  CHECK(applied.error().is_fenced());
  CHECK(writer.merge_patch(path, obj).error().is_fenced());
  CHECK(writer.create("/api/v1/namespaces/ns/services", obj).error().is_fenced());
  CHECK(writer.update(path, obj).error().is_fenced());
  CHECK(writer.remove(path).error().is_fenced());
  std::optional<Client::Answer> async;
  writer.apply_async(path, obj, "repl-operator", [&](Client::Answer a) { async = std::move(a); });
  REQUIRE(async);
  CHECK(async->error().is_fenced());
  CHECK(f.transport->requests.empty());  // nothing went out
  CHECK(observed.empty());               // and nothing looks like a failing server

  f.transport->respond(200, R"({"kind":"Service"})");
  CHECK(writer.get(path));  // reads pass the gate
  leading = true;
  f.transport->respond(200, R"({"kind":"Service"})");
  CHECK(writer.apply(path, obj, "repl-operator"));
  REQUIRE(f.transport->requests.size() == 2);
  CHECK(f.transport->requests[1].method == "PATCH");
  CHECK(observed.size() == 2);
}
