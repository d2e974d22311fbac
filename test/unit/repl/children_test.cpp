// What a Repl renders into with the repository's templates: golden files for the whole objects, and
// explicit checks of the facts that matter (names, hosts, ports, replicas, credentials, ownership).
//
// REPL_UPDATE_GOLDEN=1 ./unit-tests "[golden]" rewrites test/unit/testdata/golden/*.json from the
// current output; review the diff before keeping it.
#include "repl/children.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <string>

#include "kube/client.hpp"
#include "kube/config.hpp"
#include "repl/observed.hpp"
#include "unit/support/child_checks.hpp"
#include "unit/support/json.hpp"
#include "unit/support/repl_fixtures.hpp"
#include "unit/support/temp_dir.hpp"

namespace {

using repl::Child;
using repl::ChildSettings;
using repl::test::at;
using repl::test::check_common_labels;
using repl::test::check_stamped_metadata;
using repl::test::child_of_kind;
using repl::test::env_var;
using repl::test::has;
using repl::test::string_at;

bool updating_golden() {
  const char* v = std::getenv("REPL_UPDATE_GOLDEN");
  return v != nullptr && std::string(v) == "1";
}

void check_golden(const std::string& name, const rapidjson::Value& actual) {
  const std::string path = std::string(REPL_TESTDATA_DIR) + "/golden/" + name + ".json";
  const std::string rendered = repl::test::pretty_json(actual);
  if (updating_golden()) {
    std::ofstream(path, std::ios::binary) << rendered;
    WARN("rewrote " << path);
    return;
  }
  INFO("golden file " << path << " (REPL_UPDATE_GOLDEN=1 rewrites it)\nrendered:\n" << rendered);
  auto text = repl::kube::read_file(path);
  REQUIRE(text);
  const auto expected = repl::test::parse_json(*text);
  // Compact serialisations: byte-exact, including key order and number types.
  CHECK(repl::kube::to_json(actual) == repl::kube::to_json(expected));
}

}  // namespace

TEST_CASE("the sample Repl renders the golden Deployment, Service, Ingress and NetworkPolicy",
          "[render][repl][golden]") {
  const auto children = repl::test::render_children(repl::test::sample_repl());
  CHECK(children[0].resource == repl::kube::deployments());
  CHECK(children[1].resource == repl::kube::services());
  CHECK(children[2].resource == repl::kube::ingresses());
  CHECK(children[3].resource == repl::kube::network_policies());
  check_golden("deployment", children[0].object);
  check_golden("service", children[1].object);
  check_golden("ingress", children[2].object);
  check_golden("networkpolicy", children[3].object);
}

TEST_CASE("the Deployment runs the runner with its code copied from S3", "[render][repl]") {
  const auto children = repl::test::render_children(repl::test::sample_repl());
  const Child& deployment = child_of_kind(children, "Deployment");
  const auto& d = deployment.object;
  CHECK(deployment.name == "abc123");
  CHECK(string_at(d, "/metadata/name") == "abc123");
  check_stamped_metadata(d);
  REQUIRE(at(d, "/spec/replicas").IsInt64());
  CHECK(at(d, "/spec/replicas").GetInt64() == 1);
  CHECK(string_at(d, "/spec/selector/matchLabels/peetcode.com~1repl") == "abc123");
  check_common_labels(at(d, "/spec/template/metadata/labels"));

  // The restore, then the sync sidecar: the same image, script, env and Secret, told apart by the
  // argument after the script; only the sidecar restarts (a native sidecar) and it reads the
  // workspace without writing it.
  REQUIRE(at(d, "/spec/template/spec/initContainers").Size() == 2);
  const auto& restore = at(d, "/spec/template/spec/initContainers/0");
  const auto& sync = at(d, "/spec/template/spec/initContainers/1");
  CHECK(string_at(restore, "/name") == "copy-s3-resources");
  CHECK(string_at(sync, "/name") == repl::kSyncContainer);
  CHECK_FALSE(has(restore, "/restartPolicy"));
  CHECK(string_at(sync, "/restartPolicy") == "Always");
  CHECK(string_at(restore, "/args/2") == "copy-s3-resources");
  CHECK(string_at(sync, "/args/2") == "sync-workspace");
  CHECK(string_at(restore, "/args/0") == string_at(sync, "/args/0"));
  CHECK(at(restore, "/env") == at(sync, "/env"));
  CHECK(at(restore, "/envFrom") == at(sync, "/envFrom"));
  CHECK(string_at(sync, "/volumeMounts/0/mountPath") == "/workspace");
  CHECK(at(sync, "/volumeMounts/0/readOnly").IsTrue());
  CHECK_FALSE(has(restore, "/volumeMounts/0/readOnly"));
  // The pod's grace period covers the final sync; numbers reach the env as strings.
  CHECK(at(d, "/spec/template/spec/terminationGracePeriodSeconds").GetInt64() == 60);
  CHECK(string_at(env_var(sync, "SYNC_INTERVAL"), "/value") == "15");
  CHECK(string_at(env_var(sync, "GRACE_SECONDS"), "/value") == "60");
  // It reports live connections to the runner's websocket port once a sync check interval.
  CHECK(string_at(env_var(sync, "IDE_PORT"), "/value") == "3001");
  CHECK(string_at(env_var(sync, "ACTIVITY_EVERY"), "/value") == "60");
  const auto& init = restore;
  CHECK(string_at(init, "/image") == "amazon/aws-cli:2.17.0");
  CHECK(string_at(env_var(init, "REPL_ID"), "/value") == "abc123");
  CHECK(string_at(env_var(init, "S3_BUCKET"), "/value") == "repl");
  CHECK(string_at(env_var(init, "S3_SECRET_NAME"), "/value") == "aws-credentials");
  // The credentials come from the Secret, whole (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
  // AWS_SESSION_TOKEN if present), and only into these two containers; no env value holds a key.
  const auto& env_from = at(init, "/envFrom");
  REQUIRE(env_from.IsArray());
  REQUIRE(env_from.Size() == 1);
  CHECK(string_at(env_from[0], "/secretRef/name") == "aws-credentials");
  CHECK(at(env_from[0], "/secretRef/optional").IsTrue());
  CHECK_FALSE(has(env_from[0], "/prefix"));
  for (const auto& e : at(init, "/env").GetArray()) {
    INFO("env var " << string_at(e, "/name"));
    CHECK_FALSE(has(e, "/valueFrom"));
    const std::string name = string_at(e, "/name");
    CHECK(name != "AWS_ACCESS_KEY_ID");
    CHECK(name != "AWS_SECRET_ACCESS_KEY");
    CHECK(name != "AWS_SESSION_TOKEN");
  }
  REQUIRE(at(d, "/spec/template/spec/containers").Size() == 1);
  const auto& runner = at(d, "/spec/template/spec/containers/0");
  CHECK(string_at(runner, "/image") == "100xdevs/runner:latest");
  // The runner executes user code: nothing from the Secret, nor any other env, reaches it.
  CHECK_FALSE(has(runner, "/env"));
  CHECK_FALSE(has(runner, "/envFrom"));
  CHECK(string_at(runner, "/ports/0/name") == "ws");
  CHECK(at(runner, "/ports/0/containerPort").GetInt64() == 3001);
  CHECK(string_at(runner, "/ports/1/name") == "user");
  CHECK(at(runner, "/ports/1/containerPort").GetInt64() == 3000);
}

TEST_CASE("a suspended Repl's Deployment has zero replicas and is otherwise the same", "[render][repl]") {
  auto suspended = repl::test::sample_repl();
  suspended.spec.suspended = true;
  auto changed = repl::test::render_children(suspended);
  const auto running = repl::test::render_children(repl::test::sample_repl());
  auto& replicas = changed[0].object["spec"]["replicas"];
  REQUIRE(replicas.IsInt64());
  CHECK(replicas.GetInt64() == 0);
  replicas.SetInt64(1);
  for (std::size_t i = 0; i < running.size(); ++i) {
    CHECK(repl::kube::to_json(changed[i].object) == repl::kube::to_json(running[i].object));
  }
}

TEST_CASE("the Service exposes ws 3001 and user 3000 of the repl's pod", "[render][repl]") {
  const auto children = repl::test::render_children(repl::test::sample_repl());
  const Child& service = child_of_kind(children, "Service");
  const auto& s = service.object;
  CHECK(service.name == "abc123");
  check_stamped_metadata(s);
  CHECK(string_at(s, "/spec/selector/peetcode.com~1repl") == "abc123");
  CHECK(string_at(s, "/spec/ports/0/name") == "ws");
  CHECK(at(s, "/spec/ports/0/port").GetInt64() == 3001);
  CHECK(at(s, "/spec/ports/0/targetPort").GetInt64() == 3001);
  CHECK(string_at(s, "/spec/ports/1/name") == "user");
  CHECK(at(s, "/spec/ports/1/port").GetInt64() == 3000);
  CHECK(at(s, "/spec/ports/1/targetPort").GetInt64() == 3000);
}

TEST_CASE("the Ingress routes the IDE host to 3001 and the preview host to 3000", "[render][repl]") {
  const auto children = repl::test::render_children(repl::test::sample_repl());
  const Child& ingress = child_of_kind(children, "Ingress");
  const auto& i = ingress.object;
  CHECK(ingress.name == "abc123-ingress");
  check_stamped_metadata(i);
  CHECK(string_at(i, "/spec/ingressClassName") == "nginx");
  CHECK(string_at(i, "/spec/rules/0/host") == "abc123.peetcode.com");
  CHECK(string_at(i, "/spec/rules/0/http/paths/0/backend/service/name") == "abc123");
  CHECK(at(i, "/spec/rules/0/http/paths/0/backend/service/port/number").GetInt64() == 3001);
  CHECK(string_at(i, "/spec/rules/1/host") == "abc123.autogpt-cloud.com");
  CHECK(string_at(i, "/spec/rules/1/http/paths/0/backend/service/name") == "abc123");
  CHECK(at(i, "/spec/rules/1/http/paths/0/backend/service/port/number").GetInt64() == 3000);
}

TEST_CASE("operator settings, spec.image and spec.syncIntervalSeconds reach the rendered children",
          "[render][repl]") {
  ChildSettings settings;
  settings.runner_image = "runner:v2";
  settings.init_image = "init:v3";
  settings.bucket = "other-bucket";
  settings.ide_domain = "ide.test";
  settings.preview_domain = "app.test";
  settings.ingress_class = "traefik";
  settings.aws_secret_name = "s3-creds";
  settings.ingress_namespace = "traefik-system";
  auto r = repl::test::sample_repl();
  SECTION("the runner image comes from the settings unless the Repl sets one") {
    CHECK(string_at(repl::test::render_children(r, settings)[0].object,
                    "/spec/template/spec/containers/0/image") == "runner:v2");
    r.spec.image = "custom/image:1";
    CHECK(string_at(repl::test::render_children(r, settings)[0].object,
                    "/spec/template/spec/containers/0/image") == "custom/image:1");
  }
  SECTION("the sync interval comes from the settings unless the Repl sets one") {
    settings.sync_interval_seconds = 30;
    const auto sync_interval = [&] {
      const auto children = repl::test::render_children(r, settings);
      return string_at(
          env_var(at(children[0].object, "/spec/template/spec/initContainers/1"), "SYNC_INTERVAL"), "/value");
    };
    CHECK(sync_interval() == "30");
    r.spec.sync_interval_seconds = 5;
    CHECK(sync_interval() == "5");
  }
  SECTION("the other settings") {
    const auto children = repl::test::render_children(r, settings);
    const auto& init = at(children[0].object, "/spec/template/spec/initContainers/0");
    CHECK(string_at(init, "/image") == "init:v3");
    CHECK(string_at(env_var(init, "S3_BUCKET"), "/value") == "other-bucket");
    CHECK(string_at(init, "/envFrom/0/secretRef/name") == "s3-creds");
    CHECK(string_at(env_var(init, "S3_SECRET_NAME"), "/value") == "s3-creds");
    CHECK(string_at(children[2].object, "/spec/ingressClassName") == "traefik");
    CHECK(string_at(children[2].object, "/spec/rules/0/host") == "abc123.ide.test");
    CHECK(string_at(children[2].object, "/spec/rules/1/host") == "abc123.app.test");
    CHECK(string_at(children[3].object,
                    "/spec/ingress/0/from/0/namespaceSelector/matchLabels/kubernetes.io~1metadata.name") ==
          "traefik-system");
  }
}

TEST_CASE("urls_for and template_values follow the Repl and the settings", "[repl]") {
  ChildSettings settings;
  settings.url_scheme = "http";
  const auto urls = repl::urls_for(repl::test::sample_repl(), settings);
  CHECK(urls.ide == "http://abc123.peetcode.com");
  CHECK(urls.preview == "http://abc123.autogpt-cloud.com");

  const auto values = repl::template_values(repl::test::sample_repl(), ChildSettings{});
  CHECK(std::get<std::string>(values.at("replId")) == "abc123");
  CHECK(std::get<std::string>(values.at("userId")) == "user-42");
  CHECK(std::get<std::string>(values.at("namespace")) == "team-a");
  CHECK(std::get<std::string>(values.at("language")) == "python");
  CHECK(std::get<std::int64_t>(values.at("replicas")) == 1);
  // The variables templates may use are the ones documented in the README.
  CHECK(repl::template_variables() == std::set<std::string, std::less<>>{"replId",
                                                                         "userId",
                                                                         "namespace",
                                                                         "language",
                                                                         "image",
                                                                         "initImage",
                                                                         "bucket",
                                                                         "s3Endpoint",
                                                                         "s3EndpointPort",
                                                                         "s3EgressCidr",
                                                                         "s3Region",
                                                                         "codePrefix",
                                                                         "basePrefix",
                                                                         "s3Credentials",
                                                                         "awsSecretName",
                                                                         "ideDomain",
                                                                         "previewDomain",
                                                                         "ingressClass",
                                                                         "ingressNamespace",
                                                                         "replicas",
                                                                         "runnerCpuRequest",
                                                                         "runnerCpuLimit",
                                                                         "runnerMemoryRequest",
                                                                         "runnerMemoryLimit",
                                                                         "runnerEphemeralStorageRequest",
                                                                         "runnerEphemeralStorageLimit",
                                                                         "runnerUid",
                                                                         "runnerGid",
                                                                         "syncIntervalSeconds",
                                                                         "terminationGracePeriodSeconds",
                                                                         "activityReportSeconds"});
  CHECK(std::get<std::int64_t>(values.at("runnerUid")) == 1000);
  CHECK(std::get<std::int64_t>(values.at("runnerGid")) == 1000);
  CHECK(std::get<std::string>(values.at("s3EgressCidr")).empty());
}

TEST_CASE("the S3 endpoint's port is its URL's, else the scheme's", "[repl]") {
  for (const auto& [endpoint, port] :
       std::vector<std::pair<std::string, std::int64_t>>{{"", 443},  // AWS's own endpoints
                                                         {"http://minio", 80},
                                                         {"https://minio/", 443},
                                                         {"http://10.88.0.1:9000", 9000},
                                                         {"https://[fd00::1]:8443/bucket", 8443},
                                                         {"https://[fd00::1]/", 443},
                                                         {"http://user:pw@minio:7000?x=1", 7000}}) {
    ChildSettings settings;
    settings.s3_endpoint = endpoint;
    INFO(endpoint);
    CHECK(std::get<std::int64_t>(
              repl::template_values(repl::test::sample_repl(), settings).at("s3EndpointPort")) == port);
  }
}

TEST_CASE("only the settings' variables may decide an !if item: every Repl's child keeps one structure",
          "[render][repl]") {
  const auto& conditions = repl::condition_variables();
  const auto settings = repl::settings_values(ChildSettings{});
  CHECK(conditions.size() == settings.size());
  for (const auto& [name, value] : settings) CHECK(conditions.contains(name));
  for (const char* own : {"replId", "userId", "namespace", "language", "image", "replicas"}) {
    INFO(own);
    CHECK(repl::template_variables().contains(own));
    CHECK_FALSE(conditions.contains(own));
  }
  // A template whose item a Repl's own value would decide is refused at load.
  repl::test::TempDir dir;
  for (const std::string file : {"deployment.yaml", "service.yaml", "ingress.yaml"}) {
    auto text = repl::kube::read_file(std::string(REPL_SOURCE_DIR) + "/templates/" + file);
    REQUIRE(text);
    dir.write(file, *text);
  }
  dir.write("networkpolicy.yaml", R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: "{{ replId }}"
spec:
  podSelector: {}
  egress:
    - !if
      language:
        to: [{ipBlock: {cidr: 10.0.0.0/8}}]
)");
  auto loaded = repl::load_child_templates(dir.path());
  REQUIRE_FALSE(loaded);
  CHECK_THAT(loaded.error().message, Catch::Contains("networkpolicy.yaml.spec.egress[0]: variable 'language' "
                                                     "cannot decide an item"));
}

namespace {

// A templates directory holding the repository's service, ingress and networkpolicy and the given
// deployment.
std::string load_error_with_deployment(const repl::test::TempDir& dir, const std::string& deployment_yaml) {
  for (const std::string file : {"service.yaml", "ingress.yaml", "networkpolicy.yaml"}) {
    auto text = repl::kube::read_file(std::string(REPL_SOURCE_DIR) + "/templates/" + file);
    REQUIRE(text);
    dir.write(file, *text);
  }
  dir.write("deployment.yaml", deployment_yaml);
  auto loaded = repl::load_child_templates(dir.path());
  REQUIRE_FALSE(loaded);
  return loaded.error().message;
}

}  // namespace

TEST_CASE("load_child_templates refuses templates that cannot work", "[render][repl]") {
  repl::test::TempDir dir;
  SECTION("a missing directory") {
    auto loaded = repl::load_child_templates(dir.path() + "/nope");
    REQUIRE_FALSE(loaded);
    CHECK_THAT(loaded.error().message, Catch::Contains("nope/deployment.yaml"));
  }
  SECTION("a template of the wrong kind") {
    CHECK_THAT(load_error_with_deployment(dir, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"),
               Catch::Contains("must render a Deployment (apps/v1), not ConfigMap (v1)"));
  }
  SECTION("a template without a name") {
    CHECK_THAT(load_error_with_deployment(dir, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {}\n"),
               Catch::Contains("metadata.name is empty"));
  }
  SECTION("a template with an unknown variable") {
    CHECK_THAT(load_error_with_deployment(
                   dir, "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: \"{{ replID }}\"\n"),
               Catch::Contains("unknown variable 'replID'"));
  }
}

TEST_CASE("the operator's labels, namespace and owner win over the template's", "[render][repl]") {
  repl::test::TempDir dir;
  dir.write("t.yaml", R"(apiVersion: v1
kind: Service
metadata:
  name: "{{ replId }}"
  namespace: elsewhere
  labels:
    app.kubernetes.io/name: not-repl
    team: blue
  ownerReferences: [{apiVersion: v1, kind: Thing, name: other, uid: "1"}]
)");
  auto text = repl::kube::read_file(dir.path() + "/t.yaml");
  REQUIRE(text);
  auto tmpl = repl::render::Template::parse("t.yaml", *text, repl::template_variables());
  REQUIRE(tmpl);
  const std::vector<repl::ChildTemplate> templates = {{repl::kube::services(), std::move(*tmpl), {}}};
  auto children = repl::desired_children(repl::test::sample_repl(), ChildSettings{}, templates);
  REQUIRE(children);
  const auto& s = (*children)[0].object;
  check_stamped_metadata(s);
  CHECK(string_at(s, "/metadata/labels/team") == "blue");
}
