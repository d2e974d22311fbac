// yaml-cpp's LoadAll, with its errors as values and without its infinite loop. Debian's yaml-cpp
// 0.7.0 never returns on text where a document starts with a token no rule takes (a ',' outside a
// flow collection: jbeder/yaml-cpp#1040, fixed upstream by #1319 after 0.8.0): its LoadAll asks the
// parser for the next document forever, each an empty one at the same place, and keeps them all
// (memory grows until the process dies). test/fuzz found it (test/fuzz/regressions/template/): a
// template or a kubeconfig like that would hang the operator at start-up.
//
// Thread-safety: any thread.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace repl {

// The documents of `text`, or yaml-cpp's error message (with its line and column).
Result<std::vector<YAML::Node>, std::string> load_yaml_documents(std::string_view text);

}  // namespace repl
