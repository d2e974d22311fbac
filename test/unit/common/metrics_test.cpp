// The metrics registry: exact exposition text, escaping, histogram buckets, name validation,
// re-registration, and exact counts under concurrent updates.
#include "common/metrics.hpp"

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

using repl::metrics::Registry;

TEST_CASE("render writes counters with labels, sorted by name then by label values", "[metrics]") {
  Registry r;
  auto requests = r.counter("repl_kube_requests_total", "Requests to the API server.", {"verb", "code"});
  REQUIRE(requests);
  auto reconciles = r.counter("repl_reconciles_total", "Reconciles run.");
  REQUIRE(reconciles);

  (*requests)->with({"PATCH", "200"}).inc();
  (*requests)->with({"GET", "404"}).inc(2);
  (*requests)->with({"GET", "200"}).inc();
  (*requests)->with({"GET", "200"}).inc(0.5);
  (*reconciles)->with().inc(3);

  CHECK(r.render() ==
        "# HELP repl_kube_requests_total Requests to the API server.\n"
        "# TYPE repl_kube_requests_total counter\n"
        "repl_kube_requests_total{verb=\"GET\",code=\"200\"} 1.5\n"
        "repl_kube_requests_total{verb=\"GET\",code=\"404\"} 2\n"
        "repl_kube_requests_total{verb=\"PATCH\",code=\"200\"} 1\n"
        "# HELP repl_reconciles_total Reconciles run.\n"
        "# TYPE repl_reconciles_total counter\n"
        "repl_reconciles_total 3\n");
}

TEST_CASE("an unlabelled metric renders 0 at once; a labelled one appears with its first series",
          "[metrics]") {
  Registry r;
  REQUIRE(r.counter("a_total", "A."));
  REQUIRE(r.gauge("b", "B.", {"kind"}));
  CHECK(r.render() ==
        "# HELP a_total A.\n"
        "# TYPE a_total counter\n"
        "a_total 0\n");
}

TEST_CASE("with() returns the same series for the same label values", "[metrics]") {
  Registry r;
  auto f = r.counter("x_total", "X.", {"a"});
  REQUIRE(f);
  repl::metrics::Counter& first = (*f)->with({"1"});
  const std::string value = "1";
  CHECK(&(*f)->with({value}) == &first);
  CHECK(&(*f)->with({"2"}) != &first);
}

TEST_CASE("counters never go down", "[metrics]") {
  Registry r;
  auto f = r.counter("c_total", "C.");
  REQUIRE(f);
  auto& c = (*f)->with();
  c.inc();
  c.inc(-5);
  c.inc(std::nan(""));
  CHECK(c.value() == 1);
}

TEST_CASE("gauges set, go up and down; values are written as Prometheus reads them", "[metrics]") {
  Registry r;
  auto g = r.gauge("g", "G.", {"case"});
  REQUIRE(g);
  auto& up_down = (*g)->with({"a_up_down"});
  up_down.set(10);
  up_down.inc();
  up_down.dec(3.5);
  CHECK(up_down.value() == 7.5);
  (*g)->with({"b_negative"}).set(-2);
  (*g)->with({"c_tiny"}).set(1e-7);
  (*g)->with({"d_inf"}).set(std::numeric_limits<double>::infinity());
  (*g)->with({"e_minus_inf"}).set(-std::numeric_limits<double>::infinity());
  (*g)->with({"f_nan"}).set(std::nan(""));
  (*g)->with({"g_big"}).set(1e20);
  (*g)->with({"h_minus_zero"}).set(-0.0);

  CHECK(r.render() ==
        "# HELP g G.\n"
        "# TYPE g gauge\n"
        "g{case=\"a_up_down\"} 7.5\n"
        "g{case=\"b_negative\"} -2\n"
        "g{case=\"c_tiny\"} 1e-07\n"
        "g{case=\"d_inf\"} +Inf\n"
        "g{case=\"e_minus_inf\"} -Inf\n"
        "g{case=\"f_nan\"} NaN\n"
        "g{case=\"g_big\"} 1e+20\n"
        "g{case=\"h_minus_zero\"} 0\n");
}

TEST_CASE("label values escape backslash, double quote and newline; help escapes backslash and newline",
          "[metrics]") {
  Registry r;
  auto f = r.counter("e_total", "Help with \\ a backslash,\na newline and \"quotes\".", {"path"});
  REQUIRE(f);
  (*f)->with({"C:\\dir \"x\"\nnext"}).inc();
  (*f)->with({""}).inc();
  CHECK(r.render() ==
        "# HELP e_total Help with \\\\ a backslash,\\na newline and \"quotes\".\n"
        "# TYPE e_total counter\n"
        "e_total{path=\"\"} 1\n"
        "e_total{path=\"C:\\\\dir \\\"x\\\"\\nnext\"} 1\n");
}

TEST_CASE("histograms write cumulative buckets up to +Inf, _sum and _count", "[metrics]") {
  Registry r;
  auto h = r.histogram("repl_reconcile_seconds", "Reconcile latency.", {"result"}, {0.125, 0.5, 1, 2.5});
  REQUIRE(h);
  auto& ok = (*h)->with({"ok"});
  for (const double v : {0.0625, 0.125, 0.25, 0.75, 3.0, 100.0}) ok.observe(v);  // 0.125 is in le="0.125"
  ok.observe(std::nan(""));                                                      // ignored
  (*h)->with({"error"}).observe(0.25);
  CHECK(ok.count() == 6);
  CHECK(ok.sum() == 104.1875);
  CHECK(ok.cumulative_counts() == std::vector<std::uint64_t>{2, 3, 4, 4, 6});

  auto plain = r.histogram("z_seconds", "Z.", {}, {1, std::numeric_limits<double>::infinity()});
  REQUIRE(plain);
  (*plain)->with().observe(0.5);
  (*plain)->with().observe(1);

  CHECK(r.render() ==
        "# HELP repl_reconcile_seconds Reconcile latency.\n"
        "# TYPE repl_reconcile_seconds histogram\n"
        "repl_reconcile_seconds_bucket{result=\"error\",le=\"0.125\"} 0\n"
        "repl_reconcile_seconds_bucket{result=\"error\",le=\"0.5\"} 1\n"
        "repl_reconcile_seconds_bucket{result=\"error\",le=\"1\"} 1\n"
        "repl_reconcile_seconds_bucket{result=\"error\",le=\"2.5\"} 1\n"
        "repl_reconcile_seconds_bucket{result=\"error\",le=\"+Inf\"} 1\n"
        "repl_reconcile_seconds_sum{result=\"error\"} 0.25\n"
        "repl_reconcile_seconds_count{result=\"error\"} 1\n"
        "repl_reconcile_seconds_bucket{result=\"ok\",le=\"0.125\"} 2\n"
        "repl_reconcile_seconds_bucket{result=\"ok\",le=\"0.5\"} 3\n"
        "repl_reconcile_seconds_bucket{result=\"ok\",le=\"1\"} 4\n"
        "repl_reconcile_seconds_bucket{result=\"ok\",le=\"2.5\"} 4\n"
        "repl_reconcile_seconds_bucket{result=\"ok\",le=\"+Inf\"} 6\n"
        "repl_reconcile_seconds_sum{result=\"ok\"} 104.1875\n"
        "repl_reconcile_seconds_count{result=\"ok\"} 6\n"
        "# HELP z_seconds Z.\n"
        "# TYPE z_seconds histogram\n"
        "z_seconds_bucket{le=\"1\"} 2\n"
        "z_seconds_bucket{le=\"+Inf\"} 2\n"
        "z_seconds_sum 1.5\n"
        "z_seconds_count 2\n");
}

TEST_CASE("default_seconds_buckets are client_golang's", "[metrics]") {
  CHECK(repl::metrics::default_seconds_buckets() ==
        std::vector<double>{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
}

TEST_CASE("gauge_func is read at every render and reads NaN when it throws", "[metrics]") {
  Registry r;
  int depth = 3;
  REQUIRE(r.gauge_func("repl_queue_depth", "Keys waiting.", [&] { return static_cast<double>(depth); }));
  REQUIRE(r.gauge_func("broken", "Throws.", []() -> double { throw std::runtime_error("no"); }));
  CHECK(r.render() ==
        "# HELP broken Throws.\n"
        "# TYPE broken gauge\n"
        "broken NaN\n"
        "# HELP repl_queue_depth Keys waiting.\n"
        "# TYPE repl_queue_depth gauge\n"
        "repl_queue_depth 3\n");
  depth = 5;
  CHECK_THAT(r.render(), Catch::EndsWith("repl_queue_depth 5\n"));
}

TEST_CASE("counter_func is exported as a counter, read at every render", "[metrics]") {
  Registry r;
  int adds = 7;
  REQUIRE(r.counter_func("repl_queue_adds_total", "Keys added.", [&] { return static_cast<double>(adds); }));
  CHECK(r.render() ==
        "# HELP repl_queue_adds_total Keys added.\n"
        "# TYPE repl_queue_adds_total counter\n"
        "repl_queue_adds_total 7\n");
  adds = 9;
  CHECK_THAT(r.render(), Catch::EndsWith("repl_queue_adds_total 9\n"));
  // One name, one definition: neither another function nor a counter may take it.
  CHECK_THAT(r.counter_func("repl_queue_adds_total", "Keys added.", [] { return 0.0; }).error(),
             Catch::Contains("already registered as a counter function"));
  CHECK_THAT(r.counter("repl_queue_adds_total", "Keys added.").error(),
             Catch::Contains("already registered as a counter function"));
}

TEST_CASE("a gauge_func may use the registry while it is rendered", "[metrics]") {
  Registry r;
  REQUIRE(r.gauge_func("scrapes", "Scrapes so far.", [&r] {
    auto c = r.counter("inner_total", "Registered during a render.");
    (*c)->with().inc();
    return (*c)->with().value();
  }));
  CHECK_THAT(r.render(), Catch::EndsWith("scrapes 1\n"));
  CHECK_THAT(r.render(), Catch::Contains("inner_total 1\n") && Catch::EndsWith("scrapes 2\n"));
}

TEST_CASE("metric and label names are validated", "[metrics]") {
  using repl::metrics::valid_label_name;
  using repl::metrics::valid_metric_name;
  for (const char* good : {"a", "_", ":", "repl_requests_total", "a:b_c9", "A_Z"}) {
    INFO(good);
    CHECK(valid_metric_name(good));
  }
  for (const char* bad : {"", "9a", "a-b", "a b", "a.b", "é", "a\n"}) {
    INFO(bad);
    CHECK_FALSE(valid_metric_name(bad));
  }
  for (const char* good : {"a", "_a", "verb", "code_2", "A"}) {
    INFO(good);
    CHECK(valid_label_name(good));
  }
  for (const char* bad : {"", "9", "a:b", "a-b", "__name__", "__x", "a b"}) {
    INFO(bad);
    CHECK_FALSE(valid_label_name(bad));
  }
}

TEST_CASE("bad definitions are refused with an error value", "[metrics]") {
  Registry r;
  CHECK_THAT(r.counter("bad-name", "x").error(), Catch::Equals("invalid metric name \"bad-name\""));
  CHECK_THAT(r.gauge("ok", "x", {"bad-label"}).error(), Catch::Contains("invalid label name \"bad-label\""));
  CHECK_THAT(r.gauge("ok", "x", {"__reserved"}).error(),
             Catch::Contains("invalid label name \"__reserved\""));
  CHECK_THAT(r.counter("ok_total", "x", {"a", "a"}).error(), Catch::Contains("label name \"a\" repeated"));
  CHECK_THAT(r.histogram("h", "x", {"le"}, {1}).error(), Catch::Contains("\"le\" is reserved"));
  CHECK_THAT(r.histogram("h", "x", {}, {}).error(), Catch::Contains("at least one finite bucket"));
  CHECK_THAT(r.histogram("h", "x", {}, {2, 1}).error(), Catch::Contains("strictly increasing"));
  CHECK_THAT(r.histogram("h", "x", {}, {1, 1}).error(), Catch::Contains("strictly increasing"));
  CHECK_THAT(r.histogram("h", "x", {}, {std::nan(""), 1}).error(), Catch::Contains("must be finite"));
  CHECK_THAT(r.gauge_func("f", "x", nullptr).error(), Catch::Contains("no function"));
  CHECK_THAT(r.gauge_func("f f", "x", [] { return 1.0; }).error(), Catch::Contains("invalid metric name"));
  CHECK(r.render().empty());  // nothing half-registered
}

TEST_CASE("registering a name again returns the same family only for the same definition", "[metrics]") {
  Registry r;
  auto first = r.counter("c_total", "C.", {"a"});
  REQUIRE(first);
  auto again = r.counter("c_total", "C.", {"a"});
  REQUIRE(again);
  CHECK(*again == *first);

  CHECK_THAT(r.gauge("c_total", "C.", {"a"}).error(), Catch::Contains("already registered as a counter"));
  CHECK_THAT(r.counter("c_total", "Other.", {"a"}).error(), Catch::Contains("another help text"));
  CHECK_THAT(r.counter("c_total", "C.", {"b"}).error(),
             Catch::Contains("already registered with labels [a]"));
  CHECK_THAT(r.gauge_func("c_total", "C.", [] { return 1.0; }).error(),
             Catch::Contains("already registered as a counter"));

  auto h = r.histogram("h_seconds", "H.", {}, {1, 2});
  REQUIRE(h);
  auto h_again = r.histogram("h_seconds", "H.", {}, {1, 2, std::numeric_limits<double>::infinity()});
  REQUIRE(h_again);
  CHECK(*h_again == *h);
  CHECK_THAT(r.histogram("h_seconds", "H.", {}, {1, 3}).error(), Catch::Contains("buckets [1,2]"));

  REQUIRE(r.gauge_func("f", "F.", [] { return 1.0; }));
  CHECK_THAT(r.gauge_func("f", "F.", [] { return 1.0; }).error(),
             Catch::Contains("already registered as a gauge function"));
  CHECK_THAT(r.gauge("f", "F.").error(), Catch::Contains("already registered as a gauge function"));
}

TEST_CASE("a histogram's series names are its own", "[metrics]") {
  Registry r;
  REQUIRE(r.histogram("lat_seconds", "L.", {}, {1}));
  CHECK_THAT(r.counter("lat_seconds_count", "x").error(),
             Catch::Contains("clashes with the series of histogram"));
  CHECK_THAT(r.gauge("lat_seconds_sum", "x").error(), Catch::Contains("clashes"));
  CHECK_THAT(r.gauge_func("lat_seconds_bucket", "x", [] { return 1.0; }).error(), Catch::Contains("clashes"));
  REQUIRE(r.gauge("other_sum", "x"));
  CHECK_THAT(r.histogram("other", "x", {}, {1}).error(),
             Catch::Contains("would clash with metric \"other_sum\""));
}

TEST_CASE("concurrent updates are all counted", "[metrics]") {
  Registry r;
  auto requests = r.counter("requests_total", "R.", {"worker_parity"});
  auto latency = r.histogram("latency_seconds", "L.", {}, {0.5});
  auto in_flight = r.gauge("in_flight", "I.");
  REQUIRE(requests);
  REQUIRE(latency);
  REQUIRE(in_flight);

  constexpr int kThreads = 8;
  constexpr int kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Looked up every time, to race the first creation and the lookups too.
        (*requests)->with({t % 2 == 0 ? "even" : "odd"}).inc();
        (*latency)->with().observe(i % 2 == 0 ? 0.25 : 1.0);
        (*in_flight)->with().inc();
        (*in_flight)->with().dec();
      }
    });
  }
  std::thread scraper([&] {
    for (int i = 0; i < 50; ++i) (void)r.render();
  });
  for (auto& t : threads) t.join();
  scraper.join();

  CHECK((*requests)->with({"even"}).value() == kThreads / 2 * kPerThread);
  CHECK((*requests)->with({"odd"}).value() == kThreads / 2 * kPerThread);
  auto& h = (*latency)->with();
  CHECK(h.count() == kThreads * kPerThread);
  CHECK(h.cumulative_counts() ==
        std::vector<std::uint64_t>{kThreads * kPerThread / 2, kThreads * kPerThread});
  CHECK(h.sum() == kThreads * kPerThread / 2 * 1.25);
  CHECK((*in_flight)->with().value() == 0);
  CHECK_THAT(r.render(), Catch::Contains("requests_total{worker_parity=\"even\"} 80000\n"
                                         "requests_total{worker_parity=\"odd\"} 80000\n"));
}
