// Result<T, E>: a value or an expected failure.
#include "common/result.hpp"

#include <catch2/catch.hpp>
#include <memory>
#include <string>

using repl::Fail;
using repl::Ok;
using repl::Result;

namespace {

Result<int, std::string> half(int n) {
  if (n % 2 != 0) return Fail("odd: " + std::to_string(n));
  return n / 2;
}

}  // namespace

TEST_CASE("a Result holds a value or an error", "[common][result]") {
  const auto ok = half(8);
  REQUIRE(ok);
  CHECK(ok.has_value());
  CHECK(*ok == 4);
  CHECK(ok.value() == 4);

  const auto bad = half(7);
  REQUIRE_FALSE(bad);
  CHECK_FALSE(bad.has_value());
  CHECK(bad.error() == "odd: 7");
}

TEST_CASE("Fail converts to the error type", "[common][result]") {
  const Result<int, std::string> from_literal = Fail("boom");
  CHECK(from_literal.error() == "boom");
  struct Error {
    std::string message;
  };
  const Result<double, Error> from_struct = Fail(Error{"bad"});
  CHECK(from_struct.error().message == "bad");
}

TEST_CASE("the value and the error may have the same type", "[common][result]") {
  const Result<std::string, std::string> value = std::string("v");
  const Result<std::string, std::string> error = Fail(std::string("e"));
  REQUIRE(value);
  CHECK(*value == "v");
  REQUIRE_FALSE(error);
  CHECK(error.error() == "e");
}

TEST_CASE("a Result may hold a move-only value and give it away", "[common][result]") {
  Result<std::unique_ptr<int>, std::string> r = std::make_unique<int>(3);
  REQUIRE(r);
  CHECK(**r == 3);
  std::unique_ptr<int> taken = std::move(r).value();
  REQUIRE(taken != nullptr);
  CHECK(*taken == 3);

  Result<std::string, std::string> s = std::string("abc");
  CHECK(s->size() == 3);
  s->append("d");
  CHECK(*s == "abcd");
}

TEST_CASE("Result<void, E> carries success or an error", "[common][result]") {
  const Result<void, std::string> ok = Ok{};
  CHECK(ok);
  const Result<void, std::string> defaulted;
  CHECK(defaulted.has_value());
  const Result<void, std::string> bad = Fail("nope");
  REQUIRE_FALSE(bad);
  CHECK(bad.error() == "nope");
}
