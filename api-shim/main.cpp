// repl-shim: wires flags, the kube client, the HTTP server and the Shim. Requests are answered on
// the shim's own worker threads (a Boost.Asio thread pool), as they call the API server; a
// wait=ready holds no thread while it waits: one watch of the namespace's Repls on the io_context
// ends the waits (ReadyWaiters), with timers of the same io_context. No logic lives here.
#include <sys/resource.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>
#include <future>
#include <iostream>
#include <sstream>
#include <thread>
#include <vector>

#include "common/clock.hpp"
#include "common/flags.hpp"
#include "common/log.hpp"
#include "common/metrics.hpp"
#include "jwks.hpp"
#include "kube/config.hpp"
#include "kube/http_get.hpp"
#include "kube/http_server.hpp"
#include "kube/incidents.hpp"
#include "kube/resource.hpp"
#include "kube/transport.hpp"
#include "kube/watcher.hpp"
#include "ready_waiters.hpp"
#include "repl_api.hpp"
#include "shim.hpp"

namespace {

constexpr int kIoThreads = 1;  // the HTTP server's connections and timers

bool https_or_loopback(const std::string& url) {
  if (url.rfind("https://", 0) == 0) return true;
  for (const char* local : {"http://127.0.0.1:", "http://127.0.0.1/",
                            "http://localhost:", "http://localhost/", "http://[::1]:", "http://[::1]/"}) {
    if (url.rfind(local, 0) == 0) return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace repl;
  // Each client connection is a file descriptor: take as many as the hard limit allows (the soft
  // limit is often 1,024). Past that, accepts pause and retry (kube::HttpServer).
  if (rlimit fds{}; getrlimit(RLIMIT_NOFILE, &fds) == 0 && fds.rlim_cur < fds.rlim_max) {
    fds.rlim_cur = fds.rlim_max;
    setrlimit(RLIMIT_NOFILE, &fds);
  }
  std::string listen = ":3002";
  std::string ns = "default";
  std::string kubeconfig;
  std::string token_file;
  std::string cors_origins;
  std::string default_user;
  int max_body_bytes = 16 * 1024;
  int workers = 64;
  int activity_interval = 60;
  std::string jwks_file;
  int jwks_poll = 5;
  std::string jwks_url, jwks_url_ca = "/etc/ssl/certs/ca-certificates.crt";
  int jwks_refresh = 300;
  int jwt_clock_skew = 30;
  bool jwt_allow_hs256 = false;
  shim::Quota::Limits quota_limits;
  shim::ShimOptions options;
  std::string log_level = "info";

  Flags flags(
      "repl-shim",
      "HTTP front for the Repl API: POST /start {userId, replId, language?} creates (or resumes) a Repl and\n"
      "answers {replId, userId, phase, ready, urls}; GET /repls/{replId}[?wait=ready&timeout=30s];\n"
      "POST /stop {userId, replId}; DELETE /repls/{replId}?userId=...; POST /repls/{replId}/heartbeat\n"
      "{userId} (the frontend, while the repl's tab is open); GET /healthz, /readyz, /metrics.");
  flags.add("listen", "SHIM_LISTEN", &listen, "address to listen on, [host]:port");
  flags.add("namespace", "SHIM_NAMESPACE", &ns, "namespace the Repls are created in");
  flags.add("kubeconfig", "", &kubeconfig, "kubeconfig file; without it $KUBECONFIG, then in-cluster config");
  flags.add("auth-token-file", "SHIM_AUTH_TOKEN_FILE", &token_file,
            "file holding the bearer token clients must send; auth is off when empty");
  flags.add("cors-origins", "SHIM_CORS_ORIGINS", &cors_origins, "comma-separated origins allowed by CORS");
  flags.add("default-user", "SHIM_DEFAULT_USER", &default_user,
            "userId for requests that send only a replId");
  flags.add("max-body-bytes", "SHIM_MAX_BODY_BYTES", &max_body_bytes,
            "largest request body accepted (413 beyond)");
  int read_timeout_ms = 10000, write_timeout_ms = 10000;
  flags.add("read-timeout-ms", "SHIM_READ_TIMEOUT_MS", &read_timeout_ms,
            "a client must send a whole request (head and body) within this, from its connection's opening "
            "or its previous answer, or the connection is closed (slow clients, idle keep-alives)");
  flags.add("write-timeout-ms", "SHIM_WRITE_TIMEOUT_MS", &write_timeout_ms,
            "a client must take an answer within this, or the connection is closed");
  flags.add("workers", "SHIM_WORKERS", &workers, "requests handled at once (waiting ones included)");
  flags.add("activity-interval", "SHIM_ACTIVITY_INTERVAL", &activity_interval,
            "seconds: a heartbeat writes a Repl's last activity only when it is older than this");
  flags.add("jwks-file", "SHIM_JWKS_FILE", &jwks_file,
            "JWT authentication: the JWKS file (RS256, ES256 keys) bearer JWTs are verified against, read "
            "again when it changes; a bearer equal to the --auth-token-file token stays a trusted backend's");
  flags.add("jwks-poll", "SHIM_JWKS_POLL", &jwks_poll, "seconds between two looks at the JWKS file");
  flags.add(
      "jwks-url", "SHIM_JWKS_URL", &jwks_url,
      "JWT authentication: the issuer's JWKS URL (its jwks_uri), fetched at start and every --jwks-refresh "
      "s; with --jwks-file too, both files' keys count");
  flags.add("jwks-refresh", "SHIM_JWKS_REFRESH", &jwks_refresh, "seconds between two fetches of --jwks-url");
  flags.add("jwks-url-ca", "SHIM_JWKS_URL_CA", &jwks_url_ca,
            "CA bundle an https --jwks-url is verified with");
  flags.add("jwt-issuer", "SHIM_JWT_ISSUER", &options.jwt.issuer,
            "the iss a JWT must carry (required with JWT)");
  flags.add(
      "jwt-audience", "SHIM_JWT_AUDIENCE", &options.jwt.audience,
      "an aud a JWT must carry (required with JWT: the issuer's tokens for other applications are refused)");
  flags.add("jwt-user-claim", "SHIM_JWT_USER_CLAIM", &options.jwt.user_claim,
            "the claim naming the user (its userId: the claim if label-safe, else x-<SHA-256 prefix>)");
  flags.add("jwt-clock-skew", "SHIM_JWT_CLOCK_SKEW", &jwt_clock_skew,
            "seconds of leeway for exp, nbf and iat");
  flags.add("jwt-allow-hs256", "SHIM_JWT_ALLOW_HS256", &jwt_allow_hs256,
            "also accept HS256 JWTs, signed with the JWKS file's \"oct\" keys (shared secrets)");
  flags.add("max-repls-per-user", "SHIM_MAX_REPLS_PER_USER", &quota_limits.per_user,
            "running (not suspended) repls one user may have; /start beyond is 429 (0: no limit)");
  flags.add("max-repls", "SHIM_MAX_REPLS", &quota_limits.total,
            "running repls in the namespace; /start beyond is 429 (0: no limit)");
  flags.add("rate-per-minute", "SHIM_RATE_PER_MINUTE", &options.rate_per_minute,
            "writes (/start, /stop, DELETE, heartbeats) one user may send a minute, beyond a burst: 429 with "
            "Retry-After (0: no limit)");
  flags.add("rate-burst", "SHIM_RATE_BURST", &options.rate_burst, "writes one user may send at once");
  flags.add("log-level", "SHIM_LOG_LEVEL", &log_level, "debug, info, warn or error");
  if (auto exit_code = flags.parse_main(argc, argv)) return *exit_code;

  const auto level = log::parse_level(log_level);
  if (!level || workers < 1 || max_body_bytes < 1 || read_timeout_ms < 1 || write_timeout_ms < 1 ||
      activity_interval < 1 || jwks_poll < 1 || jwks_refresh < 1 || jwt_clock_skew < 0 ||
      options.jwt.user_claim.empty() || quota_limits.per_user < 0 || quota_limits.total < 0 ||
      options.rate_per_minute < 0 || options.rate_burst < 1) {
    std::cerr
        << "repl-shim: --log-level must be debug, info, warn or error; --workers, --max-body-bytes, "
           "--read-timeout-ms, --write-timeout-ms, "
           "--activity-interval, --jwks-poll and --jwks-refresh positive; --jwt-clock-skew not negative; "
           "--jwt-user-claim not empty; --max-repls-per-user, --max-repls, --rate-per-minute not "
           "negative; --rate-burst positive\n";
    return 2;
  }
  log::set_level(*level);

  options.jwt.clock_skew = std::chrono::seconds(jwt_clock_skew);
  options.jwt.allow_hs256 = jwt_allow_hs256;
  options.default_user = default_user;
  options.activity_interval = std::chrono::seconds(activity_interval);
  std::stringstream origins(cors_origins);
  for (std::string o; std::getline(origins, o, ',');) {
    if (!o.empty()) options.cors_origins.push_back(o);
  }
  if (!token_file.empty()) {
    auto token = kube::read_file(token_file);
    if (!token) {
      log::error("cannot read the auth token", {{"error", token.error().message}});
      return 1;
    }
    options.auth_token = *token;
    while (!options.auth_token.empty() &&
           std::isspace(static_cast<unsigned char>(options.auth_token.back()))) {
      options.auth_token.pop_back();
    }
    if (options.auth_token.empty()) {
      log::error("the auth token file is empty", {{"file", token_file}});
      return 1;
    }
  }

  // Before the first client is made, or it cannot be sized (the workers wait on it, never hold it).
  if (!kube::limit_http_threads()) log::warn("the HTTP client's thread pool was started before it was sized");
  auto connection = kube::connect(kubeconfig);
  if (!connection) {
    log::error("cannot connect", {{"error", connection.error()}});
    return 1;
  }

  // One io_context carries the HTTP server's connections, its deadlines, the signals, the watch
  // of Repls and the waits' timers; requests are handled on the workers, which block while they
  // call the API server, so no connection waits for another.
  boost::asio::io_context io;
  auto io_work = boost::asio::make_work_guard(io);
  AsioClock clock(io.get_executor());
  kube::Client client(connection->transport, kube::incident_logger(clock));
  std::unique_ptr<shim::JwksFile> jwks;
  if (!jwks_file.empty()) {
    auto opened = shim::JwksFile::open(jwks_file, {jwt_allow_hs256}, clock, std::chrono::seconds(jwks_poll));
    if (!opened) {
      log::error("cannot use the JWKS file", {{"error", opened.error()}});
      return 1;
    }
    jwks = std::move(*opened);
  }
  std::unique_ptr<shim::JwksUrl> issuer_keys;
  if (!jwks_url.empty() && !https_or_loopback(jwks_url)) {
    log::error("the JWKS URL must be https (plain http only on loopback)", {{"url", jwks_url}});
    return 1;
  }
  if ((!jwks_file.empty() || !jwks_url.empty()) &&
      (options.jwt.issuer.empty() || options.jwt.audience.empty())) {
    // Tokens the same issuer made for another application (another aud) would be taken as ours.
    log::error("JWT authentication needs --jwt-issuer and --jwt-audience");
    return 1;
  }
  if (!jwks_url.empty()) {
    auto fetch = [jwks_url, jwks_url_ca](auto done) {
      kube::http_get(jwks_url, jwks_url_ca, std::chrono::seconds(10), 1 << 20, std::move(done));
    };
    // HS256's shared secrets never come from a URL; keys over plain HTTP could be anyone's.
    auto opened = shim::JwksUrl::open(jwks_url, {false}, clock, std::chrono::seconds(jwks_refresh), fetch);
    if (!opened) {
      log::error("cannot use the JWKS URL", {{"error", opened.error()}});
      return 1;
    }
    issuer_keys = std::move(*opened);
  }
  if (jwks || issuer_keys) {
    options.jwt_keys = [&jwks, &issuer_keys] {
      return shim::merged({jwks ? jwks->keys() : nullptr, issuer_keys ? issuer_keys->keys() : nullptr});
    };
  }
  shim::ReadyWaiters waiters(clock);
  // The same watch counts the running Repls for the quotas.
  shim::Quota quota(quota_limits, clock);
  options.quota = &quota;
  kube::SinkTee repl_sinks({&waiters, &quota});
  kube::WatchRunner repl_watch(
      client, clock, io.get_executor(),
      kube::WatcherOptions{kube::collection_path(kube::repls(), ns), "", 500, "repls"}, repl_sinks);
  shim::KubeReplApi api(client, ns, waiters);
  metrics::Registry registry;
  shim::Shim shim(options, api, clock, registry);
  boost::asio::thread_pool pool(static_cast<std::size_t>(workers));
  kube::ServerLimits limits;
  limits.max_body_bytes = static_cast<std::size_t>(max_body_bytes);
  limits.request_timeout = std::chrono::milliseconds(read_timeout_ms);
  limits.write_timeout = std::chrono::milliseconds(write_timeout_ms);
  auto server = kube::HttpServer::start(
      io.get_executor(), clock, listen,
      [&](kube::IncomingRequest request, kube::Responder respond) {
        boost::asio::post(pool,
                          [&shim, request = std::move(request), respond = std::move(respond)]() mutable {
                            shim.handle(request, std::move(respond));
                          });
      },
      limits);
  if (!server) {
    log::error("cannot listen", {{"addr", listen}, {"error", server.error()}});
    return 1;
  }
  log::info("serving",
            {{"addr", (*server)->host() + ":" + std::to_string((*server)->port())},
             {"namespace", ns},
             {"auth", options.jwt_keys ? (options.auth_token.empty() ? "jwt" : "bearer token and jwt")
                                       : (options.auth_token.empty() ? "off" : "bearer token")}});

  std::promise<void> stop;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&stop](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    log::info("stopping", {{"signal", std::to_string(sig)}});
    stop.set_value();
  });
  repl_watch.start();
  if (jwks) jwks->start();
  if (issuer_keys) issuer_keys->start();
  std::vector<std::thread> io_threads;
  for (int i = 0; i < kIoThreads; ++i) io_threads.emplace_back([&io] { io.run(); });
  stop.get_future().wait();
  server->reset();  // no new requests; those in flight finish on the pool
  pool.join();
  // No request can add a wait any more: end those still open (their connections are closed
  // already) before the Shim they answer through goes.
  waiters.finish_all();
  repl_watch.stop();
  if (jwks) jwks->stop();
  if (issuer_keys) issuer_keys->stop();
  client.cancel_all();
  repl_watch.wait();
  io_work.reset();
  io.stop();
  for (auto& t : io_threads) t.join();
  log::info("stopped");
  return 0;
}
