// The controller: a Repl watcher feeding a ReplStore, whose changes go on a WorkQueue served by N
// worker threads that call the Reconciler. A failed reconcile is retried after a per-key backoff
// (5 ms doubling to 5 minutes) on a Boost.Asio timer; success forgets the key's failures.
//
// Workers start once the store has synced (the first list is in), so no reconcile runs against a
// partial cache.
//
// Thread-safety: run() blocks its caller; stop() may be called from any thread (a signal handler
// running on an io_context, typically) and makes run() return after in-flight reconciles finish.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <map>
#include <mutex>
#include <string>

#include "kube/client.hpp"
#include "kube/watcher.hpp"
#include "reconciler.hpp"
#include "repl_store.hpp"
#include "work_queue.hpp"

namespace repl {

struct ControllerOptions {
  std::string ns;  // empty: all namespaces
  int workers = 4;
};

// Per-key retry delay after `failures` consecutive failures (1 = first failure).
std::chrono::milliseconds retry_delay(int failures);

class Controller final {
 public:
  Controller(kube::Client& client, Reconciler& reconciler, ControllerOptions options);
  void run();
  void stop();

 private:
  void work();
  void retry_later(const ObjectKey& key);

  Reconciler& reconciler_;  // not owned
  const ControllerOptions options_;
  WorkQueue queue_;
  ReplStore store_;
  kube::WatchRunner repl_watcher_;
  boost::asio::io_context timers_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> timers_guard_;
  std::mutex failures_mu_;
  std::map<ObjectKey, int> failures_;
};

}  // namespace repl
