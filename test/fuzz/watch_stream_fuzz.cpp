// Fuzzes what a watch stream brings in: the bytes are cut into lines as the transport cuts them,
// each line is decoded (parse_watch_event) and fed to the watcher's state machine, and every
// non-2xx body the API server (or a proxy) might send is decoded as a Status with a Retry-After.
// Nothing may crash, and the state machine must stay in a state it can act on.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "kube/error.hpp"
#include "kube/watcher.hpp"

namespace {

using namespace repl::kube;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  watcher::State state;
  state = watcher::step(state, watcher::ListSucceeded{"1"}, {}, 1.0).state;
  repl::SteadyTime now{};
  std::size_t start = 0;
  while (start <= input.size()) {
    std::size_t end = input.find('\n', start);
    if (end == std::string_view::npos) end = input.size();
    const std::string_view line = input.substr(start, end - start);
    start = end + 1;
    now += std::chrono::milliseconds(100);
    if (auto ev = parse_watch_event(line)) {
      check(ev->object.IsObject());
      const auto next =
          watcher::step(state, watcher::EventReceived{ev->type, ev->resource_version, ev->error}, now, 1.0);
      check(next.action.delay <= watcher::kMaxBackoff + kMaxRetryAfter);
      state = next.state;
    } else {
      check(ev.error().kind == ApiError::Kind::kDecode);
      state = watcher::step(state, watcher::StreamBroken{ev.error()}, now, 1.0).state;
    }
    // The same line as an error body, with itself as the Retry-After header.
    const ApiError status = decode_status(429, line, line.substr(0, 12));
    check(status.code == 429 && !status.reason.empty());
    check(status.retry_after >= std::chrono::seconds(0) && status.retry_after <= kMaxRetryAfter);
    check(status.message.size() <= line.size() + 64 || status.message.size() <= 200);
  }
  return 0;
}
