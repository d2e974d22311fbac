// The Deployment's secure defaults: the runner executes user code, so its pod gets no API token and
// no service links, runs as a non-root uid and gid (from the operator's settings) under the
// runtime's seccomp profile, never escalates privileges, holds no Linux capabilities, is bounded in
// CPU, memory and scratch disk (from the settings), and sees no environment at all: S3 settings and
// credentials reach the init container only. Together: Pod Security's "restricted" profile.
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "repl/children.hpp"
#include "unit/support/child_checks.hpp"
#include "unit/support/json.hpp"
#include "unit/support/repl_fixtures.hpp"

namespace {

using repl::ChildSettings;
using repl::test::at;
using repl::test::env_var;
using repl::test::has;
using repl::test::string_at;

// Settings that differ from every default, so each value seen below came from them.
ChildSettings custom_settings() {
  ChildSettings s;
  s.s3_endpoint = "http://127.0.0.1:9000";
  s.s3_region = "eu-central-1";
  s.code_prefix = "tenants/code";
  s.base_prefix = "templates/base";
  s.s3_credentials = "ambient";
  s.aws_secret_name = "minio-creds";
  s.runner_cpu_request = "250m";
  s.runner_cpu_limit = "2";
  s.runner_memory_request = "512Mi";
  s.runner_memory_limit = "3Gi";
  s.runner_ephemeral_storage_request = "1Gi";
  s.runner_ephemeral_storage_limit = "5Gi";
  s.runner_uid = 1234;
  s.runner_gid = 5678;
  return s;
}

rapidjson::Document deployment_for(const repl::Repl& repl, const ChildSettings& settings) {
  const auto children = repl::test::render_children(repl, settings);
  rapidjson::Document d;
  d.CopyFrom(repl::test::child_of_kind(children, "Deployment").object, d.GetAllocator());
  return d;
}

// Every container of the pod, init containers first, each with a label for failure messages.
std::vector<std::pair<std::string, const rapidjson::Value*>> all_containers(const rapidjson::Value& d) {
  std::vector<std::pair<std::string, const rapidjson::Value*>> out;
  for (const char* list : {"initContainers", "containers"}) {
    const auto& array = at(d, (std::string("/spec/template/spec/") + list).c_str());
    REQUIRE(array.IsArray());
    for (const auto& c : array.GetArray())
      out.emplace_back(std::string(list) + " " + string_at(c, "/name"), &c);
  }
  return out;
}

}  // namespace

TEST_CASE("the settings used below are valid", "[render][repl][security]") {
  CHECK(repl::settings_problems(custom_settings()).empty());
}

TEST_CASE("the runner's pod has no API token, no service links, a seccomp profile and one pod at a time",
          "[render][repl][security]") {
  const auto d = deployment_for(repl::test::sample_repl(), custom_settings());
  const auto& pod = at(d, "/spec/template/spec");
  CHECK(at(pod, "/automountServiceAccountToken").IsFalse());
  CHECK(at(pod, "/enableServiceLinks").IsFalse());
  CHECK(string_at(pod, "/securityContext/seccompProfile/type") == "RuntimeDefault");
  for (const char* host : {"/hostNetwork", "/hostPID", "/hostIPC"}) {
    INFO(host);
    CHECK_FALSE(has(pod, host));
  }
  // Recreate: the old pod is gone before the new one starts, so two never share a repl's code.
  CHECK(string_at(d, "/spec/strategy/type") == "Recreate");
  CHECK_FALSE(has(d, "/spec/strategy/rollingUpdate"));
}

TEST_CASE("the pod runs as the runner's uid and gid, never as root, and the workspace is the gid's",
          "[render][repl][security]") {
  const auto check_ids = [](const ChildSettings& s, std::int64_t uid, std::int64_t gid) {
    const auto d = deployment_for(repl::test::sample_repl(), s);
    const auto& pod = at(d, "/spec/template/spec/securityContext");
    CHECK(at(pod, "/runAsNonRoot").IsTrue());
    // Numbers, not strings: the API server refuses "1000" for an int64 field.
    REQUIRE(at(pod, "/runAsUser").IsInt64());
    CHECK(at(pod, "/runAsUser").GetInt64() == uid);
    REQUIRE(at(pod, "/runAsGroup").IsInt64());
    CHECK(at(pod, "/runAsGroup").GetInt64() == gid);
    REQUIRE(at(pod, "/fsGroup").IsInt64());
    CHECK(at(pod, "/fsGroup").GetInt64() == gid);
    // No container overrides them: the init container's copy and the runner are one uid.
    for (const auto& [label, c] : all_containers(d)) {
      INFO(label);
      for (const char* field :
           {"/securityContext/runAsUser", "/securityContext/runAsGroup", "/securityContext/runAsNonRoot"}) {
        CHECK_FALSE(has(*c, field));
      }
    }
  };
  SECTION("the defaults: 1000, the node user of the seed runner image") {
    check_ids(ChildSettings{}, 1000, 1000);
  }
  SECTION("from the settings") { check_ids(custom_settings(), 1234, 5678); }
}

TEST_CASE("every container drops all capabilities and cannot escalate privileges",
          "[render][repl][security]") {
  const auto d = deployment_for(repl::test::sample_repl(), custom_settings());
  const auto containers = all_containers(d);
  REQUIRE(containers.size() == 3);
  CHECK(containers[0].first == "initContainers copy-s3-resources");
  CHECK(containers[1].first == "initContainers sync-workspace");
  CHECK(containers[2].first == "containers runner");
  for (const auto& [label, c] : containers) {
    INFO(label);
    CHECK(at(*c, "/securityContext/allowPrivilegeEscalation").IsFalse());
    const auto& drop = at(*c, "/securityContext/capabilities/drop");
    REQUIRE(drop.IsArray());
    REQUIRE(drop.Size() == 1);
    CHECK(std::string(drop[0].GetString()) == "ALL");
    CHECK_FALSE(has(*c, "/securityContext/capabilities/add"));
    CHECK_FALSE(has(*c, "/securityContext/privileged"));
  }
}

TEST_CASE("the runner's requests and limits come from the settings", "[render][repl][security]") {
  const ChildSettings s = custom_settings();
  const auto d = deployment_for(repl::test::sample_repl(), s);
  const auto& resources = at(d, "/spec/template/spec/containers/0/resources");
  CHECK(string_at(resources, "/requests/cpu") == s.runner_cpu_request);
  CHECK(string_at(resources, "/requests/memory") == s.runner_memory_request);
  CHECK(string_at(resources, "/requests/ephemeral-storage") == s.runner_ephemeral_storage_request);
  CHECK(string_at(resources, "/limits/cpu") == s.runner_cpu_limit);
  CHECK(string_at(resources, "/limits/memory") == s.runner_memory_limit);
  CHECK(string_at(resources, "/limits/ephemeral-storage") == s.runner_ephemeral_storage_limit);
  // The workspace volume is bounded by the same scratch-disk limit.
  CHECK(string_at(d, "/spec/template/spec/volumes/0/name") == "workspace-volume");
  CHECK(string_at(d, "/spec/template/spec/volumes/0/emptyDir/sizeLimit") == s.runner_ephemeral_storage_limit);
  // The restore and the sync sidecar are bounded too (by the template).
  for (const char* path :
       {"/spec/template/spec/initContainers/0/resources", "/spec/template/spec/initContainers/1/resources"}) {
    CHECK(has(at(d, path), "/limits/memory"));
    CHECK(has(at(d, path), "/limits/ephemeral-storage"));
  }
}

TEST_CASE("the runner is ready once its IDE port listens", "[render][repl]") {
  const auto d = deployment_for(repl::test::sample_repl(), ChildSettings{});
  const auto& port = at(d, "/spec/template/spec/containers/0/readinessProbe/tcpSocket/port");
  REQUIRE(port.IsInt64());
  CHECK(port.GetInt64() == 3001);
}

TEST_CASE("S3 settings reach the restore's and the sync sidecar's env, and the runner has no env at all",
          "[render][repl][security]") {
  const ChildSettings s = custom_settings();
  auto r = repl::test::sample_repl();
  r.spec.language = "node";
  const auto d = deployment_for(r, s);
  const auto& init = at(d, "/spec/template/spec/initContainers/0");
  CHECK(string_at(env_var(init, "S3_ENDPOINT"), "/value") == "http://127.0.0.1:9000");
  CHECK(string_at(env_var(init, "AWS_DEFAULT_REGION"), "/value") == "eu-central-1");
  CHECK(string_at(env_var(init, "CODE_PREFIX"), "/value") == "tenants/code");
  CHECK(string_at(env_var(init, "BASE_PREFIX"), "/value") == "templates/base");
  CHECK(string_at(env_var(init, "S3_CREDENTIALS"), "/value") == "ambient");
  CHECK(string_at(env_var(init, "LANGUAGE"), "/value") == "node");
  CHECK(string_at(env_var(init, "REPL_ID"), "/value") == "abc123");
  CHECK(string_at(env_var(init, "S3_SECRET_NAME"), "/value") == "minio-creds");
  CHECK(string_at(init, "/envFrom/0/secretRef/name") == "minio-creds");
  // A failing copy says why in the pod's termination message (and so in the Repl's status).
  CHECK(string_at(init, "/terminationMessagePolicy") == "FallbackToLogsOnError");
  // The sidecar gets the very same env (one anchor in the template).
  CHECK(at(d, "/spec/template/spec/initContainers/1/env") == at(init, "/env"));
  CHECK(at(d, "/spec/template/spec/initContainers/1/envFrom") == at(init, "/envFrom"));

  const auto& runner = at(d, "/spec/template/spec/containers/0");
  CHECK_FALSE(has(runner, "/env"));
  CHECK_FALSE(has(runner, "/envFrom"));

  SECTION("the defaults: AWS's endpoint, us-east-1, code/ and base/, keys from the Secret") {
    const auto defaults = deployment_for(repl::test::sample_repl(), ChildSettings{});
    const auto& i = at(defaults, "/spec/template/spec/initContainers/0");
    CHECK(string_at(env_var(i, "S3_ENDPOINT"), "/value").empty());
    CHECK(string_at(env_var(i, "AWS_DEFAULT_REGION"), "/value") == "us-east-1");
    CHECK(string_at(env_var(i, "CODE_PREFIX"), "/value") == "code");
    CHECK(string_at(env_var(i, "BASE_PREFIX"), "/value") == "base");
    CHECK(string_at(env_var(i, "S3_CREDENTIALS"), "/value") == "secret");
    CHECK(string_at(env_var(i, "LANGUAGE"), "/value") == "python");
    CHECK_FALSE(has(defaults, "/spec/template/spec/containers/0/env"));
    CHECK_FALSE(has(defaults, "/spec/template/spec/containers/0/envFrom"));
  }
}
