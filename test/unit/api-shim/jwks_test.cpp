// The shim's JWKS file, read again when it changes, in virtual time: a key added is accepted
// without a restart, a key removed is refused, a broken or missing file keeps the keys read before.
#include "jwks.hpp"

#include <catch2/catch.hpp>
#include <filesystem>

#include "common/time.hpp"
#include "unit/support/jwt_minter.hpp"
#include "unit/support/quiet_logs.hpp"
#include "unit/support/temp_dir.hpp"

using namespace std::chrono_literals;
using repl::Fail;
using repl::Result;
using repl::test::Minter;

namespace {

const Minter& key(int i) {
  static const Minter k1 = Minter::rsa("k1"), k2 = Minter::p256("k2");
  return i == 1 ? k1 : k2;
}

// Whether `keys` verify a token of key `i`.
bool accepts_keys(const std::shared_ptr<const repl::auth::KeySet>& keys, int i) {
  const std::string alg = i == 1 ? "RS256" : "ES256";
  const std::string token = key(i).sign(R"({"alg":")" + alg + R"(","kid":")" + key(i).kid() + R"("})",
                                        R"({"sub":"alice","exp":1767225900})");
  return keys && repl::auth::verify(token, *keys, {}, *repl::parse_rfc3339("2026-01-01T00:00:00Z"));
}
bool accepts(const repl::shim::JwksFile& f, int i) { return accepts_keys(f.keys(), i); }

}  // namespace

TEST_CASE("the JWKS file is read again when it changes; a broken one keeps the keys read before",
          "[shim][jwt]") {
  repl::test::QuietLogs quiet;
  repl::test::TempDir dir;
  repl::ManualClock clock;
  const std::string path = dir.write("jwks.json", repl::test::jwks_of({key(1).jwk()}));
  auto opened = repl::shim::JwksFile::open(path, {}, clock, 5s);
  REQUIRE(opened);
  auto& f = **opened;
  f.start();
  CHECK(accepts(f, 1));
  CHECK_FALSE(accepts(f, 2));

  // A key added (a rotation's first step): accepted at the next look, not before.
  dir.write("jwks.json", repl::test::jwks_of({key(1).jwk(), key(2).jwk()}));
  clock.advance(4s);
  CHECK_FALSE(accepts(f, 2));
  clock.advance(1s);
  CHECK(accepts(f, 2));
  CHECK(accepts(f, 1));

  // The old key removed: refused.
  dir.write("jwks.json", repl::test::jwks_of({key(2).jwk()}));
  clock.advance(5s);
  CHECK_FALSE(accepts(f, 1));
  CHECK(accepts(f, 2));

  // Broken, then gone: the last good keys stay.
  dir.write("jwks.json", "{\"keys\": [");
  clock.advance(5s);
  CHECK(accepts(f, 2));
  std::filesystem::remove(path);
  clock.advance(5s);
  CHECK(accepts(f, 2));
  // Back, as a Secret's volume swaps it in (a new file): read.
  dir.write("jwks.json", repl::test::jwks_of({key(1).jwk()}));
  clock.advance(5s);
  CHECK(accepts(f, 1));
  CHECK_FALSE(accepts(f, 2));
  f.stop();
  CHECK_FALSE(clock.wait_armed(0ms));
}

TEST_CASE("a JWKS file that cannot be used is an error at start-up", "[shim][jwt]") {
  repl::test::TempDir dir;
  repl::ManualClock clock;
  const auto missing = repl::shim::JwksFile::open(dir.path() + "/none.json", {}, clock, 5s);
  REQUIRE_FALSE(missing);
  CHECK_THAT(missing.error(), Catch::Contains("cannot read the JWKS file"));
  const auto empty = repl::shim::JwksFile::open(dir.write("empty.json", R"({"keys":[]})"), {}, clock, 5s);
  REQUIRE_FALSE(empty);
  CHECK_THAT(empty.error(), Catch::Contains("no usable signing key"));
}

TEST_CASE("the issuer's JWKS URL: fetched at start and every refresh; a failed fetch keeps the keys",
          "[shim][jwt]") {
  repl::test::QuietLogs quiet;
  repl::ManualClock clock;
  // The issuer, as the fetch sees it: a document, or a failure.
  Result<std::string, std::string> served = repl::test::jwks_of({key(1).jwk()});
  int fetches = 0;
  const auto fetch = [&](std::function<void(Result<std::string, std::string>)> done) {
    ++fetches;
    done(served);
  };
  auto opened = repl::shim::JwksUrl::open("https://idp.test/jwks", {}, clock, 300s, fetch);
  REQUIRE(opened);
  auto& u = **opened;
  u.start();
  CHECK(fetches == 1);
  CHECK(accepts_keys(u.keys(), 1));
  served = repl::test::jwks_of({key(2).jwk()});
  clock.advance(299s);
  CHECK(fetches == 1);
  clock.advance(1s);
  CHECK(fetches == 2);
  CHECK(accepts_keys(u.keys(), 2));
  CHECK_FALSE(accepts_keys(u.keys(), 1));
  served = Fail(std::string("GET https://idp.test/jwks: status 503"));
  clock.advance(300s);
  CHECK(accepts_keys(u.keys(), 2));
  served = std::string("{not json");
  clock.advance(300s);
  CHECK(accepts_keys(u.keys(), 2));
  u.stop();
  clock.advance(300s);
  CHECK(fetches == 4);

  // Start-up needs a first answer that holds a key.
  served = Fail(std::string("GET https://idp.test/jwks: connection refused"));
  const auto refused = repl::shim::JwksUrl::open("https://idp.test/jwks", {}, clock, 300s, fetch);
  REQUIRE_FALSE(refused);
  CHECK_THAT(refused.error(), Catch::Contains("connection refused"));
}

TEST_CASE("the issuer's JWKS URL: one fetch at a time, so a slow answer never overtakes a newer one",
          "[shim][jwt]") {
  repl::test::QuietLogs quiet;
  repl::ManualClock clock;
  std::vector<std::function<void(Result<std::string, std::string>)>> pending;
  bool first = true;
  const auto fetch = [&](std::function<void(Result<std::string, std::string>)> done) {
    if (first) {
      first = false;
      return done(repl::test::jwks_of({key(1).jwk()}));
    }
    pending.push_back(std::move(done));  // the issuer is slow
  };
  auto opened = repl::shim::JwksUrl::open("https://idp.test/jwks", {}, clock, 10s, fetch);
  REQUIRE(opened);
  (*opened)->start();
  clock.advance(10s);
  clock.advance(10s);
  clock.advance(10s);
  CHECK(pending.size() == 1);  // the rounds while it is out are skipped
  pending[0](repl::test::jwks_of({key(2).jwk()}));
  CHECK(accepts_keys((*opened)->keys(), 2));
  clock.advance(10s);
  CHECK(pending.size() == 2);
  (*opened)->stop();
}

TEST_CASE("a file's and an issuer's keys together", "[shim][jwt]") {
  auto one = repl::auth::KeySet::parse(repl::test::jwks_of({key(1).jwk()}), {});
  auto two = repl::auth::KeySet::parse(repl::test::jwks_of({key(2).jwk()}), {});
  REQUIRE((one && two));
  const auto a = std::make_shared<const repl::auth::KeySet>(std::move(*one));
  const auto b = std::make_shared<const repl::auth::KeySet>(std::move(*two));
  CHECK(repl::shim::merged({a, nullptr}) == a);  // one source: its own set
  CHECK_FALSE(repl::shim::merged({nullptr, nullptr}));
  const auto both = repl::shim::merged({a, b});
  CHECK(accepts_keys(both, 1));
  CHECK(accepts_keys(both, 2));
}
