// The API shim's request handling: POST /start, GET /repls/{replId}[?wait=ready&timeout=30s],
// POST /stop, DELETE /repls/{replId}?userId=..., GET /healthz, /readyz, /metrics, and CORS
// preflights. It turns frontend calls into Repl objects (through ReplApi) and never creates
// Deployments itself.
//
// Every answer is JSON. A client's mistake gets a 4xx with {error, field, message} and changes
// nothing: the body is checked (size, media type, JSON, UTF-8, field types, the same id rules as
// the CRD, via lib/repl/validation) before any request to Kubernetes. When the API server cannot be
// reached the answer is 503 with Retry-After, never a 500.
//
// handle() blocks while it calls the API server: call it from the shim's own worker threads, not
// from the HTTP library's. It answers through `respond`, before it returns, except for wait=ready:
// that answer comes later, from the ReplApi's thread, and holds no thread meanwhile.
//
// Thread-safety: handle() from any number of threads at once. The Shim must outlive every answer
// still to come (the ReplApi's waits ended, e.g. ReadyWaiters::finish_all()).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/histogram.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "auth/jwt.hpp"
#include "common/clock.hpp"
#include "common/metrics.hpp"
#include "kube/http_server.hpp"
#include "limits.hpp"
#include "repl_api.hpp"

namespace repl::shim {

struct ShimOptions {
  // The shared bearer token of trusted backends, which name the user in the request; empty: none.
  std::string auth_token;
  // JWT authentication, on when set: a bearer token that is not auth_token must be a JWT signed by
  // one of these keys (read when a request comes: they may change), and the user is the token's.
  std::function<std::shared_ptr<const auth::KeySet>()> jwt_keys;
  auth::VerifyOptions jwt;
  std::vector<std::string> cors_origins;  // exact origins, e.g. "https://app.example.com"
  std::string default_user;               // userId for requests that send only a replId
  std::chrono::seconds max_wait{60};      // upper bound of ?timeout=
  // A heartbeat writes the Repl's last activity only when what it holds is older than this: the
  // idle timeout is counted in minutes, and each write is a Repl update every watcher sees.
  std::chrono::seconds activity_interval{60};
  // Running Repls per user and in all (not owned; null: no limits), and a token bucket per user on
  // /start, /stop, DELETE and heartbeats (0 a minute: none).
  Quota* quota = nullptr;
  int rate_per_minute = 0;
  int rate_burst = 10;
};

// The JSON error body: {"error": code, "field": field or null, "message": message}.
kube::HttpReply error_reply(int status, const std::string& code, const std::string& field,
                            const std::string& message);

// "30s", "2m", "500ms", or a bare number of seconds; std::nullopt if malformed.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

// Routes: POST /start, POST /stop, GET /repls/{id}[?wait=ready], DELETE /repls/{id},
// POST /repls/{id}/heartbeat (the frontend, while the repl's tab is open: its last activity, which
// the idle timeout counts from), /healthz, /readyz, /metrics.
class Shim final {
 public:
  // `clock` times the answers (repl_shim_request_duration_seconds) and dates the activity.
  Shim(ShimOptions options, ReplApi& api, Clock& clock, metrics::Registry& registry);

  void handle(const kube::IncomingRequest& request, kube::Responder respond);

 private:
  // Who is calling: a trusted caller (no authentication, or the shared token) names the user in
  // the request; a JWT's bearer is the token's user, and only that user.
  struct Caller {
    bool trusted = true;
    std::string user_id;  // JWT: auth::user_id_for(subject)
    std::string subject;  // JWT: the user claim as issued
  };
  // A valid GET ?wait=ready: answered once the ReplApi's wait ends.
  struct WaitReady {
    std::string repl_id;
    std::chrono::milliseconds timeout;
    std::string owner;  // a JWT caller's user: another user's Repl is "no such repl"; empty: anyone's
  };
  using Routed = std::variant<kube::HttpReply, WaitReady>;

  Routed route(const kube::IncomingRequest& request, std::string& route_name);
  kube::HttpReply start(const kube::IncomingRequest& request, const Caller& caller);
  kube::HttpReply stop(const kube::IncomingRequest& request, const Caller& caller);
  Routed get(const kube::IncomingRequest& request, const std::string& repl_id, const Caller& caller);
  kube::HttpReply remove(const kube::IncomingRequest& request, const std::string& repl_id,
                         const Caller& caller);
  kube::HttpReply heartbeat(const kube::IncomingRequest& request, const std::string& repl_id,
                            const Caller& caller);
  // The userId of a request naming a Repl in its path: from the body or the query (see user_for).
  Result<std::string, kube::HttpReply> requested_user(const kube::IncomingRequest& request,
                                                      const Caller& caller) const;
  // The user a request acts as: a trusted caller's `given` (else the default user), validated; a
  // JWT caller's own, and a `given` that names another is 403.
  Result<std::string, kube::HttpReply> user_for(const Caller& caller,
                                                const std::optional<std::string>& given) const;
  kube::HttpReply preflight(const kube::IncomingRequest& request);
  bool origin_allowed(const std::string& origin) const;
  Result<Caller, kube::HttpReply> authenticate(const kube::IncomingRequest& request) const;
  // 429 naming the limit when starting `repl_id` would put `user` or the platform over its quota.
  // `*reserved`: whether a reservation was made for it (to give back if the start fails).
  std::optional<kube::HttpReply> admit(const std::string& repl_id, const std::string& user, bool* reserved);
  // 429 with Retry-After when `user` has spent its writes for now.
  std::optional<kube::HttpReply> rate_limited(const std::string& user);

  const ShimOptions options_;
  ReplApi& api_;  // not owned
  Clock& clock_;  // not owned
  metrics::Registry& registry_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& latency_;
  std::unique_ptr<TokenBuckets> buckets_;  // null: no rate limit
};

}  // namespace repl::shim
