// Keys and tokens for tests of JWT verification, made in process with OpenSSL: an RSA-2048 or a
// P-256 key pair, its public JWK, and compact JWS tokens signed with it (or with anything else:
// tests forge headers, signatures and payloads byte by byte).
//
//   Minter rsa = Minter::rsa("k1");
//   std::string jwks = jwks_of({rsa.jwk()});
//   std::string token = rsa.sign(R"({"alg":"RS256","kid":"k1"})", R"({"sub":"alice","exp":...})");
#pragma once

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "unit/support/base64url.hpp"

namespace repl::test {

class Minter {
 public:
  static Minter rsa(const std::string& kid, int bits = 2048) {
    return Minter(kid, "RS256", EVP_RSA_gen(static_cast<unsigned>(bits)));
  }
  static Minter p256(const std::string& kid) { return Minter(kid, "ES256", EVP_EC_gen("P-256")); }

  const std::string& kid() const { return kid_; }

  // The public key as a JWK object (JSON text).
  std::string jwk() const {
    if (alg_ == "RS256") {
      return R"({"kty":"RSA","kid":")" + kid_ + R"(","use":"sig","n":")" +
             base64url(bn(OSSL_PKEY_PARAM_RSA_N)) + R"(","e":")" + base64url(bn(OSSL_PKEY_PARAM_RSA_E)) +
             R"("})";
    }
    unsigned char point[65];
    std::size_t len = 0;
    EVP_PKEY_get_octet_string_param(key_.get(), OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point, &len);
    const std::string p(reinterpret_cast<char*>(point), len);
    return R"({"kty":"EC","crv":"P-256","kid":")" + kid_ + R"(","x":")" + base64url(p.substr(1, 32)) +
           R"(","y":")" + base64url(p.substr(33, 32)) + R"("})";
  }
  // The RSA modulus's bytes (what an attacker would use as an HMAC secret).
  std::string public_bytes() const { return bn(OSSL_PKEY_PARAM_RSA_N); }

  // header.payload.signature, each part base64url of the given JSON; signed with this key.
  std::string sign(const std::string& header, const std::string& payload) const {
    const std::string signing_input = base64url(header) + "." + base64url(payload);
    return signing_input + "." + base64url(signature(signing_input));
  }

  std::string signature(const std::string& input) const {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    std::size_t len = 0;
    if (EVP_DigestSignInit(md.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
        EVP_DigestSign(md.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                       input.size()) != 1) {
      throw std::runtime_error("cannot sign");
    }
    std::string sig(len, '\0');
    EVP_DigestSign(md.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                   reinterpret_cast<const unsigned char*>(input.data()), input.size());
    sig.resize(len);
    if (alg_ != "ES256") return sig;
    // DER to JWS's r || s.
    const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
    std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> ec(
        d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len)), ECDSA_SIG_free);
    std::string raw(64, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(ec.get()), reinterpret_cast<unsigned char*>(raw.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(ec.get()), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
    return raw;
  }

 private:
  Minter(std::string kid, std::string alg, EVP_PKEY* key)
      : kid_(std::move(kid)), alg_(std::move(alg)), key_(key, EVP_PKEY_free) {
    if (key == nullptr) throw std::runtime_error("cannot make a key");
  }

  std::string bn(const char* name) const {
    BIGNUM* v = nullptr;
    EVP_PKEY_get_bn_param(key_.get(), name, &v);
    std::string out(static_cast<std::size_t>(BN_num_bytes(v)), '\0');
    BN_bn2bin(v, reinterpret_cast<unsigned char*>(out.data()));
    BN_free(v);
    return out;
  }

  std::string kid_;
  std::string alg_;
  std::shared_ptr<EVP_PKEY> key_;
};

// HS256 over `input` with `secret`.
inline std::string hs256(const std::string& secret, const std::string& input) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return std::string(reinterpret_cast<char*>(mac), len);
}

inline std::string jwks_of(const std::vector<std::string>& jwks) {
  std::string out = R"({"keys":[)";
  for (std::size_t i = 0; i < jwks.size(); ++i) out += (i ? "," : "") + jwks[i];
  return out + "]}";
}

}  // namespace repl::test
