// The JWT keys of the shim: from a JWKS file (a mounted Secret or ConfigMap), read again when it
// changes, and/or from an issuer's JWKS URL, fetched again every `refresh`. Each source keeps the
// last document that parsed: a file or an answer that does not parse (or holds no usable key), a
// missing file or an unreachable URL is one warning, and the keys read before stay.
//
// JwksFile: every `poll` (a timer of the injected clock) the file's identity, size and
// modification time are compared with the last read's, and a changed file is parsed. A Kubernetes
// volume update (an atomic swap of the ..data symlink) is seen as a change.
// JwksUrl: the first fetch is made by open() (start-up waits for it, at most 15 s); later ones are
// asynchronous, through `fetch` (kube::http_get in the binary; a fake in tests).
//
//   auto file = JwksFile::open("/etc/shim/jwks.json", {}, clock, 5s);   // error: unreadable or no key
//   (*file)->start();
//   auto keys = merged({(*file)->keys(), url->keys()});
//
// Thread-safety: keys() from any thread; start() and stop() from one. The clock's timers must not
// fire after a source is gone (stop() first, or destroy it after the io_context stopped).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "auth/jwt.hpp"
#include "common/clock.hpp"
#include "common/result.hpp"

namespace repl::shim {

// The keys of one source: those of the last document that parsed.
class KeyHolder {
 public:
  KeyHolder(std::string source, auth::KeySetOptions options)
      : source_(std::move(source)), options_(options) {}
  std::shared_ptr<const auth::KeySet> keys() const;
  // A document the source gave: its keys replace the old ones, or (an error) the old ones stay,
  // with one warning until a good document comes.
  Result<void, std::string> take(const std::string& text);
  // The source could not be read: the old keys stay, with one warning until it can.
  void failed(const std::string& why);

 private:
  const std::string source_;
  const auth::KeySetOptions options_;
  mutable std::mutex mu_;
  std::shared_ptr<const auth::KeySet> keys_;
  bool warned_ = false;
};

class JwksFile final {
 public:
  static Result<std::unique_ptr<JwksFile>, std::string> open(std::string path, auth::KeySetOptions options,
                                                             Clock& clock, std::chrono::seconds poll);
  ~JwksFile();
  JwksFile(const JwksFile&) = delete;
  JwksFile& operator=(const JwksFile&) = delete;

  std::shared_ptr<const auth::KeySet> keys() const { return holder_.keys(); }
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
  Result<void, std::string> load();  // the file as it is now, if it changed
  void arm();                        // requires mu_

  const std::string path_;
  Clock& clock_;
  const std::chrono::seconds poll_;
  KeyHolder holder_;
  std::unique_ptr<Timer> timer_;
  std::mutex mu_;
  Stamp stamp_;
  bool stopped_ = true;
};

class JwksUrl final {
 public:
  using Fetch = std::function<void(std::function<void(Result<std::string, std::string>)>)>;
  static Result<std::unique_ptr<JwksUrl>, std::string> open(std::string url, auth::KeySetOptions options,
                                                            Clock& clock, std::chrono::seconds refresh,
                                                            Fetch fetch);
  ~JwksUrl();
  JwksUrl(const JwksUrl&) = delete;
  JwksUrl& operator=(const JwksUrl&) = delete;

  std::shared_ptr<const auth::KeySet> keys() const { return holder_->keys(); }
  void start();
  void stop();

 private:
  JwksUrl(std::string url, auth::KeySetOptions options, Clock& clock, std::chrono::seconds refresh,
          Fetch fetch);
  void arm();  // requires mu_

  const std::string url_;
  Clock& clock_;
  const std::chrono::seconds refresh_;
  const Fetch fetch_;
  std::shared_ptr<KeyHolder> holder_;  // shared with the fetches in flight
  // One fetch at a time: a round that finds the last still out is skipped, so a slow answer can
  // never land after a newer one (and bring back keys the issuer removed).
  std::shared_ptr<std::atomic<bool>> fetching_ = std::make_shared<std::atomic<bool>>(false);
  std::unique_ptr<Timer> timer_;
  std::mutex mu_;
  bool stopped_ = true;
};

// The keys of several sources as one set (the one source's own when there is only one).
std::shared_ptr<const auth::KeySet> merged(const std::vector<std::shared_ptr<const auth::KeySet>>& sets);

}  // namespace repl::shim
