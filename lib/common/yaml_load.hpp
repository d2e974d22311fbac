// yaml-cpp's LoadAll with a bound on its time. Debian's yaml-cpp 0.7.0 never returns on some
// malformed text (test/fuzz found a 70-byte one: test/fuzz/regressions/template/): a template or a
// kubeconfig like that would hang the operator at start-up, silently. The parse runs on a thread of
// its own; past `bound` it is abandoned (the thread is left to spin until the process ends: the
// callers, start-up code, exit on the error) and an error says so.
//
// Thread-safety: any thread.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace repl {

inline constexpr auto kYamlParseBound = std::chrono::seconds(5);

// The documents of `text`, or yaml-cpp's error message, or a message that it did not finish.
Result<std::vector<YAML::Node>, std::string> load_yaml_documents(
    std::string_view text, std::chrono::milliseconds bound = kYamlParseBound);

}  // namespace repl
