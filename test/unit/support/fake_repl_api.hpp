// An in-memory ReplApi for tests of the API shim: a map of Repls by replId, and a record of every
// call made to it, so a test can assert that a refused request made no call at all.
//
// It behaves like the API server where the shim depends on it: apply creates or updates (a Repl's
// userId cannot change: 422 "userId is immutable", the CRD's rule), remove deletes only the Repl
// with the given uid (409 otherwise), and any kind of call can be made to fail (transport errors,
// throttling, ...).
//
// Thread-safety: every member function takes the lock; the public fields are for single-threaded
// set-up and inspection.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "kube/error.hpp"
#include "repl_api.hpp"

namespace repl::test {

class FakeReplApi final : public shim::ReplApi {
 public:
  enum class Call { kGet, kApply, kRemove, kWaitReady, kReachable, kRecordActivity };

  struct Record {
    Call call;
    std::string repl_id;                  // empty for kReachable
    shim::StartRequest start;             // kApply
    std::string uid;                      // kRemove
    std::chrono::milliseconds timeout{};  // kWaitReady
    std::string at;                       // kRecordActivity
  };

  static constexpr const char* kNamespace = "repls";

  std::map<std::string, Repl> repls;        // by replId
  std::vector<Record> calls;                // in order
  std::map<Call, kube::ApiError> failures;  // calls of these kinds fail, every time
  bool is_reachable = true;

  // Stores a Repl as if it had been created earlier; returns it for further set-up.
  Repl& add(const std::string& repl_id, const std::string& user_id, const std::string& language = "",
            const std::string& phase = "") {
    Repl r;
    r.key = {kNamespace, repl_id};
    r.uid = "uid-" + repl_id + "-" + std::to_string(++next_uid_);
    r.resource_version = "1";
    r.generation = 1;
    r.spec.user_id = user_id;
    r.spec.language = language;
    r.status.phase = phase;
    return repls[repl_id] = r;
  }

  std::size_t count(Call call) const {
    std::lock_guard lock(mu_);
    std::size_t n = 0;
    for (const auto& c : calls) n += c.call == call ? 1 : 0;
    return n;
  }

  // The calls of one kind, in order.
  std::vector<Record> calls_of(Call call) const {
    std::lock_guard lock(mu_);
    std::vector<Record> out;
    for (const auto& c : calls) {
      if (c.call == call) out.push_back(c);
    }
    return out;
  }

  Result<std::optional<Repl>, kube::ApiError> get(const std::string& repl_id) override {
    std::lock_guard lock(mu_);
    calls.push_back({Call::kGet, repl_id, {}, {}, {}, {}});
    if (auto f = failure(Call::kGet)) return Fail(*f);
    return find(repl_id);
  }

  Result<shim::Applied, kube::ApiError> apply(const shim::StartRequest& request) override {
    std::lock_guard lock(mu_);
    calls.push_back({Call::kApply, request.repl_id, request, {}, {}, {}});
    if (auto f = failure(Call::kApply)) return Fail(*f);
    auto it = repls.find(request.repl_id);
    if (it != repls.end() && it->second.spec.user_id != request.user_id) {
      return Fail(kube::ApiError{kube::ApiError::Kind::kApi, 422, "Invalid",
                                 "Repl.peetcode.com \"" + request.repl_id +
                                     "\" is invalid: spec.userId: Invalid value: \"string\": userId is "
                                     "immutable"});
    }
    const bool created = it == repls.end();
    if (created) {
      Repl r;
      r.key = {kNamespace, request.repl_id};
      r.uid = "uid-" + request.repl_id + "-" + std::to_string(++next_uid_);
      r.resource_version = "0";
      it = repls.emplace(request.repl_id, r).first;
    }
    Repl& r = it->second;
    // Server-side apply of the whole spec this manager owns: a field left out is removed.
    ReplSpec spec = r.spec;
    spec.user_id = request.user_id;
    spec.language = request.language;
    spec.suspended = request.suspended;
    spec.idle_timeout = request.idle_timeout;
    spec.ttl_after_suspend = request.ttl_after_suspend;
    if (created || !(spec == r.spec) || r.last_activity != request.last_activity ||
        r.subject != request.subject) {
      if (!(spec == r.spec)) ++r.generation;
      r.spec = spec;
      r.last_activity = request.last_activity;  // the annotations this manager owns
      r.subject = request.subject;
      r.resource_version = std::to_string(std::stoll(r.resource_version) + 1);
    }
    return shim::Applied{r, created};
  }

  Result<Repl, kube::ApiError> record_activity(const std::string& repl_id, const std::string& at) override {
    std::lock_guard lock(mu_);
    calls.push_back({Call::kRecordActivity, repl_id, {}, {}, {}, at});
    if (auto f = failure(Call::kRecordActivity)) return Fail(*f);
    const auto it = repls.find(repl_id);
    if (it == repls.end())
      return Fail(kube::ApiError{kube::ApiError::Kind::kApi, 404, "NotFound", "not found"});
    it->second.last_activity = at;
    it->second.resource_version = std::to_string(std::stoll(it->second.resource_version) + 1);
    return it->second;
  }

  Result<void, kube::ApiError> remove(const std::string& repl_id, const std::string& uid) override {
    std::lock_guard lock(mu_);
    calls.push_back({Call::kRemove, repl_id, {}, uid, {}, {}});
    if (auto f = failure(Call::kRemove)) return Fail(*f);
    const auto it = repls.find(repl_id);
    if (it == repls.end())
      return Fail(kube::ApiError{kube::ApiError::Kind::kApi, 404, "NotFound", "not found"});
    if (it->second.uid != uid) {
      return Fail(kube::ApiError{kube::ApiError::Kind::kApi, 409, "Conflict", "Precondition failed: UID"});
    }
    repls.erase(it);
    return Ok{};
  }

  // Ends at once, before it returns, with the Repl as stored: the test sets the phase it wants
  // beforehand (ReadyWaiters' own tests cover the waiting).
  void wait_ready(const std::string& repl_id, std::chrono::milliseconds timeout,
                  shim::WaitDone done) override {
    shim::WaitResult result = std::optional<Repl>();
    {
      std::lock_guard lock(mu_);
      calls.push_back({Call::kWaitReady, repl_id, {}, {}, timeout, {}});
      if (auto f = failure(Call::kWaitReady)) {
        result = Fail(*f);
      } else {
        result = find(repl_id);
      }
    }
    done(std::move(result));
  }

  bool reachable() override {
    std::lock_guard lock(mu_);
    calls.push_back({Call::kReachable, {}, {}, {}, {}, {}});
    return is_reachable;
  }

 private:
  std::optional<kube::ApiError> failure(Call call) const {
    const auto it = failures.find(call);
    return it == failures.end() ? std::nullopt : std::optional<kube::ApiError>(it->second);
  }

  std::optional<Repl> find(const std::string& repl_id) const {
    const auto it = repls.find(repl_id);
    return it == repls.end() ? std::nullopt : std::optional<Repl>(it->second);
  }

  mutable std::mutex mu_;
  int next_uid_ = 0;
};

}  // namespace repl::test
