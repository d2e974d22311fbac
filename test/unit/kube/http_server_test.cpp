// HttpServer over loopback, driven by plain POSIX sockets, with Routes and with a RequestHandler, on
// an io_context run by two threads; its read and write deadlines in virtual time (a ManualClock);
// plus the pure parts: address parsing and routing.
#include "kube/http_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.hpp"
#include "unit/support/quiet_logs.hpp"

using repl::kube::HttpReply;
using repl::kube::HttpServer;
using repl::kube::IncomingRequest;
using repl::kube::Responder;
using repl::kube::Routes;
using repl::kube::ServerLimits;

namespace {

// The io_context every server of these tests runs on, with two threads, and its real clock.
struct Loop {
  Loop() {
    for (int i = 0; i < 2; ++i) threads.emplace_back([this] { io.run(); });
  }
  ~Loop() {
    work.reset();
    io.stop();
    for (auto& t : threads) t.join();
  }
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work =
      boost::asio::make_work_guard(io);
  repl::AsioClock clock{io.get_executor()};
  std::vector<std::thread> threads;
};
Loop& loop() {
  static Loop l;
  return l;
}

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;

  std::string header(const std::string& lower_case_name) const {
    const auto it = headers.find(lower_case_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// A socket closed on scope exit.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

sockaddr_in loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// Whether something accepts connections on 127.0.0.1:port.
bool accepts_connections(int port) {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const sockaddr_in addr = loopback(port);
  return ::connect(s.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
}

// A connected client socket with 10 s deadlines on every send and receive; no Catch assertions, so
// it may be used from several threads.
class Client {
 public:
  explicit Client(int port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    timeval timeout{10, 0};
    ::setsockopt(fd_.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(fd_.fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    const sockaddr_in addr = loopback(port);
    connected_ = ::connect(fd_.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  }
  bool connected() const { return connected_; }

  bool send_all(const std::string& data) {
    for (std::size_t sent = 0; sent < data.size();) {
      const ssize_t n = ::send(fd_.fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<std::size_t>(n);
    }
    return true;
  }
  // Whether the server closes the connection within `wait` of real time (false: still open then).
  // Anything the server sends meanwhile is read and dropped.
  bool closed_within(std::chrono::milliseconds wait) {
    const auto until = std::chrono::steady_clock::now() + wait;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      pollfd p{fd_.fd, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
      char buf[4096];
      const ssize_t n = ::recv(fd_.fd, buf, sizeof buf, 0);
      if (n <= 0) return true;
    }
  }
  // Appends what arrives to `out` until `done(out)` or the peer closes; false on a deadline or error.
  template <class Done>
  bool receive_until(std::string& out, Done done) {
    char buf[4096];
    while (!done(out)) {
      const ssize_t n = ::recv(fd_.fd, buf, sizeof buf, 0);
      if (n < 0) return false;
      if (n == 0) return true;
      out.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }

 private:
  Fd fd_;
  bool connected_ = false;
};

// Sends `request` as is and reads until the server closes the connection (std::nullopt on failure).
std::optional<std::string> try_exchange(int port, const std::string& request) {
  Client c(port);
  std::string out;
  if (!c.connected() || !c.send_all(request) ||
      !c.receive_until(out, [](const std::string&) { return false; })) {
    return std::nullopt;
  }
  return out;
}

std::string exchange_raw(int port, const std::string& request) {
  auto out = try_exchange(port, request);
  INFO(request);
  REQUIRE(out);
  return *out;
}

Response parse(const std::string& raw) {
  INFO(raw);
  Response r;
  const std::size_t head_end = raw.find("\r\n\r\n");
  REQUIRE(head_end != std::string::npos);
  REQUIRE(raw.rfind("HTTP/1.1 ", 0) == 0);
  r.status = std::stoi(raw.substr(9, 3));
  std::size_t line = raw.find("\r\n") + 2;
  while (line < head_end) {
    const std::size_t eol = raw.find("\r\n", line);
    const std::string header = raw.substr(line, eol - line);
    const std::size_t colon = header.find(':');
    REQUIRE(colon != std::string::npos);
    std::string name = header.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers[name] = header.substr(header.find_first_not_of(' ', colon + 1));
    line = eol + 2;
  }
  r.body = raw.substr(head_end + 4);
  if (r.headers.count("content-length")) CHECK(r.body.size() == std::stoul(r.header("content-length")));
  return r;
}

Response request(int port, const std::string& method, const std::string& target,
                 const std::string& body = "") {
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
  if (!body.empty()) req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  return parse(exchange_raw(port, req + "\r\n" + body));
}

Routes test_routes() {
  Routes routes;
  routes.emplace("/x", [] {
    return HttpReply{200, "application/x-test", "hello from x\n", {{"X-Extra", "1"}}};
  });
  routes.emplace("/empty", [] { return HttpReply{204, "text/plain", "", {}}; });
  routes.emplace("/throws", []() -> HttpReply { throw std::runtime_error("handler bug"); });
  return routes;
}

std::unique_ptr<HttpServer> started(repl::Result<std::unique_ptr<HttpServer>, std::string> server) {
  INFO((server ? std::string() : server.error()));
  REQUIRE(server);
  return std::move(*server);
}

std::unique_ptr<HttpServer> start_server(Routes routes = test_routes()) {
  return started(HttpServer::start(loop().io.get_executor(), loop().clock, "127.0.0.1:0", std::move(routes)));
}

// What a RequestHandler server received, shared with the handler's threads; answers each request
// with `reply(request)` at once.
struct Received {
  std::mutex mu;
  std::vector<IncomingRequest> requests;
  std::function<HttpReply(const IncomingRequest&)> reply = [](const IncomingRequest&) {
    return HttpReply{200, "text/plain", "ok", {}};
  };

  repl::kube::RequestHandler handler() {
    return [this](IncomingRequest request, Responder respond) {
      HttpReply r = reply(request);
      {
        std::lock_guard lock(mu);
        requests.push_back(std::move(request));
      }
      respond(std::move(r));
    };
  }
  IncomingRequest only() {
    std::lock_guard lock(mu);
    REQUIRE(requests.size() == 1);
    return requests[0];
  }
};

// A raw request with the given extra header lines (each ending in \r\n) and body, on a connection
// the server is asked to close.
std::string raw_request(const std::string& method, const std::string& target, const std::string& headers,
                        const std::string& body = "") {
  return method + " " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers + "\r\n" + body;
}

// `body` as chunks of at most `chunk` bytes, with the last chunk.
std::string chunked(const std::string& body, std::size_t chunk) {
  std::string out;
  for (std::size_t pos = 0; pos < body.size(); pos += chunk) {
    const std::string part = body.substr(pos, chunk);
    char size[32];
    std::snprintf(size, sizeof size, "%zx", part.size());
    out += std::string(size) + "\r\n" + part + "\r\n";
  }
  return out + "0\r\n\r\n";
}

}  // namespace

TEST_CASE("parse_listen_address takes [host]:port", "[http]") {
  using repl::kube::parse_listen_address;
  const auto ok = [](const char* text, const char* host, int port) {
    auto a = parse_listen_address(text);
    INFO(text);
    REQUIRE(a);
    CHECK(a->host == host);
    CHECK(a->port == port);
  };
  ok(":8080", "0.0.0.0", 8080);
  ok("127.0.0.1:0", "127.0.0.1", 0);
  ok("0.0.0.0:8081", "0.0.0.0", 8081);
  ok("localhost:9090", "127.0.0.1", 9090);
  ok("10.1.2.3:65535", "10.1.2.3", 65535);

  const auto bad = [](const char* text, const char* why) {
    auto a = parse_listen_address(text);
    INFO(text);
    REQUIRE_FALSE(a);
    CHECK_THAT(a.error(),
               Catch::StartsWith(std::string("listen address \"") + text + "\"") && Catch::Contains(why));
  };
  bad("8080", "has no port");
  bad("", "has no port");
  bad(":", "port must be a number");
  bad(":http", "port must be a number");
  bad(":65536", "port must be a number");
  bad(":-1", "port must be a number");
  bad(":80x", "port must be a number");
  bad(":000080", "port must be a number");
  bad("example.com:80", "IPv4 address or localhost");
  bad("1.2.3:80", "IPv4 address or localhost");
  bad("[::1]:80", "IPv6 is not supported");
  bad(":::80", "IPv6 is not supported");
}

TEST_CASE("route answers GET on known paths, 404 on unknown ones, 405 on other methods", "[http]") {
  repl::test::QuietLogs quiet;
  const Routes routes = test_routes();
  using repl::kube::route;

  const HttpReply x = route(routes, "GET", "/x");
  CHECK(x.status == 200);
  CHECK(x.content_type == "application/x-test");
  CHECK(x.body == "hello from x\n");

  for (const char* path : {"/", "/x/", "/X", "/missing", ""}) {
    INFO(path);
    const HttpReply r = route(routes, "GET", path);
    CHECK(r.status == 404);
    CHECK(r.body == "404 page not found\n");
    CHECK(route(routes, "POST", path).status == 404);
  }
  for (const char* method : {"POST", "PUT", "DELETE", "HEAD", "OPTIONS", "TRACE", "get"}) {
    INFO(method);
    const HttpReply r = route(routes, method, "/x");
    CHECK(r.status == 405);
    CHECK(r.headers == std::vector<std::pair<std::string, std::string>>{{"Allow", "GET"}});
  }
  const HttpReply thrown = route(routes, "GET", "/throws");
  CHECK(thrown.status == 500);
  CHECK(thrown.body == "500 internal server error\n");
}

TEST_CASE("HttpServer serves its routes on a port picked for it", "[http]") {
  repl::test::QuietLogs quiet;
  auto server = start_server();
  CHECK(server->host() == "127.0.0.1");
  REQUIRE(server->port() > 0);
  const int port = server->port();

  const Response x = request(port, "GET", "/x");
  CHECK(x.status == 200);
  CHECK(x.body == "hello from x\n");
  CHECK(x.header("content-type") == "application/x-test");
  CHECK(x.header("x-extra") == "1");

  const Response with_query = request(port, "GET", "/x?debug=1");
  CHECK(with_query.status == 200);
  CHECK(with_query.body == "hello from x\n");

  const Response empty = request(port, "GET", "/empty");
  CHECK(empty.status == 204);
  CHECK(empty.body.empty());

  const Response missing = request(port, "GET", "/nope");
  CHECK(missing.status == 404);
  CHECK(missing.body == "404 page not found\n");

  const Response post = request(port, "POST", "/x", "a body the server must read past");
  CHECK(post.status == 405);
  CHECK(post.header("allow") == "GET");

  // Not answered by the server itself (TRACE would echo the request): the routes say 405.
  for (const char* method : {"TRACE", "OPTIONS"}) {
    INFO(method);
    const Response r = request(port, method, "/x");
    CHECK(r.status == 405);
    CHECK(r.body.find("Host") == std::string::npos);
  }

  CHECK(request(port, "GET", "/throws").status == 500);
}

TEST_CASE("HttpServer keeps a connection alive across requests, pipelined ones too", "[http]") {
  auto server = start_server();
  Client c(server->port());
  REQUIRE(c.connected());
  std::string first;
  REQUIRE(c.send_all("GET /x HTTP/1.1\r\nHost: x\r\n\r\n"));
  REQUIRE(c.receive_until(
      first, [](const std::string& got) { return got.find("hello from x\n") != std::string::npos; }));
  CHECK(parse(first).status == 200);
  // Two requests sent before either answer: both are answered, in order.
  std::string rest;
  REQUIRE(c.send_all(
      "GET /empty HTTP/1.1\r\nHost: x\r\n\r\nGET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  REQUIRE(c.receive_until(rest, [](const std::string&) { return false; }));
  const auto second_start = rest.find("HTTP/1.1 404");
  REQUIRE(second_start != std::string::npos);
  CHECK(parse(rest.substr(0, second_start)).status == 204);
  CHECK(parse(rest.substr(second_start)).status == 404);
}

TEST_CASE("HttpServer answers concurrent clients", "[http]") {
  std::atomic<int> calls{0};
  Routes routes;
  routes.emplace("/count", [&calls] {
    ++calls;
    return HttpReply{200, "text/plain", "counted", {}};
  });
  auto server = start_server(std::move(routes));
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&] {
      for (int j = 0; j < 10; ++j) {
        const auto raw =
            try_exchange(server->port(), "GET /count HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        if (raw && raw->rfind("HTTP/1.1 200", 0) == 0 && raw->find("\r\n\r\ncounted") != std::string::npos)
          ++ok;
      }
    });
  }
  for (auto& c : clients) c.join();
  CHECK(ok == 80);
  CHECK(calls == 80);
}

TEST_CASE("HttpServer refuses a port that another socket listens on", "[http]") {
  // A plain socket, without SO_REUSEADDR, listening on a port of its own.
  Fd taken(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr = loopback(0);
  REQUIRE(::bind(taken.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(taken.fd, 1) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(taken.fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const int port = ntohs(addr.sin_port);

  for (const std::string host : {"127.0.0.1", "0.0.0.0"}) {
    INFO(host);
    auto server = HttpServer::start(loop().io.get_executor(), loop().clock, host + ":" + std::to_string(port),
                                    test_routes());
    REQUIRE_FALSE(server);
    CHECK_THAT(server.error(),
               Catch::StartsWith("cannot listen on " + host + ":" + std::to_string(port) + ": ") &&
                   Catch::Contains("in use"));
  }
}

TEST_CASE("HttpServer refuses a port that another HttpServer of this process serves", "[http]") {
  auto first = start_server();
  const std::string where = "127.0.0.1:" + std::to_string(first->port());
  // The same host:port, and another host string on that port: Linux refuses a second listener.
  auto same = HttpServer::start(loop().io.get_executor(), loop().clock, where, test_routes());
  REQUIRE_FALSE(same);
  CHECK_THAT(same.error(),
             Catch::StartsWith("cannot listen on " + where + ": ") && Catch::Contains("in use"));
  auto wildcard = HttpServer::start(loop().io.get_executor(), loop().clock,
                                    "0.0.0.0:" + std::to_string(first->port()), test_routes());
  REQUIRE_FALSE(wildcard);
  CHECK_THAT(wildcard.error(), Catch::Contains("in use"));
  // The first one still serves.
  CHECK(request(first->port(), "GET", "/x").status == 200);
}

TEST_CASE("HttpServer refuses addresses it cannot listen on", "[http]") {
  auto unparsable = HttpServer::start(loop().io.get_executor(), loop().clock, "localhost", test_routes());
  REQUIRE_FALSE(unparsable);
  CHECK_THAT(unparsable.error(), Catch::Contains("has no port"));

  // TEST-NET-1 (RFC 5737): not an address of this host.
  auto foreign = HttpServer::start(loop().io.get_executor(), loop().clock, "192.0.2.1:0", test_routes());
  REQUIRE_FALSE(foreign);
  CHECK_THAT(foreign.error(), Catch::StartsWith("cannot listen on 192.0.2.1:0: "));
  auto foreign_port =
      HttpServer::start(loop().io.get_executor(), loop().clock, "192.0.2.1:8080", test_routes());
  REQUIRE_FALSE(foreign_port);
  CHECK_THAT(foreign_port.error(), Catch::StartsWith("cannot listen on 192.0.2.1:8080: "));
}

TEST_CASE("destroying an HttpServer waits for its handlers and closes the port", "[http]") {
  std::atomic<bool> entered{false};
  std::atomic<bool> finished{false};
  Routes routes;
  routes.emplace("/slow", [&] {
    entered = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    finished = true;
    return HttpReply{200, "text/plain", "slow", {}};
  });
  auto server = start_server(std::move(routes));
  const int port = server->port();

  std::thread client([port] {
    // The answer may or may not make it out before the connection is closed; only the wait matters.
    Client c(port);
    std::string ignored;
    if (c.connected() && c.send_all("GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) {
      (void)c.receive_until(ignored, [](const std::string&) { return false; });
    }
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!entered && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  REQUIRE(entered);
  server.reset();
  CHECK(finished);
  client.join();
  CHECK_FALSE(accepts_connections(port));
}

TEST_CASE("a destroyed server's port is free at once, while another server of the process lives", "[http]") {
  auto stopped = start_server();
  auto alive = start_server();
  const int port = stopped->port();
  stopped.reset();
  CHECK_FALSE(accepts_connections(port));
  auto again = started(HttpServer::start(loop().io.get_executor(), loop().clock,
                                         "0.0.0.0:" + std::to_string(port), test_routes()));
  CHECK(request(port, "GET", "/x").status == 200);
  CHECK(request(alive->port(), "GET", "/x").status == 200);
}

TEST_CASE("a RequestHandler gets the method, decoded path, raw query, headers and body", "[http]") {
  repl::test::QuietLogs quiet;
  Received received;
  received.reply = [](const IncomingRequest& r) {
    return HttpReply{201, "application/json", "echo:" + r.body, {{"X-Reply", "yes"}, {"Location", "/a/1"}}};
  };
  auto server =
      started(HttpServer::start(loop().io.get_executor(), loop().clock, "127.0.0.1:0", received.handler()));
  const std::string body = R"({"k":1})";
  const Response response = parse(
      exchange_raw(server->port(), raw_request("POST", "/a%20b/c%2Fd?x=1&y=%20z%2B",
                                               "X-Custom-Header: Some Value\r\n"
                                               "Content-Type: application/json\r\nContent-Length: 7\r\n",
                                               body)));
  CHECK(response.status == 201);
  CHECK(response.body == "echo:" + body);
  CHECK(response.header("content-type") == "application/json");
  CHECK(response.header("x-reply") == "yes");
  CHECK(response.header("location") == "/a/1");

  const IncomingRequest in = received.only();
  CHECK(in.method == "POST");
  CHECK(in.path == "/a b/c/d");
  CHECK(in.query == "x=1&y=%20z%2B");
  CHECK(in.body == body);
  CHECK_FALSE(in.body_too_large);
  CHECK(in.header("x-custom-header") == "Some Value");
  CHECK(in.header("content-type") == "application/json");
  CHECK(in.header("host") == "x");
  CHECK(in.header("X-Custom-Header").empty());  // names are looked up in lower case
  CHECK(in.header("missing").empty());
  for (const auto& [name, value] : in.headers) {
    INFO(name);
    CHECK(std::none_of(name.begin(), name.end(), [](unsigned char c) { return std::isupper(c); }));
  }
}

TEST_CASE("a RequestHandler gets requests without a body or a query", "[http]") {
  repl::test::QuietLogs quiet;
  Received received;
  auto server =
      started(HttpServer::start(loop().io.get_executor(), loop().clock, "127.0.0.1:0", received.handler()));
  CHECK(request(server->port(), "DELETE", "/things/1").status == 200);
  const IncomingRequest in = received.only();
  CHECK(in.method == "DELETE");
  CHECK(in.path == "/things/1");
  CHECK(in.query.empty());
  CHECK(in.body.empty());
  CHECK_FALSE(in.body_too_large);
}

TEST_CASE("a body over the limit reaches the handler as body_too_large, empty", "[http]") {
  repl::test::QuietLogs quiet;
  Received received;
  received.reply = [](const IncomingRequest& r) {
    return r.body_too_large ? HttpReply{413, "text/plain", "too large\n", {}}
                            : HttpReply{200, "text/plain", "got " + std::to_string(r.body.size()), {}};
  };
  auto server = started(HttpServer::start(loop().io.get_executor(), loop().clock, "127.0.0.1:0",
                                          received.handler(), ServerLimits{16}));
  const std::string at_limit(16, 'a');
  const std::string over_limit(17, 'b');
  const auto length = [](const std::string& body) {
    return "Content-Length: " + std::to_string(body.size()) + "\r\n";
  };
  const std::string chunked_header = "Transfer-Encoding: chunked\r\n";
  std::string raw;
  std::size_t size = 0;
  bool too_large = false;
  SECTION("Content-Length at the limit") {
    raw = raw_request("POST", "/", length(at_limit), at_limit);
    size = 16;
  }
  SECTION("Content-Length over the limit") {
    raw = raw_request("POST", "/", length(over_limit), over_limit);
    too_large = true;
  }
  SECTION("much more than the limit") {
    const std::string big(256 * 1024, 'c');
    raw = raw_request("PUT", "/", length(big), big);
    too_large = true;
  }
  SECTION("chunked at the limit") {
    raw = raw_request("POST", "/", chunked_header, chunked(at_limit, 5));
    size = 16;
  }
  SECTION("chunked over the limit") {
    raw = raw_request("POST", "/", chunked_header, chunked(over_limit, 5));
    too_large = true;
  }
  SECTION("chunked over the limit in one chunk") {
    raw = raw_request("POST", "/", chunked_header, chunked(over_limit, 100));
    too_large = true;
  }
  const Response response = parse(exchange_raw(server->port(), raw));
  const IncomingRequest in = received.only();
  CHECK(in.body_too_large == too_large);
  if (too_large) {
    CHECK(in.body.empty());
    CHECK(response.status == 413);
  } else {
    CHECK(in.body.size() == size);
    CHECK(response.status == 200);
    CHECK(response.body == "got " + std::to_string(size));
  }
}

// A client still sending a body the server will not read must get the answer, not a reset: the
// server stops sending, reads and drops the rest, and closes once the client has (a lingering close).
TEST_CASE("after answering a body over the limit the server still takes the rest: a lingering close",
          "[http]") {
  repl::test::QuietLogs quiet;
  Received received;
  received.reply = [](const IncomingRequest&) { return HttpReply{413, "text/plain", "too large\n", {}}; };
  auto server = started(HttpServer::start(loop().io.get_executor(), loop().clock, "127.0.0.1:0",
                                          received.handler(), ServerLimits{16}));
  Client c(server->port());
  REQUIRE(c.connected());
  REQUIRE(c.send_all("POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n" +
                     std::string(1024, 'x')));
  // The answer, then the end of what the server sends.
  std::string got;
  REQUIRE(c.receive_until(got, [](const std::string&) { return false; }));
  CHECK_THAT(got, Catch::StartsWith("HTTP/1.1 413"));
  // The client, still uploading (as curl would be), keeps sending: a server that had closed its socket
  // answers with a reset, and the second send fails. This one reads and drops it (at most 1 MiB, 2 s).
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK(c.send_all(std::string(1024, 'y')));
  }
}

// The body is not given to the handler, but it must not be taken for the next request either.
TEST_CASE("a body over the limit on a kept-alive connection is skipped, not parsed as a request", "[http]") {
  repl::test::QuietLogs quiet;
  Received received;
  received.reply = [](const IncomingRequest& r) {
    return HttpReply{r.body_too_large ? 413 : 200, "text/plain", r.path, {}};
  };
  auto server = started(HttpServer::start(loop().io.get_executor(), loop().clock, "127.0.0.1:0",
                                          received.handler(), ServerLimits{16}));
  Client c(server->port());
  REQUIRE(c.connected());
  const std::string smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
  REQUIRE(c.send_all("POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(smuggled.size()) +
                     "\r\n\r\n" + smuggled));
  std::string first;
  REQUIRE(
      c.receive_until(first, [](const std::string& got) { return got.find("/big") != std::string::npos; }));
  CHECK(parse(first).status == 413);
  // Either the connection was closed after the answer or it carries the next request; never /smuggled.
  std::string rest;
  if (c.send_all("GET /second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) {
    (void)c.receive_until(rest, [](const std::string&) { return false; });
  }
  CHECK(rest.find("/smuggled") == std::string::npos);
  std::lock_guard lock(received.mu);
  REQUIRE_FALSE(received.requests.empty());
  CHECK(received.requests[0].path == "/big");
  for (const auto& r : received.requests) CHECK(r.path != "/smuggled");
}

TEST_CASE("a Responder may answer later, from another thread", "[http]") {
  repl::test::QuietLogs quiet;
  std::mutex mu;
  std::vector<std::thread> answering;
  auto server = started(HttpServer::start(
      loop().io.get_executor(), loop().clock, "127.0.0.1:0", [&](IncomingRequest request, Responder respond) {
        std::lock_guard lock(mu);
        answering.emplace_back([path = request.path, respond = std::move(respond)] {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
          respond(HttpReply{202, "text/plain", "later " + path, {{"X-Thread", "other"}}});
        });
      }));
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] {
      const std::string path = "/job/" + std::to_string(i);
      const auto raw = try_exchange(server->port(), raw_request("GET", path, ""));
      if (raw && raw->rfind("HTTP/1.1 202", 0) == 0 &&
          raw->find("\r\n\r\nlater " + path) != std::string::npos &&
          raw->find("X-Thread: other") != std::string::npos)
        ++ok;
    });
  }
  for (auto& c : clients) c.join();
  {
    std::lock_guard lock(mu);
    for (auto& t : answering) t.join();
    CHECK(answering.size() == 4);
  }
  CHECK(ok == 4);
}

TEST_CASE("OPTIONS and TRACE reach the RequestHandler", "[http]") {
  repl::test::QuietLogs quiet;
  Received received;
  received.reply = [](const IncomingRequest& r) {
    return HttpReply{204, "text/plain", "", {{"Allow", "GET, POST"}, {"X-Method", r.method}}};
  };
  auto server =
      started(HttpServer::start(loop().io.get_executor(), loop().clock, "127.0.0.1:0", received.handler()));
  for (const std::string method : {"OPTIONS", "TRACE"}) {
    INFO(method);
    const Response r = request(server->port(), method, "/things?x=1");
    CHECK(r.status == 204);
    CHECK(r.header("allow") == "GET, POST");
    CHECK(r.header("x-method") == method);
    CHECK(r.body.find("Host") == std::string::npos);
  }
  std::lock_guard lock(received.mu);
  REQUIRE(received.requests.size() == 2);
  CHECK(received.requests[0].method == "OPTIONS");
  CHECK(received.requests[0].path == "/things");
  CHECK(received.requests[0].query == "x=1");
  CHECK(received.requests[1].method == "TRACE");
}

TEST_CASE("a RequestHandler that throws gets the client a 500", "[http]") {
  repl::test::QuietLogs quiet;
  auto server =
      started(HttpServer::start(loop().io.get_executor(), loop().clock, "127.0.0.1:0",
                                [](IncomingRequest, Responder) { throw std::runtime_error("handler bug"); }));
  CHECK(request(server->port(), "GET", "/x").status == 500);
}

// The deadlines, in virtual time: what a client may take is measured on the server's Clock.
TEST_CASE("a request that does not arrive whole within request_timeout is cut off, exactly then", "[http]") {
  using namespace std::chrono_literals;
  repl::test::QuietLogs quiet;
  repl::ManualClock clock;
  Received received;
  ServerLimits limits;
  limits.request_timeout = 10s;
  auto server =
      started(HttpServer::start(loop().io.get_executor(), clock, "127.0.0.1:0", received.handler(), limits));
  Client c(server->port());
  REQUIRE(c.connected());
  SECTION("a head sent slowly (slowloris)") { REQUIRE(c.send_all("GET /slow HTTP/1.1\r\nHost: x\r\n")); }
  SECTION("a body that stops short") {
    REQUIRE(c.send_all("POST /short HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"));
  }
  SECTION("nothing at all") {}
  SECTION("nothing after a response, on a kept-alive connection") {
    REQUIRE(c.send_all("GET /first HTTP/1.1\r\nHost: x\r\n\r\n"));
    std::string reply;
    REQUIRE(
        c.receive_until(reply, [](const std::string& got) { return got.find("ok") != std::string::npos; }));
    received.requests.clear();
  }
  // The deadline is armed (the connection's, or the response's write then the next read: both due
  // 10 s from now, since virtual time has not moved).
  REQUIRE(clock.wait_armed(5000ms));
  clock.advance(10s - 1ms);
  CHECK_FALSE(c.closed_within(100ms));
  clock.advance(1ms);
  CHECK(c.closed_within(5000ms));
  std::lock_guard lock(received.mu);
  CHECK(received.requests.empty());
}

TEST_CASE("a handler may take longer than request_timeout: the deadline is the client's", "[http]") {
  using namespace std::chrono_literals;
  repl::ManualClock clock;
  std::mutex mu;
  std::optional<Responder> pending;
  ServerLimits limits;
  limits.request_timeout = 1s;
  auto server = started(HttpServer::start(
      loop().io.get_executor(), clock, "127.0.0.1:0",
      [&](IncomingRequest, Responder respond) {
        std::lock_guard lock(mu);
        pending = std::move(respond);
      },
      limits));
  Client c(server->port());
  REQUIRE(c.send_all(raw_request("GET", "/wait", "")));
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    std::lock_guard lock(mu);
    if (pending) break;
  }
  clock.advance(30s);  // a wait=ready for 30 s
  CHECK_FALSE(c.closed_within(50ms));
  {
    std::lock_guard lock(mu);
    REQUIRE(pending);
    (*pending)(HttpReply{200, "text/plain", "ready", {}});
  }
  std::string reply;
  REQUIRE(c.receive_until(reply, [](const std::string&) { return false; }));
  CHECK(parse(reply).body == "ready");
}

TEST_CASE("a head over max_header_bytes gets 431 and garbage gets 400, without the handler", "[http]") {
  repl::test::QuietLogs quiet;
  Received received;
  ServerLimits limits;
  limits.max_header_bytes = 1024;
  auto server = started(
      HttpServer::start(loop().io.get_executor(), loop().clock, "127.0.0.1:0", received.handler(), limits));
  const Response big = parse(
      exchange_raw(server->port(), raw_request("GET", "/", "X-Big: " + std::string(2000, 'a') + "\r\n")));
  CHECK(big.status == 431);
  CHECK(parse(exchange_raw(server->port(), "NOT HTTP AT ALL\r\n\r\n")).status == 400);
  CHECK(parse(exchange_raw(server->port(),
                           raw_request("GET", "/", "X-Fine: " + std::string(500, 'a') + "\r\n")))
            .status == 200);
  std::lock_guard lock(received.mu);
  REQUIRE(received.requests.size() == 1);
}

TEST_CASE("a client that does not take its response within write_timeout is cut off", "[http]") {
  using namespace std::chrono_literals;
  repl::ManualClock clock;
  ServerLimits limits;
  limits.request_timeout = 1h;
  limits.write_timeout = 5s;
  const std::string big(64 << 20, 'x');  // far more than the sockets' buffers hold
  Routes routes;
  routes.emplace("/big", [&big] { return HttpReply{200, "text/plain", big, {}}; });
  auto server =
      started(HttpServer::start(loop().io.get_executor(), clock, "127.0.0.1:0", std::move(routes), limits));
  Client c(server->port());
  REQUIRE(c.send_all(raw_request("GET", "/big", "")));
  // The client reads nothing: the write stalls and its deadline (5 s) becomes the earliest one.
  const auto until = std::chrono::steady_clock::now() + 5s;
  std::optional<repl::SteadyTime> due;
  while (std::chrono::steady_clock::now() < until && (!due || *due - clock.now() != 5s)) {
    due = clock.wait_armed(100ms);
  }
  REQUIRE(due);
  REQUIRE(*due - clock.now() == 5s);
  clock.advance(5s);
  std::string got;
  (void)c.receive_until(got, [](const std::string&) { return false; });
  CHECK(got.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(got.size() < big.size());  // cut off before the whole body went out
}
