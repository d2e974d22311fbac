// settings_problems: the operator's settings are checked at start-up. The defaults work; each bad
// value gives exactly one problem, naming the setting and the value; values that work give none.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "repl/children.hpp"

namespace {

using repl::ChildSettings;
using Member = std::string ChildSettings::*;

struct Case {
  const char* setting;  // the words the problem names it by
  Member member;
  std::string value;
};

// Every setting that is a Kubernetes quantity, by the words its problem uses.
const std::vector<std::pair<const char*, Member>> kQuantities = {
    {"runner CPU request", &ChildSettings::runner_cpu_request},
    {"runner CPU limit", &ChildSettings::runner_cpu_limit},
    {"runner memory request", &ChildSettings::runner_memory_request},
    {"runner memory limit", &ChildSettings::runner_memory_limit},
    {"runner ephemeral storage request", &ChildSettings::runner_ephemeral_storage_request},
    {"runner ephemeral storage limit", &ChildSettings::runner_ephemeral_storage_limit}};

std::vector<Case> bad_cases() {
  std::vector<Case> cases = {
      {"bucket", &ChildSettings::bucket, "A_b"},
      {"bucket", &ChildSettings::bucket, "ab"},
      {"bucket", &ChildSettings::bucket, std::string(64, 'a')},
      {"S3 endpoint", &ChildSettings::s3_endpoint, "ftp://x"},
      {"S3 endpoint", &ChildSettings::s3_endpoint, "http://"},
      {"S3 region", &ChildSettings::s3_region, "US EAST"},
      {"code prefix", &ChildSettings::code_prefix, "/code"},
      {"code prefix", &ChildSettings::code_prefix, "code/"},
      {"code prefix", &ChildSettings::code_prefix, "a//b"},
      {"code prefix", &ChildSettings::code_prefix, ""},
      {"base prefix", &ChildSettings::base_prefix, "/code"},
      {"base prefix", &ChildSettings::base_prefix, "code/"},
      {"base prefix", &ChildSettings::base_prefix, "a//b"},
      {"base prefix", &ChildSettings::base_prefix, ""},
      {"S3 credentials", &ChildSettings::s3_credentials, "none"},
      {"Secret name", &ChildSettings::aws_secret_name, "Bad_Name"},
      {"Secret name", &ChildSettings::aws_secret_name, ""},
      {"IDE domain", &ChildSettings::ide_domain, "-x.com"},
      {"IDE domain", &ChildSettings::ide_domain, "a..b"},
      {"preview domain", &ChildSettings::preview_domain, "-x.com"},
      {"preview domain", &ChildSettings::preview_domain, "a..b"},
      {"ingress namespace", &ChildSettings::ingress_namespace, "Ingress"},
      {"URL scheme", &ChildSettings::url_scheme, "ftp"},
  };
  for (const auto& [setting, member] : kQuantities) {
    // Not quantities, and quantities the API server would store in another form (so the live
    // Deployment would never match the desired one).
    for (const std::string value :
         {"1.5 cores", "", "Mi", "0.5", "1e3", "1024Mi", "1000m", "2000", "01", "-1"}) {
      cases.push_back({setting, member, value});
    }
  }
  return cases;
}

std::string problems_text(const std::vector<std::string>& problems) {
  std::string out;
  for (const auto& p : problems) out += "\n  " + p;
  return out;
}

}  // namespace

TEST_CASE("the default settings have no problems", "[repl][settings]") {
  const auto problems = repl::settings_problems(ChildSettings{});
  INFO("problems:" << problems_text(problems));
  CHECK(problems.empty());
}

TEST_CASE("each bad setting gives exactly one problem, naming the setting and the value",
          "[repl][settings]") {
  for (const auto& c : bad_cases()) {
    ChildSettings settings;
    settings.*c.member = c.value;
    const auto problems = repl::settings_problems(settings);
    INFO(c.setting << " = \"" << c.value << "\"; problems:" << problems_text(problems));
    REQUIRE(problems.size() == 1);
    CHECK_THAT(problems[0], Catch::Contains(c.setting, Catch::CaseSensitive::No));
    CHECK_THAT(problems[0], Catch::Contains("\"" + c.value + "\""));
  }
}

TEST_CASE("every bad setting is reported, not only the first", "[repl][settings]") {
  ChildSettings settings;
  settings.bucket = "A_b";
  settings.s3_region = "US EAST";
  settings.runner_memory_limit = "Mi";
  const auto problems = repl::settings_problems(settings);
  INFO("problems:" << problems_text(problems));
  REQUIRE(problems.size() == 3);
  CHECK_THAT(problems[0], Catch::Contains("\"A_b\""));
  CHECK_THAT(problems[1], Catch::Contains("\"US EAST\""));
  CHECK_THAT(problems[2], Catch::Contains("\"Mi\""));
}

TEST_CASE("an empty image or ingress class is a problem", "[repl][settings]") {
  for (const auto& [setting, member] :
       std::vector<std::pair<const char*, Member>>{{"runner image", &ChildSettings::runner_image},
                                                   {"init image", &ChildSettings::init_image},
                                                   {"ingress class", &ChildSettings::ingress_class}}) {
    ChildSettings settings;
    settings.*member = "";
    const auto problems = repl::settings_problems(settings);
    INFO(setting << "; problems:" << problems_text(problems));
    REQUIRE(problems.size() == 1);
    CHECK_THAT(problems[0], Catch::Contains(setting));
  }
}

TEST_CASE("settings that work have no problems", "[repl][settings]") {
  std::vector<Case> good = {
      {"bucket", &ChildSettings::bucket, "abc"},
      {"bucket", &ChildSettings::bucket, std::string(63, 'a')},
      {"bucket", &ChildSettings::bucket, "my.bucket-1"},
      {"S3 endpoint", &ChildSettings::s3_endpoint, ""},
      {"S3 endpoint", &ChildSettings::s3_endpoint, "http://127.0.0.1:9000"},
      {"S3 endpoint", &ChildSettings::s3_endpoint, "https://s3.eu-central-1.amazonaws.com"},
      {"S3 endpoint", &ChildSettings::s3_endpoint, "http://minio.storage.svc:9000/"},
      {"S3 region", &ChildSettings::s3_region, "eu-central-1"},
      {"code prefix", &ChildSettings::code_prefix, "a/b/c"},
      {"code prefix", &ChildSettings::code_prefix, "code"},
      {"base prefix", &ChildSettings::base_prefix, "a/b/c"},
      {"S3 credentials", &ChildSettings::s3_credentials, "secret"},
      {"S3 credentials", &ChildSettings::s3_credentials, "ambient"},
      {"Secret name", &ChildSettings::aws_secret_name, "s3.creds-1"},
      {"IDE domain", &ChildSettings::ide_domain, "ide.example.com"},
      {"IDE domain", &ChildSettings::ide_domain, "localhost"},
      {"preview domain", &ChildSettings::preview_domain, "x-1.preview.test"},
      {"ingress namespace", &ChildSettings::ingress_namespace, "kube-system"},
      {"ingress namespace", &ChildSettings::ingress_namespace, std::string(63, 'n')},
      {"URL scheme", &ChildSettings::url_scheme, "http"},
      {"URL scheme", &ChildSettings::url_scheme, "https"},
  };
  for (const auto& c : good) {
    ChildSettings settings;
    settings.*c.member = c.value;
    const auto problems = repl::settings_problems(settings);
    INFO(c.setting << " = \"" << c.value << "\"; problems:" << problems_text(problems));
    CHECK(problems.empty());
  }
}

TEST_CASE("quantities in the API server's own form are accepted, a request above its limit is not",
          "[repl][settings]") {
  for (const std::string value : {"500m", "1500m", "1", "2Gi", "256Mi", "1536Mi", "2G", "1k", "0"}) {
    ChildSettings settings;
    for (const auto& [setting, member] : kQuantities) settings.*member = value;
    const auto problems = repl::settings_problems(settings);
    INFO(value << "; problems:" << problems_text(problems));
    CHECK(problems.empty());
  }
  ChildSettings settings;
  settings.runner_memory_request = "2Gi";
  settings.runner_memory_limit = "1536Mi";
  settings.runner_cpu_request = "1500m";
  settings.runner_cpu_limit = "2";
  const auto problems = repl::settings_problems(settings);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0] == "runner memory request \"2Gi\" exceeds its limit \"1536Mi\"");
}
