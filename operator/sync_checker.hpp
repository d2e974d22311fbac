// How running pods' periodic pushes to S3 go, and whether their IDE is in use: every `interval`, the
// last lines of each running sync sidecar's log (GET
// pods/<name>/log?container=sync-workspace&tailLines=20&timestamps=true, through the API server:
// nothing in the pod holds API credentials, and the kubelet stamps the lines): the newest push line
// (a SyncReport) and the newest "active" line (the sidecar saw live connections to the runner's
// websocket port). A changed report or activity is handed to `on_change` (the Repl's key goes to
// the queue).
//
// Cost: one small GET (at most 20 lines) per running repl per interval (default 60 s), four at a
// time; a round's reports replace the last round's, so memory follows the running repls.
//
// Threads: none of its own. The round's timer is a timer of `clock`; answers arrive on transport
// threads. report() from any thread. stop() ends the rounds (in-flight GETs end with the transport).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "common/clock.hpp"
#include "common/object_key.hpp"
#include "kube/client.hpp"
#include "repl/observed.hpp"

namespace repl {

class SyncChecker final {
 public:
  // The pods to read now: {pod, its Repl}.
  using Candidates = std::function<std::vector<std::pair<ObjectKey, ObjectKey>>()>;
  using OnChange = std::function<void(const ObjectKey& repl)>;

  SyncChecker(kube::Client& client, Clock& clock, std::chrono::seconds interval, Candidates candidates,
              OnChange on_change);
  ~SyncChecker();

  // The first round starts one interval from now.
  void start();
  void stop();

  std::optional<SyncReport> report(const ObjectKey& repl) const;
  // When the Repl's sidecar last said its IDE had live connections, as of the last round.
  std::optional<WallTime> activity(const ObjectKey& repl) const;

  // What the checks cost: log reads made (failed ones too) and the last round's length.
  struct Stats {
    std::uint64_t reads = 0;
    std::uint64_t failed_reads = 0;
    std::chrono::steady_clock::duration last_round{};
  };
  Stats stats() const;

  // The log request for a pod: the lines of the last two intervals, at most 100 (an activity line
  // comes at most, and while the IDE is in use at least, once an interval).
  static std::string log_path(const ObjectKey& pod, std::chrono::seconds interval);

 private:
  struct Round;
  void arm();
  void begin_round();
  void next(const std::shared_ptr<Round>& round);
  void finish(const std::shared_ptr<Round>& round);

  kube::Client& client_;  // not owned
  Clock& clock_;          // not owned
  const std::chrono::seconds interval_;
  const Candidates candidates_;
  const OnChange on_change_;
  std::unique_ptr<Timer> timer_;
  mutable std::mutex mu_;
  bool stopped_ = false;
  std::map<ObjectKey, SyncReport> reports_;  // by Repl
  std::map<ObjectKey, WallTime> active_;     // by Repl
  Stats stats_;
};

}  // namespace repl
