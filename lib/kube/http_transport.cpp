// cpprestsdk implementation of Transport. This file is the only place that sees cpprestsdk's
// types and its exceptions; everything leaving it is a Result.
#include <cpprest/containerstream.h>
#include <cpprest/http_client.h>
#include <cpprest/rawptrstream.h>
#include <pplx/threadpool.h>

#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <cstdlib>
#include <mutex>

#include "kube/transport.hpp"

namespace repl::kube {
namespace {

using web::http::client::http_client;
using web::http::client::http_client_config;

std::string retry_after_of(const web::http::http_response& resp) {
  const auto& headers = resp.headers();
  const auto found = headers.find("Retry-After");
  return found == headers.end() ? std::string() : found->second;
}

// The error for an exception that cpprestsdk threw while doing `what`.
Failure<ApiError> failure(const std::string& what, const std::exception& e) {
  return Fail(transport_error(what + ": " + e.what()));
}

void load_credentials(boost::asio::ssl::context& ctx, const ClusterConfig& cfg) {
  if (!cfg.ca_pem.empty()) ctx.add_certificate_authority(boost::asio::buffer(cfg.ca_pem));
  if (!cfg.client_cert_pem.empty()) {
    ctx.use_certificate_chain(boost::asio::buffer(cfg.client_cert_pem));
    ctx.use_private_key(boost::asio::buffer(cfg.client_key_pem), boost::asio::ssl::context::pem);
  }
}

class TokenSource {
 public:
  explicit TokenSource(const ClusterConfig& cfg)
      : inline_token_(cfg.token), file_(cfg.token_file), refresh_(cfg.token_refresh) {}

  std::string get() {
    if (file_.empty()) return inline_token_;
    std::lock_guard lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    if (cached_.empty() || now - read_at_ >= refresh_) {
      // A failed re-read keeps the last good token: the file is replaced atomically by the kubelet,
      // so a failure is transient, and the server will say 401 if the old token really expired.
      if (auto text = read_file(file_)) {
        std::string t = std::move(*text);
        while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
        cached_ = std::move(t);
        read_at_ = now;
      }
    }
    return cached_;
  }

 private:
  const std::string inline_token_;
  const std::string file_;
  const std::chrono::milliseconds refresh_;
  std::mutex mu_;
  std::string cached_;
  std::chrono::steady_clock::time_point read_at_{};
};

// See make_http_transport().
void trust_only_configured_ca() {
  static std::once_flag once;
  std::call_once(once, [] {
    // OpenSSL reads these names at every load of its default paths; /dev/null holds no certificate,
    // and a failed default load is not an error (X509_STORE_set_default_paths clears it).
    setenv("SSL_CERT_FILE", "/dev/null", 1);
    setenv("SSL_CERT_DIR", "/dev/null", 1);
  });
}

http_client_config make_client_config(const ClusterConfig& cfg, std::chrono::seconds timeout) {
  http_client_config c;
  c.set_timeout(timeout);
  c.set_validate_certificates(!cfg.insecure_skip_tls_verify);
  c.set_ssl_context_callback([cfg](boost::asio::ssl::context& ctx) { load_credentials(ctx, cfg); });
  return c;
}

// Reads a watch's body line by line with continuations on cpprestsdk's pool: no thread waits.
class RestLineStream final : public LineStream {
 public:
  RestLineStream(web::http::http_response response, pplx::cancellation_token_source cancel)
      : response_(std::move(response)), body_(response_.body()), cancel_(std::move(cancel)) {}
  ~RestLineStream() override { cancel(); }

  void next_async(LineDone done) override {
    // The buffer and the stream handle live in the continuation, so a read may outlive this object.
    auto line = std::make_shared<concurrency::streams::container_buffer<std::string>>();
    try {
      body_.read_line(*line).then([line, body = body_, done = std::move(done)](pplx::task<size_t> t) {
        Line result = [&]() -> Line {
          try {
            t.get();
            if (line->collection().empty() && body.is_eof()) return std::optional<std::string>();
            return std::optional<std::string>(std::move(line->collection()));
          } catch (const std::exception& e) {
            return failure("watch stream", e);
          }
        }();
        done(std::move(result));
      });
    } catch (const std::exception& e) {
      done(failure("watch stream", e));
    }
  }

  void cancel() override { cancel_.cancel(); }

 private:
  web::http::http_response response_;
  concurrency::streams::istream body_;
  pplx::cancellation_token_source cancel_;
};

class RestTransport final : public Transport {
 public:
  RestTransport(const ClusterConfig& cfg, const TransportOptions& options)
      : tokens_(cfg),
        client_(cfg.server, make_client_config(cfg, options.request_timeout)),
        stream_client_(cfg.server, make_client_config(cfg, options.stream_timeout)) {}

  SendResult send(const HttpRequest& request) override {
    return wait_for_answer<SendResult>([&](SendDone done) { send_async(request, std::move(done)); });
  }

  // The response and its body are read by continuations on cpprestsdk's pool; the last one (or a
  // failure anywhere) calls `done`.
  void send_async(const HttpRequest& request, SendDone done) override {
    const std::string what = request.method + " " + request.target;
    try {
      client_.request(build(request), shutdown_.get_token())
          .then([](web::http::http_response resp) {
            return resp.extract_utf8string(true).then(
                [code = resp.status_code(), retry_after = retry_after_of(resp)](std::string body) {
                  return HttpResponse{code, std::move(body), retry_after};
                });
          })
          .then([done = std::move(done), what](pplx::task<HttpResponse> t) {
            SendResult result = [&]() -> SendResult {
              try {
                return t.get();
              } catch (const std::exception& e) {
                return failure(what, e);
              }
            }();
            done(std::move(result));
          });
    } catch (const std::exception& e) {
      done(failure(what, e));
    }
  }

  void cancel_all() override { shutdown_.cancel(); }

  void open_stream_async(const HttpRequest& request, StreamDone done) override {
    const std::string what = request.method + " " + request.target;
    try {
      // Its own cancellation (LineStream::cancel), which cancel_all() cancels too.
      auto shutdown = shutdown_.get_token();
      auto cancel = pplx::cancellation_token_source::create_linked_source(shutdown);
      stream_client_.request(build(request), cancel.get_token())
          .then([cancel, done = std::move(done), what](pplx::task<web::http::http_response> t) mutable {
            web::http::http_response resp;
            try {
              resp = t.get();
            } catch (const std::exception& e) {
              return done(failure(what, e));
            }
            if (resp.status_code() >= 200 && resp.status_code() <= 299) {
              return done(std::unique_ptr<LineStream>(
                  std::make_unique<RestLineStream>(std::move(resp), std::move(cancel))));
            }
            resp.extract_utf8string(true).then([code = resp.status_code(), retry_after = retry_after_of(resp),
                                                done = std::move(done), what](pplx::task<std::string> body) {
              StreamResult result = [&]() -> StreamResult {
                try {
                  return Fail(decode_status(code, body.get(), retry_after));
                } catch (const std::exception& e) {
                  return failure(what, e);
                }
              }();
              done(std::move(result));
            });
          });
    } catch (const std::exception& e) {
      done(failure(what, e));
    }
  }

 private:
  web::http::http_request build(const HttpRequest& r) {
    web::http::http_request req(r.method);
    req.set_request_uri(r.target);
    req.headers().add("Accept", "application/json");
    req.headers().add("User-Agent", "repl-operator/0.1");
    if (const std::string token = tokens_.get(); !token.empty()) {
      req.headers().add("Authorization", "Bearer " + token);
    }
    if (!r.body.empty()) req.set_body(r.body, r.content_type);
    return req;
  }

  TokenSource tokens_;
  http_client client_;
  http_client stream_client_;
  pplx::cancellation_token_source shutdown_;
};

}  // namespace

bool limit_http_threads(std::size_t threads) {
  try {
    crossplat::threadpool::initialize_with_threads(threads);
    return true;
  } catch (const std::exception&) {
    return false;  // already started (a client was made first): it keeps its size
  }
}

Result<std::shared_ptr<Transport>, ConfigError> make_http_transport(const ClusterConfig& cfg,
                                                                    const TransportOptions& options) {
  if (cfg.server.rfind("https://", 0) != 0 && cfg.server.rfind("http://", 0) != 0) {
    return Fail(ConfigError{"server \"" + cfg.server + "\" is not an http(s) URL"});
  }
  if (!cfg.ca_pem.empty()) trust_only_configured_ca();
  // Load the credentials once now, so bad PEM is reported at start and not on the first request.
  try {
    boost::asio::ssl::context probe(boost::asio::ssl::context::tls_client);
    load_credentials(probe, cfg);
  } catch (const std::exception& e) {
    return Fail(ConfigError{std::string("cannot load TLS credentials: ") + e.what()});
  }
  if (!cfg.token_file.empty()) {
    if (auto t = read_file(cfg.token_file); !t) return Fail(t.error());
  }
  try {
    return std::shared_ptr<Transport>(std::make_shared<RestTransport>(cfg, options));
  } catch (const std::exception& e) {
    return Fail(ConfigError{"cannot create HTTP client for " + cfg.server + ": " + e.what()});
  }
}

}  // namespace repl::kube

namespace repl::kube {

Result<Connection, std::string> connect(const std::string& kubeconfig_flag, const TransportOptions& options) {
  auto config = resolve_config(kubeconfig_flag, process_getenv);
  if (!config) return Fail("no cluster configuration: " + config.error().message);
  auto transport = make_http_transport(*config, options);
  if (!transport) return Fail("cannot set up the API client: " + transport.error().message);
  return Connection{std::move(*config), std::move(*transport)};
}

}  // namespace repl::kube
