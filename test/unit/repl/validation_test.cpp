// Field validation: table tests per field, and agreement with the rules the CRD gives the API server.
#include "repl/validation.hpp"

#include <yaml-cpp/yaml.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <regex>
#include <string>
#include <vector>

#include "common/time.hpp"
#include "kube/config.hpp"

namespace {

using Validator = std::function<std::optional<repl::FieldError>(std::string_view)>;

struct Case {
  std::string value;
  bool valid;
};

std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      out += "\\x" + std::string(1, "0123456789abcdef"[c >> 4]) + "0123456789abcdef"[c & 15];
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

// Checks every case, and that each refusal names `field` and explains itself.
void check_table(const Validator& validate, const std::string& field, const std::vector<Case>& cases) {
  for (const auto& c : cases) {
    INFO("value \"" << printable(c.value) << "\" (" << c.value.size() << " bytes)");
    const auto err = validate(c.value);
    CHECK(err.has_value() == !c.valid);
    if (err) {
      CHECK(err->field == field);
      CHECK_FALSE(err->message.empty());
    }
  }
}

// Cases shared by the fields that must be DNS-label shaped (replId, language).
std::vector<Case> dns_label_cases(std::size_t max) {
  return {{"a", true},
          {"abc123", true},
          {"a-b-c", true},
          {"a--b", true},
          {std::string(max, 'a'), true},
          {std::string(max + 1, 'a'), false},
          {"", false},
          {"Abc", false},
          {"abC", false},
          {"-abc", false},
          {"abc-", false},
          {"a.b", false},
          {"a_b", false},
          {".abc", false},
          {"a b", false},
          {" abc", false},
          {"abc\n", false},
          {std::string("a\0b", 3), false},
          {"a\tb", false},
          {"\xC3\xBC", false},
          {"ab\xC3\xBC", false},
          {"a/b", false}};
}

}  // namespace

TEST_CASE("validate_repl_id accepts DNS labels of at most 63 characters", "[repl][validation]") {
  check_table(repl::validate_repl_id, "metadata.name", dns_label_cases(63));
  // It names a Service too, so it must start with a letter (DNS-1035); a language need not.
  check_table(repl::validate_repl_id, "metadata.name", {{"0abc", false}, {"9", false}, {"a0", true}});
  CHECK_THAT(repl::validate_repl_id(std::string(64, 'a'))->message, Catch::Contains("63"));
  CHECK_THAT(repl::validate_repl_id("")->message, Catch::Contains("required"));
}

TEST_CASE("validate_language accepts DNS labels of at most 32 characters", "[repl][validation]") {
  check_table(repl::validate_language, "spec.language", dns_label_cases(32));
  check_table(repl::validate_language, "spec.language", {{"0abc", true}, {"9", true}});
  CHECK_THAT(repl::validate_language(std::string(33, 'a'))->message, Catch::Contains("32"));
}

TEST_CASE("validate_user_id accepts label values of 1 to 63 characters", "[repl][validation]") {
  check_table(repl::validate_user_id, "spec.userId",
              {{"a", true},
               {"user-42", true},
               {"User_42", true},
               {"A.b_c-D", true},
               {"123", true},
               {std::string(63, 'Z'), true},
               {std::string(64, 'Z'), false},
               {"", false},
               {"-user", false},
               {"user-", false},
               {"_user", false},
               {"user_", false},
               {".user", false},
               {"user.", false},
               {"us er", false},
               {"user\n", false},
               {"us\x01"
                "er",
                false},
               {"us\x7f"
                "er",
                false},
               {"us\xC3\xBC"
                "er",
                false},
               {"\xF0\x9F\x99\x82", false},
               {"a/b", false},
               {"a:b", false},
               {"a\"b", false}});
  CHECK_THAT(repl::validate_user_id("")->message, Catch::Contains("required"));
}

TEST_CASE("validate_image accepts printable ASCII without spaces, up to 512 characters",
          "[repl][validation]") {
  check_table(repl::validate_image, "spec.image",
              {{"nginx", true},
               {"ghcr.io/org/runner:v1.2.3", true},
               {"registry:5000/a/b@sha256:0123abcd", true},
               {"UPPER_and-._~!", true},
               {std::string(512, 'x'), true},
               {std::string(513, 'x'), false},
               {"", false},
               {" nginx", false},
               {"nginx ", false},
               {"ng inx", false},
               {"nginx\n", false},
               {"nginx\t", false},
               {std::string("ng\0inx", 6), false},
               {"ng\x7finx", false},
               {"ng\xC3\xBCinx", false}});
}

namespace {

// A property of spec in the CRD schema.
YAML::Node spec_property(const YAML::Node& crd, const char* name) {
  return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][name];
}

// Whether the CRD schema accepts `value` for a string property with pattern/minLength/maxLength.
bool crd_accepts(const YAML::Node& property, const std::string& value) {
  const std::size_t min = property["minLength"] ? property["minLength"].as<std::size_t>() : 0;
  const std::size_t max = property["maxLength"].as<std::size_t>();
  return value.size() >= min && value.size() <= max &&
         std::regex_search(value, std::regex(property["pattern"].as<std::string>()));
}

void check_agrees_with_crd(const YAML::Node& property, const Validator& validate,
                           const std::vector<Case>& cases) {
  for (const auto& c : cases) {
    INFO("value \"" << printable(c.value) << "\"");
    CHECK(crd_accepts(property, c.value) == !validate(c.value).has_value());
  }
}

}  // namespace

TEST_CASE("the validators agree with the CRD's schema", "[repl][validation]") {
  auto text = repl::kube::read_file(std::string(REPL_SOURCE_DIR) + "/crd/repls.peetcode.com.yaml");
  REQUIRE(text);
  const YAML::Node crd = YAML::Load(*text);
  const std::vector<Case> samples = {{"a", true},
                                     {"ab-c", true},
                                     {"A_b.c", true},
                                     {"", false},
                                     {"-a", false},
                                     {"a-", false},
                                     {"a b", false},
                                     {"ab\n", false},
                                     {"x/y:z", false},
                                     {"\xC3\xBC", false},
                                     {std::string(32, 'a'), true},
                                     {std::string(33, 'a'), true},
                                     {std::string(63, 'a'), true},
                                     {std::string(64, 'a'), true},
                                     {std::string(512, 'a'), true},
                                     {std::string(513, 'a'), true}};
  check_agrees_with_crd(spec_property(crd, "userId"), repl::validate_user_id, samples);
  check_agrees_with_crd(spec_property(crd, "language"), repl::validate_language, samples);
  check_agrees_with_crd(spec_property(crd, "image"), repl::validate_image, samples);

  // replId: the CEL rules on metadata.name.
  const YAML::Node rules =
      crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-validations"];
  REQUIRE(rules.size() == 2);
  CHECK(rules[0]["rule"].as<std::string>() == "size(self.metadata.name) <= 63");
  const std::string rule = rules[1]["rule"].as<std::string>();
  const auto open = rule.find("matches('");
  REQUIRE(open != std::string::npos);
  const std::regex name_pattern(rule.substr(open + 9, rule.rfind("')") - open - 9));
  for (const auto& c : samples) {
    INFO("replId \"" << printable(c.value) << "\"");
    const bool crd_ok = c.value.size() <= 63 && std::regex_search(c.value, name_pattern);
    CHECK(crd_ok == !repl::validate_repl_id(c.value).has_value());
  }
}

TEST_CASE("durations and the sync interval: the CRD's rules, with its words", "[repl][validation]") {
  auto text = repl::kube::read_file(std::string(REPL_SOURCE_DIR) + "/crd/repls.peetcode.com.yaml");
  REQUIRE(text);
  const YAML::Node crd = YAML::Load(*text);
  for (const char* name : {"idleTimeout", "ttlAfterSuspend"}) {
    INFO(name);
    const YAML::Node rule = spec_property(crd, name)["x-kubernetes-validations"][0];
    CHECK(rule["message"].as<std::string>() == repl::kDurationMessage);
    CHECK_THAT(rule["rule"].as<std::string>(),
               Catch::Contains("^([0-9]{1,5}h)?([0-9]{1,7}m)?([0-9]{1,9}s)?$") &&
                   Catch::Contains("duration('87600h')"));
    const auto e = repl::validate_duration(std::string("spec.") + name, "2d");
    REQUIRE(e);
    CHECK(e->field == std::string("spec.") + name);
    CHECK(e->message == repl::kDurationMessage);
    CHECK_FALSE(repl::validate_duration(name, "87600h"));
  }
  CHECK(repl::kMaxHmsDuration == std::chrono::hours(87600));
  const YAML::Node sync = spec_property(crd, "syncIntervalSeconds");
  CHECK(sync["minimum"].as<std::int64_t>() == 1);
  CHECK(sync["maximum"].as<std::int64_t>() == repl::kMaxSyncIntervalSeconds);
  for (const std::int64_t ok : {1, 15, 86400}) CHECK_FALSE(repl::validate_sync_interval(ok));
  for (const std::int64_t bad : {-1, 0, 86401}) {
    const auto e = repl::validate_sync_interval(bad);
    REQUIRE(e);
    CHECK(e->field == "spec.syncIntervalSeconds");
  }
}
