// The Helm chart against the real API server, with the helm that users run (built from the Go module
// proxy by test/cluster/build.sh): lint, render and server-side dry run, refusal of bad values,
// install, least-privilege RBAC (an allowed/denied table through `kubectl auth can-i --as`), the
// operator and the shim run with their ServiceAccounts' tokens (TokenRequest) and the templates
// from the chart's ConfigMap, no secret in their logs, and an uninstall that leaves only the CRD.
// Without a cluster ([chart-render]): what `helm template` renders for the production objects
// (PodDisruptionBudgets, spread, probes, rolling updates, the pods' own NetworkPolicies, the
// `helm test` pod) and their values, the test pod's script against a stand-in shim, and kube-score
// (built from the Go module proxy too) finding nothing critical.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <sstream>

#include "integration/support.hpp"

using namespace repl::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const std::string kChart = std::string(REPL_SOURCE_DIR) + "/charts/repl-operator";
const std::string kRelease = "repl-operator";  // fullname == release name

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
                              "secrets,networkpolicies,poddisruptionbudgets",
                              "-n", ns, "-l", selector, "-o", "name"});
  const auto cluster = kubectl({"get", "clusterroles,clusterrolebindings", "-l", selector, "-o", "name"});
  REQUIRE(in_ns.exit_code == 0);
  REQUIRE(cluster.exit_code == 0);
  return in_ns.out + cluster.out;
}

// --- Rendering without a cluster ------------------------------------------------------------

const std::string kNs = "repl-system";  // the release namespace of the offline renders

// `helm template` needs no cluster; its `lookup` finds nothing, as anywhere without --dry-run=server.
CommandResult helm_template(const std::vector<std::string>& set, const std::string& ns = kNs) {
  std::vector<std::string> argv = {"helm", "template", kRelease, kChart, "--namespace", ns};
  argv.insert(argv.end(), set.begin(), set.end());
  return run(argv);
}

// The rendered objects (test hooks included, CRDs not: helm template leaves crds/ out).
std::vector<YAML::Node> render(const std::vector<std::string>& set, const std::string& ns = kNs) {
  const auto r = helm_template(set, ns);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  std::vector<YAML::Node> out;
  for (const auto& doc : YAML::LoadAll(r.out)) {
    if (doc.IsMap()) out.push_back(doc);
  }
  return out;
}

YAML::Node undefined() { return YAML::Node(YAML::NodeType::Undefined); }

// The node at a dotted path ("spec.template.spec.containers.0.ports"; a number indexes a sequence),
// undefined when any step is missing. (Map keys with dots, such as label names: use strings().)
YAML::Node at(const YAML::Node& root, const std::string& path) {
  YAML::Node node;
  node.reset(root);
  std::istringstream in(path);
  for (std::string key; std::getline(in, key, '.');) {
    const YAML::Node& current = node;
    YAML::Node next = undefined();
    if (current.IsSequence() && !key.empty() && std::all_of(key.begin(), key.end(), ::isdigit)) {
      const std::size_t i = std::stoul(key);
      if (i < current.size()) next.reset(current[i]);
    } else if (current.IsMap()) {
      const YAML::Node child = current[key];
      if (child.IsDefined()) next.reset(child);
    }
    if (!next.IsDefined()) return undefined();
    node.reset(next);
  }
  return node;
}

// A scalar's text ("" for anything else), at `path` below `node`.
std::string text(const YAML::Node& node, const std::string& path = "") {
  const YAML::Node n = path.empty() ? node : at(node, path);
  return n.IsDefined() && n.IsScalar() ? n.Scalar() : "";
}

// A map of strings (labels, annotations, matchLabels); empty for anything else.
std::map<std::string, std::string> strings(const YAML::Node& node) {
  std::map<std::string, std::string> out;
  if (!node.IsDefined() || !node.IsMap()) return out;
  for (const auto& kv : node) out[kv.first.Scalar()] = kv.second.IsScalar() ? kv.second.Scalar() : "";
  return out;
}

std::vector<YAML::Node> items(const YAML::Node& node) {
  std::vector<YAML::Node> out;
  if (node.IsDefined() && node.IsSequence()) {
    for (const auto& item : node) out.push_back(item);
  }
  return out;
}

std::string dump(const YAML::Node& node) { return node.IsDefined() ? YAML::Dump(node) : "(undefined)"; }

// The object of that kind and name; undefined when it was not rendered.
YAML::Node object(const std::vector<YAML::Node>& docs, const std::string& kind, const std::string& name) {
  for (const auto& doc : docs) {
    if (text(doc, "kind") == kind && text(doc, "metadata.name") == name) return doc;
  }
  return undefined();
}

std::size_t count_kind(const std::vector<YAML::Node>& docs, const std::string& kind) {
  return static_cast<std::size_t>(
      std::count_if(docs.begin(), docs.end(), [&](const YAML::Node& d) { return text(d, "kind") == kind; }));
}

// The selector labels of the operator's and the shim's pods.
std::map<std::string, std::string> selector(const std::string& component) {
  return {{"app.kubernetes.io/name", "repl-operator"},
          {"app.kubernetes.io/instance", kRelease},
          {"app.kubernetes.io/component", component}};
}

// The ipBlock CIDRs, and the "protocol/port" pairs, of a NetworkPolicy rule.
std::vector<std::string> rule_cidrs(const YAML::Node& rule) {
  std::vector<std::string> out;
  for (const auto& peer : items(at(rule, "to"))) {
    if (at(peer, "ipBlock").IsDefined()) out.push_back(text(peer, "ipBlock.cidr"));
  }
  return out;
}
std::vector<std::string> rule_ports(const YAML::Node& rule) {
  std::vector<std::string> out;
  for (const auto& port : items(at(rule, "ports")))
    out.push_back(text(port, "protocol") + "/" + text(port, "port"));
  return out;
}

// The egress rule that names the API server's addresses (the one whose ports are not DNS's).
YAML::Node api_server_rule(const YAML::Node& policy) {
  for (const auto& rule : items(at(policy, "spec.egress"))) {
    const auto ports = rule_ports(rule);
    if (std::find(ports.begin(), ports.end(), "UDP/53") == ports.end()) return rule;
  }
  return undefined();
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
       "shim.auth.existingSecret=shim-token", "--set", "shim.auth.jwt.jwksSecret=idp-keys", "--set",
       "shim.auth.jwt.issuer=https://idp.test", "--set", "shim.auth.jwt.audience=repl"},
      {"--set", "s3.endpoint=http://10.88.0.1:9000", "--set", "s3.egressCidr=10.88.0.1/32", "--set",
       "runner.uid=1234", "--set", "runner.gid=5678"},
      // The production objects' other shapes: minAvailable, hard anti-affinity over zones too, the API
      // server's endpoints and the metrics scrapers named, the shim's extra peers, no preStop pause.
      {"--set", "podDisruptionBudget.minAvailable=1", "--set", "shim.podDisruptionBudget.maxUnavailable=50%",
       "--set", "spread.antiAffinity=hard", "--set",
       "spread.topologySpread.topologyKeys={kubernetes.io/hostname,topology.kubernetes.io/zone}", "--set",
       "podNetworkPolicy.apiServer.cidrs={10.0.0.10/32,fd00::10/128}", "--set",
       "podNetworkPolicy.apiServer.ports={6443}", "--set",
       "podNetworkPolicy.operator.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring", "--set",
       "podNetworkPolicy.shim.extraFrom[0].ipBlock.cidr=10.1.0.0/16", "--set", "shim.preStopSleepSeconds=0"},
      {"--set", "podNetworkPolicy.enabled=false", "--set", "podDisruptionBudget.enabled=false", "--set",
       "shim.podDisruptionBudget.enabled=false", "--set", "tests.enabled=false", "--set",
       "spread.antiAffinity=off"},
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

TEST_CASE("podNetworkPolicy: with the cluster, lookup names the API server's endpoints and the DNS Service",
          "[chart]") {
  // A NetworkPolicy sees the connection to the `kubernetes` Service after its DNAT: the rule must
  // name the endpoints. The loopback control plane keeps none (--endpoint-reconciler-type=none), so
  // an EndpointSlice of ours stands in, as the API server's reconciler would write it; the DNS
  // Service is one of ours in a namespace of its own (podNetworkPolicy.dns.namespace).
  const std::string slice = "chart-test-kubernetes-" + random_hex(8);
  const auto created =
      kubectl({"apply", "-f", "-"},
              "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: " + slice +
                  "\n  namespace: default\n  labels:\n    kubernetes.io/service-name: kubernetes\n"
                  "addressType: IPv4\nendpoints:\n  - addresses: [10.0.0.11]\n"
                  "  - addresses: [10.0.0.10]\nports:\n  - name: https\n    port: 6443\n"
                  "    protocol: TCP\n");
  INFO(created.err);
  REQUIRE(created.exit_code == 0);
  struct Cleanup {
    std::string slice;
    ~Cleanup() { kubectl({"delete", "endpointslice", "-n", "default", slice, "--ignore-not-found"}); }
  } cleanup{slice};
  // Every endpoint of `kubernetes` there is (ours, and the API server's own if it keeps them).
  const auto listed =
      kubectl({"get", "endpointslice", "-n", "default", "-l", "kubernetes.io/service-name=kubernetes", "-o",
               "jsonpath={range .items[*].endpoints[*].addresses[*]}{@}/32{\"\\n\"}{end}"});
  REQUIRE(listed.exit_code == 0);
  std::vector<std::string> expected;
  std::istringstream lines(listed.out);
  for (std::string line; std::getline(lines, line);) expected.push_back(line);
  std::sort(expected.begin(), expected.end());
  expected.erase(std::unique(expected.begin(), expected.end()), expected.end());
  REQUIRE(std::find(expected.begin(), expected.end(), "10.0.0.10/32") != expected.end());

  const std::string dns_ns = fresh_namespace("chart-dns");
  REQUIRE(kubectl({"create", "service", "clusterip", "kube-dns", "-n", dns_ns, "--tcp=53:53"}).exit_code ==
          0);
  const std::string dns_ip = jsonpath(dns_ns, "service/kube-dns", "{.spec.clusterIP}");
  REQUIRE_FALSE(dns_ip.empty());

  const std::string ns = fresh_namespace("chart-lookup");
  const auto rendered = helm({"template", kRelease, kChart, "--namespace", ns, "--dry-run=server", "--set",
                              "podNetworkPolicy.dns.namespace=" + dns_ns});
  INFO(rendered.err);
  REQUIRE(rendered.exit_code == 0);
  std::vector<YAML::Node> docs;
  for (const auto& doc : YAML::LoadAll(rendered.out)) {
    if (doc.IsMap()) docs.push_back(doc);
  }
  for (const auto& name : {kRelease, kRelease + "-shim"}) {
    const auto policy = object(docs, "NetworkPolicy", name);
    INFO(dump(policy));
    REQUIRE(policy.IsDefined());
    const auto api = api_server_rule(policy);
    CHECK(rule_cidrs(api) == expected);
    CHECK(rule_ports(api) == std::vector<std::string>{"TCP/6443"});
    const auto dns = items(at(policy, "spec.egress")).at(1);
    CHECK(rule_cidrs(dns) == std::vector<std::string>{"169.254.20.10/32", dns_ip + "/32"});
  }
  // And the API server takes them.
  const auto dry = kubectl({"apply", "--dry-run=server", "-f", "-"}, rendered.out);
  INFO(dry.out << dry.err);
  CHECK(dry.exit_code == 0);
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

TEST_CASE(
    "the operator's and the shim's args are flags the binaries know, runner.uid/gid, s3.egressCidr and "
    "shim.auth.jwt among them",
    "[chart]") {
  TempDir dir;
  // A Deployment's first container's args (or another jsonpath), one a line, as the chart renders
  // them with `set`.
  const auto rendered_as = [&](const std::vector<std::string>& set, const std::string& file,
                               const std::string& path) {
    std::vector<std::string> argv = {"template", kRelease, kChart, "--show-only", "templates/" + file};
    argv.insert(argv.end(), set.begin(), set.end());
    const auto rendered = helm(argv);
    INFO(rendered.err);
    REQUIRE(rendered.exit_code == 0);
    std::ofstream(dir.path / "deployment.yaml") << rendered.out;
    const auto args = kubectl({"create", "--dry-run=client", "-f", (dir.path / "deployment.yaml").string(),
                               "-o", "jsonpath=" + path});
    REQUIRE(args.exit_code == 0);
    std::vector<std::string> out;
    std::istringstream in(args.out);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  };
  const std::string kArgs = "{range .spec.template.spec.containers[0].args[*]}{@}{\"\\n\"}{end}";
  const auto args_for = [&](const std::vector<std::string>& set) {
    return rendered_as(set, "deployment-operator.yaml", kArgs);
  };
  const auto has = [](const std::vector<std::string>& args, const std::string& arg) {
    return std::find(args.begin(), args.end(), arg) != args.end();
  };
  const auto defaults = args_for({});
  CHECK(has(defaults, "--runner-uid=1000"));
  CHECK(has(defaults, "--runner-gid=1000"));
  CHECK(has(defaults, "--leader-election-lease-duration=15s"));
  CHECK(has(defaults, "--leader-election-renew-deadline=10s"));
  CHECK(has(defaults, "--leader-election-retry-period=2s"));
  CHECK(has(defaults, "--request-timeout=30s"));
  CHECK(has(defaults, "--watch-stall-timeout=3m"));
  CHECK(std::none_of(defaults.begin(), defaults.end(),
                     [](const std::string& a) { return a.starts_with("--s3-egress-cidr"); }));
  const auto set = args_for({"--set", "runner.uid=1234", "--set", "runner.gid=5678", "--set",
                             "s3.endpoint=http://10.88.0.1:9000", "--set", "s3.egressCidr=10.88.0.1/32"});
  CHECK(has(set, "--runner-uid=1234"));
  CHECK(has(set, "--runner-gid=5678"));
  CHECK(has(set, "--s3-egress-cidr=10.88.0.1/32"));
  // The binary parses every flag before it reaches --help: an unknown one, or a bad number, fails.
  const auto knows = [](const char* binary, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {binary};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("--help");
    const auto help = run(argv);
    INFO(help.err);
    CHECK(help.exit_code == 0);
  };
  for (const auto& args : {defaults, set}) knows(REPL_OPERATOR_BIN, args);

  // The shim: JWT from a ConfigMap's key, mounted as a directory (so updates reach it), beside the token.
  const std::vector<std::string> jwt = {
      "--set", "shim.auth.existingSecret=shim-token",
      "--set", "shim.auth.jwt.jwksConfigMap=idp-keys",
      "--set", "shim.auth.jwt.issuer=https://idp.example.com/",
      "--set", "shim.auth.jwt.audience=repl",
      "--set", "shim.auth.jwt.userClaim=email",
      "--set", "shim.limits.maxReplsPerUser=3",
      "--set", "shim.auth.jwt.jwksUrl=https://idp.example.com/.well-known/jwks.json"};
  const auto shim = rendered_as(jwt, "deployment-shim.yaml", kArgs);
  CHECK(has(shim, "--jwks-file=/etc/repl-shim/jwks/jwks.json"));
  CHECK(has(shim, "--jwt-issuer=https://idp.example.com/"));
  CHECK(has(shim, "--jwt-audience=repl"));
  CHECK(has(shim, "--jwt-user-claim=email"));
  CHECK(has(shim, "--jwt-allow-hs256=false"));
  CHECK(has(shim, "--auth-token-file=/etc/repl-shim/auth/token"));
  CHECK(has(shim, "--max-repls-per-user=3"));
  CHECK(has(shim, "--jwks-url=https://idp.example.com/.well-known/jwks.json"));
  CHECK(has(shim, "--jwks-refresh=300"));
  CHECK(rendered_as(jwt, "deployment-shim.yaml",
                    "{.spec.template.spec.volumes[?(@.name==\"jwks\")].configMap.name}") ==
        std::vector<std::string>{"idp-keys"});
  CHECK(rendered_as(jwt, "deployment-shim.yaml",
                    "{.spec.template.spec.containers[0].volumeMounts[?(@.name==\"jwks\")].subPath}")
            .empty());
  const auto plain = rendered_as({}, "deployment-shim.yaml", kArgs);
  CHECK(
      std::none_of(plain.begin(), plain.end(), [](const std::string& a) { return a.starts_with("--jwks"); }));
  for (const auto& args : {shim, plain}) knows(REPL_SHIM_BIN, args);
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
      {{"--set", "shim.auth.jwt.jwksConfigMap=a", "--set", "shim.auth.jwt.jwksSecret=b"},
       "jwt"},  // one source
      {{"--set", "shim.auth.jwt.clockSkewSeconds=-1"}, "clockSkewSeconds"},
      {{"--set", "shim.limits.rateBurst=0"}, "rateBurst"},
      {{"--set", "shim.auth.jwt.jwksUrl=file:///etc/passwd"}, "jwksUrl"},
      {{"--set", "shim.auth.jwt.jwksKey=../etc"}, "jwksKey"},
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
        // The operator: Repls (read; patch for its finalizer and idle suspends, delete for the TTL)
        // and their status, the four kinds of
        // child, pods (read), Events, the Repls' namespace (get: is it being deleted?).
        {op, "watch", "repls.peetcode.com", users, "yes"},
        {op, "get", "namespaces", users, "yes"},
        {op, "list", "namespaces", "", "no"},
        {op, "delete", "namespaces", users, "no"},
        {op, "update", "repls.peetcode.com", users, "no"},
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
        {op, "get", "pods/log", users, "yes"},
        {op, "create", "pods/exec", users, "no"},
        {op, "create", "events", users, "yes"},
        {op, "watch", "events", users, "yes"},
        {op, "delete", "events", users, "no"},
        {op, "patch", "events", users, "no"},
        {op, "update", "repls.peetcode.com/status", users, "no"},
        {op, "update", "leases.coordination.k8s.io", system, "yes"},
        {op, "create", "leases.coordination.k8s.io", system, "yes"},
        {op, "create", "repls.peetcode.com", users, "no"},
        {op, "delete", "repls.peetcode.com", users, "yes"},
        {op, "patch", "repls.peetcode.com", users, "yes"},
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

TEST_CASE(
    "both Deployments: a PodDisruptionBudget, a soft spread, probes on the binaries' endpoints, "
    "ephemeral-storage, and a rolling update that keeps a replica serving",
    "[chart][chart-render]") {
  const auto docs = render({});
  for (const auto& [name, component, port] :
       {std::tuple{kRelease, "operator", "health"}, std::tuple{kRelease + "-shim", "shim", "http"}}) {
    INFO(name);
    const auto deployment = object(docs, "Deployment", name);
    REQUIRE(deployment.IsDefined());
    CHECK(text(deployment, "spec.replicas") == "2");
    CHECK(strings(at(deployment, "spec.selector.matchLabels")) == selector(component));

    // A drain takes one pod at a time.
    const auto pdb = object(docs, "PodDisruptionBudget", name);
    INFO(dump(pdb));
    REQUIRE(pdb.IsDefined());
    CHECK(text(pdb, "apiVersion") == "policy/v1");
    CHECK(text(pdb, "spec.maxUnavailable") == "1");
    CHECK_FALSE(at(pdb, "spec.minAvailable").IsDefined());
    CHECK(strings(at(pdb, "spec.selector.matchLabels")) == selector(component));

    // A new pod Ready before an old one goes.
    CHECK(text(deployment, "spec.strategy.type") == "RollingUpdate");
    CHECK(text(deployment, "spec.strategy.rollingUpdate.maxUnavailable") == "0");
    CHECK(text(deployment, "spec.strategy.rollingUpdate.maxSurge") == "1");

    // Spread over nodes, as preferences only: one node still runs both replicas.
    const auto pod = at(deployment, "spec.template.spec");
    INFO(dump(at(pod, "affinity")) << dump(at(pod, "topologySpreadConstraints")));
    CHECK_FALSE(
        at(pod, "affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution").IsDefined());
    const auto preferred =
        items(at(pod, "affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution"));
    REQUIRE(preferred.size() == 1);
    CHECK(text(preferred[0], "podAffinityTerm.topologyKey") == "kubernetes.io/hostname");
    CHECK(strings(at(preferred[0], "podAffinityTerm.labelSelector.matchLabels")) == selector(component));
    const auto spread = items(at(pod, "topologySpreadConstraints"));
    REQUIRE(spread.size() == 1);
    CHECK(text(spread[0], "topologyKey") == "kubernetes.io/hostname");
    CHECK(text(spread[0], "whenUnsatisfiable") == "ScheduleAnyway");
    CHECK(text(spread[0], "maxSkew") == "1");
    CHECK(strings(at(spread[0], "labelSelector.matchLabels")) == selector(component));
    CHECK(text(spread[0], "matchLabelKeys.0") == "pod-template-hash");

    const auto container = at(pod, "containers.0");
    CHECK(text(container, "resources.requests.ephemeral-storage") == "64Mi");
    CHECK(text(container, "resources.limits.ephemeral-storage") == "256Mi");
    // startup and liveness on /healthz, readiness on /readyz, on the port the binary serves them.
    CHECK(text(container, "startupProbe.httpGet.path") == "/healthz");
    CHECK(text(container, "livenessProbe.httpGet.path") == "/healthz");
    CHECK(text(container, "readinessProbe.httpGet.path") == "/readyz");
    for (const char* probe : {"startupProbe", "livenessProbe", "readinessProbe"}) {
      CHECK(text(container, std::string(probe) + ".httpGet.port") == port);
    }
    std::map<std::string, std::string> ports;
    for (const auto& p : items(at(container, "ports"))) ports[text(p, "name")] = text(p, "containerPort");
    const auto args = items(at(container, "args"));
    const auto has_arg = [&](const std::string& arg) {
      return std::any_of(args.begin(), args.end(), [&](const YAML::Node& a) { return a.Scalar() == arg; });
    };
    if (std::string(component) == "operator") {
      CHECK(ports["health"] == "8081");
      CHECK(has_arg("--health-addr=:8081"));  // operator/main.cpp serves /healthz and /readyz there
      CHECK(ports["metrics"] == "8080");
      CHECK(has_arg("--metrics-addr=:8080"));
    } else {
      CHECK(ports["http"] == "8080");
      CHECK(has_arg("--listen=:8080"));  // the shim serves /healthz and /readyz beside its API
      // It keeps serving while its endpoint's removal spreads, then drains its requests.
      CHECK(text(container, "lifecycle.preStop.sleep.seconds") == "5");
      CHECK(text(pod, "terminationGracePeriodSeconds") == "70");
    }
  }
}

TEST_CASE("the PodDisruptionBudget and spread values switch and override", "[chart][chart-render]") {
  SECTION("PodDisruptionBudgets off, or minAvailable instead of maxUnavailable") {
    const auto off = render(
        {"--set", "podDisruptionBudget.enabled=false", "--set", "shim.podDisruptionBudget.enabled=false"});
    CHECK(count_kind(off, "PodDisruptionBudget") == 0);
    const auto shim_only = render({"--set", "podDisruptionBudget.enabled=false"});
    CHECK(count_kind(shim_only, "PodDisruptionBudget") == 1);
    CHECK(object(shim_only, "PodDisruptionBudget", kRelease + "-shim").IsDefined());

    const auto min = render({"--set", "shim.podDisruptionBudget.minAvailable=1", "--set",
                             "podDisruptionBudget.maxUnavailable=50%"});
    const auto shim_pdb = object(min, "PodDisruptionBudget", kRelease + "-shim");
    INFO(dump(shim_pdb));
    CHECK(text(shim_pdb, "spec.minAvailable") == "1");
    CHECK_FALSE(at(shim_pdb, "spec.maxUnavailable").IsDefined());
    CHECK(text(object(min, "PodDisruptionBudget", kRelease), "spec.maxUnavailable") == "50%");

    const auto no_shim = render({"--set", "shim.enabled=false"});
    CHECK(count_kind(no_shim, "PodDisruptionBudget") == 1);
    CHECK(count_kind(no_shim, "Pod") == 0);  // no shim, no helm test
  }
  SECTION("hard or no anti-affinity; a user's own podAntiAffinity replaces the chart's") {
    const auto pod_of = [](const std::vector<YAML::Node>& docs, const std::string& name) {
      return at(object(docs, "Deployment", name), "spec.template.spec");
    };
    const auto hard = render({"--set", "spread.antiAffinity=hard"});
    for (const auto& name : {kRelease, kRelease + "-shim"}) {
      const auto terms = items(
          at(pod_of(hard, name), "affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution"));
      REQUIRE(terms.size() == 1);
      CHECK(text(terms[0], "topologyKey") == "kubernetes.io/hostname");
    }
    const auto off = render({"--set", "spread.antiAffinity=off"});
    CHECK_FALSE(at(pod_of(off, kRelease), "affinity").IsDefined());
    CHECK_FALSE(at(pod_of(off, kRelease + "-shim"), "affinity").IsDefined());

    TempDir dir;
    std::ofstream(dir.path / "values.yaml")
        << "affinity:\n"
           "  nodeAffinity:\n"
           "    requiredDuringSchedulingIgnoredDuringExecution:\n"
           "      nodeSelectorTerms:\n"
           "        - matchExpressions: [{key: pool, operator: In, values: [system]}]\n"
           "shim:\n"
           "  affinity:\n"
           "    podAntiAffinity:\n"
           "      requiredDuringSchedulingIgnoredDuringExecution:\n"
           "        - topologyKey: topology.kubernetes.io/zone\n"
           "          labelSelector: {matchLabels: {app.kubernetes.io/component: shim}}\n"
           "  topologySpreadConstraints:\n"
           "    - maxSkew: 2\n"
           "      topologyKey: topology.kubernetes.io/zone\n"
           "      whenUnsatisfiable: DoNotSchedule\n"
           "      labelSelector: {matchLabels: {app.kubernetes.io/component: shim}}\n";
    const auto own = render({"-f", (dir.path / "values.yaml").string()});
    // The operator: the user's nodeAffinity, and the chart's soft anti-affinity beside it.
    const auto op = pod_of(own, kRelease);
    INFO(dump(at(op, "affinity")));
    CHECK(text(op,
               "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms.0."
               "matchExpressions.0.key") == "pool");
    CHECK(items(at(op, "affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution")).size() ==
          1);
    // The shim: exactly the user's podAntiAffinity and constraints.
    const auto shim = pod_of(own, kRelease + "-shim");
    INFO(dump(at(shim, "affinity")) << dump(at(shim, "topologySpreadConstraints")));
    CHECK_FALSE(
        at(shim, "affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution").IsDefined());
    CHECK(
        text(shim, "affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution.0.topologyKey") ==
        "topology.kubernetes.io/zone");
    const auto constraints = items(at(shim, "topologySpreadConstraints"));
    REQUIRE(constraints.size() == 1);
    CHECK(text(constraints[0], "whenUnsatisfiable") == "DoNotSchedule");
    CHECK(text(constraints[0], "maxSkew") == "2");
  }
  SECTION("zones too, or no topologySpreadConstraints") {
    const auto zones = render({"--set",
                               "spread.topologySpread.topologyKeys={kubernetes.io/hostname,"
                               "topology.kubernetes.io/zone}"});
    const auto constraints =
        items(at(object(zones, "Deployment", kRelease), "spec.template.spec.topologySpreadConstraints"));
    REQUIRE(constraints.size() == 2);
    CHECK(text(constraints[1], "topologyKey") == "topology.kubernetes.io/zone");
    CHECK(text(constraints[1], "whenUnsatisfiable") == "ScheduleAnyway");
    const auto none = render({"--set", "spread.topologySpread.topologyKeys=null"});
    CHECK_FALSE(
        at(object(none, "Deployment", kRelease + "-shim"), "spec.template.spec.topologySpreadConstraints")
            .IsDefined());
  }
  SECTION("probe timings, the strategy and the preStop pause are values") {
    const auto docs =
        render({"--set", "probes.readiness.periodSeconds=7", "--set", "shim.preStopSleepSeconds=0", "--set",
                "strategy.type=Recreate", "--set", "strategy.rollingUpdate=null"});
    const auto op = object(docs, "Deployment", kRelease);
    CHECK(text(op, "spec.template.spec.containers.0.readinessProbe.periodSeconds") == "7");
    CHECK(text(op, "spec.strategy.type") == "Recreate");
    CHECK_FALSE(at(op, "spec.strategy.rollingUpdate").IsDefined());
    const auto shim = object(docs, "Deployment", kRelease + "-shim");
    CHECK_FALSE(at(shim, "spec.template.spec.containers.0.lifecycle").IsDefined());
    CHECK(text(shim, "spec.template.spec.terminationGracePeriodSeconds") == "65");
  }
}

TEST_CASE(
    "the operator's and the shim's own NetworkPolicies: the API server, DNS, metrics, the shim's clients",
    "[chart][chart-render]") {
  const auto docs = render({});
  const auto op = object(docs, "NetworkPolicy", kRelease);
  const auto shim = object(docs, "NetworkPolicy", kRelease + "-shim");
  INFO(dump(op) << "---\n" << dump(shim));
  REQUIRE(op.IsDefined());
  REQUIRE(shim.IsDefined());
  CHECK(strings(at(op, "spec.podSelector.matchLabels")) == selector("operator"));
  CHECK(strings(at(shim, "spec.podSelector.matchLabels")) == selector("shim"));
  for (const auto& policy : {op, shim}) {
    CHECK(text(policy, "spec.policyTypes.0") == "Ingress");
    CHECK(text(policy, "spec.policyTypes.1") == "Egress");
    // Out: the API server and DNS, nothing else.
    const auto egress = items(at(policy, "spec.egress"));
    REQUIRE(egress.size() == 2);
    // helm template cannot look the API server's endpoints up: any address, on 443 and 6443.
    const auto api = api_server_rule(policy);
    CHECK(rule_cidrs(api) == std::vector<std::string>{"0.0.0.0/0", "::/0"});
    CHECK(rule_ports(api) == std::vector<std::string>{"TCP/443", "TCP/6443"});
    const auto dns = egress[1];
    CHECK(rule_ports(dns) == std::vector<std::string>{"UDP/53", "TCP/53"});
    CHECK(strings(at(dns, "to.0.namespaceSelector.matchLabels")) ==
          std::map<std::string, std::string>{{"kubernetes.io/metadata.name", "kube-system"}});
    CHECK(strings(at(dns, "to.0.podSelector.matchLabels")) ==
          std::map<std::string, std::string>{{"k8s-app", "kube-dns"}});
    CHECK(rule_cidrs(dns) == std::vector<std::string>{"169.254.20.10/32"});  // NodeLocal DNSCache
  }
  // In: the operator's metrics port from anywhere (the kubelet's probes need no rule).
  const auto op_in = items(at(op, "spec.ingress"));
  REQUIRE(op_in.size() == 1);
  CHECK_FALSE(at(op_in[0], "from").IsDefined());
  CHECK(rule_ports(op_in[0]) == std::vector<std::string>{"TCP/8080"});
  // The shim's HTTP port from the ingress controller's namespace and labelled clients only.
  const auto shim_in = items(at(shim, "spec.ingress"));
  REQUIRE(shim_in.size() == 1);
  CHECK(rule_ports(shim_in[0]) == std::vector<std::string>{"TCP/8080"});
  const auto from = items(at(shim_in[0], "from"));
  REQUIRE(from.size() == 2);
  CHECK(strings(at(from[0], "namespaceSelector.matchLabels")) ==
        std::map<std::string, std::string>{{"kubernetes.io/metadata.name", "ingress-nginx"}});
  CHECK(strings(at(from[1], "podSelector.matchLabels")) ==
        std::map<std::string, std::string>{{"repl-operator-shim-client", "true"}});

  SECTION("the API server's endpoints from values narrow the rule") {
    const auto set = render({"--set", "podNetworkPolicy.apiServer.cidrs={10.0.0.10/32,fd00::10/128}", "--set",
                             "podNetworkPolicy.apiServer.ports={6443}"});
    for (const auto& name : {kRelease, kRelease + "-shim"}) {
      const auto api = api_server_rule(object(set, "NetworkPolicy", name));
      INFO(dump(api));
      CHECK(rule_cidrs(api) == std::vector<std::string>{"10.0.0.10/32", "fd00::10/128"});
      CHECK(rule_ports(api) == std::vector<std::string>{"TCP/6443"});
    }
    // CIDRs without ports: the two usual ports.
    const auto cidrs_only = render({"--set", "podNetworkPolicy.apiServer.cidrs={192.168.1.5/32}"});
    const auto api = api_server_rule(object(cidrs_only, "NetworkPolicy", kRelease));
    CHECK(rule_cidrs(api) == std::vector<std::string>{"192.168.1.5/32"});
    CHECK(rule_ports(api) == std::vector<std::string>{"TCP/443", "TCP/6443"});
  }
  SECTION("metrics scrapers, the shim's peers, the ingress controller's namespace and DNS are values") {
    TempDir dir;
    std::ofstream(dir.path / "values.yaml")
        << "ingress:\n  controllerNamespace: traefik\n"
           "podNetworkPolicy:\n"
           "  dns:\n    namespace: dns-system\n    podSelector: {app: coredns, k8s-app: null}\n    cidrs: "
           "[]\n"
           "  operator:\n"
           "    metricsFrom: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: "
           "monitoring}}}]\n"
           "  shim:\n"
           "    extraFrom: [{ipBlock: {cidr: 10.1.0.0/16}}]\n";
    const auto docs = render({"-f", (dir.path / "values.yaml").string()});
    const auto op = object(docs, "NetworkPolicy", kRelease);
    const auto shim = object(docs, "NetworkPolicy", kRelease + "-shim");
    INFO(dump(op) << "---\n" << dump(shim));
    CHECK(strings(at(op, "spec.ingress.0.from.0.namespaceSelector.matchLabels")) ==
          std::map<std::string, std::string>{{"kubernetes.io/metadata.name", "monitoring"}});
    const auto from = items(at(shim, "spec.ingress.0.from"));
    REQUIRE(from.size() == 3);
    CHECK(strings(at(from[0], "namespaceSelector.matchLabels")) ==
          std::map<std::string, std::string>{{"kubernetes.io/metadata.name", "traefik"}});
    CHECK(text(from[2], "ipBlock.cidr") == "10.1.0.0/16");
    const auto dns = items(at(shim, "spec.egress")).at(1);
    CHECK(strings(at(dns, "to.0.namespaceSelector.matchLabels")) ==
          std::map<std::string, std::string>{{"kubernetes.io/metadata.name", "dns-system"}});
    CHECK(strings(at(dns, "to.0.podSelector.matchLabels")) ==
          std::map<std::string, std::string>{{"app", "coredns"}});
    CHECK(rule_cidrs(dns).empty());

    const auto no_controller = render({"--set", "podNetworkPolicy.shim.fromIngressController=false"});
    const auto only_clients =
        items(at(object(no_controller, "NetworkPolicy", kRelease + "-shim"), "spec.ingress.0.from"));
    REQUIRE(only_clients.size() == 1);
    CHECK(at(only_clients[0], "podSelector").IsDefined());
  }
  SECTION("podNetworkPolicy and networkPolicy are separate switches") {
    // Off: no NetworkPolicy object; the operator still renders each Repl's (its template is there).
    const auto off = render({"--set", "podNetworkPolicy.enabled=false"});
    CHECK(count_kind(off, "NetworkPolicy") == 0);
    CHECK(
        strings(at(object(off, "ConfigMap", kRelease + "-templates"), "data")).count("networkpolicy.yaml") ==
        1);
    // The per-Repl ones off: the pods' own stay.
    const auto repl_off = render({"--set", "networkPolicy.enabled=false"});
    CHECK(count_kind(repl_off, "NetworkPolicy") == 3);  // operator, shim, helm test
    CHECK(strings(at(object(repl_off, "ConfigMap", kRelease + "-templates"), "data"))
              .count("networkpolicy.yaml") == 0);
    // A long fullname: the client label's name still fits in 63 characters.
    const std::string long_name(53, 'a');
    const auto longer = render({"--set", "fullnameOverride=" + long_name});
    const auto clients = strings(at(object(longer, "NetworkPolicy", long_name + "-shim"),
                                    "spec.ingress.0.from.1.podSelector.matchLabels"));
    REQUIRE(clients.size() == 1);
    CHECK(clients.begin()->first == std::string(51, 'a') + "-shim-client");
  }
}

TEST_CASE("helm test: a restricted pod that reaches the shim without cluster DNS", "[chart][chart-render]") {
  const auto docs = render({});
  const auto pod = object(docs, "Pod", kRelease + "-test");
  INFO(dump(pod));
  REQUIRE(pod.IsDefined());
  const auto annotations = strings(at(pod, "metadata.annotations"));
  CHECK(annotations.at("helm.sh/hook") == "test");
  CHECK(annotations.at("helm.sh/hook-delete-policy") == "before-hook-creation,hook-succeeded");
  // The shim's NetworkPolicy admits it; its own lets it reach only the shim and DNS.
  const auto labels = strings(at(pod, "metadata.labels"));
  CHECK(labels.at("repl-operator-shim-client") == "true");
  CHECK(labels.at("app.kubernetes.io/component") == "test");
  const auto policy = object(docs, "NetworkPolicy", kRelease + "-test");
  REQUIRE(policy.IsDefined());
  CHECK(strings(at(policy, "metadata.annotations")).at("helm.sh/hook") == "test");
  CHECK(strings(at(policy, "spec.podSelector.matchLabels")) == selector("test"));
  CHECK(strings(at(policy, "spec.egress.0.to.0.podSelector.matchLabels")) == selector("shim"));
  CHECK(rule_ports(at(policy, "spec.egress.0")) == std::vector<std::string>{"TCP/8080"});
  CHECK(items(at(policy, "spec.ingress")).empty());

  const auto spec = at(pod, "spec");
  CHECK(text(spec, "restartPolicy") == "Never");
  CHECK(text(spec, "automountServiceAccountToken") == "false");
  CHECK(text(spec, "enableServiceLinks") == "true");
  // Pod Security "restricted".
  CHECK(text(spec, "securityContext.runAsNonRoot") == "true");
  CHECK(text(spec, "securityContext.runAsUser") == "65532");
  CHECK(text(spec, "securityContext.seccompProfile.type") == "RuntimeDefault");
  const auto container = at(spec, "containers.0");
  CHECK(text(container, "securityContext.allowPrivilegeEscalation") == "false");
  CHECK(text(container, "securityContext.capabilities.drop.0") == "ALL");
  CHECK(text(container, "securityContext.readOnlyRootFilesystem") == "true");
  CHECK(text(container, "securityContext.runAsNonRoot") == "true");
  CHECK(text(container, "image") == "curlimages/curl:8.11.1");
  CHECK(text(container, "resources.limits.ephemeral-storage") == "64Mi");
  // The Service's links first (the kubelet sets them from the Service "repl-operator-shim"), then DNS.
  const std::string script = text(container, "command.2");
  CHECK(text(container, "command.0") == "/bin/sh");
  CHECK(script.find("${REPL_OPERATOR_SHIM_SERVICE_HOST:-}") != std::string::npos);
  CHECK(script.find("${REPL_OPERATOR_SHIM_SERVICE_PORT:-}") != std::string::npos);
  CHECK(script.find("host=repl-operator-shim." + kNs + ".svc") != std::string::npos);
  CHECK(script.find("port=80\n") != std::string::npos);
  CHECK(script.find("Authorization") == std::string::npos);  // auth off: no token
  CHECK_FALSE(at(spec, "volumes.1").IsDefined());

  SECTION("auth on: the Secret's key is mounted and sent as a bearer token") {
    const auto auth = render({"--set", "shim.auth.existingSecret=shim-token", "--set",
                              "shim.auth.secretKey=tok", "--set", "tests.image=localhost/curl:test", "--set",
                              "tests.pullPolicy=Never", "--set", "fullnameOverride=my-repls"});
    const auto pod = object(auth, "Pod", "my-repls-test");
    INFO(dump(pod));
    REQUIRE(pod.IsDefined());
    CHECK(text(pod, "spec.volumes.1.secret.secretName") == "shim-token");
    CHECK(text(pod, "spec.volumes.1.secret.items.0.key") == "tok");
    CHECK(text(pod, "spec.containers.0.volumeMounts.1.mountPath") == "/etc/repl-shim-test/auth");
    CHECK(text(pod, "spec.containers.0.image") == "localhost/curl:test");
    CHECK(text(pod, "spec.containers.0.imagePullPolicy") == "Never");
    CHECK(strings(at(pod, "metadata.labels")).at("my-repls-shim-client") == "true");
    const std::string script = text(pod, "spec.containers.0.command.2");
    CHECK(script.find("/etc/repl-shim-test/auth/tok") != std::string::npos);
    CHECK(script.find("Authorization: Bearer") != std::string::npos);
    CHECK(script.find("${MY_REPLS_SHIM_SERVICE_HOST:-}") != std::string::npos);
  }
  SECTION("tests.enabled=false renders no test hook") {
    const auto off = render({"--set", "tests.enabled=false"});
    CHECK(count_kind(off, "Pod") == 0);
    CHECK_FALSE(object(off, "NetworkPolicy", kRelease + "-test").IsDefined());
  }
}

namespace {

// A stand-in for the shim's HTTP API (the answers of api-shim/shim.cpp, compact JSON as rapidjson
// writes it), for the `helm test` script without a cluster. argv: token ("" for no auth) and a mode:
// "ok", "conflict" (POST /start answers 409), "undead" (DELETE answers 200 but the Repl stays).
// Every request is logged as one line "METHOD PATH BODY".
const char* kFakeShim = R"py(
import http.server, json, re, sys, urllib.parse
token, mode = sys.argv[1], sys.argv[2]
repls = {}

class Handler(http.server.BaseHTTPRequestHandler):
    def reply(self, code, body):
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass

    def serve(self, method):
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        print(method, self.path, body, flush=True)
        if path == "/readyz":
            return self.reply(200, {"status": "ok"})
        if token and self.headers.get("Authorization") != "Bearer " + token:
            return self.reply(401, {"error": "unauthorized", "field": "", "message": "a valid bearer token is required"})
        repl = lambda rid: {"replId": rid, "userId": repls[rid], "phase": "Pending", "ready": False,
                            "urls": {"ide": "", "preview": ""}}
        if path == "/start" and method == "POST":
            if self.headers.get("Content-Type") != "application/json":
                return self.reply(415, {"error": "unsupported_media_type", "field": "", "message": ""})
            req = json.loads(body)
            if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", req["replId"]):
                return self.reply(400, {"error": "bad_request", "field": "replId", "message": "bad replId"})
            if mode == "conflict":
                return self.reply(409, {"error": "conflict", "field": "replId", "message": "this replId belongs to another user"})
            created = req["replId"] not in repls
            repls[req["replId"]] = req["userId"]
            return self.reply(201 if created else 200, repl(req["replId"]))
        m = re.fullmatch(r"/repls/([^/]+)", path)
        if m and m.group(1) in repls:
            rid = m.group(1)
            if method == "GET":
                return self.reply(200, repl(rid))
            if method == "DELETE":
                if urllib.parse.parse_qs(query).get("userId") != [repls[rid]]:
                    return self.reply(409, {"error": "conflict", "field": "replId", "message": ""})
                if mode != "undead":
                    del repls[rid]
                return self.reply(200, {"deleted": True})
        return self.reply(404, {"error": "not_found", "field": "replId", "message": "no such repl"})

    def do_GET(self): self.serve("GET")
    def do_POST(self): self.serve("POST")
    def do_DELETE(self): self.serve("DELETE")

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(json.dumps({"msg": "serving", "addr": "127.0.0.1:%d" % server.server_address[1]}, separators=(",", ":")), flush=True)
server.serve_forever()
)py";

}  // namespace

TEST_CASE("helm test's script creates, reads and deletes a Repl through the shim, and names what fails",
          "[chart][chart-render]") {
  TempDir dir;
  const std::string token = "helm-test-token-" + random_hex(16);
  std::ofstream(dir.path / "fake_shim.py") << kFakeShim;
  std::ofstream(dir.path / "token") << token << "\n";  // a Secret's value may end with a newline
  const auto pod =
      object(render({"--set", "shim.auth.existingSecret=shim-token"}), "Pod", kRelease + "-test");
  std::string script = text(pod, "spec.containers.0.command.2");
  REQUIRE_FALSE(script.empty());
  // The Secret's mount, here: the token file in the temporary directory.
  const std::string mount = "/etc/repl-shim-test/auth/token";
  REQUIRE(script.find(mount) != std::string::npos);
  script.replace(script.find(mount), mount.size(), (dir.path / "token").string());

  // The script as the kubelet starts it: only the service-link variables lead to the shim.
  const auto run_script = [&](const std::string& mode, const std::string& with_token) {
    auto shim = OperatorProcess::spawn(
        {"/usr/bin/env", "python3", (dir.path / "fake_shim.py").string(), with_token, mode});
    std::string addr;
    REQUIRE(eventually(10s, [&] { return !(addr = shim->served_addr("")).empty(); }));
    const auto colon = addr.rfind(':');
    const char* path = std::getenv("PATH");
    auto r = run({"env", "-i", std::string("PATH=") + (path ? path : "/usr/bin:/bin"),
                  "HOME=" + dir.path.string(), "REPL_OPERATOR_SHIM_SERVICE_HOST=" + addr.substr(0, colon),
                  "REPL_OPERATOR_SHIM_SERVICE_PORT=" + addr.substr(colon + 1), "sh", "-c", script});
    const std::string requests = shim->log();
    shim->kill_hard();
    return std::pair{r, requests};
  };

  SECTION("the whole round against a shim with auth on") {
    const auto [r, requests] = run_script("ok", token);
    INFO(r.out << r.err << "--- requests ---\n" << requests);
    CHECK(r.exit_code == 0);
    std::smatch id;
    const std::string out = r.out;
    REQUIRE(std::regex_search(out, id, std::regex("created (helm-test-1-[0-9a-f]{8})\n")));
    const std::string repl = id[1];
    for (const std::string& line :
         {std::string("GET /readyz"), "POST /start {\"userId\":\"helm-test\",\"replId\":\"" + repl + "\"}",
          "GET /repls/" + repl, "DELETE /repls/" + repl + "?userId=helm-test",
          "GET /repls/" + repl + "?wait=ready&timeout=30s"}) {
      CHECK(requests.find(line) != std::string::npos);
    }
    CHECK(out.find("ok: " + repl + " is gone") != std::string::npos);
    CHECK(r.err.empty());
    // A second run picks another replId.
    const auto [again, _] = run_script("ok", token);
    CHECK(again.exit_code == 0);
    CHECK(again.out.find(repl) == std::string::npos);
  }
  SECTION("failures end it with status 1 and one line saying what failed") {
    const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
        {"ok", "another-token", "POST /start of helm-test-1-"},         // 401
        {"conflict", token, "answered 409, not 201"},                   // someone else's replId
        {"undead", token, "after its deletion answered 200, not 404"},  // still there
    };
    for (const auto& [mode, with_token, says] : cases) {
      const auto [r, requests] = run_script(mode, with_token);
      INFO(mode << "\n" << r.out << r.err << "--- requests ---\n" << requests);
      CHECK(r.exit_code == 1);
      CHECK(r.err.find(says) != std::string::npos);
      CHECK(r.err.starts_with("helm test: "));
      CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    }
  }
  SECTION("no shim: curl's failure, in one line") {
    auto r = run({"env", "-i", "PATH=/usr/bin:/bin", "HOME=" + dir.path.string(),
                  "REPL_OPERATOR_SHIM_SERVICE_HOST=127.0.0.1", "REPL_OPERATOR_SHIM_SERVICE_PORT=1", "sh",
                  "-c", std::regex_replace(script, std::regex("retries=30"), "retries=0")});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.starts_with("helm test: GET http://127.0.0.1:1/readyz: curl failed (exit 7): curl: (7) "));
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  }
}

TEST_CASE("bad values for the production objects are refused by the schema", "[chart][chart-render]") {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--set", "podDisruptionBudget.maxUnavailable=lots"}, "maxUnavailable"},
      {{"--set", "shim.podDisruptionBudget.minAvailable=-1"}, "minAvailable"},
      {{"--set", "spread.antiAffinity=sometimes"}, "antiAffinity"},
      {{"--set", "spread.topologySpread.whenUnsatisfiable=Never"}, "whenUnsatisfiable"},
      {{"--set", "spread.topologySpread.maxSkew=0"}, "maxSkew"},
      {{"--set", "podNetworkPolicy.apiServer.cidrs={10.0.0.1}"}, "cidrs"},  // no prefix length
      {{"--set", "podNetworkPolicy.apiServer.ports={70000}"}, "ports"},
      {{"--set", "podNetworkPolicy.operator.metricsFrom[0].pods=all"}, "pods"},
      {{"--set", "podNetworkPolicy.enable=true"}, "enable"},  // a typo is an unknown key
      {{"--set", "tests.userId=not a user"}, "userId"},
      {{"--set", "tests.pullPolicy=Sometimes"}, "pullPolicy"},
      {{"--set", "shim.preStopSleepSeconds=-1"}, "preStopSleepSeconds"},
      {{"--set", "probes.liveness.periodSeconds=0"}, "periodSeconds"},
      {{"--set", "strategy.type=BlueGreen"}, "type"},
  };
  for (const auto& [set, mentions] : cases) {
    const auto r = helm_template(set);
    INFO(set.back() << "\n" << r.err);
    CHECK(r.exit_code != 0);
    CHECK(r.err.find("values don't meet the specifications of the schema") != std::string::npos);
    CHECK(r.err.find(mentions) != std::string::npos);
  }
}

TEST_CASE("kube-score finds nothing critical in the rendered chart", "[chart][chart-render]") {
  // kube-score v1.20.0 (test/cluster/build.sh), found in PATH as helm is. Checks ignored, each an
  // opinion this chart does not share:
  // - container-image-pull-policy wants Always: the chart pins tags and defaults to IfNotPresent
  //   (image.pullPolicy, tests.pullPolicy), so a pod start does not depend on the registry, and
  //   images side-loaded into a node (kind, the real-node tier) work; Always is one value away.
  const std::vector<std::string> ignored = {"container-image-pull-policy"};
  if (run({"sh", "-c", "command -v kube-score"}).exit_code != 0) {
    FAIL("kube-score is not in PATH: test/cluster/build.sh builds it into ~/.cache/repl-operator/bin");
  }
  TempDir dir;
  const std::vector<std::vector<std::string>> variants = {
      {},  // every default: two replicas of each, PDBs, NetworkPolicies, the helm test pod
      {"--set", "replicaCount=3", "--set", "shim.replicaCount=3", "--set", "shim.ingress.enabled=true",
       "--set", "shim.auth.existingSecret=shim-token", "--set", "watchNamespace=repls", "--set",
       "spread.topologySpread.topologyKeys={kubernetes.io/hostname,topology.kubernetes.io/zone}", "--set",
       "podNetworkPolicy.apiServer.cidrs={10.0.0.10/32}", "--set", "podNetworkPolicy.apiServer.ports={6443}"},
  };
  for (const auto& set : variants) {
    const auto rendered = helm_template(set);
    INFO(rendered.err);
    REQUIRE(rendered.exit_code == 0);
    const fs::path manifest = dir.path / "chart.yaml";
    std::ofstream(manifest) << rendered.out;
    // Two optional checks too: a seccomp profile on every container, and sound container ports.
    std::vector<std::string> argv = {"kube-score",
                                     "score",
                                     "--output-format",
                                     "ci",
                                     "--enable-optional-test",
                                     "container-seccomp-profile",
                                     "--enable-optional-test",
                                     "container-ports-check"};
    for (const auto& test : ignored) argv.insert(argv.end(), {"--ignore-test", test});
    argv.push_back(manifest.string());
    const auto score = run(argv);
    INFO((set.empty() ? "defaults" : set[1]) << "\n" << score.out << score.err);
    CHECK(score.exit_code == 0);
    CHECK(score.out.find("[CRITICAL]") == std::string::npos);
    CHECK(score.out.find("[WARNING]") == std::string::npos);
    // It did score the objects: both Deployments and the test pod.
    for (const std::string& object :
         {kRelease + "/" + kNs + " apps/v1/Deployment", kRelease + "-shim/" + kNs + " apps/v1/Deployment",
          kRelease + "-test/" + kNs + " v1/Pod", kRelease + "/" + kNs + " policy/v1/PodDisruptionBudget",
          kRelease + "-shim/" + kNs + " networking.k8s.io/v1/NetworkPolicy"}) {
      CHECK(score.out.find("[OK] " + object) != std::string::npos);
    }
  }
}
