// One HTTP(S) GET of a small document outside Kubernetes (an identity provider's JWKS), on
// cpprestsdk's pool, never blocking the caller: `done` gets the body of a 200, or one line saying
// what went wrong (unreachable, another status, a body over `max_bytes`). HTTPS verifies the
// server against `ca_file` (the process's default CA paths may point nowhere: see transport.hpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>

#include "common/result.hpp"

namespace repl::kube {

using GetDone = std::function<void(Result<std::string, std::string>)>;

void http_get(const std::string& url, const std::string& ca_file, std::chrono::seconds timeout,
              std::size_t max_bytes, GetDone done);

}  // namespace repl::kube
