// ApiError: decoding the API server's metav1.Status (and bodies that are not one), the
// predicates callers branch on, and the one-line description for logs.
#include "kube/error.hpp"

#include <catch2/catch.hpp>
#include <string>

namespace {

using repl::kube::ApiError;
using repl::kube::decode_status;

// Bodies as kube-apiserver sends them.
const char* const kNotFound =
    R"json({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)json"
    R"json("message":"repls.peetcode.com \"abc\" not found","reason":"NotFound",)json"
    R"json("details":{"name":"abc","group":"peetcode.com","kind":"repls"},"code":404})json";
const char* const kAlreadyExists =
    R"json({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)json"
    R"json("message":"deployments.apps \"abc\" already exists","reason":"AlreadyExists",)json"
    R"json("details":{"name":"abc","group":"apps","kind":"deployments"},"code":409})json";
const char* const kConflict =
    R"json({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Operation cannot be )json"
    R"json(fulfilled on repls.peetcode.com \"abc\": the object has been modified; please apply your changes to )json"
    R"json(the latest version and try again","reason":"Conflict","details":{"name":"abc","group":"peetcode.com",)json"
    R"json("kind":"repls"},"code":409})json";
const char* const kExpired =
    R"json({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)json"
    R"json("message":"too old resource version: 100 (250)","reason":"Expired","code":410})json";
const char* const kInvalid =
    R"json({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)json"
    R"json("message":"Repl.peetcode.com \"Bad\" is invalid: spec.userId: Invalid value: \"-x\": spec.userId in body )json"
    R"json(should match '^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$'","reason":"Invalid","details":{"name":"Bad",)json"
    R"json("group":"peetcode.com","kind":"Repl","causes":[{"reason":"FieldValueInvalid","message":"Invalid value",)json"
    R"json("field":"spec.userId"}]},"code":422})json";

struct Predicates {
  bool not_found, conflict, gone, invalid;
  bool operator==(const Predicates&) const = default;
};

Predicates predicates(const ApiError& e) {
  return {e.is_not_found(), e.is_conflict(), e.is_gone(), e.is_invalid()};
}

}  // namespace

TEST_CASE("decode_status reads the reason and message of a metav1.Status", "[kube][error]") {
  struct Case {
    int code;
    const char* body;
    const char* reason;
    const char* message;
    Predicates expected;
  };
  for (const Case& c : {
           Case{404,
                kNotFound,
                "NotFound",
                "repls.peetcode.com \"abc\" not found",
                {true, false, false, false}},
           Case{409,
                kAlreadyExists,
                "AlreadyExists",
                "deployments.apps \"abc\" already exists",
                {false, true, false, false}},
           Case{409, kConflict, "Conflict", "Operation cannot be fulfilled", {false, true, false, false}},
           Case{410, kExpired, "Expired", "too old resource version: 100 (250)", {false, false, true, false}},
           Case{422,
                kInvalid,
                "Invalid",
                "Repl.peetcode.com \"Bad\" is invalid: spec.userId: Invalid value",
                {false, false, false, true}},
       }) {
    INFO(c.body);
    const ApiError e = decode_status(c.code, c.body);
    CHECK(e.kind == ApiError::Kind::kApi);
    CHECK(e.code == c.code);
    CHECK(e.reason == c.reason);
    CHECK_THAT(e.message, Catch::StartsWith(c.message));
    CHECK(predicates(e) == c.expected);
  }
}

TEST_CASE("decode_status of a body that is not a Status keeps the HTTP code and an excerpt",
          "[kube][error]") {
  SECTION("an HTML page from a proxy") {
    const std::string html = "<html><head><title>503 Service Temporarily Unavailable</title></head>" +
                             std::string(300, ' ') + "</html>";
    const ApiError e = decode_status(503, html);
    CHECK(e.kind == ApiError::Kind::kApi);
    CHECK(e.code == 503);
    CHECK(e.reason == "ServiceUnavailable");
    CHECK(e.message == html.substr(0, 200));
  }
  SECTION("an empty body") {
    const ApiError e = decode_status(500, "");
    CHECK(e.reason == "InternalError");
    CHECK(e.message == "empty response body");
  }
  SECTION("JSON that is not a Status") {
    const ApiError e = decode_status(404, R"({"message":"hello"})");
    CHECK(e.reason == "NotFound");
    CHECK(e.message == R"({"message":"hello"})");
  }
  SECTION("a Status without a reason takes the code's") {
    const ApiError e = decode_status(410, R"({"kind":"Status","message":"gone away","code":410})");
    CHECK(e.reason == "Expired");
    CHECK(e.message == "gone away");
    CHECK(e.is_gone());
  }
  SECTION("an unusual code") { CHECK(decode_status(418, "").reason == "Unknown"); }
}

TEST_CASE("the predicates need an API error with the right code or reason", "[kube][error]") {
  CHECK(decode_status(410, "").is_gone());
  CHECK(ApiError{ApiError::Kind::kApi, 500, "Expired", ""}.is_gone());
  CHECK(ApiError{ApiError::Kind::kApi, 500, "Gone", ""}.is_gone());
  CHECK_FALSE(decode_status(500, "").is_gone());
  for (const ApiError& e :
       {repl::kube::transport_error("connection refused"), repl::kube::decode_error("bad JSON"),
        ApiError{ApiError::Kind::kTransport, 404, "Expired", "x"}}) {
    CHECK(predicates(e) == Predicates{false, false, false, false});
  }
  CHECK(repl::kube::transport_error("x").kind == ApiError::Kind::kTransport);
  CHECK(repl::kube::decode_error("x").kind == ApiError::Kind::kDecode);
}

TEST_CASE("describe gives one line naming the kind of failure", "[kube][error]") {
  CHECK(decode_status(404, kNotFound).describe() == "404 NotFound: repls.peetcode.com \"abc\" not found");
  CHECK(repl::kube::transport_error("connection refused").describe() == "transport: connection refused");
  CHECK(repl::kube::decode_error("response is not JSON").describe() == "decode: response is not JSON");
}

// The excerpt is logged as JSON: a multi-byte character on the 200-byte boundary is not split.
TEST_CASE("the excerpt of a non-Status body is valid UTF-8", "[kube][error]") {
  const ApiError e = decode_status(502, std::string(199, 'x') + "\xC3\xBC and more");
  const std::string& m = e.message;
  // A lead byte of a two-byte sequence must be followed by its continuation byte.
  REQUIRE_FALSE(m.empty());
  CHECK((static_cast<unsigned char>(m.back()) & 0xE0) != 0xC0);
}

TEST_CASE("Retry-After is read from the header and from the Status's details, the longer wins",
          "[kube][error]") {
  using namespace std::chrono_literals;
  const std::string throttled =
      R"({"kind":"Status","apiVersion":"v1","status":"Failure","message":"too many requests",)"
      R"("reason":"TooManyRequests","details":{"retryAfterSeconds":4},"code":429})";
  CHECK(decode_status(429, throttled).retry_after == 4s);
  CHECK(decode_status(429, throttled, "9").retry_after == 9s);
  CHECK(decode_status(429, throttled, "1").retry_after == 4s);
  CHECK(decode_status(503, "<html>busy</html>", " 3 ").retry_after == 3s);
  CHECK(decode_status(500, "").retry_after == 0s);
}

TEST_CASE("parse_retry_after takes delta-seconds only, and caps them", "[kube][error]") {
  using namespace std::chrono_literals;
  using repl::kube::parse_retry_after;
  CHECK(parse_retry_after("0") == 0s);
  CHECK(parse_retry_after("120") == 120s);
  CHECK(parse_retry_after("86400") == repl::kube::kMaxRetryAfter);
  CHECK(parse_retry_after("99999999999999999999") == 0s);  // too long to be a number of ours
  for (const char* bad : {"", " ", "-1", "1.5", "3s", "Wed, 21 Oct 2026 07:28:00 GMT", "0x10"}) {
    INFO(bad);
    CHECK(parse_retry_after(bad) == 0s);
  }
  const std::string with_bad_details =
      R"({"kind":"Status","code":429,"reason":"TooManyRequests","details":{"retryAfterSeconds":"soon"}})";
  CHECK(decode_status(429, with_bad_details).retry_after == 0s);
  const std::string with_huge_details =
      R"({"kind":"Status","code":429,"reason":"TooManyRequests","details":{"retryAfterSeconds":100000}})";
  CHECK(decode_status(429, with_huge_details).retry_after == repl::kube::kMaxRetryAfter);
}
