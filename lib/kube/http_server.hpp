// A small HTTP/1.1 server. Two ways to use it:
//  - Routes: exact GET paths mapped to handlers that return a status, a Content-Type and a body
//    (the operator's /metrics, /healthz, /readyz);
//  - a RequestHandler: every request (any method, its headers and a size-limited body) goes to one
//    function, which answers through a Responder, now or later from another thread (the API shim).
// No TLS and no keep-alive timeouts; serve it behind an Ingress or on a cluster-internal port.
//
//   Routes routes{{"/healthz", [] { return HttpReply{200, "text/plain; charset=utf-8", "ok\n"}; }}};
//   auto server = HttpServer::start(":8081", std::move(routes));
//   if (!server) return Fail(server.error());     // a bad address, or the port is taken
//   log::info("serving", {{"port", std::to_string((*server)->port())}});
//
// cpprestsdk's http_listener does the HTTP underneath; none of its types cross this header.
//
// Ownership: the server owns its routes. Destroying the server stops it; once the destructor returns,
// no handler is running or will run, so a handler may capture references to objects that outlive
// the server.
//
// Threading: handlers run on cpprestsdk's process-wide thread pool (shared with the kube client's
// HTTP requests), possibly several at once, so they must be thread-safe, quick and not block. They
// should not throw; if one does, the client gets a 500. Never destroy a server from inside one of its
// handlers (the destructor waits for the handlers to finish).
//
// Port 0 ("127.0.0.1:0") means any free port, and port() tells which. cpprestsdk would bind port 0
// but never say which port it got, so start() picks the port itself: it binds a probe socket to
// port 0 (SO_REUSEADDR, not listening) and keeps it bound while cpprestsdk binds and listens on the
// port the kernel chose. Linux lets the listener share the port with the idle probe and refuses it
// to sockets without SO_REUSEADDR meanwhile; the race left is with another SO_REUSEADDR socket
// bound to that very port in that instant, and it ends in an error, never in two servers on a port.
//
// What cpprestsdk's listener (2.10) imposes, and this class works around or documents:
//   - One acceptor per host:port string for the whole process. A second server on the same
//     host:port is refused here before cpprestsdk sees it (cpprestsdk would tear down the first
//     server's acceptor while refusing the second).
//   - An acceptor is closed only when the process's last listener closes: while another server
//     lives, a destroyed server's port keeps accepting and answers 404, and only the same host:port
//     can be served on it again. The operator's servers live as long as the process, so this shows
//     in tests only.
//   - Pipelined requests (sent before the previous response arrived) are dropped; sequential
//     keep-alive requests work. No read deadline: an idle client holds its connection until it
//     closes it or the server is destroyed.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.hpp"

namespace repl::kube {

struct HttpReply {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // any more response headers
};

using HttpHandler = std::function<HttpReply()>;
// Exact request path (no query string) -> handler for GET.
using Routes = std::map<std::string, HttpHandler, std::less<>>;

struct IncomingRequest {
  std::string method;
  std::string path;                                          // decoded path, no query
  std::string query;                                         // raw query string, without '?'
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string body;
  bool body_too_large = false;  // the body was over the limit and was not read (body is empty)

  // The first header of that (lower-case) name, or "".
  std::string header(std::string_view name) const;
};

// Answers one request, exactly once, from any thread.
using Responder = std::function<void(HttpReply)>;
using RequestHandler = std::function<void(IncomingRequest, Responder)>;

struct ServerLimits {
  std::size_t max_body_bytes = 64 * 1024;
};

struct ListenAddress {
  std::string host;  // an IPv4 address
  int port = 0;      // 0: any free port
};

// Parses "[host]:port": ":8080" (all IPv4 interfaces, 0.0.0.0), "127.0.0.1:0", "0.0.0.0:8081",
// "localhost:9090" (127.0.0.1). Other host names and IPv6 are refused: cpprestsdk's listener cannot
// bind an IPv6 literal, and a name that resolves to several addresses would bind only the first.
Result<ListenAddress, std::string> parse_listen_address(std::string_view text);

// What the server answers to `method` on `path`: the route's reply for GET on a known path, 404 for
// an unknown path, 405 (with Allow: GET) for any other method on a known path, 500 if the handler
// throws. Pure apart from calling the handler; exposed for tests.
HttpReply route(const Routes& routes, std::string_view method, std::string_view path);

class HttpServer final {
 public:
  // Binds and starts serving. Errors: an unparsable address, an address this host does not have,
  // a port in use by another socket (of this process or another).
  static Result<std::unique_ptr<HttpServer>, std::string> start(std::string_view listen_addr, Routes routes);
  // Every request to `handler`, which must call its Responder exactly once (a request never
  // answered holds its connection until the client gives up). The handler itself must return
  // quickly: it runs on cpprestsdk's shared pool, so blocking work belongs on the caller's threads.
  static Result<std::unique_ptr<HttpServer>, std::string> start(std::string_view listen_addr,
                                                                RequestHandler handler,
                                                                ServerLimits limits = {});

  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  const std::string& host() const;
  // The bound port; the one chosen when port 0 was asked for.
  int port() const;

 private:
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace repl::kube
