// load_yaml_documents: yaml-cpp's LoadAll, with its errors as values and a bound on its time.
#include "common/yaml_load.hpp"

#include <catch2/catch.hpp>
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

// The fuzzer's find: on this text Debian's yaml-cpp 0.7.0's LoadAll never returns (jbeder/yaml-cpp#1040).
TEST_CASE("text yaml-cpp's LoadAll would loop on forever is an error with its place", "[common][yaml]") {
  const std::string input =
      file(std::string(REPL_SOURCE_DIR) + "/test/fuzz/regressions/template/yaml-cpp-never-returns");
  REQUIRE(input.size() > 1);
  const std::string yaml = input.substr(1, input.find('\0', 1) - 1);  // as the fuzzer cut it
  const auto parsed = repl::load_yaml_documents(yaml);
  REQUIRE_FALSE(parsed);
  CHECK_THAT(parsed.error(), Catch::Contains("line 4, column 1") && Catch::Contains("cannot start here"));

  for (const char* text : {",", "a: 1\n---\n,\n", "\"a\",", ",a"}) {
    CAPTURE(text);
    const auto comma = repl::load_yaml_documents(text);
    REQUIRE_FALSE(comma);
    CHECK_THAT(comma.error(), Catch::StartsWith("yaml-cpp: error at line"));
  }
  // Empty text and comment-only text are no documents, not an error.
  for (const char* text : {"", "# nothing\n", "---\n"}) {
    CAPTURE(text);
    const auto none = repl::load_yaml_documents(text);
    REQUIRE(none);
    CHECK(none->size() <= 1);
  }
}
