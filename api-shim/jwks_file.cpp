#include "jwks_file.hpp"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "common/log.hpp"

namespace repl::shim {

JwksFile::JwksFile(std::string path, auth::KeySetOptions options, Clock& clock, std::chrono::seconds poll)
    : path_(std::move(path)), options_(options), clock_(clock), poll_(poll), timer_(clock.make_timer()) {}

JwksFile::~JwksFile() { stop(); }

Result<std::unique_ptr<JwksFile>, std::string> JwksFile::open(std::string path, auth::KeySetOptions options,
                                                              Clock& clock, std::chrono::seconds poll) {
  std::unique_ptr<JwksFile> f(new JwksFile(std::move(path), options, clock, poll));
  if (auto loaded = f->load(); !loaded) return Fail(loaded.error());
  return f;
}

std::shared_ptr<const auth::KeySet> JwksFile::keys() const {
  std::lock_guard lock(mu_);
  return keys_;
}

Result<void, std::string> JwksFile::load() {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) return Fail("cannot read the JWKS file " + path_);
  const Stamp stamp{st.st_dev, st.st_ino, st.st_size,
                    static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
  {
    std::lock_guard lock(mu_);
    if (keys_ && stamp == stamp_) return Ok{};
  }
  std::ifstream in(path_, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) return Fail("cannot read the JWKS file " + path_);
  auto parsed = auth::KeySet::parse(text.str(), options_);
  std::lock_guard lock(mu_);
  if (!parsed) {
    const std::string why = path_ + ": " + parsed.error();
    if (keys_ && !warned_)
      log::warn("the JWKS file changed but cannot be used; the keys read before stay", {{"error", why}});
    warned_ = true;
    stamp_ = stamp;  // told once per change
    return Fail(why);
  }
  const bool first = !keys_;
  keys_ = std::make_shared<const auth::KeySet>(std::move(*parsed));
  stamp_ = stamp;
  warned_ = false;
  std::string kids;
  for (const auto& k : keys_->kids()) kids += (kids.empty() ? "" : ",") + k;
  log::info(first ? "JWT keys read" : "JWT keys read again", {{"file", path_}, {"kids", kids}});
  return Ok{};
}

void JwksFile::check() {
  if (auto loaded = load(); !loaded) {
    std::lock_guard lock(mu_);
    if (!warned_) {
      log::warn("the JWKS file cannot be read; the keys read before stay", {{"error", loaded.error()}});
      warned_ = true;
    }
  }
}

void JwksFile::start() {
  std::lock_guard lock(mu_);
  stopped_ = false;
  arm();
}

void JwksFile::stop() {
  std::lock_guard lock(mu_);
  stopped_ = true;
  timer_->cancel();
}

void JwksFile::arm() {  // requires mu_
  if (stopped_ || poll_.count() <= 0) return;
  timer_->wait_until(clock_.now() + poll_, [this] {
    check();
    std::lock_guard lock(mu_);
    arm();
  });
}

}  // namespace repl::shim
