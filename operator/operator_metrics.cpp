#include "operator_metrics.hpp"

#include <cstdlib>

#include "common/log.hpp"

namespace repl {
namespace {

// The names below are constants of this file: a refusal is a bug here, not a runtime condition.
[[noreturn]] void refuse(const std::string& error) {
  log::error("bad metric definition", {{"error", error}});
  std::abort();
}

template <class T>
T must(Result<T, std::string> r) {
  if (!r) refuse(r.error());
  return *r;
}

void must(Result<void, std::string> r) {
  if (!r) refuse(r.error());
}

}  // namespace

OperatorMetrics::OperatorMetrics()
    : reconciles_(must(
          registry_.counter("repl_operator_reconcile_total", "Reconciles of Repls, by result.", {"result"}))),
      reconcile_errors_(must(registry_.counter("repl_operator_reconcile_errors_total",
                                               "Reconciles that failed and were put back with backoff."))),
      reconcile_seconds_(
          must(registry_.histogram("repl_operator_reconcile_duration_seconds", "Time one reconcile took.", {},
                                   metrics::default_seconds_buckets()))),
      api_requests_(
          must(registry_.counter("repl_operator_api_requests_total",
                                 "Requests to the Kubernetes API server, by verb and HTTP status code "
                                 "(0: not reached).",
                                 {"verb", "code"}))),
      watch_relists_(must(registry_.counter("repl_operator_watch_relists_total",
                                            "Lists after the first, e.g. after 410 Gone.", {"watcher"}))),
      watch_restarts_(
          must(registry_.counter("repl_operator_watch_restarts_total",
                                 "Watches opened again after a stream ended or broke.", {"watcher"}))),
      watch_failures_(must(registry_.counter("repl_operator_watch_failures_total",
                                             "Failed list or watch requests.", {"watcher"}))) {}

void OperatorMetrics::reconciled(bool ok, std::chrono::steady_clock::duration took) {
  reconciles_->with({ok ? "success" : "error"}).inc();
  if (!ok) reconcile_errors_->with().inc();
  reconcile_seconds_->with().observe(std::chrono::duration<double>(took).count());
}

kube::Client::Observer OperatorMetrics::api_observer() {
  return [this](std::string_view verb, int code) { api_requests_->with({verb, std::to_string(code)}).inc(); };
}

std::function<void(kube::WatchSignal)> OperatorMetrics::watch_observer(const std::string& watcher) {
  return [this, watcher](kube::WatchSignal s) {
    switch (s) {
      case kube::WatchSignal::kListed:
        break;
      case kube::WatchSignal::kRelisted:
        watch_relists_->with({watcher}).inc();
        break;
      case kube::WatchSignal::kRewatched:
        watch_restarts_->with({watcher}).inc();
        break;
      case kube::WatchSignal::kFailed:
        watch_failures_->with({watcher}).inc();
        break;
    }
  };
}

void OperatorMetrics::add_gauge(const std::string& name, const std::string& help,
                                std::function<double()> read) {
  must(registry_.gauge_func(name, help, std::move(read)));
}

void OperatorMetrics::add_counter(const std::string& name, const std::string& help,
                                  std::function<double()> read) {
  must(registry_.counter_func(name, help, std::move(read)));
}

}  // namespace repl
