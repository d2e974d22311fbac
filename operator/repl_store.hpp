// The operator's cache of Repls, fed by the Repl watcher. It keeps the parsed Repl (the fields
// reconcile needs), not the API object, and reports every key that may have changed, including
// keys that vanished during a resync.
//
// Thread-safety: the sink methods are called by the watcher thread; get() and size() by workers.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>

#include "common/object_key.hpp"
#include "kube/watcher.hpp"
#include "repl/repl.hpp"

namespace repl {

class ReplStore final : public kube::WatchSink {
 public:
  using OnChange = std::function<void(const ObjectKey&)>;
  explicit ReplStore(OnChange on_change) : on_change_(std::move(on_change)) {}

  std::optional<Repl> get(const ObjectKey& key) const;
  std::size_t size() const;
  // Blocks until the first list has been stored (true) or cancel_wait() is called (false).
  bool wait_synced();
  void cancel_wait();

  void begin_resync() override;
  void resync_item(const rapidjson::Value& object) override;
  void end_resync() override;
  void on_event(kube::EventType type, const rapidjson::Value& object) override;

 private:
  OnChange on_change_;
  mutable std::mutex mu_;
  std::map<ObjectKey, Repl> repls_;
  std::map<ObjectKey, Repl> incoming_;  // a resync in progress; only the watcher thread touches it
  std::condition_variable synced_cv_;
  bool synced_ = false;
  bool wait_cancelled_ = false;
};

}  // namespace repl
