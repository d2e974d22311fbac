// Building kube::IncomingRequest values and reading kube::HttpReply values, for tests of request
// handlers that take them directly (no server, no sockets).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kube/http_server.hpp"

namespace repl::test {

// A request as the server hands it over: the path split from its query at '?', header names in
// lower case.
inline kube::IncomingRequest http_request(std::string method, std::string_view target, std::string body = "",
                                          std::vector<std::pair<std::string, std::string>> headers = {}) {
  kube::IncomingRequest r;
  r.method = std::move(method);
  const std::size_t q = target.find('?');
  r.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) r.query = std::string(target.substr(q + 1));
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

// The same, with Content-Type: application/json.
inline kube::IncomingRequest json_request(std::string method, std::string_view target, std::string body,
                                          std::vector<std::pair<std::string, std::string>> headers = {}) {
  headers.emplace_back("content-type", "application/json");
  return http_request(std::move(method), target, std::move(body), std::move(headers));
}

inline std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return out;
}

// The value of the reply's (first) extra header of that name, compared case-insensitively.
inline std::optional<std::string> reply_header(const kube::HttpReply& reply, std::string_view name) {
  for (const auto& [k, v] : reply.headers) {
    if (ascii_lower(k) == ascii_lower(name)) return v;
  }
  return std::nullopt;
}

// The names of the reply's extra headers that start with `prefix` (case-insensitively), e.g. every
// "Access-Control-" header.
inline std::vector<std::string> reply_headers_starting_with(const kube::HttpReply& reply,
                                                            std::string_view prefix) {
  std::vector<std::string> out;
  for (const auto& [k, v] : reply.headers) {
    if (ascii_lower(k).rfind(ascii_lower(prefix), 0) == 0) out.push_back(k);
  }
  return out;
}

}  // namespace repl::test
