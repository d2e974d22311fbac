// Fuzzes kubeconfig parsing: any text gives a configuration or an error, never a crash; a
// configuration names an http(s) server. (File references resolve under a directory that does not
// exist, so nothing of the machine's is read through relative paths.)
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "kube/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto cfg = repl::kube::parse_kubeconfig(text, "/nonexistent/repl-fuzz");
  if (cfg && cfg->server.empty()) __builtin_trap();  // a configuration always names its server
  if (!cfg && cfg.error().message.empty()) __builtin_trap();
  return 0;
}
