// The operator's health and metrics endpoints: replies and route tables (pure; no server).
#include "health.hpp"

#include <prometheus/counter.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <stdexcept>

#include "kube/http_server.hpp"

using repl::ReadinessCheck;

TEST_CASE("/healthz is always ok", "[http][health]") {
  const auto r = repl::liveness_reply();
  CHECK(r.status == 200);
  CHECK(r.body == "ok\n");
  CHECK(r.content_type == "text/plain; charset=utf-8");
}

TEST_CASE("/readyz is ok once every check passes and names the ones that do not", "[http][health]") {
  bool cache_synced = false;
  bool templates_loaded = false;
  const std::vector<ReadinessCheck> checks{
      {"repl-cache", [&] { return cache_synced; }},
      {"templates", [&] { return templates_loaded; }},
  };

  auto r = repl::readiness_reply(checks);
  CHECK(r.status == 503);
  CHECK(r.body == "not ready: repl-cache, templates\n");
  CHECK(r.content_type == "text/plain; charset=utf-8");

  templates_loaded = true;
  r = repl::readiness_reply(checks);
  CHECK(r.status == 503);
  CHECK(r.body == "not ready: repl-cache\n");

  cache_synced = true;
  r = repl::readiness_reply(checks);
  CHECK(r.status == 200);
  CHECK(r.body == "ok\n");

  CHECK(repl::readiness_reply({}).status == 200);
}

TEST_CASE("a readiness check that throws or is empty fails", "[http][health]") {
  const std::vector<ReadinessCheck> checks{
      {"throws", []() -> bool { throw std::runtime_error("boom"); }},
      {"empty", nullptr},
      {"fine", [] { return true; }},
  };
  const auto r = repl::readiness_reply(checks);
  CHECK(r.status == 503);
  CHECK(r.body == "not ready: throws, empty\n");
}

TEST_CASE("health_routes serve /healthz and /readyz only", "[http][health]") {
  std::atomic<bool> synced{false};
  const repl::kube::Routes routes = repl::health_routes({{"repl-cache", [&] { return synced.load(); }}});
  REQUIRE(routes.size() == 2);

  CHECK(repl::kube::route(routes, "GET", "/healthz").status == 200);
  CHECK(repl::kube::route(routes, "GET", "/readyz").status == 503);
  synced = true;
  CHECK(repl::kube::route(routes, "GET", "/readyz").status == 200);
  CHECK(repl::kube::route(routes, "GET", "/metrics").status == 404);
}

TEST_CASE("metrics_routes serve the registry at /metrics, rendered at each request", "[http][metrics]") {
  repl::metrics::Registry registry;
  auto& reconciles = prometheus::BuildCounter()
                         .Name("repl_reconciles_total")
                         .Help("Reconciles run.")
                         .Register(registry.families())
                         .Add({});
  const repl::kube::Routes routes = repl::metrics_routes(registry);
  REQUIRE(routes.size() == 1);

  reconciles.Increment();
  auto r = repl::kube::route(routes, "GET", "/metrics");
  CHECK(r.status == 200);
  CHECK(r.content_type == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(r.body ==
        "# HELP repl_reconciles_total Reconciles run.\n"
        "# TYPE repl_reconciles_total counter\n"
        "repl_reconciles_total 1\n");

  reconciles.Increment();
  CHECK_THAT(repl::kube::route(routes, "GET", "/metrics").body, Catch::EndsWith("repl_reconciles_total 2\n"));
  CHECK(repl::kube::route(routes, "GET", "/healthz").status == 404);
}
