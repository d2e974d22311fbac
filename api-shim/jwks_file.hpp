// The JWT keys of the shim, from a JWKS file (a mounted Secret or ConfigMap), read again when it
// changes: every `poll` (a timer of the injected clock) the file's identity, size and modification
// time are compared with the last read's, and a changed file is parsed; a file that no longer
// parses (or has no usable key) is refused with one warning and the keys read before stay. A
// Kubernetes volume update (an atomic swap of the ..data symlink) is seen as a change.
//
//   auto jwks = JwksFile::open("/etc/shim/jwks.json", {}, clock, 5s);   // error: unreadable or no key
//   (*jwks)->start();
//   std::shared_ptr<const auth::KeySet> keys = (*jwks)->keys();
//
// Thread-safety: keys() from any thread; start() and stop() from one. The clock's timers must not
// fire after the JwksFile is gone (stop() first, or destroy it after the io_context stopped).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "auth/jwt.hpp"
#include "common/clock.hpp"
#include "common/result.hpp"

namespace repl::shim {

class JwksFile final {
 public:
  static Result<std::unique_ptr<JwksFile>, std::string> open(std::string path, auth::KeySetOptions options,
                                                             Clock& clock, std::chrono::seconds poll);
  ~JwksFile();
  JwksFile(const JwksFile&) = delete;
  JwksFile& operator=(const JwksFile&) = delete;

  std::shared_ptr<const auth::KeySet> keys() const;
  void start();
  void stop();
  // Reads the file again if it changed; what the timer does.
  void check();

 private:
  struct Stamp {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = -1;
    std::int64_t mtime_ns = 0;
    bool operator==(const Stamp&) const = default;
  };
  JwksFile(std::string path, auth::KeySetOptions options, Clock& clock, std::chrono::seconds poll);
  Result<void, std::string> load();  // the file as it is now
  void arm();

  const std::string path_;
  const auth::KeySetOptions options_;
  Clock& clock_;
  const std::chrono::seconds poll_;
  std::unique_ptr<Timer> timer_;
  mutable std::mutex mu_;
  std::shared_ptr<const auth::KeySet> keys_;
  Stamp stamp_;
  bool stopped_ = true;
  bool warned_ = false;  // about the current (broken) file
};

}  // namespace repl::shim
