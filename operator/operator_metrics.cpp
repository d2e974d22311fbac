#include "operator_metrics.hpp"

#include <prometheus/counter.h>

namespace repl {
namespace {

prometheus::Family<prometheus::Counter>& counter(metrics::Registry& r, const char* name, const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r.families());
}

}  // namespace

OperatorMetrics::OperatorMetrics()
    : reconciles_(counter(registry_, "repl_operator_reconcile_total", "Reconciles of Repls, by result.")),
      reconcile_errors_(counter(registry_, "repl_operator_reconcile_errors_total",
                                "Reconciles that failed and were put back with backoff.")
                            .Add({})),
      reconcile_seconds_(prometheus::BuildHistogram()
                             .Name("repl_operator_reconcile_duration_seconds")
                             .Help("Time one reconcile took.")
                             .Register(registry_.families())
                             .Add({}, metrics::default_seconds_buckets())),
      final_sync_seconds_(prometheus::BuildHistogram()
                              .Name("repl_operator_final_sync_duration_seconds")
                              .Help("From a runner pod's stop to the end of its final sync to S3, by result.")
                              .Register(registry_.families())),
      api_requests_(counter(registry_, "repl_operator_api_requests_total",
                            "Requests to the Kubernetes API server, by verb and HTTP status code "
                            "(0: not reached).")),
      watch_relists_(counter(registry_, "repl_operator_watch_relists_total",
                             "Lists after the first, e.g. after 410 Gone.")),
      watch_restarts_(counter(registry_, "repl_operator_watch_restarts_total",
                              "Watches opened again after a stream ended or broke.")),
      watch_failures_(
          counter(registry_, "repl_operator_watch_failures_total", "Failed list or watch requests.")) {}

void OperatorMetrics::reconciled(bool ok, std::chrono::steady_clock::duration took) {
  reconciles_.Add({{"result", ok ? "success" : "error"}}).Increment();
  if (!ok) reconcile_errors_.Increment();
  reconcile_seconds_.Observe(std::chrono::duration<double>(took).count());
}

void OperatorMetrics::final_sync(bool ok, double seconds) {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {0.5, 1,  2,   5,   10, 20,
                                                                   30,  60, 120, 300, 600};
  final_sync_seconds_.Add({{"result", ok ? "success" : "failure"}}, kBuckets).Observe(seconds);
}

kube::Client::Observer OperatorMetrics::api_observer() {
  return [this](std::string_view verb, int code) {
    api_requests_.Add({{"verb", std::string(verb)}, {"code", std::to_string(code)}}).Increment();
  };
}

std::function<void(kube::WatchSignal)> OperatorMetrics::watch_observer(const std::string& watcher) {
  return [this, watcher](kube::WatchSignal s) {
    switch (s) {
      case kube::WatchSignal::kListed:
      case kube::WatchSignal::kRecovered:
        break;
      case kube::WatchSignal::kRelisted:
        watch_relists_.Add({{"watcher", watcher}}).Increment();
        break;
      case kube::WatchSignal::kRewatched:
        watch_restarts_.Add({{"watcher", watcher}}).Increment();
        break;
      case kube::WatchSignal::kFailed:
        watch_failures_.Add({{"watcher", watcher}}).Increment();
        break;
    }
  };
}

void OperatorMetrics::add_gauge(const std::string& name, const std::string& help,
                                std::function<double()> read) {
  registry_.gauge_func(name, help, std::move(read));
}

void OperatorMetrics::add_counter(const std::string& name, const std::string& help,
                                  std::function<double()> read) {
  registry_.counter_func(name, help, std::move(read));
}

}  // namespace repl
