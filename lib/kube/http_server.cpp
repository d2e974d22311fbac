// cpprestsdk implementation of HttpServer. This file is the only place that sees http_listener and
// its exceptions; everything leaving it is a Result.
#include "kube/http_server.hpp"

#include <arpa/inet.h>
#include <cpprest/http_listener.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <set>

#include "common/log.hpp"

namespace repl::kube {
namespace {

using web::http::http_request;
using web::http::http_response;
using web::http::experimental::listener::http_listener;

HttpReply text_reply(int status, std::string body) {
  HttpReply r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

// host:port of every live HttpServer. cpprestsdk keeps one acceptor per host:port string, and when a
// second listener on the same host:port and path fails to register it tears down the first one's
// acceptor on its way out; so a duplicate must never reach it.
std::mutex g_serving_mu;
std::set<std::string> g_serving;

// A bound, not listening socket holding a port while cpprestsdk binds it; closed when destroyed.
class PortReservation {
 public:
  PortReservation() = default;
  PortReservation(const PortReservation&) = delete;
  PortReservation& operator=(const PortReservation&) = delete;
  ~PortReservation() {
    if (fd_ >= 0) ::close(fd_);
  }

  // Binds `host`:0 and returns the port the kernel chose.
  Result<int, std::string> reserve(const std::string& host) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return Fail(std::string("socket: ") + std::strerror(errno));
    // Both sockets have SO_REUSEADDR (asio sets it on its acceptor) and this one never listens: the
    // condition under which Linux lets the listener bind the port this one holds.
    const int one = 1;
    if (::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
      return Fail(std::string("setsockopt(SO_REUSEADDR): ") + std::strerror(errno));
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) return Fail("bad IPv4 address " + host);
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      return Fail("bind " + host + ":0: " + std::strerror(errno));
    }
    socklen_t len = sizeof addr;
    if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return Fail(std::string("getsockname: ") + std::strerror(errno));
    }
    return static_cast<int>(ntohs(addr.sin_port));
  }

 private:
  int fd_ = -1;
};

}  // namespace

Result<ListenAddress, std::string> parse_listen_address(std::string_view text) {
  const auto quoted = [&] { return "listen address \"" + std::string(text) + "\""; };
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return Fail(quoted() + " has no port (want host:port or :port)");
  const std::string_view host = text.substr(0, colon);
  const std::string_view port = text.substr(colon + 1);

  ListenAddress out;
  if (host.empty()) {
    out.host = "0.0.0.0";
  } else if (host == "localhost") {
    out.host = "127.0.0.1";
  } else {
    out.host = std::string(host);
    in_addr ignored{};
    if (host.find(':') != std::string_view::npos || host.front() == '[') {
      return Fail(quoted() + ": IPv6 is not supported");
    }
    if (::inet_pton(AF_INET, out.host.c_str(), &ignored) != 1) {
      return Fail(quoted() + ": host must be an IPv4 address or localhost");
    }
  }
  int value = -1;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || port.size() > 5 || ec != std::errc() || end != port.data() + port.size() || value < 0 ||
      value > 65535) {
    return Fail(quoted() + ": port must be a number from 0 to 65535");
  }
  out.port = value;
  return out;
}

HttpReply route(const Routes& routes, std::string_view method, std::string_view path) {
  const auto it = routes.find(path);
  if (it == routes.end()) return text_reply(404, "404 page not found\n");
  if (method != "GET") {
    HttpReply r = text_reply(405, "405 method not allowed\n");
    r.headers.emplace_back("Allow", "GET");
    return r;
  }
  try {
    return it->second();
  } catch (const std::exception& e) {
    log::error("http handler failed", {{"path", path}, {"error", e.what()}});
  } catch (...) {
    log::error("http handler failed", {{"path", path}});
  }
  return text_reply(500, "500 internal server error\n");
}

std::string IncomingRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return "";
}

namespace {

void send(http_request request, HttpReply reply) {
  try {
    http_response response(static_cast<web::http::status_code>(reply.status));
    for (const auto& [name, value] : reply.headers) response.headers().add(name, value);
    response.set_body(std::move(reply.body), reply.content_type);
    // A reply that cannot be written (the client went away) fails its task; pplx terminates
    // the process when a failed task is never looked at, so look at it.
    request.reply(response).then([](pplx::task<void> sent) {
      try {
        sent.wait();
      } catch (const std::exception& e) {
        log::debug("http server: reply not sent", {{"error", e.what()}});
      } catch (...) {
        // Nothing escapes a continuation: it would fail that task, unobserved in turn.
      }
    });
  } catch (const std::exception& e) {
    log::warn("http server: cannot reply", {{"error", e.what()}});
  } catch (...) {
    log::warn("http server: cannot reply");
  }
}

// The request line and headers (names in lower case); the body is read separately.
IncomingRequest request_head(const http_request& request) {
  IncomingRequest in;
  in.method = request.method();
  in.path = web::uri::decode(request.relative_uri().path());
  in.query = request.relative_uri().query();
  for (const auto& [name, value] : request.headers()) {
    std::string lower = name;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    in.headers.emplace_back(std::move(lower), value);
  }
  return in;
}

}  // namespace

// Counts requests between their arrival and the handler's return (which may happen in a task
// continuation, after the listener's own callback has returned), so the destructor can wait.
class InFlight {
 public:
  void enter() {
    std::lock_guard lock(mu_);
    ++count_;
  }
  void leave() {
    std::lock_guard lock(mu_);
    if (--count_ == 0) idle_.notify_all();
  }
  void wait_idle() {
    std::unique_lock lock(mu_);
    idle_.wait(lock, [this] { return count_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable idle_;
  int count_ = 0;
};

struct HttpServer::Impl {
  ListenAddress address;
  std::string where;  // host:port, the key in g_serving
  RequestHandler handler;
  ServerLimits limits;
  InFlight in_flight;
  std::unique_ptr<http_listener> listener;
};

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() {
  if (!impl_->listener) return;
  try {
    // Unregistering takes the listener's write lock, which waits for handlers in flight; once
    // close() is done no handler of ours runs again, so the routes may go.
    impl_->listener->close().wait();
    impl_->in_flight.wait_idle();  // handlers running in body-read continuations
  } catch (const std::exception& e) {
    log::warn("http server: close failed",
              {{"port", std::to_string(impl_->address.port)}, {"error", e.what()}});
  }
  impl_->listener.reset();
  std::lock_guard lock(g_serving_mu);
  g_serving.erase(impl_->where);
}

const std::string& HttpServer::host() const { return impl_->address.host; }
int HttpServer::port() const { return impl_->address.port; }

Result<std::unique_ptr<HttpServer>, std::string> HttpServer::start(std::string_view listen_addr,
                                                                   Routes routes) {
  auto table = std::make_shared<const Routes>(std::move(routes));
  return start(
      listen_addr,
      [table](IncomingRequest request, Responder respond) {
        respond(route(*table, request.method, request.path));
      },
      ServerLimits{0});
}

Result<std::unique_ptr<HttpServer>, std::string> HttpServer::start(std::string_view listen_addr,
                                                                   RequestHandler handler,
                                                                   ServerLimits limits) {
  auto address = parse_listen_address(listen_addr);
  if (!address) return Fail(std::move(address).error());

  auto impl = std::make_unique<Impl>();
  impl->address = std::move(*address);
  impl->handler = std::move(handler);
  impl->limits = limits;

  // Held until the listener is bound (or failed to): see the header on port 0.
  PortReservation reservation;
  if (impl->address.port == 0) {
    auto port = reservation.reserve(impl->address.host);
    if (!port) return Fail("cannot pick a port on " + impl->address.host + ": " + port.error());
    impl->address.port = *port;
  }
  const std::string where = impl->address.host + ":" + std::to_string(impl->address.port);
  impl->where = where;
  {
    std::lock_guard lock(g_serving_mu);
    if (!g_serving.insert(where).second) {
      return Fail("cannot listen on " + where + ": this process serves it already");
    }
  }

  try {
    impl->listener = std::make_unique<http_listener>(web::uri("http://" + where + "/"));
    Impl* self = impl.get();  // outlives the listener
    const auto handle = [self](http_request request) {
      self->in_flight.enter();
      // Runs the handler once, then lets the destructor go on.
      const auto deliver = [self, request](IncomingRequest in) {
        struct Leave {
          InFlight& f;
          ~Leave() { f.leave(); }
        } leave{self->in_flight};
        try {
          self->handler(std::move(in),
                        [request](HttpReply reply) mutable { send(request, std::move(reply)); });
        } catch (const std::exception& e) {
          log::error("http handler failed", {{"path", request.relative_uri().path()}, {"error", e.what()}});
          send(request, text_reply(500, "500 internal server error\n"));
        }
      };
      IncomingRequest in = request_head(request);
      if (request.headers().content_length() > self->limits.max_body_bytes) {
        in.body_too_large = true;  // not read by us (cpprestsdk drains it)
        deliver(std::move(in));
        return;
      }
      // The body arrives as a task: continue when it is in, never block this (shared pool) thread
      // on it, or enough simultaneous requests would hold every thread the reads need.
      request.extract_vector().then(
          [deliver, in = std::move(in), request,
           limit = self->limits.max_body_bytes](pplx::task<std::vector<unsigned char>> body) mutable {
            try {
              const std::vector<unsigned char> bytes = body.get();
              // A body without a declared length (chunked) is only known to be too large once read.
              if (bytes.size() > limit) {
                in.body_too_large = true;
              } else {
                in.body.assign(bytes.begin(), bytes.end());
              }
            } catch (const std::exception& e) {
              // Reading the request failed (the client went away mid-body): answer if we still can.
              log::debug("http server: bad request", {{"error", e.what()}});
              send(request, text_reply(400, "400 bad request\n"));
              return;
            }
            deliver(std::move(in));
          });
    };
    impl->listener->support(handle);
    // http_listener answers OPTIONS and TRACE itself (TRACE echoes the request back) unless a
    // handler is registered for exactly those methods; send them to the handler like the rest.
    impl->listener->support(web::http::methods::OPTIONS, handle);
    impl->listener->support(web::http::methods::TRCE, handle);
    impl->listener->open().wait();
  } catch (const std::exception& e) {
    // A failed open() leaves the listener closed; destroying it is a no-op.
    impl->listener.reset();
    std::lock_guard lock(g_serving_mu);
    g_serving.erase(where);
    return Fail("cannot listen on " + where + ": " + e.what());
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

}  // namespace repl::kube
