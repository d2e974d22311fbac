#include "auth/jwt.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>
#include <rapidjson/document.h>

#include <array>
#include <cmath>
#include <optional>

#include "repl/validation.hpp"

namespace repl::auth {
namespace {

using Doc = rapidjson::Document;

// RSA keys shorter than this are refused (NIST SP 800-131A).
constexpr int kMinRsaBits = 2048;

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using BigNum = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using ParamBuild = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>>;
using Params = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM, OSSL_PARAM_free>>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX, EVP_MD_CTX_free>>;
using EcSig = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG, ECDSA_SIG_free>>;

int base64url_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

const char* alg_name(Alg a) {
  switch (a) {
    case Alg::kRS256:
      return "RS256";
    case Alg::kES256:
      return "ES256";
    case Alg::kHS256:
      return "HS256";
  }
  return "?";
}

std::optional<Alg> parse_alg(std::string_view name) {
  if (name == "RS256") return Alg::kRS256;
  if (name == "ES256") return Alg::kES256;
  if (name == "HS256") return Alg::kHS256;
  return std::nullopt;
}

std::optional<std::string> string_member(const rapidjson::Value& o, const char* name) {
  const auto it = o.FindMember(name);
  if (it == o.MemberEnd() || !it->value.IsString()) return std::nullopt;
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

// A JWK's base64url member, decoded; empty when absent or malformed.
std::string bytes_member(const rapidjson::Value& o, const char* name) {
  const auto s = string_member(o, name);
  if (!s) return {};
  auto d = base64url_decode(*s);
  return d ? std::move(*d) : std::string();
}

BigNum big(const std::string& bytes) {
  return BigNum(BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()), nullptr));
}

std::shared_ptr<EVP_PKEY> from_params(const char* type, OSSL_PARAM_BLD* build) {
  Params params(OSSL_PARAM_BLD_to_param(build));
  PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* key = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return nullptr;
  }
  return std::shared_ptr<EVP_PKEY>(key, EVP_PKEY_free);
}

std::shared_ptr<EVP_PKEY> rsa_key(const rapidjson::Value& jwk) {
  const std::string n = bytes_member(jwk, "n"), e = bytes_member(jwk, "e");
  if (n.empty() || e.empty()) return nullptr;
  BigNum bn_n = big(n), bn_e = big(e);
  ParamBuild build(OSSL_PARAM_BLD_new());
  if (!bn_n || !bn_e || !build ||
      OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
    return nullptr;
  }
  auto key = from_params("RSA", build.get());
  if (!key || EVP_PKEY_get_bits(key.get()) < kMinRsaBits) return nullptr;
  return key;
}

std::shared_ptr<EVP_PKEY> p256_key(const rapidjson::Value& jwk) {
  if (string_member(jwk, "crv") != "P-256") return nullptr;
  const std::string x = bytes_member(jwk, "x"), y = bytes_member(jwk, "y");
  if (x.size() != 32 || y.size() != 32) return nullptr;
  const std::string point = std::string(1, '\x04') + x + y;  // uncompressed (SEC 1)
  ParamBuild build(OSSL_PARAM_BLD_new());
  if (!build ||
      OSSL_PARAM_BLD_push_utf8_string(build.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(build.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) !=
          1) {
    return nullptr;
  }
  return from_params("EC", build.get());  // a point off the curve is refused here
}

bool verify_digest(EVP_PKEY* key, std::string_view data, const unsigned char* sig, std::size_t sig_len) {
  MdCtx md(EVP_MD_CTX_new());
  return md && EVP_DigestVerifyInit(md.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
         EVP_DigestVerify(md.get(), sig, sig_len, reinterpret_cast<const unsigned char*>(data.data()),
                          data.size()) == 1;
}

bool signature_ok(const KeySet::Key& key, std::string_view signed_part, const std::string& sig) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(sig.data());
  switch (key.alg) {
    case Alg::kRS256:
      return verify_digest(key.public_key.get(), signed_part, bytes, sig.size());
    case Alg::kES256: {
      // JWS carries r || s (32 bytes each); OpenSSL verifies DER.
      if (sig.size() != 64) return false;
      EcSig ec(ECDSA_SIG_new());
      BIGNUM* r = BN_bin2bn(bytes, 32, nullptr);
      BIGNUM* s = BN_bin2bn(bytes + 32, 32, nullptr);
      if (!ec || r == nullptr || s == nullptr || ECDSA_SIG_set0(ec.get(), r, s) != 1) {
        BN_free(r);
        BN_free(s);
        return false;
      }
      unsigned char* der = nullptr;
      const int der_len = i2d_ECDSA_SIG(ec.get(), &der);
      if (der_len <= 0) return false;
      const bool ok =
          verify_digest(key.public_key.get(), signed_part, der, static_cast<std::size_t>(der_len));
      OPENSSL_free(der);
      return ok;
    }
    case Alg::kHS256: {
      std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
      unsigned int mac_len = 0;
      if (HMAC(EVP_sha256(), key.secret.data(), static_cast<int>(key.secret.size()),
               reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size(), mac.data(),
               &mac_len) == nullptr) {
        return false;
      }
      return sig.size() == mac_len && CRYPTO_memcmp(mac.data(), bytes, mac_len) == 0;
    }
  }
  return false;
}

Result<Doc, std::string> json_object(std::string_view part, const char* what) {
  auto text = base64url_decode(part);
  if (!text) return Fail(std::string(what) + " is not base64url");
  Doc d;
  d.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag>(text->data(), text->size());
  if (d.HasParseError() || !d.IsObject()) return Fail(std::string(what) + " is not a JSON object");
  return d;
}

// A NumericDate claim (seconds since the epoch): absent is std::nullopt; another type an error.
Result<std::optional<std::int64_t>, std::string> date_claim(const Doc& claims, const char* name) {
  const auto it = claims.FindMember(name);
  if (it == claims.MemberEnd()) return std::optional<std::int64_t>();
  if (!it->value.IsNumber()) return Fail(std::string(name) + " is not a number");
  const double v = it->value.GetDouble();
  if (!std::isfinite(v) || std::fabs(v) > 1e15) return Fail(std::string(name) + " is out of range");
  return std::optional<std::int64_t>(static_cast<std::int64_t>(std::floor(v)));
}

}  // namespace

Result<std::string, std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) return Fail(std::string("a base64url text cannot have this length"));
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : text) {
    const int v = base64url_value(c);
    if (v < 0) return Fail(std::string("not a base64url character"));
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // The bits left over must be zero: one text per value (no malleable encodings).
  if ((acc & ((1u << bits) - 1)) != 0) return Fail(std::string("non-canonical base64url"));
  return out;
}

Result<KeySet, std::string> KeySet::parse(std::string_view jwks, const KeySetOptions& options) {
  Doc d;
  d.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag>(jwks.data(), jwks.size());
  if (d.HasParseError() || !d.IsObject()) return Fail(std::string("the JWKS is not a JSON object"));
  const auto keys = d.FindMember("keys");
  if (keys == d.MemberEnd() || !keys->value.IsArray())
    return Fail(std::string("the JWKS has no \"keys\" array"));
  KeySet set;
  for (const auto& jwk : keys->value.GetArray()) {
    if (!jwk.IsObject()) continue;
    if (const auto use = string_member(jwk, "use"); use && *use != "sig") continue;
    const std::string kty = string_member(jwk, "kty").value_or("");
    const auto declared = string_member(jwk, "alg");
    Key key{string_member(jwk, "kid").value_or(""), Alg::kRS256, nullptr, ""};
    if (kty == "RSA") {
      key.alg = Alg::kRS256;
      key.public_key = rsa_key(jwk);
      if (!key.public_key) continue;
    } else if (kty == "EC") {
      key.alg = Alg::kES256;
      key.public_key = p256_key(jwk);
      if (!key.public_key) continue;
    } else if (kty == "oct" && options.allow_hs256) {
      key.alg = Alg::kHS256;
      key.secret = bytes_member(jwk, "k");
      if (key.secret.size() < 32) continue;  // RFC 7518 3.2: at least the hash's size
    } else {
      continue;
    }
    // A key that names its algorithm is used for that one only.
    if (declared && *declared != alg_name(key.alg)) continue;
    set.keys_.push_back(std::move(key));
  }
  if (set.keys_.empty()) return Fail(std::string("the JWKS holds no usable signing key"));
  return set;
}

KeySet KeySet::merge(const std::vector<const KeySet*>& sets) {
  KeySet out;
  for (const KeySet* s : sets) out.keys_.insert(out.keys_.end(), s->keys_.begin(), s->keys_.end());
  return out;
}

const KeySet::Key* KeySet::find(std::string_view kid, Alg alg) const {
  const Key* found = nullptr;
  for (const Key& k : keys_) {
    if (k.alg != alg) continue;
    if (!kid.empty()) {
      if (k.kid == kid) return &k;
      continue;
    }
    if (found != nullptr) return nullptr;  // several candidates and no kid: refuse to guess
    found = &k;
  }
  return found;
}

std::vector<std::string> KeySet::kids() const {
  std::vector<std::string> out;
  for (const Key& k : keys_) out.push_back(k.kid);
  return out;
}

Result<Identity, std::string> verify(std::string_view token, const KeySet& keys, const VerifyOptions& options,
                                     WallTime now) {
  if (token.empty()) return Fail(std::string("no token"));
  if (token.size() > kMaxTokenBytes) return Fail(std::string("the token is too long"));
  const auto dot1 = token.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
    return Fail(std::string("not a JWS compact token (three parts)"));
  auto header = json_object(token.substr(0, dot1), "the header");
  if (!header) return Fail(header.error());
  const auto alg_text = string_member(*header, "alg");
  if (!alg_text) return Fail(std::string("the header has no alg"));
  const auto alg = parse_alg(*alg_text);
  if (!alg || (*alg == Alg::kHS256 && !options.allow_hs256))
    return Fail("algorithm " + *alg_text + " is not accepted");
  if (header->HasMember("crit")) return Fail(std::string("unknown critical header parameters"));
  const auto kid_member = header->FindMember("kid");
  if (kid_member != header->MemberEnd() && !kid_member->value.IsString())
    return Fail(std::string("kid is not a string"));
  const std::string kid = string_member(*header, "kid").value_or("");
  const KeySet::Key* key = keys.find(kid, *alg);
  if (key == nullptr) return Fail("no " + *alg_text + " key" + (kid.empty() ? "" : " with kid " + kid));
  auto signature = base64url_decode(token.substr(dot2 + 1));
  if (!signature) return Fail(std::string("the signature is not base64url"));
  if (!signature_ok(*key, token.substr(0, dot2), *signature)) return Fail(std::string("bad signature"));

  // Signed by a trusted key: now the claims.
  auto claims = json_object(token.substr(dot1 + 1, dot2 - dot1 - 1), "the payload");
  if (!claims) return Fail(claims.error());
  const std::int64_t t = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  const std::int64_t skew = options.clock_skew.count();
  auto exp = date_claim(*claims, "exp");
  if (!exp) return Fail(exp.error());
  if (!*exp) return Fail(std::string("no exp"));
  if (t >= **exp + skew) return Fail(std::string("expired"));
  auto nbf = date_claim(*claims, "nbf");
  if (!nbf) return Fail(nbf.error());
  if (*nbf && t + skew < **nbf) return Fail(std::string("not valid yet (nbf)"));
  auto iat = date_claim(*claims, "iat");
  if (!iat) return Fail(iat.error());
  if (*iat && t + skew < **iat) return Fail(std::string("issued in the future (iat)"));
  if (!options.issuer.empty()) {
    const auto iss = string_member(*claims, "iss");
    if (iss != options.issuer) return Fail(std::string("wrong issuer"));
  }
  if (!options.audience.empty()) {
    const auto aud = claims->FindMember("aud");
    bool ok = false;
    if (aud != claims->MemberEnd() && aud->value.IsString()) {
      ok = options.audience == aud->value.GetString();
    } else if (aud != claims->MemberEnd() && aud->value.IsArray()) {
      for (const auto& a : aud->value.GetArray())
        ok = ok || (a.IsString() && options.audience == a.GetString());
    }
    if (!ok) return Fail(std::string("wrong audience"));
  }
  const auto subject = string_member(*claims, options.user_claim.c_str());
  if (!subject || subject->empty()) return Fail(options.user_claim + " is missing or not a string");
  return Identity{*subject};
}

std::string user_id_for(std::string_view subject) {
  if (!validate_user_id(subject)) return std::string(subject);
  std::array<unsigned char, SHA256_DIGEST_LENGTH> d{};
  SHA256(reinterpret_cast<const unsigned char*>(subject.data()), subject.size(), d.data());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "x-";
  for (std::size_t i = 0; i < 20; ++i) {
    out.push_back(kHex[d[i] >> 4]);
    out.push_back(kHex[d[i] & 0xf]);
  }
  return out;
}

}  // namespace repl::auth
