// The Helm chart against the real API server, with the helm that users run (built from the Go module
// proxy by test/cluster/build.sh): lint, render and server-side dry run, refusal of bad values,
// install, least-privilege RBAC (an allowed/denied table through `kubectl auth can-i --as`), the
// operator and the shim run with their ServiceAccounts' tokens (TokenRequest) and the templates
// from the chart's ConfigMap, no secret in their logs, and an uninstall that leaves only the CRD.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "integration/support.hpp"

using namespace repl::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const std::string kChart = std::string(REPL_SOURCE_DIR) + "/charts/repl-operator";
const std::string kRelease = "repl-operator";  // fullname == release name

CommandResult helm(std::vector<std::string> args) {
  std::vector<std::string> argv = {"helm", "--kubeconfig", admin_kubeconfig()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv);
}

std::string random_hex(std::size_t n) {
  std::random_device rd;
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += "0123456789abcdef"[rd() % 16];
  return out;
}

// A kubeconfig for the test cluster that authenticates with a ServiceAccount token obtained from
// the TokenRequest API (`kubectl create token`), as a pod's projected token would.
std::string service_account_kubeconfig(const std::string& ns, const std::string& sa, const fs::path& dir) {
  const auto token = kubectl({"create", "token", sa, "-n", ns, "--duration=10m"});
  INFO(token.err);
  REQUIRE(token.exit_code == 0);
  const auto server =
      kubectl({"config", "view", "--raw", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"});
  const auto ca = kubectl({"config", "view", "--raw", "--minify", "-o",
                           "jsonpath={.clusters[0].cluster.certificate-authority-data}"});
  REQUIRE(server.exit_code == 0);
  REQUIRE(ca.exit_code == 0);
  const fs::path path = dir / (sa + ".kubeconfig");
  std::ofstream(path) << "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: "
                      << server.out << "\n    certificate-authority-data: " << ca.out
                      << "\nusers:\n- name: " << sa
                      << "\n  user:\n    token: " << token.out.substr(0, token.out.find_last_not_of("\n") + 1)
                      << "\ncontexts:\n- name: local\n  context:\n    cluster: local\n    user: " << sa
                      << "\ncurrent-context: local\n";
  return path.string();
}

// `kubectl auth can-i` as a ServiceAccount: "yes" or "no". `resource` may name a subresource
// ("repls.peetcode.com/status").
std::string can_i(const std::string& as, const std::string& verb, const std::string& resource,
                  const std::string& ns) {
  const auto slash = resource.find('/');
  std::vector<std::string> args = {"auth", "can-i", verb, resource.substr(0, slash), "--as", as};
  if (slash != std::string::npos) args.push_back("--subresource=" + resource.substr(slash + 1));
  if (ns.empty()) {
    args.push_back("--all-namespaces");
  } else {
    args.insert(args.end(), {"-n", ns});
  }
  const auto r = kubectl(args);
  return r.out.substr(0, r.out.find('\n'));
}

// Every object of the release (by its instance label) in `ns` and cluster-wide, as kind/name lines.
std::string release_objects(const std::string& ns) {
  const std::string selector = "app.kubernetes.io/instance=" + kRelease;
  const auto in_ns = kubectl({"get",
                              "deployments,services,serviceaccounts,configmaps,roles,rolebindings,ingresses,"
                              "secrets",
                              "-n", ns, "-l", selector, "-o", "name"});
  const auto cluster = kubectl({"get", "clusterroles,clusterrolebindings", "-l", selector, "-o", "name"});
  REQUIRE(in_ns.exit_code == 0);
  REQUIRE(cluster.exit_code == 0);
  return in_ns.out + cluster.out;
}

}  // namespace

TEST_CASE("the chart lints strictly, renders, and its objects pass the API server's dry run", "[chart]") {
  const auto lint = helm({"lint", "--strict", kChart});
  INFO(lint.out << lint.err);
  CHECK(lint.exit_code == 0);

  // Every shape of the chart: all namespaces (ClusterRoles), one namespace (Roles), no NetworkPolicy,
  // the shim's Ingress and auth on.
  const std::string ns = fresh_namespace("chart-dry");
  const std::vector<std::vector<std::string>> variants = {
      {},
      {"--set", "watchNamespace=" + ns},
      {"--set", "networkPolicy.enabled=false"},
      {"--set", "shim.ingress.enabled=true", "--set", "shim.ingress.host=api.localhost", "--set",
       "shim.auth.existingSecret=shim-token"},
      {"--set", "s3.endpoint=http://10.88.0.1:9000", "--set", "s3.egressCidr=10.88.0.1/32", "--set",
       "runner.uid=1234", "--set", "runner.gid=5678"},
  };
  for (const auto& v : variants) {
    std::vector<std::string> args = {"template", kRelease, kChart, "--namespace", ns};
    args.insert(args.end(), v.begin(), v.end());
    const auto rendered = helm(args);
    INFO(rendered.err);
    REQUIRE(rendered.exit_code == 0);
    const auto dry = kubectl({"apply", "--dry-run=server", "-f", "-"}, rendered.out);
    INFO(dry.out << dry.err);
    CHECK(dry.exit_code == 0);
  }
}

TEST_CASE("the chart's ConfigMap carries templates/ byte for byte", "[chart]") {
  // One source of truth: charts/repl-operator/files/templates is templates/ (a symlink), so the
  // templates the operator renders in a cluster are the ones the unit tests check.
  TempDir dir;
  const auto out = helm({"template", kRelease, kChart, "--show-only", "templates/configmap-templates.yaml"});
  REQUIRE(out.exit_code == 0);
  std::ofstream(dir.path / "cm.yaml") << out.out;
  for (const auto& entry : fs::directory_iterator(std::string(REPL_SOURCE_DIR) + "/templates")) {
    const std::string name = entry.path().filename().string();
    INFO(name);
    const auto data = kubectl({"create", "--dry-run=client", "-f", (dir.path / "cm.yaml").string(), "-o",
                               "jsonpath={.data." + std::string(name).insert(name.find('.'), "\\") + "}"});
    REQUIRE(data.exit_code == 0);
    CHECK(data.out == read_file(entry.path()));
  }
}

TEST_CASE("the operator's args are flags the binary knows, runner.uid/gid and s3.egressCidr among them",
          "[chart]") {
  TempDir dir;
  // The operator container's args, one a line, as the chart renders them with `set`.
  const auto args_for = [&](const std::vector<std::string>& set) {
    std::vector<std::string> argv = {"template", kRelease, kChart, "--show-only",
                                     "templates/deployment-operator.yaml"};
    argv.insert(argv.end(), set.begin(), set.end());
    const auto rendered = helm(argv);
    INFO(rendered.err);
    REQUIRE(rendered.exit_code == 0);
    std::ofstream(dir.path / "deployment.yaml") << rendered.out;
    const auto args =
        kubectl({"create", "--dry-run=client", "-f", (dir.path / "deployment.yaml").string(), "-o",
                 "jsonpath={range .spec.template.spec.containers[0].args[*]}{@}{\"\\n\"}{end}"});
    REQUIRE(args.exit_code == 0);
    std::vector<std::string> out;
    std::istringstream in(args.out);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  };
  const auto has = [](const std::vector<std::string>& args, const std::string& arg) {
    return std::find(args.begin(), args.end(), arg) != args.end();
  };
  const auto defaults = args_for({});
  CHECK(has(defaults, "--runner-uid=1000"));
  CHECK(has(defaults, "--runner-gid=1000"));
  CHECK(std::none_of(defaults.begin(), defaults.end(),
                     [](const std::string& a) { return a.starts_with("--s3-egress-cidr"); }));
  const auto set = args_for({"--set", "runner.uid=1234", "--set", "runner.gid=5678", "--set",
                             "s3.endpoint=http://10.88.0.1:9000", "--set", "s3.egressCidr=10.88.0.1/32"});
  CHECK(has(set, "--runner-uid=1234"));
  CHECK(has(set, "--runner-gid=5678"));
  CHECK(has(set, "--s3-egress-cidr=10.88.0.1/32"));
  // The binary parses every flag before it reaches --help: an unknown one, or a bad number, fails.
  for (const auto& args : {defaults, set}) {
    std::vector<std::string> argv = {REPL_OPERATOR_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("--help");
    const auto help = run(argv);
    INFO(help.err);
    CHECK(help.exit_code == 0);
  }
}

TEST_CASE("bad values are refused at install with the schema's message, creating nothing", "[chart]") {
  const std::string ns = fresh_namespace("chart-bad");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--set", "replicaCount=0"}, "replicaCount"},
      {{"--set", "s3.credentials.source=bogus"}, "source"},
      {{"--set", "image.pullPolicy=Sometimes"}, "pullPolicy"},
      {{"--set", "runner.resources.limits.memory=lots"}, "memory"},
      {{"--set", "domains.ide=Not A Domain"}, "ide"},
      {{"--set", "logLevel=verbose"}, "logLevel"},
      {{"--set", "replicaCuont=2"}, "replicaCuont"},  // a typo is an unknown key
      {{"--set", "runner.uid=0"}, "uid"},             // root: the runner pods run as non-root
      {{"--set", "runner.gid=-1"}, "gid"},
      {{"--set", "s3.endpoint=http://10.88.0.1:9000", "--set", "s3.egressCidr=10.88.0.1"}, "egressCidr"},
      {{"--set", "s3.egressCidr=10.88.0.1/32"}, "endpoint"},  // a CIDR needs the endpoint it is for
  };
  for (const auto& [set, mentions] : cases) {
    std::vector<std::string> args = {"install", kRelease, kChart, "--namespace", ns};
    args.insert(args.end(), set.begin(), set.end());
    const auto r = helm(args);
    INFO(set.back() << "\n" << r.out << r.err);
    CHECK(r.exit_code != 0);
    CHECK(r.err.find("values don't meet the specifications of the schema") != std::string::npos);
    CHECK(r.err.find(mentions) != std::string::npos);
  }
  // A values file, as a platform team keeps one: every mistake in it is named.
  TempDir dir;
  std::ofstream(dir.path / "values.yaml") << "replicaCount: 0\nlogLevel: loud\ns3:\n  bukcet: repl\n";
  const auto r =
      helm({"install", kRelease, kChart, "--namespace", ns, "-f", (dir.path / "values.yaml").string()});
  INFO(r.err);
  CHECK(r.exit_code != 0);
  for (const char* mentions : {"/replicaCount", "/logLevel", "bukcet"})
    CHECK(r.err.find(mentions) != std::string::npos);
  CHECK(release_objects(ns).empty());
  CHECK(helm({"status", kRelease, "--namespace", ns}).exit_code != 0);
}

TEST_CASE(
    "helm install: least-privilege RBAC; the operator and the shim work with their ServiceAccounts' tokens; "
    "uninstall leaves only the CRD",
    "[chart]") {
  const std::string system = fresh_namespace("chart-system");
  const std::string users = fresh_namespace("chart-users");
  const auto installed = helm({"install", kRelease, kChart, "--namespace", system, "--set",
                               "watchNamespace=" + users, "--wait=false"});
  INFO(installed.out << installed.err);
  REQUIRE(installed.exit_code == 0);
  CHECK(installed.out.find("/start") != std::string::npos);  // NOTES.txt tells how to call it

  const std::string op = "system:serviceaccount:" + system + ":" + kRelease;
  const std::string shim = "system:serviceaccount:" + system + ":" + kRelease + "-shim";
  SECTION("kubectl auth can-i: exactly the rights each needs") {
    struct Row {
      std::string as, verb, resource, ns, expected;
    };
    const std::vector<Row> rows = {
        // The operator: Repls (read) and their status, the four kinds of child, pods (read), Events.
        {op, "watch", "repls.peetcode.com", users, "yes"},
        {op, "list", "repls.peetcode.com", users, "yes"},
        {op, "patch", "repls.peetcode.com/status", users, "yes"},
        {op, "patch", "deployments.apps", users, "yes"},
        {op, "create", "services", users, "yes"},
        {op, "create", "ingresses.networking.k8s.io", users, "yes"},
        {op, "delete", "ingresses.networking.k8s.io", users, "no"},
        {op, "update", "deployments.apps", users, "no"},
        {op, "delete", "deployments.apps", users, "no"},
        {op, "patch", "networkpolicies.networking.k8s.io", users, "yes"},
        {op, "watch", "pods", users, "yes"},
        {op, "create", "events", users, "yes"},
        {op, "watch", "events", users, "yes"},
        {op, "delete", "events", users, "no"},
        {op, "patch", "events", users, "no"},
        {op, "update", "repls.peetcode.com/status", users, "no"},
        {op, "update", "leases.coordination.k8s.io", system, "yes"},
        {op, "create", "leases.coordination.k8s.io", system, "yes"},
        {op, "create", "repls.peetcode.com", users, "no"},
        {op, "delete", "repls.peetcode.com", users, "no"},
        {op, "patch", "repls.peetcode.com", users, "no"},
        {op, "get", "secrets", users, "no"},
        {op, "list", "secrets", "", "no"},
        {op, "create", "pods", users, "no"},
        {op, "delete", "pods", users, "no"},
        {op, "get", "configmaps", users, "no"},
        {op, "list", "repls.peetcode.com", system, "no"},
        {op, "list", "repls.peetcode.com", "", "no"},
        {op, "create", "deployments.apps", system, "no"},
        {op, "create", "leases.coordination.k8s.io", users, "no"},
        {op, "delete", "leases.coordination.k8s.io", system, "no"},
        {op, "list", "nodes", "", "no"},
        {op, "create", "serviceaccounts/token", system, "no"},
        {op, "create", "rolebindings.rbac.authorization.k8s.io", users, "no"},
        {op, "impersonate", "users", "", "no"},
        // The shim: Repls, nothing else.
        {shim, "get", "repls.peetcode.com", users, "yes"},
        {shim, "list", "repls.peetcode.com", users, "yes"},
        {shim, "watch", "repls.peetcode.com", users, "yes"},
        {shim, "create", "repls.peetcode.com", users, "yes"},
        {shim, "patch", "repls.peetcode.com", users, "yes"},
        {shim, "delete", "repls.peetcode.com", users, "yes"},
        {shim, "update", "repls.peetcode.com", users, "no"},
        {shim, "patch", "repls.peetcode.com/status", users, "no"},
        {shim, "create", "repls.peetcode.com", system, "no"},
        {shim, "get", "secrets", users, "no"},
        {shim, "create", "deployments.apps", users, "no"},
        {shim, "list", "pods", users, "no"},
        {shim, "create", "events", users, "no"},
        {shim, "get", "leases.coordination.k8s.io", system, "no"},
    };
    for (const auto& row : rows) {
      INFO(row.as << " " << row.verb << " " << row.resource << " in " << (row.ns.empty() ? "all" : row.ns));
      CHECK(can_i(row.as, row.verb, row.resource, row.ns) == row.expected);
    }
  }

  SECTION(
      "with only their tokens and the chart's templates, the operator reconciles and the shim starts repls") {
    TempDir dir;
    // The templates the chart ships, read back from the cluster, are what the operator renders.
    const fs::path templates = dir.path / "templates";
    fs::create_directories(templates);
    for (const char* name : {"deployment.yaml", "service.yaml", "ingress.yaml", "networkpolicy.yaml"}) {
      std::string key = name;
      key.insert(key.find('.'), "\\");
      const auto data = kubectl(
          {"get", "configmap", kRelease + "-templates", "-n", system, "-o", "jsonpath={.data." + key + "}"});
      REQUIRE(data.exit_code == 0);
      REQUIRE_FALSE(data.out.empty());
      std::ofstream(templates / name) << data.out;
    }
    // A credentials Secret in the users' namespace, and a shim token: neither value may reach a log.
    const std::string aws_secret = "aws-secret-" + random_hex(24);
    const std::string shim_token = "shim-token-" + random_hex(24);
    REQUIRE(kubectl({"create", "secret", "generic", "aws-credentials", "-n", users,
                     "--from-literal=AWS_ACCESS_KEY_ID=AKIAEXAMPLE",
                     "--from-literal=AWS_SECRET_ACCESS_KEY=" + aws_secret})
                .exit_code == 0);
    std::ofstream(dir.path / "token") << shim_token;

    const auto operator_process = OperatorProcess::spawn(
        {REPL_OPERATOR_BIN, "--kubeconfig", service_account_kubeconfig(system, kRelease, dir.path),
         "--namespace", users, "--templates", templates.string(), "--leader-elect",
         "--leader-election-namespace", system, "--log-level", "debug", "--metrics-addr", "127.0.0.1:0",
         "--health-addr", "127.0.0.1:0"});
    const auto shim_process = OperatorProcess::spawn(
        {REPL_SHIM_BIN, "--kubeconfig", service_account_kubeconfig(system, kRelease + "-shim", dir.path),
         "--namespace", users, "--listen", "127.0.0.1:0", "--auth-token-file", (dir.path / "token").string(),
         "--log-level", "debug"});
    std::string addr;
    REQUIRE(eventually(10s, [&] { return !(addr = shim_process->served_addr("")).empty(); }));

    const std::vector<std::string> headers = {"Content-Type: application/json",
                                              "Authorization: Bearer " + shim_token};
    const auto started =
        http("POST", "http://" + addr + "/start", R"({"userId":"u1","replId":"from-chart"})", headers);
    INFO(started.body << "\n--- operator log ---\n"
                      << operator_process->log() << "\n--- shim log ---\n"
                      << shim_process->log());
    REQUIRE(started.status == 201);
    const auto wrong = http("POST", "http://" + addr + "/start", R"({"userId":"u1","replId":"x"})",
                            {"Content-Type: application/json", "Authorization: Bearer wrong-" + shim_token});
    CHECK(wrong.status == 401);

    CHECK(eventually(20s, [&] {
      return kubectl({"get", "-n", users, "deployment/from-chart", "service/from-chart",
                      "ingress/from-chart-ingress", "networkpolicy/from-chart"})
                 .exit_code == 0;
    }));
    CHECK(
        eventually(10s, [&] { return jsonpath(users, "repl/from-chart", "{.status.phase}") == "Starting"; }));
    const auto got = http("GET", "http://" + addr + "/repls/from-chart?userId=u1", "", headers);
    CHECK(got.status == 200);
    CHECK(got.body.find("\"phase\":\"Starting\"") != std::string::npos);
    // The Deployment takes the credentials from the Secret by reference, never by value.
    CHECK(jsonpath(users, "deployment/from-chart",
                   "{.spec.template.spec.initContainers[0].envFrom[0].secretRef.name}") == "aws-credentials");
    CHECK(kubectl({"get", "deployment/from-chart", "-n", users, "-o", "yaml"}).out.find(aws_secret) ==
          std::string::npos);

    const auto deleted = http("DELETE", "http://" + addr + "/repls/from-chart?userId=u1", "", headers);
    CHECK(deleted.status == 200);
    CHECK(eventually(10s, [&] { return jsonpath(users, "repl/from-chart", "{.metadata.name}").empty(); }));

    // Nothing was refused: the granted rights are enough.
    CHECK(operator_process->count_log("forbidden") == 0);
    CHECK(shim_process->count_log("forbidden") == 0);
    // No secret in any log, at debug level.
    for (const auto* p : {operator_process.get(), shim_process.get()}) {
      const std::string log = p->log();
      CHECK(log.find(aws_secret) == std::string::npos);
      CHECK(log.find(shim_token) == std::string::npos);
    }
    CHECK(operator_process->stop() == 0);
    CHECK(shim_process->stop() == 0);
  }

  const auto uninstalled = helm({"uninstall", kRelease, "--namespace", system, "--wait"});
  INFO(uninstalled.out << uninstalled.err);
  REQUIRE(uninstalled.exit_code == 0);
  CHECK(release_objects(system).empty());
  CHECK(release_objects(users).empty());
  CHECK(kubectl({"get", "crd", "repls.peetcode.com"}).exit_code == 0);  // CRDs outlive releases (Helm's rule)
}
