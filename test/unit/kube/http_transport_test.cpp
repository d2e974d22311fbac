// make_http_transport's checks at start-up (no connection is made).
#include <catch2/catch.hpp>
#include <string>

#include "kube/transport.hpp"
#include "unit/support/temp_dir.hpp"

namespace {

std::string transport_error(const repl::kube::ClusterConfig& cfg) {
  auto t = repl::kube::make_http_transport(cfg);
  REQUIRE_FALSE(t);
  return t.error().message;
}

repl::kube::ClusterConfig config(const std::string& server) {
  repl::kube::ClusterConfig cfg;
  cfg.server = server;
  return cfg;
}

}  // namespace

TEST_CASE("make_http_transport accepts an http(s) server without credentials", "[kube][transport]") {
  for (const std::string server : {"https://127.0.0.1:6443", "http://localhost:8080"}) {
    auto t = repl::kube::make_http_transport(config(server));
    CHECK(t);
  }
}

TEST_CASE("make_http_transport refuses what cannot work before any request", "[kube][transport]") {
  CHECK_THAT(transport_error(config("127.0.0.1:6443")), Catch::Contains("is not an http(s) URL"));
  CHECK_THAT(transport_error(config("")), Catch::Contains("is not an http(s) URL"));

  auto bad_ca = config("https://127.0.0.1:6443");
  bad_ca.ca_pem = "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n";
  CHECK_THAT(transport_error(bad_ca), Catch::StartsWith("cannot load TLS credentials: "));

  auto bad_cert = config("https://127.0.0.1:6443");
  bad_cert.client_cert_pem = "garbage";
  bad_cert.client_key_pem = "garbage";
  CHECK_THAT(transport_error(bad_cert), Catch::StartsWith("cannot load TLS credentials: "));

  repl::test::TempDir dir;
  auto missing_token = config("https://127.0.0.1:6443");
  missing_token.token_file = dir.path() + "/token";
  CHECK_THAT(transport_error(missing_token), Catch::Contains("cannot read " + dir.path() + "/token"));
  dir.write("token", "t\n");
  CHECK(repl::kube::make_http_transport(missing_token));
}

TEST_CASE("the HTTP client's pool is sized once; a late sizing says it changed nothing",
          "[kube][transport]") {
  (void)repl::kube::limit_http_threads();  // the first call of this process, or a late one
  CHECK_FALSE(repl::kube::limit_http_threads());
}
