// The reconcile queue: keys of Repls that may need work. Adding a key that is already waiting does
// nothing (dedupe); a key being processed is never handed to a second worker: if it is added
// meanwhile, it waits and is handed out again once done() is called (as client-go's workqueue).
//
// Thread-safety: all methods may be called from any thread; get() blocks.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <set>

#include "common/object_key.hpp"

namespace repl {

class WorkQueue {
 public:
  void add(const ObjectKey& key);
  // Blocks until a key is ready or the queue is shut down (then std::nullopt).
  std::optional<ObjectKey> get();
  // The worker finished `key`; if it was added again meanwhile, it becomes ready again.
  void done(const ObjectKey& key);
  void shut_down();
  std::size_t depth() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ObjectKey> ready_;
  std::set<ObjectKey> dirty_;       // waiting to be processed (in ready_, or held back while processing)
  std::set<ObjectKey> processing_;  // handed to a worker
  bool shutting_down_ = false;
};

}  // namespace repl
