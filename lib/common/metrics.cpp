#include "common/metrics.hpp"

#include <prometheus/check_names.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <utility>

namespace repl::metrics {

const prometheus::Histogram::BucketBoundaries& default_seconds_buckets() {
  static const prometheus::Histogram::BucketBoundaries buckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                                  0.5,   1,    2.5,   5,    10};
  return buckets;
}

Registry::Registry() : families_(std::make_shared<prometheus::Registry>()) {}
Registry::~Registry() = default;

void Registry::gauge_func(std::string name, std::string help, std::function<double()> read) {
  add({std::move(name), std::move(help), false, std::move(read), {}, {}});
}

void Registry::counter_func(std::string name, std::string help, std::function<double()> read) {
  add({std::move(name), std::move(help), true, std::move(read), {}, {}});
}

void Registry::labelled_gauge_func(std::string name, std::string help, std::string label,
                                   std::function<LabelledValues()> read) {
  add(Func{std::move(name), std::move(help), false, {}, std::move(label), std::move(read)});
}

void Registry::add(Func f) {
  if (!prometheus::CheckMetricName(f.name))
    throw std::invalid_argument("invalid metric name \"" + f.name + "\"");
  std::lock_guard lock(mu_);
  const bool taken =
      std::any_of(funcs_.begin(), funcs_.end(), [&](const Func& g) { return g.name == f.name; });
  const auto families = families_->Collect();
  if (taken || std::any_of(families.begin(), families.end(),
                           [&](const prometheus::MetricFamily& g) { return g.name == f.name; })) {
    throw std::invalid_argument("metric \"" + f.name + "\" is already registered");
  }
  funcs_.push_back(std::move(f));
}

std::string Registry::render() const {
  std::vector<prometheus::MetricFamily> families = families_->Collect();
  std::vector<Func> funcs;
  {
    std::lock_guard lock(mu_);
    funcs = funcs_;  // callbacks run unlocked: one may register or render itself
  }
  for (const Func& f : funcs) {
    if (f.read_all) {
      prometheus::MetricFamily family{f.name, f.help, prometheus::MetricType::Gauge, {}};
      try {
        for (const auto& [label_value, value] : f.read_all()) {
          prometheus::ClientMetric sample;
          sample.label.push_back({f.label, label_value});
          sample.gauge.value = value;
          family.metric.push_back(std::move(sample));
        }
      } catch (...) {
        family.metric.clear();  // no samples rather than a failed scrape
      }
      families.push_back(std::move(family));
      continue;
    }
    double value = std::numeric_limits<double>::quiet_NaN();
    try {
      value = f.read();
    } catch (...) {
      // NaN: a scrape must not fail because one reading did
    }
    prometheus::ClientMetric sample;
    prometheus::MetricFamily family{f.name, f.help, prometheus::MetricType::Gauge, {}};
    if (f.counter) {
      family.type = prometheus::MetricType::Counter;
      sample.counter.value = value;
    } else {
      sample.gauge.value = value;
    }
    family.metric.push_back(std::move(sample));
    families.push_back(std::move(family));
  }
  std::sort(
      families.begin(), families.end(),
      [](const prometheus::MetricFamily& a, const prometheus::MetricFamily& b) { return a.name < b.name; });
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace repl::metrics
