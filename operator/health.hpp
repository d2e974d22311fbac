// The operator's HTTP endpoints as pure functions and route tables, for main.cpp to serve with
// kube::HttpServer: health on --health-addr (the kubelet's probes), metrics on --metrics-addr
// (Prometheus), on two servers as kubebuilder projects do.
//
//   GET /healthz  200 "ok" whenever the process can answer: the liveness probe.
//   GET /readyz   200 "ok" once every readiness check passes (the Repl cache has synced), else 503
//                 naming the checks that have not: the readiness probe.
//   GET /metrics  the registry in the Prometheus text format.
//
//   auto health = kube::HttpServer::start(io.get_executor(), clock, opts.health_addr,
//                                         health_routes({{"repl-cache", [&] { return store.synced(); }}}));
//   auto metrics = kube::HttpServer::start(io.get_executor(), clock, opts.metrics_addr,
//   metrics_routes(registry));
//
// Ownership: the routes keep references to the registry and the checks' captures; those must outlive
// the servers serving them. Threading: the checks and render() run on the HTTP server's threads, so a
// check must be thread-safe and must not block (read an atomic flag, take a short lock).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/metrics.hpp"
#include "kube/http_server.hpp"

namespace repl {

// One condition /readyz waits for.
struct ReadinessCheck {
  std::string name;             // shown in the 503 body, e.g. "repl-cache"
  std::function<bool()> ready;  // true once satisfied
};

// /healthz: always 200 "ok".
kube::HttpReply liveness_reply();
// /readyz: 200 "ok" when every check passes (and when there are none); otherwise 503
// "not ready: <name>, <name>" listing the failing checks in order. A check that throws counts as
// failing.
kube::HttpReply readiness_reply(const std::vector<ReadinessCheck>& checks);
// /metrics: the registry's exposition with its Content-Type.
kube::HttpReply metrics_reply(const metrics::Registry& registry);

// {"/healthz", "/readyz"} for the health server.
kube::Routes health_routes(std::vector<ReadinessCheck> checks);
// {"/metrics"} for the metrics server.
kube::Routes metrics_routes(const metrics::Registry& registry);

}  // namespace repl
