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

TEST_CASE("the runner's uid and gid must be 1..2147483647: 0 is root", "[repl][settings]") {
  using IdMember = int ChildSettings::*;
  for (const auto& [setting, member] : std::vector<std::pair<std::string, IdMember>>{
           {"runner uid", &ChildSettings::runner_uid}, {"runner gid", &ChildSettings::runner_gid}}) {
    for (const int bad : {0, -1, -2147483647 - 1}) {
      ChildSettings settings;
      settings.*member = bad;
      const auto problems = repl::settings_problems(settings);
      INFO(setting << " = " << bad << "; problems:" << problems_text(problems));
      REQUIRE(problems.size() == 1);
      CHECK_THAT(problems[0],
                 Catch::StartsWith(setting + " " + std::to_string(bad) + " must be 1..2147483647"));
    }
    for (const int good : {1, 1000, 65532, 2147483647}) {
      ChildSettings settings;
      settings.*member = good;
      const auto problems = repl::settings_problems(settings);
      INFO(setting << " = " << good << "; problems:" << problems_text(problems));
      CHECK(problems.empty());
    }
  }
  ChildSettings root;
  root.runner_uid = 0;
  root.runner_gid = 0;
  const auto problems = repl::settings_problems(root);
  REQUIRE(problems.size() == 2);
  CHECK(problems[0] ==
        "runner uid 0 must be 1..2147483647 (0 is root, which the pod's runAsNonRoot refuses)");
  CHECK(problems[1] == "runner gid 0 must be 1..2147483647 (0 is the root group)");
}

TEST_CASE("the S3 endpoint's port, when it names one, is a TCP port", "[repl][settings]") {
  for (const std::string bad : {"http://minio:0", "http://minio:65536", "http://minio:9x",
                                "https://[fd00::1]:-1/", "http://u:p@minio:99999/bucket"}) {
    ChildSettings settings;
    settings.s3_endpoint = bad;
    const auto problems = repl::settings_problems(settings);
    INFO(bad << "; problems:" << problems_text(problems));
    REQUIRE(problems.size() == 1);
    CHECK(problems[0] == "S3 endpoint \"" + bad + "\" has a port that is not 1..65535");
  }
  for (const std::string good : {"http://minio:1", "http://minio:65535/", "https://[fd00::1]:9000/x",
                                 "https://[fd00::1]", "http://u:p@minio:9000", "http://minio:"}) {
    ChildSettings settings;
    settings.s3_endpoint = good;
    const auto problems = repl::settings_problems(settings);
    INFO(good << "; problems:" << problems_text(problems));
    CHECK(problems.empty());
  }
}

TEST_CASE("the S3 egress CIDR is one canonical IPv4 or IPv6 CIDR, and needs an S3 endpoint",
          "[repl][settings]") {
  const auto problems_for = [](const std::string& cidr, const std::string& endpoint) {
    ChildSettings settings;
    settings.s3_egress_cidr = cidr;
    settings.s3_endpoint = endpoint;
    return repl::settings_problems(settings);
  };
  const std::string endpoint = "http://10.88.0.1:9000";
  SECTION("not a CIDR") {
    for (const std::string bad : {"10.88.0.1", "10.88.0.1/33", "10.88.0.1/", "10.88.0.1/-1", "10.88.0.1/3x",
                                  "10.88.0/24", "10.88.0.256/32", "minio.local/32", "fd00::1/129",
                                  "fd00:::1/128", "10.88.0.1/32,10.0.0.0/8", " 10.88.0.1/32", "/32"}) {
      const auto problems = problems_for(bad, endpoint);
      INFO(bad << "; problems:" << problems_text(problems));
      REQUIRE(problems.size() == 1);
      CHECK_THAT(problems[0], Catch::StartsWith("S3 egress CIDR \"" + bad + "\" "));
    }
  }
  SECTION("a CIDR not in canonical form names the canonical one") {
    for (const auto& [written, canonical] :
         std::vector<std::pair<std::string, std::string>>{{"10.88.0.1/16", "10.88.0.0/16"},
                                                          {"10.88.0.1/032", "10.88.0.1/32"},
                                                          {"FD00::/8", "fd00::/8"},
                                                          {"fd00:0:0:0:0:0:0:1/128", "fd00::1/128"},
                                                          {"fd00::1/64", "fd00::/64"}}) {
      const auto problems = problems_for(written, endpoint);
      INFO(written << "; problems:" << problems_text(problems));
      REQUIRE(problems.size() == 1);
      CHECK(problems[0] == "S3 egress CIDR \"" + written + "\" is not in canonical form: write " + canonical);
    }
  }
  SECTION("canonical CIDRs") {
    for (const std::string good :
         {"10.88.0.1/32", "10.0.0.0/8", "192.168.0.0/16", "0.0.0.0/0", "fd00::/8", "fd00::1/128", "::/0"}) {
      const auto problems = problems_for(good, endpoint);
      INFO(good << "; problems:" << problems_text(problems));
      CHECK(problems.empty());
    }
  }
  SECTION("without an S3 endpoint there is nothing private to reach") {
    const auto problems = problems_for("10.88.0.1/32", "");
    REQUIRE(problems.size() == 1);
    CHECK_THAT(problems[0], Catch::StartsWith("S3 egress CIDR \"10.88.0.1/32\" needs an S3 endpoint"));
    // Every problem at once: a bad CIDR without an endpoint is two.
    CHECK(problems_for("10.88.0.1", "").size() == 2);
  }
}

TEST_CASE("the sync interval is at least 1 s, the grace period at least 10 s (the final sync's time)",
          "[repl][settings]") {
  ChildSettings s;
  s.sync_interval_seconds = 0;
  s.termination_grace_period_seconds = 9;
  const auto problems = repl::settings_problems(s);
  INFO(problems_text(problems));
  REQUIRE(problems.size() == 2);
  CHECK(problems[0] == "sync interval 0 s must be at least 1 s");
  CHECK(problems[1] == "termination grace period 9 s must be at least 10 s (the final sync's time)");
  s.sync_interval_seconds = 1;
  s.termination_grace_period_seconds = 10;
  CHECK(repl::settings_problems(s).empty());
}
