// A small Prometheus metrics registry: counters, gauges and histograms, optionally labelled, and
// gauges read from a callback at scrape time; render() writes the text exposition format 0.0.4.
//
//   metrics::Registry registry;
//   auto requests = registry.counter("repl_kube_requests_total", "API requests.", {"verb", "code"});
//   if (!requests) return Fail(requests.error());            // a bad or conflicting name
//   (*requests)->with({"GET", "200"}).inc();
//   registry.gauge_func("repl_queue_depth", "Keys waiting.", [&] { return double(queue.depth()); });
//   std::string page = registry.render();                     // served on GET /metrics
//
// Ownership: the Registry owns every family and every series. Registering returns a pointer to the
// family and with() a reference to the series; both stay valid as long as the Registry, and series
// are never removed. Registering a name again with the same type, help, label names (and buckets)
// returns the same family; any difference is an error value, as are invalid names.
//
// Thread-safety: everything may be called from any thread. Updating a series (inc, set, observe) is
// one or a few atomic operations; with() takes a shared lock to find the series (an exclusive one only
// the first time a label combination is seen), so callers on very hot paths may keep the reference.
// A histogram series is read without stopping writers: a scrape racing observe() may see a _sum
// that lags _count by the observations in flight (_count always equals the +Inf bucket).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace repl::metrics {

// The Content-Type of render()'s output.
inline constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

// [a-zA-Z_:][a-zA-Z0-9_:]*
bool valid_metric_name(std::string_view name);
// [a-zA-Z_][a-zA-Z0-9_]*, and not starting with "__" (reserved by Prometheus).
bool valid_label_name(std::string_view name);

// Upper bounds for latencies in seconds, 5 ms to 10 s (Prometheus client_golang's DefBuckets).
std::vector<double> default_seconds_buckets();

// A value that only goes up (requests made, errors seen).
class Counter final {
 public:
  // Negative and NaN increments are ignored: a counter never goes down.
  void inc(double n = 1.0);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A value that goes up and down (objects cached, in-flight requests).
class Gauge final {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void inc(double n = 1.0) { value_.fetch_add(n, std::memory_order_relaxed); }
  void dec(double n = 1.0) { value_.fetch_sub(n, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Observations counted into fixed buckets (request latencies in seconds).
class Histogram final {
 public:
  // `upper_bounds`: strictly increasing and finite; the +Inf bucket is implicit. Not owned: the
  // family's bounds, which outlive the series.
  explicit Histogram(const std::vector<double>& upper_bounds);

  // A NaN observation is ignored.
  void observe(double value);
  std::uint64_t count() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }
  // Observations <= upper_bounds[i] (cumulative), then the +Inf bucket (== count()).
  std::vector<std::uint64_t> cumulative_counts() const;

 private:
  const std::vector<double>& upper_bounds_;
  // Per bucket, not cumulative: observe() touches one counter. The last one is +Inf.
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;
  std::atomic<double> sum_{0.0};
};

namespace detail {

// Orders label-value tuples; transparent, so a lookup by string_views allocates nothing.
struct LabelValuesLess {
  using is_transparent = void;
  template <class A, class B>
  bool operator()(const A& a, const B& b) const {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                        [](std::string_view x, std::string_view y) { return x < y; });
  }
};

enum class Kind { kCounter, kGauge, kHistogram, kGaugeFunc, kCounterFunc };

// What the registry knows of every family, whatever its series type.
class FamilyBase {
 public:
  FamilyBase(Kind kind, std::string name, std::string help, std::vector<std::string> label_names,
             std::vector<double> upper_bounds);
  virtual ~FamilyBase() = default;
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;

  Kind kind() const { return kind_; }
  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  const std::vector<double>& upper_bounds() const { return upper_bounds_; }

  // Appends this family's HELP, TYPE and samples; nothing when it has no series yet.
  virtual void render(std::string& out) const = 0;

 private:
  const Kind kind_;
  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  const std::vector<double> upper_bounds_;  // histograms only
};

}  // namespace detail

// All series of one metric name, one per combination of label values.
template <class Series>
class Family final : public detail::FamilyBase {
 public:
  using detail::FamilyBase::FamilyBase;

  // The series for these label values (one per label name, in the registered order), created at the
  // first call. A different number of values is a programming error and aborts the process, as
  // client_golang's WithLabelValues panics. A family without labels is used as with().
  Series& with(std::initializer_list<std::string_view> label_values = {});

  void render(std::string& out) const override;

 private:
  mutable std::shared_mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Series>, detail::LabelValuesLess> series_;
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

class Registry final {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Errors: an invalid metric or label name, a repeated label name, or `name` already registered
  // differently (another type, help, label names or buckets) or clashing with a histogram's
  // _bucket/_sum/_count series. The pointer is never null and lives as long as the registry.
  Result<CounterFamily*, std::string> counter(std::string_view name, std::string_view help,
                                              std::vector<std::string> label_names = {});
  Result<GaugeFamily*, std::string> gauge(std::string_view name, std::string_view help,
                                          std::vector<std::string> label_names = {});
  // `upper_bounds`: non-empty, strictly increasing, no NaN; a last +Inf is accepted and dropped
  // (the +Inf bucket is always there). The label name "le" is reserved.
  Result<HistogramFamily*, std::string> histogram(std::string_view name, std::string_view help,
                                                  std::vector<std::string> label_names,
                                                  std::vector<double> upper_bounds);

  // An unlabelled gauge whose value is `read()` at every render() (a queue depth, a cache size).
  // `read` runs on the thread calling render(), with no registry lock held; it must be thread-safe
  // and quick, and if it throws the sample reads NaN. Each name may be registered once.
  Result<void, std::string> gauge_func(std::string_view name, std::string_view help,
                                       std::function<double()> read);
  // The same for a counter kept elsewhere (`read` must never go down): exported as a counter.
  Result<void, std::string> counter_func(std::string_view name, std::string_view help,
                                         std::function<double()> read);

  // The text exposition format 0.0.4: families sorted by name, series by label values.
  std::string render() const;

 private:
  // Checks `name` against the families already registered; returns the existing family of the same
  // definition, nullptr when the name is free, or an error.
  Result<detail::FamilyBase*, std::string> find_compatible(detail::Kind kind, std::string_view name,
                                                           std::string_view help,
                                                           const std::vector<std::string>& label_names,
                                                           const std::vector<double>& upper_bounds) const;
  Result<void, std::string> read_func(detail::Kind kind, std::string_view name, std::string_view help,
                                      std::function<double()> read);
  template <class Series>
  Result<Family<Series>*, std::string> add(detail::Kind kind, std::string_view name, std::string_view help,
                                           std::vector<std::string> label_names,
                                           std::vector<double> upper_bounds);

  mutable std::shared_mutex mu_;
  std::map<std::string, std::unique_ptr<detail::FamilyBase>, std::less<>> families_;
};

}  // namespace repl::metrics
