// Access to environment variables through an injectable function, so configuration code can be
// tested without touching the process environment.
#pragma once

#include <cstdlib>
#include <functional>
#include <optional>
#include <string>

namespace repl {

using Getenv = std::function<std::optional<std::string>(const char*)>;

// The process environment.
inline std::optional<std::string> process_getenv(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

}  // namespace repl
