// Prometheus metrics on prometheus-cpp (Debian's prometheus-cpp-dev; its core library only: the
// operator and the shim serve /metrics on their own HTTP servers). Counters, gauges and histograms
// are prometheus-cpp's own families, registered with its builders on registry(); this adds what it
// lacks: series read from a callback at each scrape (a queue's depth, a counter another component
// keeps), and rendering to the text exposition format.
//
//   metrics::Registry registry;
//   auto& requests = prometheus::BuildCounter().Name("repl_kube_requests_total")
//                        .Help("API requests.").Register(registry.families());
//   requests.Add({{"verb", "GET"}, {"code", "200"}}).Increment();
//   registry.gauge_func("repl_queue_depth", "Keys waiting.", [&] { return double(queue.depth()); });
//   std::string page = registry.render();                     // served on GET /metrics
//
// Names are constants of the code that registers them; prometheus-cpp throws on an invalid one,
// which is a bug found by the first test that builds the registry, not a runtime condition.
//
// Thread-safety: everything may be called from any thread (prometheus-cpp's series are atomic, its
// families locked). A callback runs on the thread calling render(), with no lock of this registry
// held; it must be thread-safe and quick, and if it throws its sample reads NaN.
#pragma once

#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace repl::metrics {

// The Content-Type of render()'s output.
inline constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

// Upper bounds for latencies in seconds, 5 ms to 10 s (Prometheus client_golang's DefBuckets).
const prometheus::Histogram::BucketBoundaries& default_seconds_buckets();

class Registry final {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Where counters, gauges and histograms are registered (prometheus::Build*().Register(...)).
  prometheus::Registry& families() { return *families_; }

  // An unlabelled gauge whose value is `read()` at every render(). An invalid name, or one taken
  // already, throws std::invalid_argument (as prometheus-cpp's builders do): a bug, not input.
  void gauge_func(std::string name, std::string help, std::function<double()> read);
  // The same for a counter kept elsewhere (`read` must never go down): exported as a counter.
  void counter_func(std::string name, std::string help, std::function<double()> read);
  // A gauge with one label, whose samples are `read()` at every render(): {label value, value}.
  using LabelledValues = std::vector<std::pair<std::string, double>>;
  void labelled_gauge_func(std::string name, std::string help, std::string label,
                           std::function<LabelledValues()> read);

  // The text exposition format 0.0.4: every family, sorted by name.
  std::string render() const;

 private:
  struct Func {
    std::string name;
    std::string help;
    bool counter;
    std::function<double()> read;
    std::string label;                         // labelled gauges only
    std::function<LabelledValues()> read_all;  // labelled gauges only
  };
  void add(Func f);

  std::shared_ptr<prometheus::Registry> families_;
  mutable std::mutex mu_;
  std::vector<Func> funcs_;
};

}  // namespace repl::metrics
