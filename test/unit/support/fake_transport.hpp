// A scripted kube::Transport: records every request and answers from what the test scripted, in
// one of two ways: by request (method and path, for code that sends several requests at once, in
// any order), or in order (the next answer to the next request that no route matches). An
// unscripted request gets a transport error naming it, so a test sees it instead of hanging.
// send_async() answers on the caller's thread before returning. Thread-safe: the code under test
// may send from several threads while the test waits for requests (wait_for).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kube/transport.hpp"

namespace repl::test {

// A watch stream that yields the given lines, then ends normally; each read answers at once.
class FakeLineStream final : public kube::LineStream {
 public:
  explicit FakeLineStream(std::vector<std::string> lines) : lines_(lines.begin(), lines.end()) {}
  void next_async(LineDone done) override {
    if (cancelled_ || lines_.empty()) return done(std::optional<std::string>());
    std::string line = std::move(lines_.front());
    lines_.pop_front();
    done(std::optional<std::string>(std::move(line)));
  }
  void cancel() override { cancelled_ = true; }

 private:
  std::deque<std::string> lines_;
  std::atomic<bool> cancelled_{false};
};

inline std::string path_of(const std::string& target) { return target.substr(0, target.find('?')); }

// A watch stream the test feeds while it is open: a read waits (holding no thread) until a line is
// pushed, the test ends the feed, or the reader is cancelled (then it ends normally, as a cancelled
// real stream's reader stops); push() and end() answer a waiting read on the test's thread.
class PushStream {
 public:
  void push(std::string line) {
    std::unique_lock lock(mu_);
    lines_.push_back(std::move(line));
    answer(lock);
  }
  void end() {
    std::unique_lock lock(mu_);
    ended_ = true;
    answer(lock);
  }
  // The LineStream the transport hands out; it reads this feed.
  std::unique_ptr<kube::LineStream> reader(std::shared_ptr<PushStream> self) {
    return std::make_unique<Reader>(std::move(self));
  }

 private:
  class Reader final : public kube::LineStream {
   public:
    explicit Reader(std::shared_ptr<PushStream> feed) : feed_(std::move(feed)) {}
    void next_async(LineDone done) override {
      std::unique_lock lock(feed_->mu_);
      feed_->waiting_ = std::move(done);
      feed_->answer(lock);
    }
    void cancel() override { feed_->end(); }

   private:
    std::shared_ptr<PushStream> feed_;
  };

  // Under mu_ (released before the callback): hands a waiting read its line or the end.
  void answer(std::unique_lock<std::mutex>& lock) {
    if (!waiting_ || (lines_.empty() && !ended_)) return;
    kube::LineStream::LineDone done = std::move(waiting_);
    waiting_ = nullptr;
    std::optional<std::string> line;
    if (!lines_.empty()) {
      line = std::move(lines_.front());
      lines_.pop_front();
    }
    lock.unlock();
    done(std::move(line));
  }

  std::mutex mu_;
  std::deque<std::string> lines_;
  bool ended_ = false;
  kube::LineStream::LineDone waiting_;
};

class FakeTransport final : public kube::Transport {
 public:
  // Scripts the answer to the next send() that no route matches.
  void respond(int status, std::string body, std::string retry_after = "") {
    std::lock_guard lock(mu_);
    responses_.emplace_back(kube::HttpResponse{status, std::move(body), std::move(retry_after)});
  }
  void fail(kube::ApiError error) {
    std::lock_guard lock(mu_);
    responses_.emplace_back(Fail(std::move(error)));
  }
  // Scripts the answers to requests of `method` on `path` (the target without its query): each
  // request takes the next; the last one answers every request after it, until more are scripted.
  void route(const std::string& method, const std::string& path, int status, std::string body,
             std::string retry_after = "") {
    add_route(method, path, kube::HttpResponse{status, std::move(body), std::move(retry_after)});
  }
  void route_failure(const std::string& method, const std::string& path, kube::ApiError error) {
    add_route(method, path, Fail(std::move(error)));
  }
  // Every watch opened on `path` reads `feed` (one at a time: a re-watch reads on where it stopped).
  void route_stream(const std::string& path, std::shared_ptr<PushStream> feed) {
    std::lock_guard lock(mu_);
    stream_routes_[path] = std::move(feed);
  }
  // Scripts the answer to the next stream opened.
  void stream(std::vector<std::string> lines) {
    std::lock_guard lock(mu_);
    streams_.emplace_back(
        std::unique_ptr<kube::LineStream>(std::make_unique<FakeLineStream>(std::move(lines))));
  }
  void fail_stream(kube::ApiError error) {
    std::lock_guard lock(mu_);
    streams_.emplace_back(Fail(std::move(error)));
  }
  // Scripts a stream of the test's own making as the answer to the next stream opened.
  void custom_stream(std::unique_ptr<kube::LineStream> stream) {
    std::lock_guard lock(mu_);
    streams_.emplace_back(std::move(stream));
  }

  SendResult send(const kube::HttpRequest& request) override {
    std::lock_guard lock(mu_);
    record(request);
    if (cancelled_) return Fail(kube::transport_error("cancelled: " + request.method + " " + request.target));
    if (auto it = routes_.find({request.method, path_of(request.target)}); it != routes_.end()) {
      Route& route = it->second;
      SendResult r = route.answers.front();
      if (route.answers.size() > 1) {
        route.answers.pop_front();
      } else {
        route.last_used = true;
      }
      return r;
    }
    if (responses_.empty())
      return Fail(kube::transport_error("unscripted " + request.method + " " + request.target));
    SendResult r = std::move(responses_.front());
    responses_.pop_front();
    return r;
  }
  void send_async(const kube::HttpRequest& request, SendDone done) override {
    {
      std::lock_guard lock(mu_);
      if (hold_next_) {
        hold_next_ = false;
        record(request);
        held_ = std::move(done);
        return;
      }
    }
    done(send(request));
  }
  // The next asynchronous request is recorded but left unanswered (in flight) until release_held().
  void hold_next() {
    std::lock_guard lock(mu_);
    hold_next_ = true;
  }
  void release_held(int status, std::string body) {
    SendDone done;
    {
      std::lock_guard lock(mu_);
      done = std::move(held_);
    }
    if (done) done(kube::HttpResponse{status, std::move(body), {}});
  }
  void open_stream_async(const kube::HttpRequest& request, StreamDone done) override {
    done(open_stream(request));
  }
  void cancel_all() override {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    for (auto& [path, feed] : stream_routes_) feed->end();
  }

  std::size_t unused_responses() const { return responses_.size() + streams_.size(); }

  // Waits (at most `timeout` of real time) until `pred` holds for the requests seen so far; it is
  // called under the transport's lock. Returns whether it came true.
  bool wait_for(const std::function<bool(const std::vector<kube::HttpRequest>&)>& pred,
                std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::unique_lock lock(mu_);
    return seen_.wait_for(lock, timeout, [&] { return pred(requests); });
  }
  // The requests seen so far, copied under the lock (while the code under test may still send).
  std::vector<kube::HttpRequest> snapshot() const {
    std::lock_guard lock(mu_);
    return requests;
  }

  // Every request in order. Read it directly only once the code under test has stopped sending.
  std::vector<kube::HttpRequest> requests;

 private:
  StreamResult open_stream(const kube::HttpRequest& request) {
    std::lock_guard lock(mu_);
    record(request);
    if (cancelled_) return Fail(kube::transport_error("cancelled: stream " + request.target));
    if (auto it = stream_routes_.find(path_of(request.target)); it != stream_routes_.end()) {
      return it->second->reader(it->second);
    }
    if (streams_.empty()) return Fail(kube::transport_error("unscripted stream " + request.target));
    StreamResult r = std::move(streams_.front());
    streams_.pop_front();
    return r;
  }
  struct Route {
    std::deque<SendResult> answers;
    bool last_used = false;  // the one answer left has answered already: a new one replaces it
  };
  void add_route(const std::string& method, const std::string& path, SendResult answer) {
    std::lock_guard lock(mu_);
    Route& route = routes_[{method, path}];
    if (route.last_used) route.answers.clear();
    route.last_used = false;
    route.answers.push_back(std::move(answer));
  }
  void record(const kube::HttpRequest& request) {
    requests.push_back(request);
    seen_.notify_all();
  }

  mutable std::mutex mu_;
  std::condition_variable seen_;
  bool cancelled_ = false;
  bool hold_next_ = false;
  SendDone held_;
  std::deque<SendResult> responses_;
  std::deque<StreamResult> streams_;
  std::map<std::pair<std::string, std::string>, Route> routes_;
  std::map<std::string, std::shared_ptr<PushStream>> stream_routes_;
};

// The "?query" part of a request target, split into (name, raw value) pairs in order.
inline std::vector<std::pair<std::string, std::string>> query_params(const std::string& target) {
  std::vector<std::pair<std::string, std::string>> out;
  const auto q = target.find('?');
  if (q == std::string::npos) return out;
  std::size_t pos = q + 1;
  while (pos <= target.size()) {
    const auto amp = std::min(target.find('&', pos), target.size());
    const std::string pair = target.substr(pos, amp - pos);
    const auto eq = pair.find('=');
    out.emplace_back(pair.substr(0, eq), eq == std::string::npos ? "" : pair.substr(eq + 1));
    pos = amp + 1;
  }
  return out;
}

}  // namespace repl::test
