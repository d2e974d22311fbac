// metav1.Status bodies as the API server sends them with a non-2xx answer.
#pragma once

#include <string>

namespace repl::test {

inline std::string status_json(int code, const std::string& reason, const std::string& message) {
  return R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":")" + message +
         R"(","reason":")" + reason + R"(","code":)" + std::to_string(code) + "}";
}

}  // namespace repl::test
