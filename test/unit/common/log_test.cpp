// Structured logging: each line is one JSON object with ts, level, msg and the fields, escaped.
#include "common/log.hpp"

#include <catch2/catch.hpp>
#include <regex>
#include <string>

#include "unit/support/json.hpp"

using repl::log::Level;

namespace {

// The members of a log line, in order.
std::vector<std::pair<std::string, std::string>> members(const std::string& line) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(line.data(), line.size());
  INFO(line);
  REQUIRE_FALSE(doc.HasParseError());
  REQUIRE(doc.IsObject());
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& m : doc.GetObject()) {
    REQUIRE(m.value.IsString());
    out.emplace_back(m.name.GetString(), std::string(m.value.GetString(), m.value.GetStringLength()));
  }
  return out;
}

}  // namespace

TEST_CASE("format_line writes ts, level, msg and the fields as one JSON object", "[common][log]") {
  const std::string line =
      repl::log::format_line(Level::kWarn, "applied", {{"repl", "team-a/abc"}, {"kind", "Deployment"}});
  CHECK(line.find('\n') == std::string::npos);
  const auto m = members(line);
  REQUIRE(m.size() == 5);
  CHECK(m[0].first == "ts");
  CHECK(std::regex_match(m[0].second, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
  CHECK(m[1] == std::pair<std::string, std::string>{"level", "warn"});
  CHECK(m[2] == std::pair<std::string, std::string>{"msg", "applied"});
  CHECK(m[3] == std::pair<std::string, std::string>{"repl", "team-a/abc"});
  CHECK(m[4] == std::pair<std::string, std::string>{"kind", "Deployment"});
}

TEST_CASE("format_line escapes whatever the message and the fields contain", "[common][log]") {
  using namespace std::string_literals;
  const std::string nasty = "quote\" backslash\\ newline\n tab\t ctrl\x01 nul\0 end \xC3\xBC"s;
  const std::string line = repl::log::format_line(Level::kError, nasty, {{"key \"k\"\n", nasty}});
  CHECK(line.find('\n') == std::string::npos);
  const auto m = members(line);
  REQUIRE(m.size() == 4);
  CHECK(m[2].second == nasty);
  CHECK(m[3].first == "key \"k\"\n");
  CHECK(m[3].second == nasty);
}

TEST_CASE("format_line names every level", "[common][log]") {
  const std::pair<Level, const char*> levels[] = {
      {Level::kDebug, "debug"}, {Level::kInfo, "info"}, {Level::kWarn, "warn"}, {Level::kError, "error"}};
  for (const auto& [level, name] : levels) {
    CHECK(members(repl::log::format_line(level, "m", {}))[1].second == name);
    CHECK(repl::log::parse_level(name) == level);
  }
  CHECK_FALSE(repl::log::parse_level("INFO"));
  CHECK_FALSE(repl::log::parse_level("warning"));
  CHECK_FALSE(repl::log::parse_level(""));
}

TEST_CASE("set_level sets the minimum level written", "[common][log]") {
  repl::log::set_level(Level::kWarn);
  CHECK_FALSE(repl::log::enabled(Level::kDebug));
  CHECK_FALSE(repl::log::enabled(Level::kInfo));
  CHECK(repl::log::enabled(Level::kWarn));
  CHECK(repl::log::enabled(Level::kError));
  repl::log::set_level(Level::kDebug);
  CHECK(repl::log::enabled(Level::kDebug));
  repl::log::set_level(Level::kInfo);  // the default, for the other tests
  CHECK_FALSE(repl::log::enabled(Level::kDebug));
  CHECK(repl::log::enabled(Level::kInfo));
}
