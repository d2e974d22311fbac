// The operator's Prometheus metrics, in one place: reconciles (count, errors, duration), the work
// queue, watch restarts and relists, API requests by verb and status code, and leadership.
// Served on --metrics-addr at /metrics (see health.hpp).
//
// Thread-safety: every method, any thread (prometheus-cpp's series are atomic).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/histogram.h>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include "common/metrics.hpp"
#include "kube/client.hpp"
#include "kube/watcher.hpp"

namespace repl {

class OperatorMetrics final {
 public:
  OperatorMetrics();

  metrics::Registry& registry() { return registry_; }

  void reconciled(bool ok, std::chrono::steady_clock::duration took);
  // A stopping pod's final sync, seen once: from its stop to its sync sidecar's end.
  void final_sync(bool ok, double seconds);
  // For kube::Client: counts every request by verb and code ("0": the server was not reached).
  kube::Client::Observer api_observer();
  // For a WatchRunner named `watcher`.
  std::function<void(kube::WatchSignal)> watch_observer(const std::string& watcher);
  // Gauges read when /metrics is scraped.
  void add_gauge(const std::string& name, const std::string& help, std::function<double()> read);
  // A counter kept elsewhere, read at each scrape.
  void add_counter(const std::string& name, const std::string& help, std::function<double()> read);

 private:
  metrics::Registry registry_;
  prometheus::Family<prometheus::Counter>& reconciles_;
  prometheus::Counter& reconcile_errors_;
  prometheus::Histogram& reconcile_seconds_;
  prometheus::Family<prometheus::Histogram>& final_sync_seconds_;
  prometheus::Family<prometheus::Counter>& api_requests_;
  prometheus::Family<prometheus::Counter>& watch_relists_;
  prometheus::Family<prometheus::Counter>& watch_restarts_;
  prometheus::Family<prometheus::Counter>& watch_failures_;
};

}  // namespace repl
