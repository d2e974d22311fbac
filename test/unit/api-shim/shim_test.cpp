// The API shim's request handling, through Shim::handle() with a fake ReplApi: refused input (and
// that it changes nothing: no call reaches the ReplApi), authentication, /start, /stop, DELETE,
// GET with wait=ready, CORS, durations and metrics.
#include "shim.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "auth/jwt.hpp"
#include "repl/validation.hpp"
#include "unit/support/fake_repl_api.hpp"
#include "unit/support/http_messages.hpp"
#include "unit/support/json.hpp"
#include "unit/support/jwt_minter.hpp"
#include "unit/support/quiet_logs.hpp"

namespace {

using namespace std::chrono_literals;
using repl::kube::HttpReply;
using repl::kube::IncomingRequest;
using repl::shim::ShimOptions;
using repl::test::FakeReplApi;
using repl::test::http_request;
using repl::test::json_request;
using repl::test::reply_header;
using repl::test::reply_headers_starting_with;
using repl::test::string_at;
using Call = FakeReplApi::Call;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kOrigin = "https://app.example.com";
constexpr const char* kToken = "s3cret-token-0123456789";

// A Shim over a fake ReplApi (whose waits end at once), a virtual clock and its own metrics
// registry.
struct Harness {
  repl::test::QuietLogs quiet;
  FakeReplApi api;
  repl::ManualClock clock;
  repl::metrics::Registry registry;
  repl::shim::Shim shim;

  explicit Harness(ShimOptions options = {}) : shim(std::move(options), api, clock, registry) {}

  // The answer, which the fake makes come before handle() returns.
  HttpReply handle(const IncomingRequest& request) {
    std::optional<HttpReply> reply;
    shim.handle(request, [&reply](HttpReply r) {
      REQUIRE_FALSE(reply);  // exactly once
      reply = std::move(r);
    });
    REQUIRE(reply);
    return std::move(*reply);
  }
};

ShimOptions with_default_user(std::string user) {
  ShimOptions o;
  o.default_user = std::move(user);
  return o;
}

ShimOptions with_cors() {
  ShimOptions o;
  o.cors_origins = {kOrigin, "http://localhost:3000"};
  return o;
}

ShimOptions with_auth() {
  ShimOptions o;
  o.auth_token = kToken;
  o.cors_origins = {kOrigin};
  return o;
}

// `s` as a JSON string literal. Bytes from 0x80 up are copied as they are (so invalid UTF-8 stays
// invalid); quotes, backslashes and control characters are escaped.
std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      static const char* hex = "0123456789abcdef";
      out += "\\u00";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// A JSON object of string members, in the order given.
std::string json_object(const std::vector<std::pair<std::string, std::string>>& members) {
  std::string out = "{";
  for (const auto& [name, value] : members) {
    if (out.size() > 1) out += ',';
    out += json_string(name) + ":" + json_string(value);
  }
  return out + "}";
}

IncomingRequest post(std::string_view path, std::string body, Headers headers = {}) {
  return json_request("POST", path, std::move(body), std::move(headers));
}

IncomingRequest start(const std::string& repl_id, const std::string& user_id, Headers headers = {}) {
  return post("/start", json_object({{"replId", repl_id}, {"userId", user_id}}), std::move(headers));
}

IncomingRequest with_header(IncomingRequest r, std::string name, std::string value) {
  r.headers.emplace_back(std::move(name), std::move(value));
  return r;
}

std::string error_code_for(int status) {
  switch (status) {
    case 400:
      return "bad_request";
    case 401:
      return "unauthorized";
    case 403:
      return "forbidden";
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 409:
      return "conflict";
    case 413:
      return "payload_too_large";
    case 415:
      return "unsupported_media_type";
    case 429:
      return "too_many_requests";
    case 503:
      return "unavailable";
  }
  return "?";
}

// The reply is the JSON error body {error, field, message} with this status; `field` is the
// request field it names (std::nullopt: JSON null).
void require_error(const HttpReply& reply, int status, const std::optional<std::string>& field) {
  INFO("reply " << reply.status << ": " << reply.body);
  REQUIRE(reply.status == status);
  CHECK(reply.content_type == "application/json");
  const auto doc = repl::test::parse_json(reply.body);
  REQUIRE(doc.IsObject());
  CHECK(doc.MemberCount() == 3);
  CHECK(string_at(doc, "/error") == error_code_for(status));
  CHECK_FALSE(string_at(doc, "/message").empty());
  const auto& f = repl::test::at(doc, "/field");
  if (field) {
    REQUIRE(f.IsString());
    CHECK(std::string(f.GetString(), f.GetStringLength()) == *field);
  } else {
    CHECK(f.IsNull());
  }
}

// The reply describes a Repl: {replId, userId, phase, ready, urls: {ide, preview}}.
struct ReplView {
  std::string repl_id, user_id, phase, ide, preview;
  bool ready = false;
};

ReplView repl_view(const HttpReply& reply) {
  INFO("reply " << reply.status << ": " << reply.body);
  CHECK(reply.content_type == "application/json");
  const auto doc = repl::test::parse_json(reply.body);
  const auto& ready = repl::test::at(doc, "/ready");
  REQUIRE(ready.IsBool());
  return {string_at(doc, "/replId"),   string_at(doc, "/userId"),       string_at(doc, "/phase"),
          string_at(doc, "/urls/ide"), string_at(doc, "/urls/preview"), ready.GetBool()};
}

void require_no_call(const FakeReplApi& api) {
  INFO("calls made: " << api.calls.size());
  REQUIRE(api.calls.empty());
  REQUIRE(api.repls.empty());
}

// ---------------------------------------------------------------------------------------------
// 1. Refused input

struct BadInput {
  std::string name;
  IncomingRequest request;
  int status;
  std::optional<std::string> field;
  std::string allow = "";  // the Allow header a 405 must carry
};

std::string nested_arrays(std::size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

std::vector<BadInput> bad_inputs() {
  using S = std::string;
  std::vector<BadInput> cases;
  const auto start_body = [&](S name, S body, S field) {
    cases.push_back({std::move(name), post("/start", std::move(body)), 400, std::move(field)});
  };
  const auto start_null = [&](S name, S body) {
    cases.push_back({std::move(name), post("/start", std::move(body)), 400, std::nullopt});
  };
  const auto bad_repl_id = [&](S name, S id) {
    start_body("replId " + name, json_object({{"replId", id}, {"userId", "alice"}}), "replId");
  };
  const auto bad_user_id = [&](S name, S id) {
    start_body("userId " + name, json_object({{"replId", "abc"}, {"userId", id}}), "userId");
  };

  // The body is not a JSON object.
  start_null("malformed JSON", R"({"replId": "abc", "userId": "alice")");
  start_null("unquoted names", R"({replId: "abc", userId: "alice"})");
  start_null("trailing comma", R"({"replId": "abc", "userId": "alice",})");
  start_null("trailing garbage", R"({"replId": "abc", "userId": "alice"} x)");
  start_null("empty body", "");
  start_null("JSON array", R"(["abc", "alice"])");
  start_null("empty array", "[]");
  start_null("JSON string", R"("abc")");
  start_null("JSON number", "42");
  start_null("JSON null", "null");
  start_null("JSON true", "true");
  start_null("invalid UTF-8 in replId", "{\"replId\": \"ab\xff\", \"userId\": \"alice\"}");
  start_null("invalid UTF-8 in userId", "{\"replId\": \"abc\", \"userId\": \"al\xff\xfeice\"}");
  start_null("invalid UTF-8 in a name", "{\"repl\xffId\": \"abc\", \"userId\": \"alice\"}");
  start_null("truncated UTF-8 sequence", "{\"replId\": \"abc\xc3\", \"userId\": \"alice\"}");
  start_null("100000 nested arrays", nested_arrays(100000));
  start_null("100000 unclosed arrays", std::string(100000, '['));
  start_body("replId nested 100000 deep",
             "{\"replId\": " + nested_arrays(100000) + ", \"userId\": \"alice\"}", "replId");

  // Missing fields (no default user configured).
  start_body("empty object", "{}", "replId");
  start_body("missing replId", R"({"userId": "alice"})", "replId");
  start_body("missing userId", R"({"replId": "abc"})", "userId");

  // Wrong types, for each field.
  for (const S value : {"42", "true", "null", R"({"a": "b"})", R"(["abc"])"}) {
    start_body("replId = " + value, R"({"replId": )" + value + R"(, "userId": "alice"})", "replId");
    start_body("userId = " + value, R"({"replId": "abc", "userId": )" + value + "}", "userId");
    start_body("language = " + value, R"({"replId": "abc", "userId": "alice", "language": )" + value + "}",
               "language");
    start_body("idleTimeout = " + value,
               R"({"replId": "abc", "userId": "alice", "idleTimeout": )" + value + "}", "idleTimeout");
  }

  // Unknown fields.
  start_body("unknown field", R"({"replId": "abc", "userId": "alice", "image": "evil:latest"})", "image");
  start_body("field name in another case", R"({"replid": "abc", "userId": "alice"})", "replid");
  start_body("suspended is not for /start", R"({"replId": "abc", "userId": "alice", "suspended": "true"})",
             "suspended");

  // replId: the CRD's DNS-1035 label rule.
  bad_repl_id("of 64 characters", "a" + S(63, 'b'));
  bad_repl_id("with upper case", "Abc");
  bad_repl_id("with a dot", "a.bc");
  bad_repl_id("with an underscore", "a_bc");
  bad_repl_id("with a leading digit", "1abc");
  bad_repl_id("with a leading '-'", "-abc");
  bad_repl_id("with a trailing '-'", "abc-");
  bad_repl_id("with unicode", "caf\xc3\xa9");
  bad_repl_id("with unicode look-alike",
              "\xd0\xb0"
              "bc");  // Cyrillic a
  bad_repl_id("with a space", "ab c");
  bad_repl_id("with a newline", "abc\n");
  bad_repl_id("with a quote", "ab\"c");
  bad_repl_id("with a NUL", S("ab\0c", 4));
  bad_repl_id("shell injection", "$(rm -rf /)");
  bad_repl_id("YAML injection", "abc: {");
  bad_repl_id("template injection", "{{ replId }}");
  bad_repl_id("path traversal", "../abc");
  bad_repl_id("empty", "");

  // userId: a label value.
  bad_user_id("of 64 characters", S(64, 'u'));
  bad_user_id("with '/'", "team/alice");
  bad_user_id("with ':'", "alice:admin");
  bad_user_id("with a quote", "ali\"ce");
  bad_user_id("with a newline", "alice\nbob");
  bad_user_id("with unicode", "j\xc3\xbcrgen");
  bad_user_id("with a leading '.'", ".alice");
  bad_user_id("with a trailing '-'", "alice-");
  bad_user_id("with a space", "alice smith");
  bad_user_id("empty", "");

  // language.
  for (const S& language :
       std::vector<S>{"Python", "py thon", "-python", "python-", "c++", "../go", S(33, 'p')}) {
    start_body("language " + language,
               json_object({{"replId", "abc"}, {"userId", "alice"}, {"language", language}}), "language");
  }

  // idleTimeout and ttlAfterSuspend: the CRD's duration rule.
  for (const S& d :
       std::vector<S>{"", "30", "1d", "-5m", "1m1h", "1.5h", "5 m", "87601h", "100000h", "0x10s"}) {
    for (const char* name : {"idleTimeout", "ttlAfterSuspend"}) {
      start_body(S(name) + " " + d, json_object({{"replId", "abc"}, {"userId", "alice"}, {name, d}}), name);
    }
  }

  // Size and media type.
  IncomingRequest too_large = post("/start", "");
  too_large.body_too_large = true;
  cases.push_back({"body too large", too_large, 413, std::nullopt});
  cases.push_back({"text/plain",
                   http_request("POST", "/start", R"({"replId":"abc","userId":"alice"})",
                                {{"content-type", "text/plain"}}),
                   415, std::nullopt});
  cases.push_back({"form",
                   http_request("POST", "/start", "replId=abc&userId=alice",
                                {{"content-type", "application/x-www-form-urlencoded"}}),
                   415, std::nullopt});
  cases.push_back({"application/jsonp",
                   http_request("POST", "/start", R"({"replId":"abc","userId":"alice"})",
                                {{"content-type", "application/jsonp"}}),
                   415, std::nullopt});
  cases.push_back({"no Content-Type", http_request("POST", "/start", R"({"replId":"abc","userId":"alice"})"),
                   415, std::nullopt});

  // Methods and paths.
  cases.push_back({"GET /start", http_request("GET", "/start"), 405, std::nullopt, "POST"});
  cases.push_back({"DELETE /start", http_request("DELETE", "/start"), 405, std::nullopt, "POST"});
  cases.push_back({"GET /stop", http_request("GET", "/stop"), 405, std::nullopt, "POST"});
  cases.push_back({"PUT /repls/x", json_request("PUT", "/repls/x", "{}"), 405, std::nullopt, "GET, DELETE"});
  cases.push_back({"POST /repls/abc", post("/repls/abc", "{}"), 405, std::nullopt, "GET, DELETE"});
  cases.push_back({"POST /healthz", http_request("POST", "/healthz"), 405, std::nullopt, "GET"});
  cases.push_back({"unknown path", http_request("GET", "/nope"), 404, std::nullopt});
  cases.push_back({"root", http_request("GET", "/"), 404, std::nullopt});
  cases.push_back({"/start/", post("/start/", "{}"), 404, std::nullopt});
  cases.push_back({"/repls/", http_request("GET", "/repls/"), 404, std::nullopt});
  cases.push_back({"/repls", http_request("GET", "/repls"), 404, std::nullopt});
  cases.push_back({"/repls/a/b", http_request("GET", "/repls/a/b"), 404, std::nullopt});
  cases.push_back(
      {"DELETE /repls/a/b", http_request("DELETE", "/repls/a/b?userId=alice"), 404, std::nullopt});

  // /stop.
  const auto stop = [&](S name, S body, std::optional<S> field) {
    cases.push_back({"/stop " + std::move(name), post("/stop", std::move(body)), 400, std::move(field)});
  };
  stop("malformed JSON", "{", std::nullopt);
  stop("JSON array", "[]", std::nullopt);
  stop("missing replId", R"({"userId": "alice"})", "replId");
  stop("missing userId", R"({"replId": "abc"})", "userId");
  stop("replId with upper case", json_object({{"replId", "ABC"}, {"userId", "alice"}}), "replId");
  stop("userId with '/'", json_object({{"replId", "abc"}, {"userId", "a/b"}}), "userId");
  stop("replId = 1", R"({"replId": 1, "userId": "alice"})", "replId");
  stop("language is unknown", json_object({{"replId", "abc"}, {"userId", "alice"}, {"language", "go"}}),
       "language");
  IncomingRequest stop_too_large = post("/stop", "");
  stop_too_large.body_too_large = true;
  cases.push_back({"/stop body too large", stop_too_large, 413, std::nullopt});
  cases.push_back({"/stop text/plain",
                   http_request("POST", "/stop", R"({"replId":"abc"})", {{"content-type", "text/plain"}}),
                   415, std::nullopt});

  // DELETE /repls/{replId}.
  const auto del = [&](S name, IncomingRequest r, int status, std::optional<S> field) {
    r.method = "DELETE";
    cases.push_back({"DELETE " + std::move(name), std::move(r), status, std::move(field)});
  };
  del("replId with upper case", http_request("", "/repls/Abc?userId=alice"), 400, "replId");
  del("replId with '.'", http_request("", "/repls/a.b?userId=alice"), 400, "replId");
  del("replId of 64", http_request("", "/repls/a" + S(63, 'b') + "?userId=alice"), 400, "replId");
  del("no userId", http_request("", "/repls/abc"), 400, "userId");
  del("query userId with ':'", http_request("", "/repls/abc?userId=a:b"), 400, "userId");
  del("query userId of 64", http_request("", "/repls/abc?userId=" + S(64, 'u')), 400, "userId");
  del("body userId with a space", json_request("", "/repls/abc", json_object({{"userId", "a b"}})), 400,
      "userId");
  del("body userId = 1", json_request("", "/repls/abc", R"({"userId": 1})"), 400, "userId");
  del("body replId is unknown", json_request("", "/repls/abc", json_object({{"replId", "abc"}})), 400,
      "replId");
  del("body malformed", json_request("", "/repls/abc", "{\"userId\""), 400, std::nullopt);
  del("body text/plain", http_request("", "/repls/abc", "userId=alice", {{"content-type", "text/plain"}}),
      415, std::nullopt);
  IncomingRequest del_too_large = json_request("", "/repls/abc", "");
  del_too_large.body_too_large = true;
  del("body too large", del_too_large, 413, std::nullopt);

  // GET /repls/{replId}.
  cases.push_back({"GET replId with '_'", http_request("GET", "/repls/a_b"), 400, "replId"});
  cases.push_back({"GET wait=yes", http_request("GET", "/repls/abc?wait=yes"), 400, "wait"});
  cases.push_back(
      {"GET timeout=abc", http_request("GET", "/repls/abc?wait=ready&timeout=abc"), 400, "timeout"});
  return cases;
}

TEST_CASE("refused input gets a 4xx JSON error naming the field, and makes no call", "[shim]") {
  const auto cases = bad_inputs();
  REQUIRE(cases.size() >= 30);
  for (const auto& c : cases) {
    DYNAMIC_SECTION(c.name) {
      Harness h;
      const HttpReply reply = h.handle(c.request);
      require_error(reply, c.status, c.field);
      if (c.status == 405) CHECK(reply_header(reply, "Allow") == c.allow);
      require_no_call(h.api);
    }
  }
}

TEST_CASE("a refused request leaves existing Repls as they were", "[shim]") {
  Harness h;
  h.api.add("abc", "alice", "python", "Ready");
  const auto before = h.api.repls;
  for (const auto& c : bad_inputs()) {
    INFO(c.name);
    REQUIRE(h.handle(c.request).status == c.status);
  }
  CHECK(h.api.calls.empty());
  REQUIRE(h.api.repls.size() == 1);
  CHECK(h.api.repls.at("abc").spec == before.at("abc").spec);
  CHECK(h.api.repls.at("abc").uid == before.at("abc").uid);
}

TEST_CASE("a replId of 63 characters and application/json with parameters are accepted", "[shim]") {
  Harness h;
  const std::string id = "a" + std::string(61, 'b') + "9";
  auto r = http_request("POST", "/start", json_object({{"replId", id}, {"userId", "alice"}}),
                        {{"content-type", "application/json; charset=utf-8"}});
  const HttpReply reply = h.handle(r);
  REQUIRE(reply.status == 201);
  CHECK(repl_view(reply).repl_id == id);
  CHECK(h.api.count(Call::kApply) == 1);
}

// Media types are case-insensitive (RFC 9110 8.3.1); the shim compares the type byte for byte
// (api-shim/shim.cpp:73-74), so "Application/JSON" is refused with 415.
TEST_CASE("Content-Type is compared case-insensitively", "[shim]") {
  Harness h;
  const auto r = http_request("POST", "/start", json_object({{"replId", "abc"}, {"userId", "alice"}}),
                              {{"content-type", "Application/JSON"}});
  CHECK(h.handle(r).status == 201);
}

// ---------------------------------------------------------------------------------------------
// 2. Authentication

TEST_CASE("with a token configured, requests without the right bearer token get 401", "[shim]") {
  const std::string same_length(std::string(kToken).size(), 'x');
  const std::vector<std::pair<std::string, std::optional<std::string>>> cases = {
      {"no Authorization header", std::nullopt},
      {"wrong token", "Bearer wrong"},
      {"wrong token of the same length", "Bearer " + same_length},
      {"the token with one more character", std::string("Bearer ") + kToken + "x"},
      {"a prefix of the token", std::string("Bearer ") + std::string(kToken).substr(0, 5)},
      {"empty bearer token", "Bearer "},
      {"Basic credentials", "Basic dXNlcjpzM2NyZXQtdG9rZW4tMDEyMzQ1Njc4OQ=="},
      {"the token without a scheme", kToken},
      {"Basic with the token", std::string("Basic ") + kToken},
  };
  const std::vector<IncomingRequest> requests = {start("abc", "alice"), http_request("GET", "/repls/abc"),
                                                 http_request("DELETE", "/repls/abc?userId=alice"),
                                                 post("/stop", R"({"replId":"abc","userId":"alice"})"),
                                                 post("/start", "not even JSON")};
  for (const auto& [name, authorization] : cases) {
    DYNAMIC_SECTION(name) {
      for (const auto& request : requests) {
        Harness h(with_auth());
        const IncomingRequest r =
            authorization ? with_header(request, "authorization", *authorization) : request;
        INFO(r.method << " " << r.path);
        const HttpReply reply = h.handle(r);
        require_error(reply, 401, std::nullopt);
        CHECK(reply_header(reply, "WWW-Authenticate") == "Bearer");
        require_no_call(h.api);
      }
    }
  }
}

TEST_CASE("with a token configured, the right bearer token passes", "[shim]") {
  Harness h(with_auth());
  const HttpReply reply =
      h.handle(start("abc", "alice", {{"authorization", std::string("Bearer ") + kToken}}));
  CHECK(reply.status == 201);
  CHECK(h.api.count(Call::kApply) == 1);
  CHECK(h.handle(
             with_header(http_request("GET", "/repls/abc"), "authorization", std::string("Bearer ") + kToken))
            .status == 200);
}

TEST_CASE("health, readiness, metrics and preflights need no token", "[shim]") {
  Harness h(with_auth());
  CHECK(h.handle(http_request("GET", "/healthz")).status == 200);
  CHECK(h.handle(http_request("GET", "/readyz")).status == 200);
  const HttpReply metrics = h.handle(http_request("GET", "/metrics"));
  CHECK(metrics.status == 200);
  CHECK(metrics.content_type == repl::metrics::kContentType);
  const HttpReply preflight = h.handle(http_request(
      "OPTIONS", "/start", "", {{"origin", kOrigin}, {"access-control-request-method", "POST"}}));
  CHECK(preflight.status == 204);
}

TEST_CASE("/readyz follows whether the API server answers", "[shim]") {
  Harness h;
  CHECK(h.handle(http_request("GET", "/readyz")).status == 200);
  h.api.is_reachable = false;
  require_error(h.handle(http_request("GET", "/readyz")), 503, std::nullopt);
  CHECK(h.api.count(Call::kReachable) == 2);
}

// ---------------------------------------------------------------------------------------------
// 3. POST /start

TEST_CASE("/start creates a Repl: 201 with its description", "[shim]") {
  Harness h;
  const HttpReply reply =
      h.handle(post("/start", json_object({{"replId", "abc"}, {"userId", "alice"}, {"language", "python"}})));
  REQUIRE(reply.status == 201);
  const ReplView v = repl_view(reply);
  CHECK(v.repl_id == "abc");
  CHECK(v.user_id == "alice");
  CHECK(v.phase == "Pending");
  CHECK_FALSE(v.ready);
  CHECK(v.ide.empty());
  CHECK(v.preview.empty());

  const auto applies = h.api.calls_of(Call::kApply);
  REQUIRE(applies.size() == 1);
  CHECK(applies[0].start.repl_id == "abc");
  CHECK(applies[0].start.user_id == "alice");
  CHECK(applies[0].start.language == "python");
  CHECK_FALSE(applies[0].start.suspended);
  REQUIRE(h.api.repls.contains("abc"));
  CHECK(h.api.repls.at("abc").spec.user_id == "alice");
}

TEST_CASE("/start on the user's own Repl: 200, resumed", "[shim]") {
  Harness h;
  auto& existing = h.api.add("abc", "alice", "python", "Suspended");
  existing.spec.suspended = true;
  existing.status.ide_url = "https://abc.ide.example.com";
  const HttpReply reply = h.handle(start("abc", "alice"));
  REQUIRE(reply.status == 200);
  const ReplView v = repl_view(reply);
  CHECK(v.repl_id == "abc");
  CHECK(v.user_id == "alice");
  CHECK(v.phase == "Suspended");
  CHECK(v.ide == "https://abc.ide.example.com");
  const auto applies = h.api.calls_of(Call::kApply);
  REQUIRE(applies.size() == 1);
  CHECK_FALSE(applies[0].start.suspended);
  CHECK_FALSE(h.api.repls.at("abc").spec.suspended);
}

TEST_CASE("/start on another user's Repl: 409, and the Repl is unchanged", "[shim]") {
  Harness h;
  h.api.add("abc", "alice", "python", "Ready").spec.suspended = true;
  const repl::Repl before = h.api.repls.at("abc");
  SECTION("with a language") {
    const HttpReply reply =
        h.handle(post("/start", json_object({{"replId", "abc"}, {"userId", "mallory"}, {"language", "go"}})));
    require_error(reply, 409, "replId");
  }
  SECTION("without a language") { require_error(h.handle(start("abc", "mallory")), 409, "replId"); }
  const repl::Repl& after = h.api.repls.at("abc");
  CHECK(after.spec == before.spec);
  CHECK(after.uid == before.uid);
  CHECK(after.resource_version == before.resource_version);
  CHECK(after.generation == before.generation);
}

TEST_CASE("/start uses the default user when the request names none", "[shim]") {
  Harness h(with_default_user("guest"));
  const HttpReply reply = h.handle(post("/start", R"({"replId": "abc"})"));
  REQUIRE(reply.status == 201);
  CHECK(repl_view(reply).user_id == "guest");
  const auto applies = h.api.calls_of(Call::kApply);
  REQUIRE(applies.size() == 1);
  CHECK(applies[0].start.user_id == "guest");

  SECTION("a userId given wins over the default") {
    REQUIRE(h.handle(start("def", "alice")).status == 201);
    CHECK(h.api.repls.at("def").spec.user_id == "alice");
  }
  SECTION("an empty userId given is refused, not replaced by the default") {
    require_error(h.handle(start("def", "")), 400, "userId");
    CHECK_FALSE(h.api.repls.contains("def"));
  }
}

TEST_CASE("/start without a language keeps the Repl's language", "[shim]") {
  Harness h;
  h.api.add("abc", "alice", "python");
  SECTION("language absent") { REQUIRE(h.handle(start("abc", "alice")).status == 200); }
  SECTION("language empty") {
    REQUIRE(h.handle(post("/start", json_object({{"replId", "abc"}, {"userId", "alice"}, {"language", ""}})))
                .status == 200);
  }
  const auto applies = h.api.calls_of(Call::kApply);
  REQUIRE(applies.size() == 1);
  CHECK(applies[0].start.language == "python");
  CHECK(h.api.repls.at("abc").spec.language == "python");
}

TEST_CASE("/start sets idleTimeout and ttlAfterSuspend; a resume and /stop keep them", "[shim][activity]") {
  Harness h;
  const auto with = [](std::vector<std::pair<std::string, std::string>> extra) {
    extra.insert(extra.begin(), {{"replId", "abc"}, {"userId", "alice"}});
    return post("/start", json_object(extra));
  };
  REQUIRE(h.handle(with({{"idleTimeout", "5m"}, {"ttlAfterSuspend", "168h"}})).status == 201);
  CHECK(h.api.repls.at("abc").spec.idle_timeout == "5m");
  CHECK(h.api.repls.at("abc").spec.ttl_after_suspend == "168h");
  REQUIRE(h.handle(post("/stop", R"({"replId": "abc", "userId": "alice"})")).status == 200);
  REQUIRE(h.handle(start("abc", "alice")).status == 200);
  for (const auto& a : h.api.calls_of(Call::kApply)) {
    CHECK(a.start.idle_timeout == "5m");
    CHECK(a.start.ttl_after_suspend == "168h");
  }
  // One named is changed, the other kept; 0 (never) is a value like another.
  REQUIRE(h.handle(with({{"idleTimeout", "0"}})).status == 200);
  CHECK(h.api.repls.at("abc").spec.idle_timeout == "0");
  CHECK(h.api.repls.at("abc").spec.ttl_after_suspend == "168h");
  // Out of bounds: the CRD's message, and nothing applied.
  const auto applies = h.api.count(Call::kApply);
  const HttpReply refused = h.handle(with({{"ttlAfterSuspend", "87601h"}}));
  require_error(refused, 400, "ttlAfterSuspend");
  CHECK(string_at(repl::test::parse_json(refused.body), "/message") == repl::kDurationMessage);
  CHECK(h.api.count(Call::kApply) == applies);
}

TEST_CASE("/start with a language changes it", "[shim]") {
  Harness h;
  h.api.add("abc", "alice", "python");
  REQUIRE(h.handle(post("/start", json_object({{"replId", "abc"}, {"userId", "alice"}, {"language", "go"}})))
              .status == 200);
  const auto applies = h.api.calls_of(Call::kApply);
  REQUIRE(applies.size() == 1);
  CHECK(applies[0].start.language == "go");
}

TEST_CASE("/start when the API server cannot be reached: 503 with Retry-After", "[shim]") {
  Harness h;
  const Call failing = GENERATE(Call::kGet, Call::kApply);
  h.api.failures[failing] = repl::kube::transport_error("connection refused");
  const HttpReply reply = h.handle(start("abc", "alice"));  // no language: get, then apply
  require_error(reply, 503, std::nullopt);
  const auto retry = reply_header(reply, "Retry-After");
  REQUIRE(retry);
  CHECK(std::stoi(*retry) > 0);
  if (failing == Call::kGet) CHECK(h.api.count(Call::kApply) == 0);
  CHECK(h.api.repls.empty());
}

TEST_CASE("/start refused by the CRD's own rules: 400", "[shim]") {
  Harness h;
  h.api.failures[Call::kApply] = {repl::kube::ApiError::Kind::kApi, 422, "Invalid",
                                  "Repl.peetcode.com \"abc\" is invalid: spec.language: Too long"};
  require_error(h.handle(start("abc", "alice")), 400, std::nullopt);
}

// An API server that throttles (429 Too Many Requests) is not the client's mistake, but
// api-shim/shim.cpp:284 turns every 4xx from apply other than the userId rule into 400 bad_request
// (also 401/403 from the shim's own credentials or RBAC): the client is told its input is wrong
// and gets no Retry-After.
TEST_CASE("/start when the API server throttles: 503 with Retry-After", "[shim]") {
  Harness h;
  h.api.failures[Call::kApply] = {repl::kube::ApiError::Kind::kApi, 429, "TooManyRequests",
                                  "Too many requests, please try again later."};
  const HttpReply reply = h.handle(start("abc", "alice"));
  CHECK(reply.status == 503);
  CHECK(reply_header(reply, "Retry-After"));
}

// ---------------------------------------------------------------------------------------------
// 4. POST /stop and DELETE /repls/{replId}

TEST_CASE("/stop suspends the user's Repl and keeps its language", "[shim]") {
  Harness h;
  h.api.add("abc", "alice", "python", "Ready");
  const HttpReply reply = h.handle(post("/stop", R"({"replId": "abc", "userId": "alice"})"));
  REQUIRE(reply.status == 200);
  CHECK(repl_view(reply).repl_id == "abc");
  const auto applies = h.api.calls_of(Call::kApply);
  REQUIRE(applies.size() == 1);
  CHECK(applies[0].start.repl_id == "abc");
  CHECK(applies[0].start.user_id == "alice");
  CHECK(applies[0].start.suspended);
  CHECK(applies[0].start.language == "python");
  CHECK(h.api.repls.at("abc").spec.suspended);
}

TEST_CASE("/stop with the default user", "[shim]") {
  Harness h(with_default_user("guest"));
  h.api.add("abc", "guest");
  REQUIRE(h.handle(post("/stop", R"({"replId": "abc"})")).status == 200);
  CHECK(h.api.repls.at("abc").spec.suspended);
}

TEST_CASE("/stop of an unknown Repl: 404, nothing applied", "[shim]") {
  Harness h;
  require_error(h.handle(post("/stop", R"({"replId": "abc", "userId": "alice"})")), 404, "replId");
  CHECK(h.api.count(Call::kApply) == 0);
  CHECK(h.api.repls.empty());  // not re-created by an apply
}

TEST_CASE("/stop of another user's Repl: 409, nothing applied", "[shim]") {
  Harness h;
  h.api.add("abc", "alice", "python", "Ready");
  require_error(h.handle(post("/stop", R"({"replId": "abc", "userId": "mallory"})")), 409, "replId");
  CHECK(h.api.count(Call::kApply) == 0);
  CHECK_FALSE(h.api.repls.at("abc").spec.suspended);
}

TEST_CASE("/stop when the API server cannot be reached: 503", "[shim]") {
  Harness h;
  h.api.add("abc", "alice");
  const Call failing = GENERATE(Call::kGet, Call::kApply);
  h.api.failures[failing] = repl::kube::transport_error("connection reset");
  const HttpReply reply = h.handle(post("/stop", R"({"replId": "abc", "userId": "alice"})"));
  require_error(reply, 503, std::nullopt);
  CHECK(reply_header(reply, "Retry-After"));
}

TEST_CASE("DELETE removes the user's Repl, by uid", "[shim]") {
  Harness h;
  const std::string uid = h.api.add("abc", "alice", "python").uid;
  h.api.add("other", "alice");
  SECTION("userId in the query") {
    REQUIRE(h.handle(http_request("DELETE", "/repls/abc?userId=alice")).status == 200);
  }
  SECTION("userId in the query with other parameters") {
    REQUIRE(h.handle(http_request("DELETE", "/repls/abc?x=1&userId=alice&y")).status == 200);
  }
  SECTION("userId in a JSON body") {
    const HttpReply reply = h.handle(json_request("DELETE", "/repls/abc", R"({"userId": "alice"})"));
    REQUIRE(reply.status == 200);
    CHECK(reply.content_type == "application/json");
    const auto doc = repl::test::parse_json(reply.body);
    CHECK(repl::test::at(doc, "/deleted").IsTrue());
  }
  const auto removes = h.api.calls_of(Call::kRemove);
  REQUIRE(removes.size() == 1);
  CHECK(removes[0].repl_id == "abc");
  CHECK(removes[0].uid == uid);
  CHECK_FALSE(h.api.repls.contains("abc"));
  CHECK(h.api.repls.contains("other"));
}

TEST_CASE("DELETE with the default user", "[shim]") {
  Harness h(with_default_user("guest"));
  h.api.add("abc", "guest");
  REQUIRE(h.handle(http_request("DELETE", "/repls/abc")).status == 200);
  CHECK(h.api.repls.empty());
}

// /start refuses an explicit empty userId even when a default user is configured; DELETE quietly
// replaces it with the default user (api-shim/shim.cpp:351), so {"userId": ""} deletes the default
// user's Repl instead of being refused.
TEST_CASE("DELETE with an explicitly empty userId is refused", "[shim]") {
  Harness h(with_default_user("guest"));
  h.api.add("abc", "guest");
  const HttpReply reply = h.handle(json_request("DELETE", "/repls/abc", R"({"userId": ""})"));
  CHECK(reply.status == 400);
  CHECK(h.api.repls.contains("abc"));
}

TEST_CASE("DELETE of an unknown Repl: 404, nothing removed", "[shim]") {
  Harness h;
  require_error(h.handle(http_request("DELETE", "/repls/abc?userId=alice")), 404, "replId");
  CHECK(h.api.count(Call::kRemove) == 0);
}

TEST_CASE("DELETE of another user's Repl: 409, nothing removed", "[shim]") {
  Harness h;
  h.api.add("abc", "alice");
  SECTION("query") {
    require_error(h.handle(http_request("DELETE", "/repls/abc?userId=mallory")), 409, "replId");
  }
  SECTION("body") {
    require_error(h.handle(json_request("DELETE", "/repls/abc", R"({"userId": "mallory"})")), 409, "replId");
  }
  CHECK(h.api.count(Call::kRemove) == 0);
  CHECK(h.api.repls.contains("abc"));
}

TEST_CASE("DELETE racing a re-creation or another delete", "[shim]") {
  Harness h;
  h.api.add("abc", "alice");
  SECTION("the uid precondition fails: 409") {
    h.api.failures[Call::kRemove] = {repl::kube::ApiError::Kind::kApi, 409, "Conflict",
                                     "Precondition failed"};
    require_error(h.handle(http_request("DELETE", "/repls/abc?userId=alice")), 409, "replId");
  }
  SECTION("already gone: 404") {
    h.api.failures[Call::kRemove] = {repl::kube::ApiError::Kind::kApi, 404, "NotFound", "not found"};
    require_error(h.handle(http_request("DELETE", "/repls/abc?userId=alice")), 404, "replId");
  }
  SECTION("transport error: 503") {
    h.api.failures[Call::kRemove] = repl::kube::transport_error("connection refused");
    const HttpReply reply = h.handle(http_request("DELETE", "/repls/abc?userId=alice"));
    require_error(reply, 503, std::nullopt);
    CHECK(reply_header(reply, "Retry-After"));
  }
}

// ---------------------------------------------------------------------------------------------
// 5. GET /repls/{replId}

TEST_CASE("GET describes the Repl from its status", "[shim]") {
  Harness h;
  auto& r = h.api.add("abc", "alice", "python", "Ready");
  r.status.ide_url = "https://abc.ide.example.com";
  r.status.preview_url = "https://abc.preview.example.com";
  h.api.add("def", "bob", "", "Starting");
  h.api.add("ghi", "carol");

  const ReplView ready = repl_view(h.handle(http_request("GET", "/repls/abc")));
  CHECK(ready.repl_id == "abc");
  CHECK(ready.user_id == "alice");
  CHECK(ready.phase == "Ready");
  CHECK(ready.ready);
  CHECK(ready.ide == "https://abc.ide.example.com");
  CHECK(ready.preview == "https://abc.preview.example.com");

  const ReplView starting = repl_view(h.handle(http_request("GET", "/repls/def")));
  CHECK(starting.phase == "Starting");
  CHECK_FALSE(starting.ready);

  const ReplView no_status = repl_view(h.handle(http_request("GET", "/repls/ghi")));
  CHECK(no_status.phase == "Pending");
  CHECK_FALSE(no_status.ready);
  CHECK(h.api.count(Call::kWaitReady) == 0);
}

TEST_CASE("GET of an unknown Repl: 404", "[shim]") {
  Harness h;
  require_error(h.handle(http_request("GET", "/repls/abc")), 404, "replId");
  require_error(h.handle(http_request("GET", "/repls/abc?wait=ready&timeout=1s")), 404, "replId");
}

TEST_CASE("GET when the API server cannot be reached: 503", "[shim]") {
  Harness h;
  h.api.add("abc", "alice");
  const auto [failing, target] = GENERATE(table<Call, std::string>(
      {{Call::kGet, "/repls/abc"}, {Call::kWaitReady, "/repls/abc?wait=ready&timeout=1s"}}));
  h.api.failures[failing] = repl::kube::transport_error("connection refused");
  const HttpReply reply = h.handle(http_request("GET", target));
  require_error(reply, 503, std::nullopt);
  CHECK(reply_header(reply, "Retry-After"));
}

TEST_CASE("GET ?wait=ready waits for the timeout given", "[shim]") {
  ShimOptions options;
  options.max_wait = 180s;
  const auto [query, timeout] = GENERATE(table<std::string, std::chrono::milliseconds>({
      {"wait=ready&timeout=5s", 5s},
      {"wait=ready&timeout=500ms", 500ms},
      {"wait=ready&timeout=2m", 2min},
      {"wait=ready&timeout=7", 7s},
      {"timeout=3m&wait=ready", 3min},  // exactly max_wait
      {"wait=ready&timeout=0s", 0s},
      {"wait=ready", 30s},  // the default
  }));
  INFO(query);
  Harness h(options);
  h.api.add("abc", "alice", "python", "Ready");
  const HttpReply reply = h.handle(http_request("GET", "/repls/abc?" + query));
  REQUIRE(reply.status == 200);
  CHECK(repl_view(reply).ready);
  const auto waits = h.api.calls_of(Call::kWaitReady);
  REQUIRE(waits.size() == 1);
  CHECK(waits[0].repl_id == "abc");
  CHECK(waits[0].timeout == timeout);
  CHECK(h.api.count(Call::kGet) == 0);
}

TEST_CASE("GET with a bad wait or timeout: 400 naming it, no call", "[shim]") {
  const auto [query, field] = GENERATE(table<std::string, std::string>({
      {"wait=abc", "wait"},
      {"wait=", "wait"},
      {"wait", "wait"},
      {"wait=Ready", "wait"},
      {"wait=ready&timeout=abc", "timeout"},
      {"wait=ready&timeout=-1s", "timeout"},
      {"wait=ready&timeout=", "timeout"},
      {"wait=ready&timeout=1h", "timeout"},
      {"wait=ready&timeout=1.5s", "timeout"},
      {"wait=ready&timeout=5 s", "timeout"},
      {"wait=ready&timeout=61s", "timeout"},  // over the default max_wait of 60s
      {"wait=ready&timeout=2m", "timeout"},
      {"wait=ready&timeout=60001ms", "timeout"},
      {"wait=ready&timeout=99999999999999999999", "timeout"},
  }));
  INFO(query);
  Harness h;
  h.api.add("abc", "alice", "python", "Ready");
  require_error(h.handle(http_request("GET", "/repls/abc?" + query)), 400, field);
  CHECK(h.api.calls.empty());
}

TEST_CASE("GET ?wait=ready&timeout=60s is within the default max_wait", "[shim]") {
  Harness h;
  h.api.add("abc", "alice", "python", "Ready");
  CHECK(h.handle(http_request("GET", "/repls/abc?wait=ready&timeout=60s")).status == 200);
}

// parse_duration converts the count to milliseconds without checking for overflow
// (api-shim/shim.cpp:158-160; signed overflow, undefined behaviour): 18446744073709552s wraps to
// 384ms, passes the max_wait check and is used as the timeout.
TEST_CASE("GET with a timeout that overflows is refused", "[shim]") {
  Harness h;
  h.api.add("abc", "alice", "python", "Ready");
  for (const std::string t : {"18446744073709552s", "307445734561826m"}) {
    INFO(t);
    CHECK(h.handle(http_request("GET", "/repls/abc?wait=ready&timeout=" + t)).status == 400);
  }
  CHECK(h.api.count(Call::kWaitReady) == 0);
}

// ---------------------------------------------------------------------------------------------
// 6. CORS

TEST_CASE("CORS: an allowed origin is echoed, with credentials and Vary", "[shim]") {
  Harness h(with_cors());
  SECTION("on success") {
    const HttpReply reply = h.handle(start("abc", "alice", {{"origin", kOrigin}}));
    REQUIRE(reply.status == 201);
    CHECK(reply_header(reply, "Access-Control-Allow-Origin") == kOrigin);
    CHECK(reply_header(reply, "Access-Control-Allow-Credentials") == "true");
    CHECK(reply_header(reply, "Vary") == "Origin");
  }
  SECTION("the other allowed origin") {
    const HttpReply reply =
        h.handle(with_header(http_request("GET", "/repls/abc"), "origin", "http://localhost:3000"));
    CHECK(reply.status == 404);
    CHECK(reply_header(reply, "Access-Control-Allow-Origin") == "http://localhost:3000");
  }
  SECTION("on an error, so that the page can read it") {
    const HttpReply reply = h.handle(post("/start", "{", {{"origin", kOrigin}}));
    require_error(reply, 400, std::nullopt);
    CHECK(reply_header(reply, "Access-Control-Allow-Origin") == kOrigin);
    CHECK(reply_header(reply, "Vary") == "Origin");
  }
}

TEST_CASE("CORS: other origins get no Allow-Origin", "[shim]") {
  Harness h(with_cors());
  const std::string origin =
      GENERATE("https://evil.example.com", "https://app.example.com.evil.com", "http://app.example.com",
               "https://app.example.com:8443", "null", "*", "");
  INFO("origin " << origin);
  const HttpReply reply = h.handle(start("abc", "alice", {{"origin", origin}}));
  CHECK(reply.status == 201);  // the request itself is served; the browser withholds the answer
  CHECK(reply_headers_starting_with(reply, "Access-Control-").empty());
  CHECK(reply_header(reply, "Vary") == "Origin");
}

TEST_CASE("CORS: no origins configured, no CORS headers", "[shim]") {
  Harness h;
  const HttpReply reply = h.handle(start("abc", "alice", {{"origin", kOrigin}}));
  CHECK(reply.status == 201);
  CHECK(reply_headers_starting_with(reply, "Access-Control-").empty());
}

TEST_CASE("CORS preflight from an allowed origin: 204", "[shim]") {
  Harness h(with_cors());
  const std::string method = GENERATE("POST", "GET", "DELETE");
  const std::string path = GENERATE("/start", "/stop", "/repls/abc");
  const HttpReply reply =
      h.handle(http_request("OPTIONS", path, "",
                            {{"origin", kOrigin},
                             {"access-control-request-method", method},
                             {"access-control-request-headers", "authorization, content-type"}}));
  REQUIRE(reply.status == 204);
  CHECK(reply.body.empty());
  CHECK(reply_header(reply, "Access-Control-Allow-Origin") == kOrigin);
  CHECK(reply_header(reply, "Access-Control-Allow-Credentials") == "true");
  const auto methods = reply_header(reply, "Access-Control-Allow-Methods");
  REQUIRE(methods);
  CHECK_THAT(*methods, Catch::Contains(method));
  const auto headers = reply_header(reply, "Access-Control-Allow-Headers");
  REQUIRE(headers);
  CHECK_THAT(*headers, Catch::Contains("Authorization") && Catch::Contains("Content-Type"));
  const auto max_age = reply_header(reply, "Access-Control-Max-Age");
  REQUIRE(max_age);
  CHECK(std::stoi(*max_age) > 0);
  CHECK(h.api.calls.empty());
}

TEST_CASE("CORS preflight from another origin: 403 without CORS headers", "[shim]") {
  Harness h(with_cors());
  const std::string origin = GENERATE("https://evil.example.com", "null", "");
  const HttpReply reply = h.handle(
      http_request("OPTIONS", "/start", "", {{"origin", origin}, {"access-control-request-method", "POST"}}));
  require_error(reply, 403, std::nullopt);
  CHECK(reply_headers_starting_with(reply, "Access-Control-").empty());
  CHECK(h.api.calls.empty());
}

TEST_CASE("CORS preflight for a method the shim does not serve: 403", "[shim]") {
  Harness h(with_cors());
  const std::string method = GENERATE("PUT", "PATCH", "CONNECT", "");
  INFO("method '" << method << "'");
  const HttpReply reply = h.handle(http_request(
      "OPTIONS", "/start", "", {{"origin", kOrigin}, {"access-control-request-method", method}}));
  require_error(reply, 403, std::nullopt);
  CHECK_FALSE(reply_header(reply, "Access-Control-Allow-Methods"));
  CHECK(h.api.calls.empty());
}

// ---------------------------------------------------------------------------------------------
// 7. Durations and metrics

TEST_CASE("parse_duration", "[shim]") {
  using repl::shim::parse_duration;
  using ms = std::chrono::milliseconds;
  CHECK(parse_duration("30s") == ms(30000));
  CHECK(parse_duration("2m") == ms(120000));
  CHECK(parse_duration("500ms") == ms(500));
  CHECK(parse_duration("5") == ms(5000));
  CHECK(parse_duration("0") == ms(0));
  CHECK(parse_duration("0ms") == ms(0));
  CHECK(parse_duration("007s") == ms(7000));
  CHECK(parse_duration("86400000ms") == ms(86400000));  // a day: the upper bound
  CHECK_FALSE(parse_duration("9223372036854775807ms"));
  for (const char* bad : {"",
                          "s",
                          "ms",
                          "abc",
                          "-1s",
                          "-1",
                          "+5s",
                          "1.5s",
                          "5 s",
                          " 5s",
                          "5s ",
                          "5S",
                          "5MS",
                          "1h",
                          "1d",
                          "1us",
                          "5sec",
                          "5m5s",
                          "0x10",
                          "99999999999999999999",
                          "99999999999999999999ms"}) {
    INFO("'" << bad << "'");
    CHECK_FALSE(parse_duration(bad));
  }
}

// See "GET with a timeout that overflows is refused": api-shim/shim.cpp:158-160.
TEST_CASE("parse_duration refuses durations that do not fit in milliseconds", "[shim]") {
  using repl::shim::parse_duration;
  for (const char* big : {"18446744073709552s", "307445734561826m", "9223372036854775807s"}) {
    INFO(big);
    const auto d = parse_duration(big);
    CHECK((!d || *d > std::chrono::hours(24 * 365)));
  }
}

TEST_CASE("requests are counted by route and code, and timed by route", "[shim]") {
  Harness h;
  REQUIRE(h.handle(start("abc", "alice")).status == 201);
  REQUIRE(h.handle(start("def", "alice")).status == 201);
  REQUIRE(h.handle(start("abc", "alice")).status == 200);
  REQUIRE(h.handle(post("/start", "{")).status == 400);
  REQUIRE(h.handle(http_request("GET", "/repls/abc")).status == 200);
  REQUIRE(h.handle(http_request("GET", "/repls/zzz")).status == 404);
  REQUIRE(h.handle(post("/stop", R"({"replId": "abc", "userId": "alice"})")).status == 200);
  REQUIRE(h.handle(http_request("GET", "/healthz")).status == 200);
  REQUIRE(h.handle(http_request("GET", "/nope")).status == 404);

  const std::string text = h.registry.render();
  INFO(text);
  for (const char* line : {
           "# TYPE repl_shim_requests_total counter\n",
           "repl_shim_requests_total{code=\"201\",route=\"start\"} 2\n",
           "repl_shim_requests_total{code=\"200\",route=\"start\"} 1\n",
           "repl_shim_requests_total{code=\"400\",route=\"start\"} 1\n",
           "repl_shim_requests_total{code=\"200\",route=\"repl\"} 1\n",
           "repl_shim_requests_total{code=\"404\",route=\"repl\"} 1\n",
           "repl_shim_requests_total{code=\"200\",route=\"stop\"} 1\n",
           "repl_shim_requests_total{code=\"200\",route=\"healthz\"} 1\n",
           "repl_shim_requests_total{code=\"404\",route=\"other\"} 1\n",
           "# TYPE repl_shim_request_duration_seconds histogram\n",
           "repl_shim_request_duration_seconds_bucket{route=\"start\",le=\"+Inf\"} 4\n",
           "repl_shim_request_duration_seconds_count{route=\"start\"} 4\n",
           "repl_shim_request_duration_seconds_bucket{route=\"start\",le=\"10\"} 4\n",
           "repl_shim_request_duration_seconds_count{route=\"repl\"} 2\n",
           "repl_shim_request_duration_seconds_count{route=\"other\"} 1\n",
       }) {
    CHECK_THAT(text, Catch::Contains(line));
  }
  CHECK_THAT(text, Catch::Contains("repl_shim_request_duration_seconds_sum{route=\"start\"} "));

  SECTION("served on GET /metrics") {
    const HttpReply metrics = h.handle(http_request("GET", "/metrics"));
    REQUIRE(metrics.status == 200);
    CHECK_THAT(metrics.body, Catch::Contains("repl_shim_requests_total{code=\"201\",route=\"start\"} 2\n"));
  }
}

}  // namespace

TEST_CASE("/start dates the Repl's last activity; /stop keeps it", "[shim][activity]") {
  Harness h;
  h.clock.advance(90s);
  REQUIRE(h.handle(post("/start", R"({"replId":"abc","userId":"alice"})")).status == 201);
  CHECK(h.api.repls.at("abc").last_activity == "2026-01-01T00:01:30Z");
  h.clock.advance(10min);
  REQUIRE(h.handle(post("/stop", R"({"replId":"abc","userId":"alice"})")).status == 200);
  CHECK(h.api.calls_of(Call::kApply).back().start.last_activity == "2026-01-01T00:01:30Z");
  CHECK(h.api.repls.at("abc").last_activity == "2026-01-01T00:01:30Z");
  CHECK(h.api.repls.at("abc").spec.suspended);
  // A resume is activity.
  REQUIRE(h.handle(post("/start", R"({"replId":"abc","userId":"alice"})")).status == 200);
  CHECK(h.api.repls.at("abc").last_activity == "2026-01-01T00:11:30Z");
}

TEST_CASE("POST /repls/{id}/heartbeat records activity, at most once a minute, for the owner only",
          "[shim][activity]") {
  Harness h;
  h.api.add("abc", "alice");
  const auto beat = [&h](const std::string& body, const std::string& id = "abc") {
    return h.handle(post("/repls/" + id + "/heartbeat", body));
  };
  h.clock.advance(5s);
  auto r = beat(R"({"userId":"alice"})");
  CHECK(r.status == 200);
  CHECK(string_at(repl::test::parse_json(r.body), "/replId") == "abc");
  REQUIRE(h.api.count(Call::kRecordActivity) == 1);
  CHECK(h.api.calls_of(Call::kRecordActivity)[0].at == "2026-01-01T00:00:05Z");

  SECTION("heartbeats within the minute write nothing") {
    h.clock.advance(59s);
    CHECK(beat(R"({"userId":"alice"})").status == 200);
    CHECK(h.api.count(Call::kRecordActivity) == 1);
    h.clock.advance(1s);
    CHECK(beat(R"({"userId":"alice"})").status == 200);
    CHECK(h.api.count(Call::kRecordActivity) == 2);
    CHECK(h.api.repls.at("abc").last_activity == "2026-01-01T00:01:05Z");
  }
  SECTION("the userId may come in the query, as for DELETE") {
    h.clock.advance(2min);
    CHECK(h.handle(http_request("POST", "/repls/abc/heartbeat?userId=alice")).status == 200);
    CHECK(h.api.count(Call::kRecordActivity) == 2);
  }
  SECTION("another user's repl: 409, nothing written") {
    h.clock.advance(2min);
    r = beat(R"({"userId":"mallory"})");
    CHECK(r.status == 409);
    CHECK(h.api.count(Call::kRecordActivity) == 1);
  }
  SECTION("refused input writes nothing, and reads nothing when the request alone is wrong") {
    h.clock.advance(2min);
    const auto gets = h.api.count(Call::kGet);
    CHECK(beat(R"({"userId":"alice"})", "Bad_Id").status == 400);
    CHECK(beat(R"({"userId":"no spaces"})").status == 400);
    CHECK(beat(R"({"userId":"alice","extra":1})").status == 400);
    CHECK(h.handle(http_request("GET", "/repls/abc/heartbeat")).status == 405);
    CHECK(h.api.count(Call::kGet) == gets);
    CHECK(beat(R"({"userId":"alice"})", "nobody").status == 404);
    CHECK(h.api.count(Call::kRecordActivity) == 1);
  }
  SECTION("the API server failing: its status, not a 500 of ours") {
    h.clock.advance(2min);
    h.api.failures[Call::kRecordActivity] =
        repl::kube::ApiError{repl::kube::ApiError::Kind::kApi, 429, "TooManyRequests", "slow down"};
    CHECK(beat(R"({"userId":"alice"})").status == 503);
  }
}

// ---------------------------------------------------------------------------------------------
// JWT authentication: the user is the token's.

namespace {

const repl::test::Minter& jwt_key() {
  static const repl::test::Minter m = repl::test::Minter::p256("k1");
  return m;
}

ShimOptions with_jwt(std::string shared_token = "") {
  ShimOptions o;
  o.auth_token = std::move(shared_token);
  auto keys = repl::auth::KeySet::parse(repl::test::jwks_of({jwt_key().jwk()}), {});
  REQUIRE(keys);
  auto shared = std::make_shared<const repl::auth::KeySet>(std::move(*keys));
  o.jwt_keys = [shared] { return shared; };
  o.jwt.issuer = "https://issuer.test";
  o.jwt.audience = "repl-shim";
  return o;
}

// A token for `subject`, valid for five minutes from the harness clock's start (2026-01-01).
std::string bearer(const std::string& subject, const std::string& extra = "") {
  return "Bearer " + jwt_key().sign(R"({"alg":"ES256","kid":"k1"})",
                                    R"({"sub":)" + json_string(subject) +
                                        R"(,"iss":"https://issuer.test","aud":"repl-shim","exp":1767225900)" +
                                        extra + "}");
}

IncomingRequest as(IncomingRequest r, const std::string& subject) {
  return with_header(std::move(r), "authorization", bearer(subject));
}

}  // namespace

TEST_CASE(
    "JWT: the token's user starts, reads, beats, stops and deletes its own repls; another user's token "
    "gets 404 or 409 and changes nothing",
    "[shim][jwt]") {
  Harness h(with_jwt());
  // No userId in the body: the token's.
  auto r = h.handle(as(post("/start", R"({"replId":"abc"})"), "alice"));
  REQUIRE(r.status == 201);
  CHECK(h.api.repls.at("abc").spec.user_id == "alice");
  CHECK(h.api.repls.at("abc").subject == "alice");
  CHECK(h.handle(as(http_request("GET", "/repls/abc"), "alice")).status == 200);
  h.clock.advance(2min);
  CHECK(h.handle(as(post("/repls/abc/heartbeat", ""), "alice")).status == 200);
  CHECK(h.api.count(Call::kRecordActivity) == 1);

  const std::string version = h.api.repls.at("abc").resource_version;
  // Mallory's valid token: the repl is not hers to see, beat, stop or delete.
  CHECK(h.handle(as(http_request("GET", "/repls/abc"), "mallory")).status == 404);
  CHECK(h.handle(as(post("/repls/abc/heartbeat", ""), "mallory")).status == 409);
  CHECK(h.handle(as(post("/stop", R"({"replId":"abc"})"), "mallory")).status == 409);
  CHECK(h.handle(as(http_request("DELETE", "/repls/abc"), "mallory")).status == 409);
  CHECK(h.handle(as(post("/start", R"({"replId":"abc"})"), "mallory")).status == 409);
  // (Her /start is an apply the API server refuses: the CRD's userId immutability, as for any caller.)
  CHECK(h.api.repls.at("abc").resource_version == version);
  CHECK(h.api.count(Call::kRecordActivity) == 1);
  CHECK(h.api.count(Call::kRemove) == 0);
  CHECK_FALSE(h.api.repls.at("abc").spec.suspended);

  CHECK(h.handle(as(post("/stop", R"({"replId":"abc"})"), "alice")).status == 200);
  CHECK(h.api.repls.at("abc").spec.suspended);
  CHECK(h.api.repls.at("abc").subject == "alice");  // kept by the stop's apply
  CHECK(h.handle(as(http_request("DELETE", "/repls/abc"), "alice")).status == 200);
  CHECK_FALSE(h.api.repls.contains("abc"));
}

TEST_CASE("JWT: a userId naming another user than the token's is 403 and writes nothing", "[shim][jwt]") {
  Harness h(with_jwt());
  h.api.add("bobs", "bob");
  for (const auto& request : {post("/start", R"({"replId":"abc","userId":"bob"})"),
                              post("/stop", R"({"replId":"bobs","userId":"bob"})"),
                              post("/repls/bobs/heartbeat", R"({"userId":"bob"})"),
                              http_request("DELETE", "/repls/bobs?userId=bob")}) {
    INFO(request.method << " " << request.path);
    const auto r = h.handle(as(request, "alice"));
    CHECK(r.status == 403);
    CHECK(string_at(repl::test::parse_json(r.body), "/field") == "userId");
  }
  CHECK(h.api.count(Call::kApply) == 0);
  CHECK(h.api.count(Call::kGet) == 0);
  CHECK(h.api.count(Call::kRemove) == 0);
  // Its own, named: as if not named.
  CHECK(h.handle(as(post("/start", R"({"replId":"abc","userId":"alice"})"), "alice")).status == 201);
}

TEST_CASE("JWT: a subject that is not a label value becomes x-<hash>; the raw subject is kept and accepted",
          "[shim][jwt]") {
  Harness h(with_jwt());
  const std::string subject = "auth0|abc123";
  const std::string user = repl::auth::user_id_for(subject);
  REQUIRE(user.rfind("x-", 0) == 0);
  REQUIRE(h.handle(as(post("/start", R"({"replId":"abc"})"), subject)).status == 201);
  CHECK(h.api.repls.at("abc").spec.user_id == user);
  CHECK(h.api.repls.at("abc").subject == subject);
  // The frontend may name its user either way.
  CHECK(h.handle(as(post("/start", R"({"replId":"abc","userId":"auth0|abc123"})"), subject)).status == 200);
  CHECK(h.handle(as(post("/start", json_object({{"replId", "abc"}, {"userId", user}})), subject)).status ==
        200);
  CHECK(string_at(repl::test::parse_json(h.handle(as(http_request("GET", "/repls/abc"), subject)).body),
                  "/userId") == user);
}

TEST_CASE("JWT: no token or a refused one is 401 (invalid_token), and nothing is read or written",
          "[shim][jwt]") {
  Harness h(with_jwt());
  const auto calls = [&h] { return h.api.calls.size(); };
  const auto unauthorized = [&h](const IncomingRequest& request) {
    const auto r = h.handle(request);
    CHECK(r.status == 401);
    return reply_header(r, "WWW-Authenticate").value_or("");
  };
  CHECK(unauthorized(post("/start", R"({"replId":"abc","userId":"alice"})")) == "Bearer");
  for (const std::string& token :
       {std::string("not-a-jwt"), bearer("alice").substr(7, 40),
        bearer("alice", R"(,"nbf":1767226000)").substr(7),
        jwt_key().sign(R"({"alg":"none"})", R"({"sub":"alice","exp":1767225900})"),
        repl::test::Minter::p256("k1").sign(R"({"alg":"ES256","kid":"k1"})",
                                            R"({"sub":"alice","iss":"https://issuer.test","aud":"repl-shim",)"
                                            R"("exp":1767225900})"),
        std::string(64 * 1024, 'a')}) {
    INFO(token.substr(0, 60));
    CHECK(unauthorized(with_header(post("/start", R"({"replId":"abc"})"), "authorization",
                                   "Bearer " + token)) == R"(Bearer error="invalid_token")");
  }
  // Expired since: the same token five minutes and a skew later.
  const std::string alices = bearer("alice");
  h.clock.advance(5min + 31s);
  CHECK(unauthorized(with_header(post("/start", R"({"replId":"abc"})"), "authorization", alices)) ==
        R"(Bearer error="invalid_token")");
  CHECK(calls() == 0);
  // Health, readiness and metrics need no token.
  CHECK(h.handle(http_request("GET", "/healthz")).status == 200);
}

TEST_CASE("JWT beside the shared token: the shared token is a trusted backend's, naming any user",
          "[shim][jwt]") {
  Harness h(with_jwt(kToken));
  CHECK(h.handle(start("abc", "carol", {{"authorization", std::string("Bearer ") + kToken}})).status == 201);
  CHECK(h.api.repls.at("abc").spec.user_id == "carol");
  CHECK(h.api.repls.at("abc").subject.empty());
  CHECK(h.handle(as(http_request("GET", "/repls/abc"), "alice")).status == 404);
  CHECK(h.handle(as(post("/start", R"({"replId":"def"})"), "alice")).status == 201);
}

TEST_CASE("with quotas, /readyz and /start wait until the running Repls are listed", "[shim][quota]") {
  repl::ManualClock quota_clock;
  repl::shim::Quota quota({3, 0, 30s}, quota_clock);
  ShimOptions o;
  o.quota = &quota;
  Harness h(o);
  require_error(h.handle(http_request("GET", "/readyz")), 503, std::nullopt);
  const HttpReply early = h.handle(start("abc", "alice"));
  require_error(early, 503, std::nullopt);
  CHECK(reply_header(early, "Retry-After") == "1");
  CHECK(h.api.count(Call::kApply) == 0);
  quota.begin_resync();
  quota.end_resync();
  CHECK(h.handle(http_request("GET", "/readyz")).status == 200);
  CHECK(h.handle(start("abc", "alice")).status == 201);
}

TEST_CASE("quotas and rate limits at /start: 429 naming the limit, nothing applied", "[shim][quota]") {
  repl::ManualClock quota_clock;
  repl::shim::Quota quota({1, 0, 30s}, quota_clock);
  quota.begin_resync();
  quota.end_resync();
  ShimOptions o;
  o.quota = &quota;
  o.rate_per_minute = 60;
  o.rate_burst = 2;
  Harness h(o);
  REQUIRE(h.handle(start("abc", "alice")).status == 201);
  auto r = h.handle(start("def", "alice"));
  require_error(r, 429, std::nullopt);
  CHECK_THAT(string_at(repl::test::parse_json(r.body), "/message"),
             Catch::Contains("already runs 1 repls") && Catch::Contains("--max-repls-per-user"));
  CHECK_FALSE(h.api.repls.contains("def"));
  // The rate limit: alice's two writes are spent (the refused start was one).
  r = h.handle(post("/stop", R"({"replId":"abc","userId":"alice"})"));
  require_error(r, 429, std::nullopt);
  CHECK(reply_header(r, "Retry-After") == "1");
  CHECK_FALSE(h.api.repls.at("abc").spec.suspended);
  h.clock.advance(1s);
  CHECK(h.handle(post("/stop", R"({"replId":"abc","userId":"alice"})")).status == 200);
  CHECK(h.handle(start("xyz", "bob")).status == 201);  // bob's own quota and bucket
}
