// Errors of calls to the Kubernetes API, as values.
//
// A call fails in one of three ways: the server answered with a non-2xx status (kApi, carrying the
// server's own metav1.Status: code, reason, message), the server could not be reached or the
// connection broke (kTransport), or the server answered 2xx with a body we could not understand
// (kDecode). Callers branch on reason(), not on message text.
//
// Pure value types and functions; thread-safe.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace repl::kube {

struct ApiError {
  enum class Kind { kApi, kTransport, kDecode };
  Kind kind = Kind::kTransport;
  int code = 0;         // HTTP status for kApi; 0 otherwise
  std::string reason;   // Status.reason, e.g. "NotFound", "Conflict", "Invalid", "Expired"
  std::string message;  // Status.message, or a description of the transport/decode failure
  // How long the server asked us to wait before trying again (429 and 503 carry it: the
  // Retry-After header, or the Status's details.retryAfterSeconds); zero when it did not say.
  std::chrono::seconds retry_after{0};

  bool is_not_found() const { return kind == Kind::kApi && code == 404; }
  bool is_conflict() const { return kind == Kind::kApi && code == 409; }
  // 410 Gone: the requested resourceVersion is too old; the caller must list again.
  bool is_gone() const {
    return kind == Kind::kApi && (code == 410 || reason == "Expired" || reason == "Gone");
  }
  bool is_invalid() const { return kind == Kind::kApi && code == 422; }
  // A write this process refused to send: it is not (or may no longer be) the leader.
  bool is_fenced() const { return kind == Kind::kTransport && reason == "NotLeader"; }

  // One line for logs: "422 Invalid: Repl.peetcode.com \"x\" is invalid: ..."
  std::string describe() const;
};

// Builds the error for a non-2xx answer from its status code, body and Retry-After header (as
// received, "" when absent). The body is normally a metav1.Status; anything else (an HTML page from
// a proxy, nothing at all) still gives an error with the HTTP status and a reason derived from it.
ApiError decode_status(int http_status, std::string_view body, std::string_view retry_after = {});

// Retry-After in delta-seconds ("3"), at most kMaxRetryAfter (a server, or a proxy, asking for an
// hour is not obeyed for an hour: the backoff goes on from there); zero for anything else (an
// HTTP-date, which the API server never sends, or garbage).
inline constexpr std::chrono::seconds kMaxRetryAfter{300};
std::chrono::seconds parse_retry_after(std::string_view value);

ApiError transport_error(std::string message);
ApiError fenced_error(std::string message);
ApiError decode_error(std::string message);

}  // namespace repl::kube
