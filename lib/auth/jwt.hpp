// Verifying the bearer JWTs a browser frontend sends (RFC 7519, JWS compact form, RFC 7515), with
// keys from a JWKS document (RFC 7517): RS256 and ES256, and HS256 only when the caller allows it.
//
//   auto keys = auth::KeySet::parse(jwks_json, {.allow_hs256 = false});
//   auto who = auth::verify(token, *keys, options, clock.wall());
//   if (!who) return 401;             // who.error(): one line, for the log, never for the client
//   use(auth::user_id_for(who->subject));
//
// What is refused, each as an error value: a token that is not three base64url parts of bounded
// size (kMaxTokenBytes), a header or payload that is not a JSON object, an algorithm other than
// those allowed ("none" never is), an unknown kid, a key whose type does not fit the algorithm (an
// RSA key is never taken as an HMAC secret, so the classic RS256/HS256 confusion cannot happen), a
// bad signature, exp missing or past, nbf in the future (both with `clock_skew`), iat in the future,
// iss or aud other than configured, and claims of the wrong type. The crypto is OpenSSL 3's (EVP),
// already linked for TLS; JSON is RapidJSON's.
//
// Thread-safety: KeySet is immutable once parsed and may be shared; verify() is reentrant.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.hpp"
#include "common/result.hpp"

struct evp_pkey_st;

namespace repl::auth {

inline constexpr std::size_t kMaxTokenBytes = 8192;

enum class Alg { kRS256, kES256, kHS256 };

struct KeySetOptions {
  bool allow_hs256 = false;  // "oct" keys are skipped unless allowed
};

class KeySet {
 public:
  struct Key {
    std::string kid;  // may be empty
    Alg alg;
    std::shared_ptr<evp_pkey_st> public_key;  // RS256, ES256
    std::string secret;                       // HS256
  };

  // A JWKS document ({"keys": [...]}). Keys of other types, curves or uses ("use": "enc") are
  // skipped; a document that is not JSON, or has no usable key, is an error.
  static Result<KeySet, std::string> parse(std::string_view jwks, const KeySetOptions& options);
  // The keys of several sets in one (a file's and an issuer URL's).
  static KeySet merge(const std::vector<const KeySet*>& sets);

  // The key for a token's header: by kid when the header names one; without a kid, the only key
  // for the algorithm (none when there are several).
  const Key* find(std::string_view kid, Alg alg) const;
  std::size_t size() const { return keys_.size(); }
  std::vector<std::string> kids() const;

 private:
  std::vector<Key> keys_;
};

struct VerifyOptions {
  std::string issuer;    // iss must equal it (empty: not checked)
  std::string audience;  // aud (a string or an array) must hold it (empty: not checked)
  std::string user_claim = "sub";
  std::chrono::seconds clock_skew{30};
  bool allow_hs256 = false;
};

struct Identity {
  std::string subject;  // the user claim, as the issuer wrote it
};

Result<Identity, std::string> verify(std::string_view token, const KeySet& keys, const VerifyOptions& options,
                                     WallTime now);

// The Repl's spec.userId for a subject: the subject itself when it is a valid userId (a label
// value of at most 63 characters), else "x-" and 40 hex digits of its SHA-256. The same subject
// always maps to the same userId; the raw subject is kept on the Repl (kSubjectAnnotation).
std::string user_id_for(std::string_view subject);

// base64url without padding (RFC 4648 section 5), as JWS uses it; an error for anything else
// (padding, other characters, an impossible length, non-zero leftover bits).
Result<std::string, std::string> base64url_decode(std::string_view text);

}  // namespace repl::auth
