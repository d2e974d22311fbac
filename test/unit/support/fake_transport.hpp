// A scripted kube::Transport: records every request and answers from queues the test fills.
// An unscripted request gets a transport error naming it, so a test sees it instead of hanging.
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kube/transport.hpp"

namespace repl::test {

// A watch stream that yields the given lines, then ends normally.
class FakeLineStream final : public kube::LineStream {
 public:
  explicit FakeLineStream(std::vector<std::string> lines) : lines_(lines.begin(), lines.end()) {}
  Result<std::optional<std::string>, kube::ApiError> next() override {
    if (cancelled_ || lines_.empty()) return std::optional<std::string>();
    std::string line = std::move(lines_.front());
    lines_.pop_front();
    return std::optional<std::string>(std::move(line));
  }
  void cancel() override { cancelled_ = true; }

 private:
  std::deque<std::string> lines_;
  bool cancelled_ = false;
};

class FakeTransport final : public kube::Transport {
 public:
  using SendResult = Result<kube::HttpResponse, kube::ApiError>;
  using StreamResult = Result<std::unique_ptr<kube::LineStream>, kube::ApiError>;

  // Scripts the answer to the next send().
  void respond(int status, std::string body) {
    responses_.emplace_back(kube::HttpResponse{status, std::move(body)});
  }
  void fail(kube::ApiError error) { responses_.emplace_back(Fail(std::move(error))); }
  // Scripts the answer to the next open_stream().
  void stream(std::vector<std::string> lines) {
    streams_.emplace_back(
        std::unique_ptr<kube::LineStream>(std::make_unique<FakeLineStream>(std::move(lines))));
  }
  void fail_stream(kube::ApiError error) { streams_.emplace_back(Fail(std::move(error))); }
  // Scripts a stream of the test's own making as the answer to the next open_stream().
  void custom_stream(std::unique_ptr<kube::LineStream> stream) { streams_.emplace_back(std::move(stream)); }

  SendResult send(const kube::HttpRequest& request) override {
    requests.push_back(request);
    if (responses_.empty())
      return Fail(kube::transport_error("unscripted " + request.method + " " + request.target));
    SendResult r = std::move(responses_.front());
    responses_.pop_front();
    return r;
  }
  StreamResult open_stream(const kube::HttpRequest& request) override {
    requests.push_back(request);
    if (streams_.empty()) return Fail(kube::transport_error("unscripted stream " + request.target));
    StreamResult r = std::move(streams_.front());
    streams_.pop_front();
    return r;
  }

  std::size_t unused_responses() const { return responses_.size() + streams_.size(); }

  std::vector<kube::HttpRequest> requests;

 private:
  std::deque<SendResult> responses_;
  std::deque<StreamResult> streams_;
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

inline std::string path_of(const std::string& target) { return target.substr(0, target.find('?')); }

}  // namespace repl::test
