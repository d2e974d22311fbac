// The HTTP seam under the kube client: one request/response exchange, or a response whose body is
// read line by line (a watch). The real implementation speaks HTTPS with cpprestsdk; unit tests
// substitute a fake to drive protocol edge cases. No cpprestsdk type crosses this header.
//
// Nothing here blocks a thread per request: answers, streams and lines are delivered to callbacks
// on the transport's own threads (cpprestsdk's small pool), so any number of requests and watches
// are in flight on a few threads. The blocking forms (send, LineStream::next) wait for those
// callbacks, for callers that run on a worker of their own.
//
// Thread-safety: a Transport may be used from several threads at once; a LineStream has one read
// outstanding at a time, and cancel() may be called from any thread to end it.
//
// Shutdown is one cancellation: cancel_all() fails every request in flight (blocked sends, streams
// being opened or read) promptly with a transport error, and every later one at once.
#pragma once

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>

#include "common/result.hpp"
#include "kube/config.hpp"
#include "kube/error.hpp"

namespace repl::kube {

// The blocking form of an asynchronous verb: calls `start` with a callback and waits until that
// callback has been called once with the answer (of type T).
template <typename T, typename Start>
T wait_for_answer(Start&& start) {
  std::promise<T> answer;
  auto future = answer.get_future();
  start([&answer](T value) { answer.set_value(std::move(value)); });
  return future.get();
}

struct HttpRequest {
  std::string method;  // "GET", "PATCH", ...
  std::string target;  // path and query, e.g. "/api/v1/namespaces/a/services?limit=500"
  std::string content_type;
  std::string body;
};

struct HttpResponse {
  int status = 0;
  std::string body;
  std::string retry_after;  // the Retry-After header, as received ("" when absent)
};

// The error for a non-2xx answer (decode_status with the answer's Retry-After).
inline ApiError decode_status(const HttpResponse& r) {
  return decode_status(r.status, r.body, r.retry_after);
}

class LineStream {
 public:
  // A line without its newline; std::nullopt when the server ended the stream normally.
  using Line = Result<std::optional<std::string>, ApiError>;
  using LineDone = std::function<void(Line)>;

  virtual ~LineStream() = default;
  // Reads the next line: `done` is called once with it, on a transport thread (or on the caller's,
  // before returning, when a line is at hand). One read at a time.
  virtual void next_async(LineDone done) = 0;
  // Ends the stream from any thread: a pending read completes promptly.
  virtual void cancel() = 0;
  // next_async(), waited for.
  Line next() {
    return wait_for_answer<Line>([this](LineDone done) { next_async(std::move(done)); });
  }
};

class Transport {
 public:
  using SendResult = Result<HttpResponse, ApiError>;
  using SendDone = std::function<void(SendResult)>;

  virtual ~Transport() = default;
  // Transport failures are errors; any HTTP status, 2xx or not, is a response.
  virtual SendResult send(const HttpRequest& request) = 0;
  // The same exchange without blocking the caller: `done` is called once with the answer, on a
  // thread of the transport's (or on the caller's, before returning, when the answer is known at
  // once). Many may be in flight together; no thread is held per request.
  virtual void send_async(const HttpRequest& request, SendDone done) = 0;
  using StreamResult = Result<std::unique_ptr<LineStream>, ApiError>;
  using StreamDone = std::function<void(StreamResult)>;
  // Opens a streaming response; `done` is called once, as for send_async. A non-2xx answer is read
  // whole and returned as a decoded error.
  virtual void open_stream_async(const HttpRequest& request, StreamDone done) = 0;
  virtual void cancel_all() = 0;
};

// Sizes the HTTP client library's process-wide thread pool (cpprestsdk's: socket I/O and the
// continuations of every request; 40 threads unless told). Nothing of ours blocks on it, so a few
// threads serve any number of requests in flight. It can be sized only before the first client
// is made: after that it returns false and changes nothing (the caller should say so).
inline constexpr std::size_t kHttpClientThreads = 4;
bool limit_http_threads(std::size_t threads = kHttpClientThreads);

// How long the transport waits for the server. Both are idle limits: the time allowed for each read
// or write of a request, not for the whole exchange, so a body trickling in keeps it alive and a
// response that stops coming fails after the limit.
struct TransportOptions {
  std::chrono::seconds request_timeout{30};
  // For streams (watches): the server ends a watch after its timeoutSeconds (at most 10 minutes)
  // and sends a bookmark about once a minute; the watcher's own stall deadline (shorter) comes
  // first, this only bounds a watch whose response never starts.
  std::chrono::seconds stream_timeout{std::chrono::minutes(11)};
};

// HTTPS (or HTTP) to cfg.server with the configured CA, client certificate and bearer token.
// Fails when the credentials cannot be loaded (bad PEM, unreadable token file).
//
// A configured CA is the only one trusted, as client-go does. cpprestsdk loads OpenSSL's default
// verify paths into every new connection's context before ours is added (the system bundle: 144
// certificates, 34 ms of CPU and ~390 KB per connection on this machine), so the first config with
// a CA points them at nothing for the whole process (SSL_CERT_FILE and SSL_CERT_DIR=/dev/null):
// make that transport before any thread starts; a part of the process that wants the system's CAs
// loads them by path (X509_get_default_cert_file()), not from the default paths.
Result<std::shared_ptr<Transport>, ConfigError> make_http_transport(const ClusterConfig& cfg,
                                                                    const TransportOptions& options = {});

// What a binary's main() needs to talk to the cluster: the configuration from --kubeconfig,
// $KUBECONFIG or the in-cluster service account (resolve_config), and a transport for it. The
// error says which step failed.
struct Connection {
  ClusterConfig config;
  std::shared_ptr<Transport> transport;
};
Result<Connection, std::string> connect(const std::string& kubeconfig_flag,
                                        const TransportOptions& options = {});

}  // namespace repl::kube
