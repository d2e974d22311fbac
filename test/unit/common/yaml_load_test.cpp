// load_yaml_documents: yaml-cpp's LoadAll, with its errors as values and a bound on its time.
#include "common/yaml_load.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

namespace {

std::string file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("load_yaml_documents gives the documents, or yaml-cpp's error", "[common][yaml]") {
  const auto two = repl::load_yaml_documents("a: 1\n---\nb: [x, y]\n");
  REQUIRE(two);
  REQUIRE(two->size() == 2);
  CHECK((*two)[1]["b"][1].as<std::string>() == "y");
  const auto bad = repl::load_yaml_documents("a: [1, 2\n");
  REQUIRE_FALSE(bad);
  CHECK_FALSE(bad.error().empty());
}

// The fuzzer's find: on this text Debian's yaml-cpp 0.7.0 never returns (an infinite loop).
TEST_CASE("text the YAML parser never finishes is an error after the bound, not a hang", "[common][yaml]") {
  const std::string input =
      file(std::string(REPL_SOURCE_DIR) + "/test/fuzz/regressions/template/yaml-cpp-never-returns");
  REQUIRE(input.size() > 1);
  const std::string yaml = input.substr(1, input.find('\0', 1) - 1);  // as the fuzzer cut it
  const auto start = std::chrono::steady_clock::now();
  const auto parsed = repl::load_yaml_documents(yaml, std::chrono::milliseconds(300));
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  if (!parsed) CHECK(parsed.error().find("did not finish") != std::string::npos);
}
