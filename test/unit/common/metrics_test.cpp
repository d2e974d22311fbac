// The metrics registry: prometheus-cpp's families and the callback series rendered together as the
// text exposition format, sorted by name; callbacks read at every scrape (NaN when they throw,
// free to use the registry); bad or repeated callback names refused.
#include "common/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include <catch2/catch.hpp>
#include <stdexcept>
#include <string>
#include <vector>

using repl::metrics::Registry;

namespace {

prometheus::Family<prometheus::Counter>& counter(Registry& r, const std::string& name,
                                                 const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r.families());
}

}  // namespace

TEST_CASE("families and callbacks render together, sorted by name, labels by name", "[metrics]") {
  Registry r;
  auto& requests = counter(r, "repl_kube_requests_total", "Requests to the API server.");
  requests.Add({{"verb", "PATCH"}, {"code", "200"}}).Increment();
  requests.Add({{"verb", "GET"}, {"code", "200"}}).Increment(1.5);
  int depth = 3;
  r.gauge_func("repl_queue_depth", "Keys waiting.", [&] { return static_cast<double>(depth); });
  r.counter_func("repl_adds_total", "Keys added.", [] { return 7.0; });

  const std::string text = r.render();
  INFO(text);
  CHECK(text.find("# TYPE repl_adds_total counter\nrepl_adds_total 7\n") != std::string::npos);
  CHECK(text.find("# HELP repl_kube_requests_total Requests to the API server.\n"
                  "# TYPE repl_kube_requests_total counter\n") != std::string::npos);
  CHECK(text.find("repl_kube_requests_total{code=\"200\",verb=\"GET\"} 1.5\n") != std::string::npos);
  CHECK(text.find("repl_kube_requests_total{code=\"200\",verb=\"PATCH\"} 1\n") != std::string::npos);
  CHECK(text.find(
            "# HELP repl_queue_depth Keys waiting.\n# TYPE repl_queue_depth gauge\nrepl_queue_depth 3\n") !=
        std::string::npos);
  CHECK(text.find("repl_adds_total") < text.find("repl_kube_requests_total"));
  CHECK(text.find("repl_kube_requests_total") < text.find("repl_queue_depth"));
  depth = 5;
  CHECK_THAT(r.render(), Catch::Contains("repl_queue_depth 5\n"));
}

TEST_CASE("a histogram writes cumulative buckets up to +Inf, _sum and _count", "[metrics]") {
  Registry r;
  auto& latency = prometheus::BuildHistogram().Name("x_seconds").Help("X.").Register(r.families());
  auto& h = latency.Add({{"route", "start"}}, repl::metrics::default_seconds_buckets());
  h.Observe(0.003);
  h.Observe(0.2);
  h.Observe(42);
  const std::string text = r.render();
  INFO(text);
  CHECK_THAT(text, Catch::Contains("# TYPE x_seconds histogram\n"));
  CHECK_THAT(text, Catch::Contains("x_seconds_bucket{route=\"start\",le=\"0.005\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("x_seconds_bucket{route=\"start\",le=\"0.25\"} 2\n"));
  CHECK_THAT(text, Catch::Contains("x_seconds_bucket{route=\"start\",le=\"10\"} 2\n"));
  CHECK_THAT(text, Catch::Contains("x_seconds_bucket{route=\"start\",le=\"+Inf\"} 3\n"));
  CHECK_THAT(text, Catch::Contains("x_seconds_count{route=\"start\"} 3\n"));
  CHECK_THAT(text, Catch::Contains("x_seconds_sum{route=\"start\"} 42.203"));
}

TEST_CASE("default_seconds_buckets are client_golang's", "[metrics]") {
  CHECK(repl::metrics::default_seconds_buckets() ==
        std::vector<double>{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
}

TEST_CASE("a callback that throws reads NaN; the rest of the scrape is whole", "[metrics]") {
  Registry r;
  r.gauge_func("broken", "Throws.", []() -> double { throw std::runtime_error("no"); });
  r.gauge_func("fine", "Fine.", [] { return 1.0; });
  const std::string text = r.render();
  CHECK_THAT(text, Catch::Contains("broken Nan\n") || Catch::Contains("broken NaN\n"));
  CHECK_THAT(text, Catch::Contains("fine 1\n"));
}

TEST_CASE("a callback may use the registry while it is rendered", "[metrics]") {
  Registry r;
  auto& inner =
      prometheus::BuildGauge().Name("inner").Help("Set during a render.").Register(r.families()).Add({});
  r.gauge_func("scrapes", "Scrapes so far.", [&] {
    inner.Increment();
    (void)r.families().Collect();
    return inner.Value();
  });
  CHECK_THAT(r.render(), Catch::Contains("scrapes 1\n"));
  CHECK_THAT(r.render(), Catch::Contains("inner 1\n") && Catch::Contains("scrapes 2\n"));
}

TEST_CASE("a callback's name must be valid and its own", "[metrics]") {
  Registry r;
  r.gauge_func("taken", "T.", [] { return 0.0; });
  counter(r, "family_total", "F.").Add({});
  CHECK_THROWS_WITH(r.gauge_func("taken", "T.", [] { return 0.0; }), Catch::Contains("taken"));
  CHECK_THROWS_WITH(r.counter_func("family_total", "F.", [] { return 0.0; }),
                    Catch::Contains("family_total"));
  CHECK_THROWS_WITH(r.gauge_func("0bad", "B.", [] { return 0.0; }), Catch::Contains("0bad"));
  CHECK_THROWS_WITH(r.gauge_func("", "B.", [] { return 0.0; }), Catch::Contains("invalid"));
}

TEST_CASE("a labelled gauge callback renders one sample per label value, read at each scrape", "[metrics]") {
  Registry r;
  int ready = 2;
  r.labelled_gauge_func("repl_repls", "Repls by phase.", "phase", [&] {
    return Registry::LabelledValues{{"Ready", static_cast<double>(ready)}, {"Suspended", 5}};
  });
  std::string text = r.render();
  INFO(text);
  CHECK_THAT(text, Catch::Contains("# TYPE repl_repls gauge\n"));
  CHECK_THAT(text, Catch::Contains("repl_repls{phase=\"Ready\"} 2\n"));
  CHECK_THAT(text, Catch::Contains("repl_repls{phase=\"Suspended\"} 5\n"));
  ready = 3;
  CHECK_THAT(r.render(), Catch::Contains("repl_repls{phase=\"Ready\"} 3\n"));
  CHECK_THROWS_AS(
      r.labelled_gauge_func("repl_repls", "Again.", "phase", [] { return Registry::LabelledValues{}; }),
      std::invalid_argument);
  r.labelled_gauge_func("broken_by_phase", "Throws.", "phase",
                        []() -> Registry::LabelledValues { throw std::runtime_error("no"); });
  CHECK_THAT(r.render(), Catch::Contains("# TYPE broken_by_phase gauge\n"));
}
