// make_http_transport's checks at start-up (no connection is made).
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <boost/asio/ssl/context.hpp>
#include <catch2/catch.hpp>
#include <memory>
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

// A self-signed CA certificate, made in process.
std::string ca_pem() {
  const std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
  const std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
  REQUIRE((key && cert));
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("test-ca"), -1,
                             -1, 0);
  X509_set_issuer_name(cert.get(), name);
  REQUIRE(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0);
  const std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  REQUIRE(PEM_write_bio_X509(bio.get(), cert.get()) == 1);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

}  // namespace

TEST_CASE("with a cluster CA, a connection trusts it alone: no system bundle is loaded per connection",
          "[kube][transport]") {
  auto cfg = config("https://127.0.0.1:6443");
  cfg.ca_pem = ca_pem();
  REQUIRE(repl::kube::make_http_transport(cfg));
  // What cpprestsdk does for every new connection, before our CA is added.
  boost::asio::ssl::context ctx(boost::asio::ssl::context::tls_client);
  ctx.set_default_verify_paths();
  CHECK(sk_X509_OBJECT_num(X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx.native_handle()))) == 0);
  ctx.add_certificate_authority(boost::asio::buffer(cfg.ca_pem));
  CHECK(sk_X509_OBJECT_num(X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx.native_handle()))) == 1);
}

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
