// A small HTTP/1.1 server, on Boost.Beast over the caller's io_context. Two ways to use it:
//  - Routes: exact GET paths mapped to handlers that return a status, a Content-Type and a body
//    (the operator's /metrics, /healthz, /readyz);
//  - a RequestHandler: every request (any method, its headers and a size-limited body) goes to one
//    function, which answers through a Responder, now or later from another thread (the API shim).
// No TLS; serve it behind an Ingress or on a cluster-internal port.
//
//   Routes routes{{"/healthz", [] { return HttpReply{200, "text/plain; charset=utf-8", "ok\n"}; }}};
//   auto server = HttpServer::start(io.get_executor(), clock, ":8081", std::move(routes));
//   if (!server) return Fail(server.error());     // a bad address, or the port is taken
//   log::info("serving", {{"port", std::to_string((*server)->port())}});
//
// Why Beast and not cpprestsdk's http_listener (which the Kubernetes client still uses): the shim
// faces the internet, and the listener has no read deadline (a client sending one byte a minute
// holds a connection and its buffers forever), cannot say which port it bound for port 0, keeps
// one acceptor per host:port for the whole process (a destroyed server's port keeps answering
// 404) and drops pipelined requests. Here every request must arrive whole within
// `request_timeout` of the connection opening or of the previous response (slow or idle clients
// are cut off), a reply must be taken within `write_timeout`, heads are capped at
// `max_header_bytes` (431) and bodies at `max_body_bytes`. The deadlines are timers of the given
// Clock, so tests move them in virtual time.
//
// Ownership: the server owns its handler. Destroying the server stops accepting, closes every
// connection and waits for handlers that are running; once the destructor returns no handler runs
// or will run, so a handler may capture references to objects that outlive the server. Destroy it
// while its io_context still runs (the closing is posted to it), never from inside a handler.
//
// Threading: I/O and handler calls run on the executor's threads (each connection on its own
// strand), possibly several at once, so handlers must be thread-safe and quick: blocking work
// belongs on the caller's threads (answer through the Responder from there). A handler should not
// throw; if one does, the client gets a 500.
//
// Port 0 ("127.0.0.1:0") means any free port, and port() tells which.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.hpp"
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
  std::size_t max_header_bytes = 16 * 1024;
  // From a connection's opening, or from the previous response on it, until a whole request (head
  // and body) is in: the longest a client may take to send one, or idle between them.
  std::chrono::milliseconds request_timeout{10000};
  // For writing a response (a client that does not read it is cut off).
  std::chrono::milliseconds write_timeout{10000};
};

struct ListenAddress {
  std::string host;  // an IPv4 address
  int port = 0;      // 0: any free port
};

// Parses "[host]:port": ":8080" (all IPv4 interfaces, 0.0.0.0), "127.0.0.1:0", "0.0.0.0:8081",
// "localhost:9090" (127.0.0.1). Other host names and IPv6 are refused: a name that resolves to
// several addresses would bind only the first.
Result<ListenAddress, std::string> parse_listen_address(std::string_view text);

// What the server answers to `method` on `path`: the route's reply for GET on a known path, 404 for
// an unknown path, 405 (with Allow: GET) for any other method on a known path, 500 if the handler
// throws. Pure apart from calling the handler; exposed for tests.
HttpReply route(const Routes& routes, std::string_view method, std::string_view path);

class HttpServer final {
 public:
  // Binds and starts serving. Errors: an unparsable address, an address this host does not have,
  // a port in use by another socket (of this process or another).
  static Result<std::unique_ptr<HttpServer>, std::string> start(boost::asio::any_io_executor executor,
                                                                Clock& clock, std::string_view listen_addr,
                                                                Routes routes, ServerLimits limits = {});
  // Every request to `handler`, which must call its Responder exactly once (a request never
  // answered holds its connection until the client gives up, or the server goes). The handler
  // itself must return quickly: it runs on the executor's threads.
  static Result<std::unique_ptr<HttpServer>, std::string> start(boost::asio::any_io_executor executor,
                                                                Clock& clock, std::string_view listen_addr,
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
  explicit HttpServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace repl::kube
