// The operator against the real API server: a Repl becomes a Deployment, a Service and an
// Ingress it owns, with the expected names, hosts, ports, labels and owner; many at once; and a
// second pass over unchanged Repls writes nothing; a SIGTERM ends it promptly, even with its API
// server hung.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "integration/support.hpp"

using namespace repl::test;
using namespace std::chrono_literals;

namespace {

const std::string kExample = std::string(REPL_SOURCE_DIR) + "/examples/repl.yaml";

std::string many_repls(int n) {
  std::string yaml;
  for (int i = 0; i < n; ++i) {
    yaml += "---\napiVersion: peetcode.com/v1alpha1\nkind: Repl\nmetadata:\n  name: repl-" +
            std::to_string(i) + "\nspec:\n  userId: user-" + std::to_string(i) + "\n";
  }
  return yaml;
}

bool children_exist(const std::string& ns, const std::string& id) {
  return kubectl({"get", "-n", ns, "deployment/" + id, "service/" + id, "ingress/" + id + "-ingress", "-o",
                  "name"})
             .exit_code == 0;
}

// name -> resourceVersion of every Repl, Deployment, Service and Ingress in `ns`.
std::map<std::string, std::string> versions(const std::string& ns) {
  const auto r = kubectl(
      {"get", "-n", ns, "repls,deployments,services,ingresses", "-o",
       "jsonpath={range .items[*]}{.kind}/{.metadata.name}={.metadata.resourceVersion}{\"\\n\"}{end}"});
  REQUIRE(r.exit_code == 0);
  std::map<std::string, std::string> out;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}

}  // namespace

TEST_CASE("kubectl apply of the example leads to its Deployment, Service and Ingress", "[operator]") {
  const std::string ns = fresh_namespace("op-example");
  OperatorProcess op({"--namespace", ns});
  const auto applied = kubectl({"apply", "-n", ns, "-f", kExample});
  INFO(applied.err);
  REQUIRE(applied.exit_code == 0);
  REQUIRE(eventually(5s, [&] { return children_exist(ns, "hello-world"); }));

  const std::string uid = jsonpath(ns, "repl/hello-world", "{.metadata.uid}");
  REQUIRE_FALSE(uid.empty());
  for (const std::string object : {"deployment/hello-world", "service/hello-world",
                                   "ingress/hello-world-ingress", "networkpolicy/hello-world"}) {
    INFO(object);
    CHECK(jsonpath(ns, object, "{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}") ==
          "Repl/hello-world");
    CHECK(jsonpath(ns, object, "{.metadata.ownerReferences[0].uid}") == uid);
    CHECK(jsonpath(ns, object, "{.metadata.ownerReferences[0].controller}") == "true");
    CHECK(jsonpath(ns, object, "{.metadata.labels.peetcode\\.com/repl}") == "hello-world");
    CHECK(jsonpath(ns, object, "{.metadata.labels.peetcode\\.com/user}") == "user123");
    CHECK(jsonpath(ns, object, "{.metadata.labels.app\\.kubernetes\\.io/managed-by}") == "repl-operator");
    CHECK(jsonpath(ns, object, "{.metadata.labels.app\\.kubernetes\\.io/name}") == "repl");
  }

  // The Deployment: one replica, pods labelled like the children, the S3 init container and the runner.
  const std::string deploy = "deployment/hello-world";
  CHECK(jsonpath(ns, deploy, "{.spec.replicas}") == "1");
  CHECK(jsonpath(ns, deploy, "{.spec.template.metadata.labels.peetcode\\.com/user}") == "user123");
  CHECK(jsonpath(ns, deploy, "{.spec.selector.matchLabels.peetcode\\.com/repl}") == "hello-world");
  CHECK(jsonpath(ns, deploy, "{.spec.template.spec.initContainers[0].image}") == "amazon/aws-cli:2.17.0");
  CHECK(jsonpath(ns, deploy, "{.spec.template.spec.initContainers[0].env[?(@.name==\"REPL_ID\")].value}") ==
        "hello-world");
  CHECK(jsonpath(ns, deploy, "{.spec.template.spec.initContainers[0].envFrom[0].secretRef.name}") ==
        "aws-credentials");
  CHECK(jsonpath(ns, deploy, "{.spec.template.spec.initContainers[0].volumeMounts[0].mountPath}") ==
        "/workspace");
  CHECK(jsonpath(ns, deploy, "{.spec.template.spec.containers[0].image}") == "100xdevs/runner:latest");
  CHECK(jsonpath(ns, deploy, "{.spec.template.spec.containers[0].ports[*].containerPort}") == "3001 3000");
  CHECK(jsonpath(ns, deploy, "{.spec.template.spec.containers[0].volumeMounts[0].mountPath}") ==
        "/workspace");

  CHECK(jsonpath(ns, "service/hello-world", "{range .spec.ports[*]}{.name}:{.port}>{.targetPort} {end}") ==
        "ws:3001>3001 user:3000>3000 ");
  CHECK(jsonpath(ns, "service/hello-world", "{.spec.selector.peetcode\\.com/repl}") == "hello-world");

  const std::string ingress = "ingress/hello-world-ingress";
  CHECK(jsonpath(ns, ingress, "{.spec.ingressClassName}") == "nginx");
  CHECK(jsonpath(ns, ingress,
                 "{range .spec.rules[*]}{.host}>{.http.paths[0].backend.service.name}:"
                 "{.http.paths[0].backend.service.port.number} {end}") ==
        "hello-world.peetcode.com>hello-world:3001 hello-world.autogpt-cloud.com>hello-world:3000 ");

  // Status: no nodes here, so the Deployment never becomes ready.
  REQUIRE(eventually(5s, [&] { return jsonpath(ns, "repl/hello-world", "{.status.phase}") == "Starting"; }));
  CHECK(jsonpath(ns, "repl/hello-world", "{.status.urls.ide}") == "https://hello-world.peetcode.com");
  CHECK(jsonpath(ns, "repl/hello-world", "{.status.urls.preview}") ==
        "https://hello-world.autogpt-cloud.com");
  CHECK(jsonpath(ns, "repl/hello-world", "{.status.observedGeneration}") == "1");
  CHECK(jsonpath(ns, "repl/hello-world", "{.status.conditions[?(@.type==\"Ready\")].status}") == "False");
}

TEST_CASE("twenty Repls at once each get their children", "[operator]") {
  const std::string ns = fresh_namespace("op-twenty");
  OperatorProcess op({"--namespace", ns});
  const auto applied = kubectl({"apply", "-n", ns, "-f", "-"}, many_repls(20));
  INFO(applied.err);
  REQUIRE(applied.exit_code == 0);
  const auto count = [&](const char* kind) {
    const auto r =
        kubectl({"get", kind, "-n", ns, "-l", "app.kubernetes.io/managed-by=repl-operator", "-o", "name"});
    return std::count(r.out.begin(), r.out.end(), '\n');
  };
  REQUIRE(eventually(
      5s, [&] { return count("deployments") == 20 && count("services") == 20 && count("ingresses") == 20; }));
  for (int i = 0; i < 20; ++i) {
    const std::string id = "repl-" + std::to_string(i);
    INFO(id);
    CHECK(jsonpath(ns, "deployment/" + id, "{.metadata.labels.peetcode\\.com/user}") ==
          "user-" + std::to_string(i));
    CHECK(jsonpath(ns, "ingress/" + id + "-ingress", "{.spec.rules[0].host}") == id + ".peetcode.com");
  }
}

TEST_CASE("applying unchanged Repls again writes nothing", "[operator]") {
  const std::string ns = fresh_namespace("op-idempotent");
  const std::string repls = many_repls(5);
  {
    OperatorProcess op({"--namespace", ns});
    REQUIRE(kubectl({"apply", "-n", ns, "-f", "-"}, repls).exit_code == 0);
    REQUIRE(eventually(5s, [&] {
      return jsonpath(ns, "repls", "{.items[*].status.phase}") ==
             "Starting Starting Starting Starting Starting";
    }));
  }
  const auto before = versions(ns);
  REQUIRE(before.size() == 5 * 4);

  // kubectl apply of the same manifests, then a fresh operator that reconciles every Repl again.
  const auto again = kubectl({"apply", "-n", ns, "-f", "-"}, repls);
  CHECK_THAT(again.out, Catch::Contains("unchanged") && !Catch::Contains("configured"));
  OperatorProcess op({"--namespace", ns});
  REQUIRE(eventually(10s, [&] { return op.count_log("\"msg\":\"reconciled\"") >= 5; }));
  CHECK(versions(ns) == before);
  // Not merely no-op writes: no write request at all, after a full list of everything.
  CHECK(op.count_log("\"msg\":\"status\"") == 0);
  CHECK(op.count_log("\"msg\":\"created\"") == 0);
  CHECK(op.count_log("\"msg\":\"restored\"") == 0);
  for (const char* verb : {"PATCH", "POST", "PUT", "DELETE"}) {
    INFO(verb);
    CHECK(op.metric(std::string("repl_operator_api_requests_total{verb=\"") + verb + "\"}") == 0);
  }
}

TEST_CASE("a suspended Repl keeps its objects with zero replicas, and resumes", "[operator]") {
  const std::string ns = fresh_namespace("op-suspend");
  OperatorProcess op({"--namespace", ns});
  const auto repl = [](const char* suspended) {
    return std::string(
               "apiVersion: peetcode.com/v1alpha1\nkind: Repl\nmetadata:\n  name: sleepy\nspec:\n  userId: "
               "u1\n"
               "  suspended: ") +
           suspended + "\n";
  };
  REQUIRE(kubectl({"apply", "-n", ns, "-f", "-"}, repl("true")).exit_code == 0);
  REQUIRE(eventually(5s, [&] { return jsonpath(ns, "repl/sleepy", "{.status.phase}") == "Suspended"; }));
  CHECK(jsonpath(ns, "deployment/sleepy", "{.spec.replicas}") == "0");
  CHECK(children_exist(ns, "sleepy"));

  REQUIRE(kubectl({"apply", "-n", ns, "-f", "-"}, repl("false")).exit_code == 0);
  REQUIRE(eventually(5s, [&] { return jsonpath(ns, "repl/sleepy", "{.status.phase}") == "Starting"; }));
  CHECK(jsonpath(ns, "deployment/sleepy", "{.spec.replicas}") == "1");
}

TEST_CASE("--namespace restricts the operator to one namespace", "[operator]") {
  const std::string mine = fresh_namespace("op-mine");
  const std::string other = fresh_namespace("op-other");  // no operator watches it
  OperatorProcess op({"--namespace", mine});
  for (const auto& ns : {mine, other}) REQUIRE(kubectl({"apply", "-n", ns, "-f", kExample}).exit_code == 0);
  REQUIRE(eventually(5s, [&] { return children_exist(mine, "hello-world"); }));
  // Give it the same time again to do something wrong in the other namespace.
  std::this_thread::sleep_for(1s);
  const auto others = kubectl({"get", "deployments,services,ingresses", "-n", other, "-o", "name"});
  REQUIRE(others.exit_code == 0);
  CHECK(others.out.empty());
  CHECK(jsonpath(other, "repl/hello-world", "{.status}").empty());
  CHECK(op.count_log(other + "/") == 0);
}

TEST_CASE("the operator exits 0 on SIGTERM", "[operator]") {
  const std::string ns = fresh_namespace("op-sigterm");
  OperatorProcess op({"--namespace", ns});
  REQUIRE(eventually(5s, [&] { return op.count_log("caches synced") == 1; }));
  CHECK(op.stop() == 0);
  CHECK(op.count_log("\"msg\":\"stopped\"") == 1);
}

namespace {

// A loopback port that takes connections and never answers (not even the TLS handshake): an API
// server hung, or a network path that silently drops. Connections are accepted and held open.
class BlackHole {
 public:
  BlackHole() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(listen(fd_, 64) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~BlackHole() {
    for (const int c : held_) close(c);
    close(fd_);
  }
  BlackHole(const BlackHole&) = delete;
  BlackHole& operator=(const BlackHole&) = delete;

  int port() const { return port_; }
  // Accepts what is waiting; returns how many connections were taken so far.
  std::size_t take() {
    for (int c; (c = accept(fd_, nullptr, nullptr)) >= 0;) held_.push_back(c);
    return held_.size();
  }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::vector<int> held_;
};

}  // namespace

TEST_CASE("with the API server unreachable, SIGTERM ends the operator within 2 s", "[operator]") {
  BlackHole hung;
  TempDir dir;
  const std::string kubeconfig = (dir.path / "kubeconfig").string();
  {
    std::ofstream out(kubeconfig);
    out << "apiVersion: v1\nkind: Config\ncurrent-context: hung\n"
        << "clusters:\n- name: hung\n  cluster:\n    server: https://127.0.0.1:" << hung.port()
        << "\n    insecure-skip-tls-verify: true\n"
        << "users:\n- name: hung\n  user:\n    token: not-a-real-token\n"
        << "contexts:\n- name: hung\n  context:\n    cluster: hung\n    user: hung\n    namespace: default\n";
  }
  std::vector<std::string> argv = operator_argv(kubeconfig, {});
  // Every watcher's first LIST hangs; with leader election so does the elector's first Lease read,
  // and the release the shutdown tries.
  std::size_t hung_requests = 7;
  SECTION("without leader election") {}
  SECTION("with leader election") {
    argv.insert(argv.end(), {"--leader-elect", "--leader-election-namespace", "default"});
    hung_requests = 1;
  }
  auto op = OperatorProcess::spawn(argv);
  // Every request it makes is in flight, with nothing coming back.
  REQUIRE(eventually(10s, [&] { return hung.take() >= hung_requests; }));
  const auto t0 = std::chrono::steady_clock::now();
  const int status = op->stop();
  const auto took = std::chrono::steady_clock::now() - t0;
  INFO("shutdown took " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  CHECK(took < 2s * kSlowdown);
  CHECK(status == 0);
  CHECK(op->count_log("\"msg\":\"stopped\"") == 1);
  CHECK(op->count_log("shutdown took too long") == 0);
}
