// Fuzzes the shim's request handling: method, path, query, headers and body from the input (lines:
// the method, the path, the query, "name: value" headers up to an empty line, then the body),
// answered by a Shim over an in-memory ReplApi, in each of its modes (no auth, a shared token, a
// JWT issuer). Every request gets exactly one answer, and no client's input is a 500.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "shim.hpp"
#include "unit/support/fake_repl_api.hpp"

namespace {

using repl::kube::HttpReply;
using repl::kube::IncomingRequest;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

std::string_view next_line(std::string_view& rest) {
  const auto nl = rest.find('\n');
  const std::string_view line = rest.substr(0, nl);
  rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
  return line;
}

IncomingRequest request_of(std::string_view input) {
  IncomingRequest r;
  r.method = next_line(input);
  r.path = next_line(input);
  r.query = next_line(input);
  while (!input.empty()) {
    const std::string_view line = next_line(input);
    if (line.empty()) break;
    const auto colon = line.find(':');
    std::string name(line.substr(0, colon));
    for (auto& c : name) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    std::string value(colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1));
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    r.headers.emplace_back(std::move(name), std::move(value));
  }
  r.body = input;
  return r;
}

repl::shim::ShimOptions options_for(int mode) {
  repl::shim::ShimOptions o;
  if (mode == 1) o.auth_token = "fuzz-token-0123456789";
  if (mode == 2) {
    // An issuer whose keys are an HS256 secret (the cheapest to verify): the token checks run.
    auto keys = repl::auth::KeySet::parse(
        R"({"keys":[{"kty":"oct","kid":"k1","alg":"HS256","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}]})",
        {true});
    check(keys.has_value());
    auto shared = std::make_shared<const repl::auth::KeySet>(std::move(*keys));
    o.jwt_keys = [shared] { return shared; };
    o.jwt.issuer = "https://issuer.test";
    o.jwt.audience = "repl-shim";
    o.jwt.allow_hs256 = true;
  }
  o.cors_origins = {"https://app.example.com"};
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = [] {
    repl::log::set_level(repl::log::Level::kError);
    return true;
  }();
  (void)quiet;
  if (size == 0) return 0;
  const int mode = data[0] % 3;
  const IncomingRequest request =
      request_of(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  repl::test::FakeReplApi api;
  api.add("taken", "someone-else");
  repl::ManualClock clock;
  repl::metrics::Registry registry;
  repl::shim::Shim shim(options_for(mode), api, clock, registry);
  int answers = 0;
  std::optional<HttpReply> reply;
  shim.handle(request, [&](HttpReply r) {
    ++answers;
    reply = std::move(r);
  });
  check(answers == 1);
  check(reply->status >= 200 && reply->status <= 599 && reply->status != 500);
  return 0;
}
