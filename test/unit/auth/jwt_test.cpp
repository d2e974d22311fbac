// JWT verification with keys and tokens made in the test (OpenSSL): what is accepted, and every
// kind of hostile token refused, each with its reason.
#include "auth/jwt.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "common/time.hpp"
#include "repl/validation.hpp"
#include "unit/support/jwt_minter.hpp"

using repl::auth::KeySet;
using repl::auth::VerifyOptions;
using repl::test::base64url;
using repl::test::Minter;

namespace {

// 2026-01-01T00:00:00Z, as seconds since the epoch.
constexpr std::int64_t kNow = 1767225600;

repl::WallTime now() { return *repl::parse_rfc3339("2026-01-01T00:00:00Z"); }

std::string claims(const std::string& extra = "", std::int64_t exp = kNow + 300) {
  return R"({"sub":"alice","iss":"https://issuer.test","aud":"repl-shim","exp":)" + std::to_string(exp) +
         extra + "}";
}

VerifyOptions options() {
  VerifyOptions o;
  o.issuer = "https://issuer.test";
  o.audience = "repl-shim";
  return o;
}

const Minter& rsa_key() {
  static const Minter m = Minter::rsa("r1");
  return m;
}
const Minter& ec_key() {
  static const Minter m = Minter::p256("e1");
  return m;
}

KeySet keys(const std::vector<std::string>& jwks, bool allow_hs256 = false) {
  auto k = KeySet::parse(repl::test::jwks_of(jwks), {allow_hs256});
  INFO((k ? "" : k.error()));
  REQUIRE(k);
  return std::move(*k);
}

std::string refusal(const std::string& token, const KeySet& ks, const VerifyOptions& o = options()) {
  const auto r = repl::auth::verify(token, ks, o, now());
  return r ? std::string("accepted") : r.error();
}

}  // namespace

TEST_CASE("base64url: RFC 4648's URL alphabet without padding, one text per value", "[auth]") {
  for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar",
                                                       std::string("\xff\xfe\x00\x01", 4)}) {
    const auto d = repl::auth::base64url_decode(base64url(s));
    REQUIRE(d);
    CHECK(*d == s);
  }
  CHECK(*repl::auth::base64url_decode("-_8") == "\xfb\xff");
  for (const char* bad : {"Zg==", "Z", "a+b/", "ab c", "Zh"}) {  // "Zh": leftover bits set
    INFO(bad);
    CHECK_FALSE(repl::auth::base64url_decode(bad));
  }
}

TEST_CASE("a JWKS: RSA and P-256 signing keys; others skipped; none usable is an error", "[auth]") {
  const Minter small = Minter::rsa("small", 1024);
  const auto ks = keys({rsa_key().jwk(), ec_key().jwk(), small.jwk(),
                        R"({"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"})",
                        R"({"kty":"oct","kid":"h1","k":")" + base64url(std::string(32, 'k')) + R"("})",
                        R"({"kty":"OKP","kid":"ed","crv":"Ed25519","x":"AAAA"})", R"("not an object")"});
  CHECK(ks.kids() ==
        std::vector<std::string>{"r1", "e1"});  // 1024-bit RSA, enc, oct (not allowed), OKP: skipped
  CHECK(keys({R"({"kty":"oct","kid":"h1","k":")" + base64url(std::string(32, 'k')) + R"("})"}, true).size() ==
        1);
  // An "alg" that does not fit the key's type: skipped, never used for another algorithm.
  CHECK_FALSE(KeySet::parse(
      repl::test::jwks_of({R"({"kty":"RSA","alg":"HS256",)" + rsa_key().jwk().substr(1)}), {true}));
  for (const char* bad : {"", "[]", "{}", R"({"keys":{}})", R"({"keys":[]})", "{\"keys\":[\xff]}"}) {
    INFO(bad);
    CHECK_FALSE(KeySet::parse(bad, {}));
  }
}

TEST_CASE("verify: RS256 and ES256 tokens of a trusted key give their subject", "[auth]") {
  const auto ks = keys({rsa_key().jwk(), ec_key().jwk()});
  for (const Minter* m : {&rsa_key(), &ec_key()}) {
    const std::string alg = m == &rsa_key() ? "RS256" : "ES256";
    const auto r = repl::auth::verify(
        m->sign(R"({"alg":")" + alg + R"(","kid":")" + m->kid() + R"(","typ":"JWT"})", claims()), ks,
        options(), now());
    INFO((r ? "" : r.error()));
    REQUIRE(r);
    CHECK(r->subject == "alice");
  }
  // aud as an array holding ours; nbf and iat in the past; another user claim.
  VerifyOptions o = options();
  o.user_claim = "email";
  const auto r = repl::auth::verify(
      rsa_key().sign(
          R"({"alg":"RS256","kid":"r1"})",
          R"({"sub":"x","email":"a@b.test","iss":"https://issuer.test","aud":["other","repl-shim"],)"
          R"("exp":)" +
              std::to_string(kNow + 60) + R"(,"nbf":)" + std::to_string(kNow - 60) + R"(,"iat":)" +
              std::to_string(kNow - 60) + "}"),
      ks, o, now());
  REQUIRE(r);
  CHECK(r->subject == "a@b.test");
  // Without a kid, the only key for the algorithm.
  CHECK(refusal(rsa_key().sign(R"({"alg":"RS256"})", claims()), ks) == "accepted");
}

TEST_CASE("verify: hostile tokens are refused, each for its reason", "[auth]") {
  const auto ks = keys({rsa_key().jwk(), ec_key().jwk()});
  const std::string rs = R"({"alg":"RS256","kid":"r1"})";
  const std::string good = rsa_key().sign(rs, claims());
  REQUIRE(refusal(good, ks) == "accepted");

  CHECK(refusal(rsa_key().sign(rs, claims("", kNow - 31)), ks) == "expired");
  CHECK(refusal(rsa_key().sign(rs, claims("", kNow - 29)), ks) == "accepted");  // within the 30 s skew
  CHECK(refusal(rsa_key().sign(rs, claims(R"(,"nbf":)" + std::to_string(kNow + 60))), ks) ==
        "not valid yet (nbf)");
  CHECK(refusal(rsa_key().sign(rs, claims(R"(,"iat":)" + std::to_string(kNow + 60))), ks) ==
        "issued in the future (iat)");
  CHECK(refusal(rsa_key().sign(rs, R"({"sub":"alice","iss":"https://evil.test","aud":"repl-shim","exp":)" +
                                       std::to_string(kNow + 60) + "}"),
                ks) == "wrong issuer");
  CHECK(refusal(rsa_key().sign(rs, R"({"sub":"alice","iss":"https://issuer.test","aud":["other"],"exp":)" +
                                       std::to_string(kNow + 60) + "}"),
                ks) == "wrong audience");
  CHECK(refusal(rsa_key().sign(rs, R"({"sub":"alice","iss":"https://issuer.test","aud":"repl-shim"})"), ks) ==
        "no exp");
  // Bad signature: one byte of the payload changed after signing, or of the signature.
  std::string tampered = good;
  tampered[good.find('.') + 5] ^= 1;
  CHECK(refusal(tampered, ks) != "accepted");
  std::string bad_sig = good;
  bad_sig[bad_sig.size() - 3] = bad_sig[bad_sig.size() - 3] == 'A' ? 'B' : 'A';
  CHECK(refusal(bad_sig, ks) == "bad signature");
  // Another key of the same kind, claiming to be r1.
  CHECK(refusal(Minter::rsa("r1").sign(rs, claims()), ks) == "bad signature");
  // alg none, with or without a signature.
  const std::string none = base64url(R"({"alg":"none"})") + "." + base64url(claims());
  CHECK(refusal(none + ".", ks) == "algorithm none is not accepted");
  CHECK(refusal(none + "." + base64url("x"), ks) == "algorithm none is not accepted");
  // Algorithm confusion: HS256 with the RSA public key as the secret.
  const std::string hs_input = base64url(R"({"alg":"HS256","kid":"r1"})") + "." + base64url(claims());
  for (const std::string& secret : {rsa_key().public_bytes(), rsa_key().jwk()}) {
    const std::string forged = hs_input + "." + base64url(repl::test::hs256(secret, hs_input));
    CHECK(refusal(forged, ks) == "algorithm HS256 is not accepted");
    VerifyOptions hs = options();
    hs.allow_hs256 = true;
    CHECK(refusal(forged, ks, hs) == "no HS256 key with kid r1");
  }
  CHECK(refusal(rsa_key().sign(R"({"alg":"RS256","kid":"nobody"})", claims()), ks) ==
        "no RS256 key with kid nobody");
  CHECK(refusal(ec_key().sign(R"({"alg":"ES256","kid":"r1"})", claims()), ks) == "no ES256 key with kid r1");
  CHECK(refusal(rsa_key().sign(R"({"alg":"RS256","kid":7})", claims()), ks) == "kid is not a string");
  CHECK(refusal(rsa_key().sign(R"({"alg":"RS256","kid":"r1","crit":["exp"]})", claims()), ks) ==
        "unknown critical header parameters");
  // Truncated, too long, not JSON.
  CHECK(refusal(good.substr(0, good.rfind('.')), ks) == "not a JWS compact token (three parts)");
  CHECK(refusal(good.substr(0, good.size() - 10), ks) == "bad signature");
  CHECK(refusal(good + ".x", ks) == "not a JWS compact token (three parts)");
  CHECK(refusal(rsa_key().sign(rs, claims(R"(,"pad":")" + std::string(64 * 1024, 'p') + "\"")), ks) ==
        "the token is too long");
  CHECK(refusal("", ks) == "no token");
  CHECK(refusal("a.b.c", ks) != "accepted");
  CHECK(refusal(rsa_key().sign(R"(["alg","RS256"])", claims()), ks) == "the header is not a JSON object");
  CHECK(refusal(rsa_key().sign(rs, "not json"), ks) == "the payload is not a JSON object");
  // Claims of the wrong type.
  CHECK(refusal(rsa_key().sign(
                    rs, R"({"sub":"alice","iss":"https://issuer.test","aud":"repl-shim","exp":"soon"})"),
                ks) == "exp is not a number");
  CHECK(refusal(rsa_key().sign(rs, R"({"sub":42,"iss":"https://issuer.test","aud":"repl-shim","exp":)" +
                                       std::to_string(kNow + 60) + "}"),
                ks) == "sub is missing or not a string");
  CHECK(
      refusal(rsa_key().sign(rs, R"({"sub":"alice","iss":["https://issuer.test"],"aud":"repl-shim","exp":)" +
                                     std::to_string(kNow + 60) + "}"),
              ks) == "wrong issuer");
  CHECK(refusal(rsa_key().sign(rs, claims(R"(,"nbf":1e300)")), ks) == "nbf is out of range");
  // Two RS256 keys and no kid: no guessing.
  const auto two = keys({rsa_key().jwk(), Minter::rsa("r2").jwk()});
  CHECK(refusal(rsa_key().sign(R"({"alg":"RS256"})", claims()), two) == "no RS256 key");
}

TEST_CASE("verify: HS256 only when allowed, with an oct key of at least 32 bytes", "[auth]") {
  const std::string secret(32, 's');
  const auto ks = keys({R"({"kty":"oct","kid":"h1","k":")" + base64url(secret) + R"("})"}, true);
  const std::string input = base64url(R"({"alg":"HS256","kid":"h1"})") + "." + base64url(claims());
  const std::string token = input + "." + base64url(repl::test::hs256(secret, input));
  VerifyOptions o = options();
  CHECK(refusal(token, ks, o) == "algorithm HS256 is not accepted");
  o.allow_hs256 = true;
  CHECK(refusal(token, ks, o) == "accepted");
  CHECK(refusal(input + "." + base64url(repl::test::hs256(std::string(32, 't'), input)), ks, o) ==
        "bad signature");
}

TEST_CASE("user_id_for: a label-safe subject as it is, any other as a stable hash", "[auth]") {
  CHECK(repl::auth::user_id_for("alice") == "alice");
  CHECK(repl::auth::user_id_for("user-42_a.b") == "user-42_a.b");
  for (const std::string& s : std::vector<std::string>{"auth0|abc123", "alice@example.com",
                                                       std::string(64, 'a'), "-lead", "caf\xc3\xa9"}) {
    INFO(s);
    const std::string id = repl::auth::user_id_for(s);
    CHECK_THAT(id, Catch::Matches("x-[0-9a-f]{40}"));
    CHECK(id == repl::auth::user_id_for(s));
    CHECK_FALSE(repl::validate_user_id(id));
  }
  CHECK(repl::auth::user_id_for("auth0|abc123") != repl::auth::user_id_for("auth0|abc124"));
}
