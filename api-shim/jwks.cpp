#include "jwks.hpp"

#include <sys/stat.h>

#include <fstream>
#include <future>
#include <sstream>

#include "common/log.hpp"

namespace repl::shim {

std::shared_ptr<const auth::KeySet> KeyHolder::keys() const {
  std::lock_guard lock(mu_);
  return keys_;
}

Result<void, std::string> KeyHolder::take(const std::string& text) {
  auto parsed = auth::KeySet::parse(text, options_);
  std::lock_guard lock(mu_);
  if (!parsed) {
    const std::string why = source_ + ": " + parsed.error();
    if (keys_ && !warned_)
      log::warn("the JWKS changed but cannot be used; the keys read before stay", {{"error", why}});
    warned_ = true;
    return Fail(why);
  }
  const bool first = !keys_;
  keys_ = std::make_shared<const auth::KeySet>(std::move(*parsed));
  warned_ = false;
  std::string kids;
  for (const auto& k : keys_->kids()) kids += (kids.empty() ? "" : ",") + k;
  log::info(first ? "JWT keys read" : "JWT keys read again", {{"source", source_}, {"kids", kids}});
  return Ok{};
}

void KeyHolder::failed(const std::string& why) {
  std::lock_guard lock(mu_);
  if (!warned_) log::warn("the JWKS cannot be read; the keys read before stay", {{"error", why}});
  warned_ = true;
}

JwksFile::JwksFile(std::string path, auth::KeySetOptions options, Clock& clock, std::chrono::seconds poll)
    : path_(std::move(path)),
      clock_(clock),
      poll_(poll),
      holder_(path_, options),
      timer_(clock.make_timer()) {}

JwksFile::~JwksFile() { stop(); }

Result<std::unique_ptr<JwksFile>, std::string> JwksFile::open(std::string path, auth::KeySetOptions options,
                                                              Clock& clock, std::chrono::seconds poll) {
  std::unique_ptr<JwksFile> f(new JwksFile(std::move(path), options, clock, poll));
  if (auto loaded = f->load(); !loaded) return Fail(loaded.error());
  return f;
}

Result<void, std::string> JwksFile::load() {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) return Fail("cannot read the JWKS file " + path_);
  const Stamp stamp{st.st_dev, st.st_ino, st.st_size,
                    static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
  {
    std::lock_guard lock(mu_);
    if (holder_.keys() && stamp == stamp_) return Ok{};
    stamp_ = stamp;  // a broken file is told about once, not at every look
  }
  std::ifstream in(path_, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) return Fail("cannot read the JWKS file " + path_);
  return holder_.take(text.str());
}

void JwksFile::check() {
  if (auto loaded = load(); !loaded && loaded.error().rfind("cannot read", 0) == 0)
    holder_.failed(loaded.error());
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

void JwksFile::arm() {
  if (stopped_ || poll_.count() <= 0) return;
  timer_->wait_until(clock_.now() + poll_, [this] {
    check();
    std::lock_guard lock(mu_);
    arm();
  });
}

JwksUrl::JwksUrl(std::string url, auth::KeySetOptions options, Clock& clock, std::chrono::seconds refresh,
                 Fetch fetch)
    : url_(std::move(url)),
      clock_(clock),
      refresh_(refresh),
      fetch_(std::move(fetch)),
      holder_(std::make_shared<KeyHolder>(url_, options)),
      timer_(clock.make_timer()) {}

JwksUrl::~JwksUrl() { stop(); }

Result<std::unique_ptr<JwksUrl>, std::string> JwksUrl::open(std::string url, auth::KeySetOptions options,
                                                            Clock& clock, std::chrono::seconds refresh,
                                                            Fetch fetch) {
  std::unique_ptr<JwksUrl> u(new JwksUrl(std::move(url), options, clock, refresh, std::move(fetch)));
  auto first = std::make_shared<std::promise<Result<std::string, std::string>>>();
  auto answer = first->get_future();
  u->fetch_([first](Result<std::string, std::string> r) { first->set_value(std::move(r)); });
  if (answer.wait_for(std::chrono::seconds(15)) != std::future_status::ready)
    return Fail("GET " + u->url_ + ": no answer within 15 s");
  auto text = answer.get();
  if (!text) return Fail(text.error());
  if (auto taken = u->holder_->take(*text); !taken) return Fail(taken.error());
  return u;
}

void JwksUrl::start() {
  std::lock_guard lock(mu_);
  stopped_ = false;
  arm();
}

void JwksUrl::stop() {
  std::lock_guard lock(mu_);
  stopped_ = true;
  timer_->cancel();
}

void JwksUrl::arm() {
  if (stopped_ || refresh_.count() <= 0) return;
  timer_->wait_until(clock_.now() + refresh_, [this] {
    {
      std::lock_guard lock(mu_);
      if (stopped_) return;
      arm();  // the next round's timer first: a fetch's answer touches only the holder
    }
    if (fetching_->exchange(true)) return;
    fetch_([holder = holder_, fetching = fetching_](Result<std::string, std::string> r) {
      if (!r) {
        holder->failed(r.error());
      } else {
        (void)holder->take(*r);
      }
      fetching->store(false);
    });
  });
}

std::shared_ptr<const auth::KeySet> merged(const std::vector<std::shared_ptr<const auth::KeySet>>& sets) {
  std::vector<const auth::KeySet*> present;
  std::shared_ptr<const auth::KeySet> only;
  for (const auto& s : sets) {
    if (s) present.push_back(s.get()), only = s;
  }
  if (present.size() <= 1) return only;
  return std::make_shared<const auth::KeySet>(auth::KeySet::merge(present));
}

}  // namespace repl::shim
