#include "kube/error.hpp"

#include <rapidjson/document.h>

#include <algorithm>

namespace repl::kube {
namespace {

// The reasons the API server uses for these codes (k8s.io/apimachinery StatusReason).
const char* reason_for_code(int code) {
  switch (code) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 405:
      return "MethodNotAllowed";
    case 406:
      return "NotAcceptable";
    case 409:
      return "Conflict";
    case 410:
      return "Expired";
    case 413:
      return "RequestEntityTooLarge";
    case 415:
      return "UnsupportedMediaType";
    case 422:
      return "Invalid";
    case 429:
      return "TooManyRequests";
    case 500:
      return "InternalError";
    case 503:
      return "ServiceUnavailable";
    case 504:
      return "Timeout";
    default:
      return "Unknown";
  }
}

}  // namespace

std::string ApiError::describe() const {
  switch (kind) {
    case Kind::kApi:
      return std::to_string(code) + " " + reason + ": " + message;
    case Kind::kTransport:
      return "transport: " + message;
    case Kind::kDecode:
      return "decode: " + message;
  }
  return message;
}

std::chrono::seconds parse_retry_after(std::string_view value) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.empty() || value.size() > 9) return std::chrono::seconds{0};
  long long n = 0;
  for (const char c : value) {
    if (c < '0' || c > '9') return std::chrono::seconds{0};
    n = n * 10 + (c - '0');
  }
  return std::min(std::chrono::seconds{n}, kMaxRetryAfter);
}

ApiError decode_status(int http_status, std::string_view body, std::string_view retry_after) {
  ApiError err{ApiError::Kind::kApi, http_status, reason_for_code(http_status), ""};
  err.retry_after = parse_retry_after(retry_after);
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  if (!doc.HasParseError() && doc.IsObject()) {
    const auto kind = doc.FindMember("kind");
    if (kind != doc.MemberEnd() && kind->value.IsString() &&
        std::string_view(kind->value.GetString()) == "Status") {
      if (auto m = doc.FindMember("reason");
          m != doc.MemberEnd() && m->value.IsString() && m->value.GetStringLength())
        err.reason = m->value.GetString();
      if (auto m = doc.FindMember("message"); m != doc.MemberEnd() && m->value.IsString())
        err.message = m->value.GetString();
      if (auto d = doc.FindMember("details"); d != doc.MemberEnd() && d->value.IsObject()) {
        if (auto r = d->value.FindMember("retryAfterSeconds");
            r != d->value.MemberEnd() && r->value.IsInt64() && r->value.GetInt64() > 0) {
          err.retry_after =
              std::max(err.retry_after, std::min(std::chrono::seconds{r->value.GetInt64()}, kMaxRetryAfter));
        }
      }
      return err;
    }
  }
  // Not a Status: keep a bounded excerpt of what came back, for the log line, cut before a UTF-8
  // continuation byte so no character is split.
  std::size_t cut = std::min<std::size_t>(body.size(), 200);
  while (cut < body.size() && cut > 0 && (static_cast<unsigned char>(body[cut]) & 0xC0) == 0x80) --cut;
  err.message = body.empty() ? "empty response body" : std::string(body.substr(0, cut));
  return err;
}

ApiError transport_error(std::string message) {
  return {ApiError::Kind::kTransport, 0, "", std::move(message)};
}
ApiError fenced_error(std::string message) {
  return {ApiError::Kind::kTransport, 0, "NotLeader", std::move(message)};
}
ApiError decode_error(std::string message) { return {ApiError::Kind::kDecode, 0, "", std::move(message)}; }

}  // namespace repl::kube
