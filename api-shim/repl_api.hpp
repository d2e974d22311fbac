// What the shim needs from Kubernetes, as an interface: read a Repl, apply one (create or update),
// delete one, wait for one to become Ready. The real one (KubeReplApi) speaks to the API server
// through the kube client and waits through ReadyWaiters (one shared watch, no thread per wait);
// tests use a fake.
//
// Thread-safety: implementations are called from several request threads at once.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "common/result.hpp"
#include "kube/client.hpp"
#include "kube/error.hpp"
#include "ready_waiters.hpp"
#include "repl/repl.hpp"

namespace repl::shim {

struct StartRequest {
  std::string repl_id;
  std::string user_id;
  std::string language;  // optional
  bool suspended = false;
  std::string idle_timeout;       // optional: spec.idleTimeout
  std::string ttl_after_suspend;  // optional: spec.ttlAfterSuspend
  std::string last_activity;      // RFC 3339: the annotation peetcode.com/last-activity; empty: none
  std::string subject;            // a JWT caller's subject: the annotation peetcode.com/subject
};

struct Applied {
  Repl repl;
  bool created = false;
};

class ReplApi {
 public:
  virtual ~ReplApi() = default;
  virtual Result<std::optional<Repl>, kube::ApiError> get(const std::string& repl_id) = 0;
  // Server-side apply of the Repl's spec. A userId different from the existing one is refused by
  // the API server itself (the CRD's immutability rule): 422 "userId is immutable".
  virtual Result<Applied, kube::ApiError> apply(const StartRequest& request) = 0;
  // Deletes exactly the Repl with this uid (a Repl re-created meanwhile under the name is kept).
  virtual Result<void, kube::ApiError> remove(const std::string& repl_id, const std::string& uid) = 0;
  // Sets the annotation peetcode.com/last-activity to `at` (RFC 3339), nothing else.
  virtual Result<Repl, kube::ApiError> record_activity(const std::string& repl_id, const std::string& at) = 0;
  // Waits, at most `timeout`, for the Repl to report phase Ready, without holding the caller's
  // thread once the call returns: `done` gets the Repl as last seen (std::nullopt if it does not
  // exist or was deleted meanwhile), exactly once, from any thread (perhaps before this returns).
  virtual void wait_ready(const std::string& repl_id, std::chrono::milliseconds timeout, WaitDone done) = 0;
  // Whether the API server answers (for /readyz).
  virtual bool reachable() = 0;
};

class KubeReplApi final : public ReplApi {
 public:
  // `waiters` is fed by a watch of the Repls in `ns` (see ReadyWaiters).
  KubeReplApi(kube::Client& client, std::string ns, ReadyWaiters& waiters)
      : client_(client), ns_(std::move(ns)), waiters_(waiters) {}

  Result<std::optional<Repl>, kube::ApiError> get(const std::string& repl_id) override;
  Result<Applied, kube::ApiError> apply(const StartRequest& request) override;
  Result<void, kube::ApiError> remove(const std::string& repl_id, const std::string& uid) override;
  Result<Repl, kube::ApiError> record_activity(const std::string& repl_id, const std::string& at) override;
  void wait_ready(const std::string& repl_id, std::chrono::milliseconds timeout, WaitDone done) override;
  bool reachable() override;

 private:
  kube::Client& client_;  // not owned
  const std::string ns_;
  ReadyWaiters& waiters_;  // not owned
};

}  // namespace repl::shim
