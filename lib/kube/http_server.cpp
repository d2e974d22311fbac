// Boost.Beast implementation of HttpServer: an acceptor and one session per connection, each on
// its own strand of the caller's executor, with the Clock's timers as read and write deadlines.
#include "kube/http_server.hpp"

#include <arpa/inet.h>

#include <array>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <charconv>
#include <condition_variable>
#include <exception>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <optional>

#include "common/log.hpp"

namespace repl::kube {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

HttpReply text_reply(int status, std::string body) {
  HttpReply r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

// "%2F" and the like in a path, decoded; a malformed escape is kept as it is.
std::string percent_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    unsigned value = 0;
    if (in[i] == '%' && i + 2 < in.size() &&
        std::from_chars(in.data() + i + 1, in.data() + i + 3, value, 16).ptr == in.data() + i + 3) {
      out.push_back(static_cast<char>(value));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

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

// What the server and its sessions share. The server holds its open sessions (a session leaves when
// its connection closes); pending I/O holds a session too, but a Responder or a timer only weakly,
// so closing a connection frees its session even while a handler still has its Responder.
struct HttpServer::Impl {
  Impl(asio::any_io_executor ex, Clock& c, RequestHandler h, ServerLimits l)
      : executor(std::move(ex)),
        clock(c),
        handler(std::move(h)),
        limits(l),
        acceptor(asio::make_strand(executor)),
        accept_pause(c.make_timer()) {}

  class Session;

  // A handler call may start only while the server lives; the destructor waits for those running.
  bool enter() {
    std::lock_guard lock(mu);
    if (stopped) return false;
    ++in_handler;
    return true;
  }
  void leave() {
    std::lock_guard lock(mu);
    if (--in_handler == 0) changed.notify_all();
  }

  void accept(std::shared_ptr<Impl> self);
  void accept_later(std::shared_ptr<Impl> self, const boost::system::error_code& ec);

  asio::any_io_executor executor;
  Clock& clock;
  const RequestHandler handler;
  const ServerLimits limits;
  ListenAddress address;
  tcp::acceptor acceptor;  // used on its strand only, after start()
  // After a failed accept (out of file descriptors: the connection stays in the backlog, and
  // accepting again at once would fail at once, forever), the next waits this long.
  static constexpr auto kAcceptPause = std::chrono::milliseconds(100);
  std::unique_ptr<Timer> accept_pause;  // armed under mu while not stopped; dropped at stop
  bool accept_failing = false;          // on the acceptor's strand
  std::mutex mu;
  std::condition_variable changed;  // in_handler or live went down
  bool stopped = false;
  int in_handler = 0;
  int live = 0;                                           // Session objects in existence
  std::map<Session*, std::shared_ptr<Session>> sessions;  // open connections
};

class HttpServer::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<Impl> server, tcp::socket socket)
      : server_(std::move(server)),
        socket_(std::move(socket)),
        read_deadline_{server_->clock.make_timer()},
        write_deadline_{server_->clock.make_timer()} {
    std::lock_guard lock(server_->mu);
    ++server_->live;
  }
  ~Session() {
    read_deadline_.timer.reset();  // their waits drop before the clock may go
    write_deadline_.timer.reset();
    std::lock_guard lock(server_->mu);
    if (--server_->live == 0) server_->changed.notify_all();
  }

  // Any thread: starts reading requests, on the connection's strand.
  void start() {
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      self->arm(self->read_deadline_, self->server_->limits.request_timeout);
      self->read_head();
    });
  }

  // Any thread: ends the connection (what is pending completes with an error).
  void close() {
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->shut(); });
  }

 private:
  // A deadline: its timer, and the number of its latest arming, so that a wake-up the timer
  // delivers late (re-armed or disarmed meanwhile, see common/clock.hpp) is recognised as stale.
  struct Deadline {
    std::unique_ptr<Timer> timer;
    std::uint64_t armed = 0;
  };

  // On the strand: the connection closes unless `d` is disarmed (or armed again) within `after`.
  void arm(Deadline& d, std::chrono::milliseconds after) {
    const std::uint64_t n = ++d.armed;
    Deadline Session::*which = &d == &read_deadline_ ? &Session::read_deadline_ : &Session::write_deadline_;
    d.timer->wait_until(server_->clock.now() + after, [weak = weak_from_this(), which, n] {
      const auto self = weak.lock();
      if (!self) return;
      asio::post(self->socket_.get_executor(), [self, which, n] {
        if ((self.get()->*which).armed == n) self->shut();
      });
    });
  }
  void disarm(Deadline& d) {
    ++d.armed;
    d.timer->cancel();
  }

  void shut() {
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    disarm(read_deadline_);
    disarm(write_deadline_);
    std::shared_ptr<Session> me;  // released after the lock: it may be the last reference
    std::lock_guard lock(server_->mu);
    if (auto it = server_->sessions.find(this); it != server_->sessions.end()) {
      me = std::move(it->second);
      server_->sessions.erase(it);
    }
  }

  void read_head() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_->limits.max_header_bytes));
    // The head's Content-Length is judged in on_head(). (Not boost::none: Boost 1.74 compares the
    // length with the optional, and any length is greater than none.)
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    http::async_read_header(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](boost::system::error_code ec, std::size_t) { self->on_head(ec); });
  }

  void on_head(boost::system::error_code ec) {
    if (ec == http::error::header_limit) return refuse(431, "431 request header fields too large\n");
    if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == asio::error::bad_descriptor) {
      return shut();
    }
    if (ec) {
      log::debug("http server: bad request head", {{"error", ec.message()}});
      return refuse(400, "400 bad request\n");
    }
    const auto& head = parser_->get();
    IncomingRequest in;
    in.method = std::string(head.method_string());
    const std::string_view target(head.target().data(), head.target().size());
    const std::size_t q = target.find('?');
    in.path = percent_decode(target.substr(0, q));
    if (q != std::string_view::npos) in.query = std::string(target.substr(q + 1));
    for (const auto& field : head) {
      std::string name(field.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      in.headers.emplace_back(std::move(name), std::string(field.value()));
    }
    const auto length = parser_->content_length();
    if (length && *length > server_->limits.max_body_bytes) {
      // Not read: the connection cannot carry another request after it, so it closes.
      in.body_too_large = true;
      keep_alive_ = false;
      return deliver(std::move(in));
    }
    if (parser_->is_done()) {
      keep_alive_ = parser_->keep_alive();
      return deliver(std::move(in));
    }
    parser_->body_limit(server_->limits.max_body_bytes);  // a chunked body ends here
    http::async_read(
        socket_, buffer_, *parser_,
        [self = shared_from_this(), in = std::move(in)](boost::system::error_code ec, std::size_t) mutable {
          self->on_body(ec, std::move(in));
        });
  }

  void on_body(boost::system::error_code ec, IncomingRequest in) {
    if (ec == http::error::body_limit) {  // chunked, so only known to be too large now
      in.body_too_large = true;
      keep_alive_ = false;
      return deliver(std::move(in));
    }
    if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) return shut();
    if (ec) {
      log::debug("http server: bad request body", {{"error", ec.message()}});
      return refuse(400, "400 bad request\n");
    }
    in.body = std::move(parser_->get().body());
    keep_alive_ = parser_->keep_alive();
    deliver(std::move(in));
  }

  // An answer of our own to a request we cannot read on; the connection closes after it.
  void refuse(int status, std::string body) {
    keep_alive_ = false;
    write(text_reply(status, std::move(body)));
  }

  void deliver(IncomingRequest in) {
    disarm(read_deadline_);  // the handler takes its time (a wait=ready); the deadline is the client's
    if (!server_->enter()) return shut();
    const std::string path = in.path;
    auto answered = std::make_shared<std::atomic<bool>>(false);
    Responder respond = [weak = weak_from_this(), answered](HttpReply reply) {
      if (answered->exchange(true)) return;  // exactly once
      const auto self = weak.lock();
      if (!self) return;  // the connection closed meanwhile
      asio::post(self->socket_.get_executor(),
                 [self, reply = std::move(reply)]() mutable { self->write(std::move(reply)); });
    };
    try {
      server_->handler(std::move(in), respond);
    } catch (const std::exception& e) {
      log::error("http handler failed", {{"path", path}, {"error", e.what()}});
      respond(text_reply(500, "500 internal server error\n"));
    } catch (...) {
      log::error("http handler failed", {{"path", path}});
      respond(text_reply(500, "500 internal server error\n"));
    }
    server_->leave();
  }

  void write(HttpReply reply) {
    response_.emplace(static_cast<http::status>(reply.status), 11);
    response_->set(http::field::content_type, reply.content_type);
    for (const auto& [name, value] : reply.headers) response_->insert(name, value);
    response_->body() = std::move(reply.body);
    response_->keep_alive(keep_alive_);
    response_->prepare_payload();
    // The next request's time counts from this response on (armed before the client can see it).
    if (keep_alive_) arm(read_deadline_, server_->limits.request_timeout);
    arm(write_deadline_, server_->limits.write_timeout);
    http::async_write(
        socket_, *response_,
        [self = shared_from_this()](boost::system::error_code ec, std::size_t) { self->on_written(ec); });
  }

  void on_written(boost::system::error_code ec) {
    response_.reset();
    disarm(write_deadline_);
    if (ec) return shut();
    if (!keep_alive_) return linger();
    read_head();
  }

  // A lingering close: the client may still be sending what was not read (a body over the limit),
  // and closing with unread data makes the kernel reset the connection, which can destroy the
  // answer before the client reads it. So: no more sending, then the rest is read and dropped
  // until the client closes, at most kLingerBytes or kLingerTime, then the connection closes.
  void linger() {
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    arm(read_deadline_, kLingerTime);
    drain(0);
  }
  void drain(std::size_t drained) {
    socket_.async_read_some(asio::buffer(discard_), [self = shared_from_this(), drained](
                                                        boost::system::error_code ec, std::size_t n) {
      if (ec || drained + n > kLingerBytes) return self->shut();
      self->drain(drained + n);
    });
  }
  static constexpr std::chrono::milliseconds kLingerTime{2000};
  static constexpr std::size_t kLingerBytes = 1 << 20;
  std::array<char, 4096> discard_{};

  const std::shared_ptr<Impl> server_;
  tcp::socket socket_;
  Deadline read_deadline_;  // until a whole request is in
  Deadline write_deadline_;
  boost::beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> response_;
  bool keep_alive_ = true;
};

void HttpServer::Impl::accept(std::shared_ptr<Impl> self) {
  acceptor.async_accept(asio::make_strand(executor),
                        [self](boost::system::error_code ec, tcp::socket socket) {
                          if (ec == asio::error::operation_aborted || !self->acceptor.is_open())
                            return;  // closed: the server went
                          if (ec) return self->accept_later(self, ec);
                          if (self->accept_failing) {
                            self->accept_failing = false;
                            log::info("http server: accepting again");
                          }
                          auto session = std::make_shared<Session>(self, std::move(socket));
                          {
                            std::lock_guard lock(self->mu);
                            if (self->stopped) return;  // the socket closes with the session
                            self->sessions.emplace(session.get(), session);
                          }
                          session->start();
                          self->accept(self);
                        });
}

void HttpServer::Impl::accept_later(std::shared_ptr<Impl> self, const boost::system::error_code& ec) {
  if (!accept_failing) {
    accept_failing = true;
    log::warn("http server: accept failed; trying again every 100 ms, logged again when it works",
              {{"error", ec.message()}});
  }
  std::lock_guard lock(mu);
  if (stopped) return;
  accept_pause->wait_until(clock.now() + kAcceptPause, [self] {
    asio::post(self->acceptor.get_executor(), [self] { self->accept(self); });
  });
}

HttpServer::HttpServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() {
  std::map<Impl::Session*, std::shared_ptr<Impl::Session>> open;
  {
    std::unique_lock lock(impl_->mu);
    impl_->stopped = true;
    impl_->accept_pause.reset();  // now: the Impl may outlive the Clock (a late accept handler holds it)
    impl_->changed.wait(lock, [this] { return impl_->in_handler == 0; });
    open.swap(impl_->sessions);
  }
  std::promise<void> closed;
  asio::post(impl_->acceptor.get_executor(), [impl = impl_, &closed] {
    boost::system::error_code ignored;
    impl->acceptor.close(ignored);
    closed.set_value();
  });
  closed.get_future().wait();  // the port is free once the destructor returns
  for (const auto& [_, session] : open) session->close();
  open.clear();
  // Every session ends once its closing has run (their timers hold the Clock, which may go next).
  std::unique_lock lock(impl_->mu);
  if (!impl_->changed.wait_for(lock, std::chrono::seconds(5), [this] { return impl_->live == 0; })) {
    log::warn("http server: connections still closing", {{"count", std::to_string(impl_->live)}});
  }
}

const std::string& HttpServer::host() const { return impl_->address.host; }
int HttpServer::port() const { return impl_->address.port; }

Result<std::unique_ptr<HttpServer>, std::string> HttpServer::start(asio::any_io_executor executor,
                                                                   Clock& clock, std::string_view listen_addr,
                                                                   Routes routes, ServerLimits limits) {
  auto table = std::make_shared<const Routes>(std::move(routes));
  limits.max_body_bytes = 0;  // GET routes take no body
  return start(
      std::move(executor), clock, listen_addr,
      [table](IncomingRequest request, Responder respond) {
        respond(route(*table, request.method, request.path));
      },
      limits);
}

Result<std::unique_ptr<HttpServer>, std::string> HttpServer::start(asio::any_io_executor executor,
                                                                   Clock& clock, std::string_view listen_addr,
                                                                   RequestHandler handler,
                                                                   ServerLimits limits) {
  auto address = parse_listen_address(listen_addr);
  if (!address) return Fail(std::move(address).error());
  auto impl = std::make_shared<Impl>(std::move(executor), clock, std::move(handler), limits);
  const std::string where = address->host + ":" + std::to_string(address->port);
  boost::system::error_code ec;
  const tcp::endpoint endpoint(asio::ip::make_address_v4(address->host, ec),
                               static_cast<unsigned short>(address->port));
  if (!ec) impl->acceptor.open(endpoint.protocol(), ec);
  // SO_REUSEADDR lets a restarted process bind while old connections linger in TIME_WAIT; Linux
  // still refuses a second listener on the port.
  if (!ec) impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Fail("cannot listen on " + where + ": " + ec.message());
  impl->address = std::move(*address);
  impl->address.port = impl->acceptor.local_endpoint().port();
  asio::post(impl->acceptor.get_executor(), [impl] { impl->accept(impl); });
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

}  // namespace repl::kube
