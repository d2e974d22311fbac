// End to end on the simulated cluster (test/cluster/cluster.sh up --nodes N): kube-controller-manager
// with every default controller, kube-scheduler, and kwok's fake nodes playing the kubelet. Nothing
// here writes a status by hand: Deployments get ReplicaSets and pods, pods are scheduled and become
// ready, the garbage collector deletes what a deleted Repl owned.
#include <catch2/catch.hpp>
#include <set>
#include <sstream>

#include "integration/support.hpp"

using namespace repl::test;
using namespace std::chrono_literals;

namespace {

const std::vector<std::string> kJson = {"Content-Type: application/json"};

struct Setup : OperatorAndShim {
  explicit Setup(const std::string& prefix, std::vector<std::string> operator_args = {})
      : OperatorAndShim(prefix, std::move(operator_args)) {}
  HttpResult start(const std::string& repl) const {
    return http("POST", url + "/start", R"({"userId":"u1","replId":")" + repl + R"("})", kJson);
  }
  // `kubectl wait --for=condition=Ready`, as a user would.
  CommandResult wait_ready(const std::string& repl, const std::string& timeout = "60s") const {
    return kubectl({"wait", "-n", ns, "--for=condition=Ready", "repl/" + repl, "--timeout=" + timeout});
  }
  // Names of `kind` objects of one repl (by the label every child and pod carries).
  std::set<std::string> objects(const std::string& kinds, const std::string& repl) const {
    const auto r = kubectl({"get", kinds, "-n", ns, "-l", "peetcode.com/repl=" + repl, "-o", "name"});
    REQUIRE(r.exit_code == 0);
    std::set<std::string> out;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) out.insert(line);
    }
    return out;
  }
  std::size_t running_pods(const std::string& repl) const {
    std::size_t n = 0;
    const auto r = kubectl({"get", "pods", "-n", ns, "-l", "peetcode.com/repl=" + repl, "-o",
                            "jsonpath={range .items[*]}{.status.phase}{\"\\n\"}{end}"});
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) n += line == "Running";
    return n;
  }
};

}  // namespace

TEST_CASE("e2e: /start leads to a Ready Repl whose pod runs, and kubectl wait sees it", "[e2e]") {
  Setup s("e2e-start");
  const auto started = s.start("alpha");
  INFO(started.body);
  REQUIRE(started.status == 201);

  const auto waited = s.wait_ready("alpha");
  INFO(waited.out << waited.err << "\n--- operator ---\n" << s.op->log());
  REQUIRE(waited.exit_code == 0);
  CHECK(jsonpath(s.ns, "repl/alpha", "{.status.phase}") == "Ready");
  CHECK(jsonpath(s.ns, "repl/alpha", "{.status.conditions[?(@.type==\"Ready\")].status}") == "True");
  CHECK(jsonpath(s.ns, "deployment/alpha", "{.status.readyReplicas}") == "1");
  CHECK(s.running_pods("alpha") == 1);
  // The pod went through its init container (the S3 copy) before the runner started.
  const std::string pod = *s.objects("pods", "alpha").begin();
  CHECK(jsonpath(s.ns, pod, "{.status.initContainerStatuses[0].name}") == "copy-s3-resources");
  CHECK(jsonpath(s.ns, pod, "{.status.initContainerStatuses[0].state.terminated.reason}") == "Completed");
  CHECK_FALSE(jsonpath(s.ns, pod, "{.spec.nodeName}").empty());

  // The shim answers with the status, and wait=ready returns at once for a Ready Repl.
  const auto got = http("GET", s.url + "/repls/alpha?wait=ready&timeout=5s");
  CHECK(got.status == 200);
  CHECK(got.body.find("\"phase\":\"Ready\"") != std::string::npos);
  CHECK(got.body.find("\"ready\":true") != std::string::npos);
}

TEST_CASE(
    "e2e: deleting a Repl garbage-collects its Deployment, ReplicaSet, Pod, Service, Ingress, NetworkPolicy",
    "[e2e]") {
  Setup s("e2e-delete");
  REQUIRE(s.start("beta").status == 201);
  REQUIRE(s.wait_ready("beta").exit_code == 0);
  const std::string kinds = "deployments,replicasets,pods,services,ingresses,networkpolicies";
  const auto before = s.objects(kinds, "beta");
  std::set<std::string> kinds_seen;
  for (const auto& o : before) kinds_seen.insert(o.substr(0, o.find('/')));
  CHECK(kinds_seen == std::set<std::string>{"deployment.apps", "replicaset.apps", "pod", "service",
                                            "ingress.networking.k8s.io", "networkpolicy.networking.k8s.io"});

  const auto deleted = http("DELETE", s.url + "/repls/beta?userId=u1");
  REQUIRE(deleted.status == 200);
  CHECK(eventually(60s, [&] { return s.objects(kinds, "beta").empty(); }));
  CHECK(jsonpath(s.ns, "repl/beta", "{.metadata.name}").empty());
}

TEST_CASE("e2e: suspending removes the pod and keeps the rest; resuming brings it back", "[e2e]") {
  Setup s("e2e-suspend");
  REQUIRE(s.start("gamma").status == 201);
  REQUIRE(s.wait_ready("gamma").exit_code == 0);
  const std::string kept = "deployments,services,ingresses,networkpolicies";
  const auto children = s.objects(kept, "gamma");
  REQUIRE(children.size() == 4);

  const auto stopped = http("POST", s.url + "/stop", R"({"userId":"u1","replId":"gamma"})", kJson);
  REQUIRE(stopped.status == 200);
  CHECK(eventually(30s, [&] { return s.objects("pods", "gamma").empty(); }));
  CHECK(eventually(10s, [&] { return jsonpath(s.ns, "repl/gamma", "{.status.phase}") == "Suspended"; }));
  CHECK(s.objects(kept, "gamma") == children);  // same names; and the code stays in S3

  REQUIRE(s.start("gamma").status == 200);  // /start resumes
  const auto waited = s.wait_ready("gamma");
  INFO(waited.err);
  CHECK(waited.exit_code == 0);
  CHECK(s.running_pods("gamma") == 1);
  CHECK(s.objects(kept, "gamma") == children);
}

TEST_CASE("e2e: a pod no node can take makes the Repl Failed with the scheduler's reason", "[e2e]") {
  // Every simulated node has 4 CPUs.
  Setup s("e2e-unschedulable", {"--runner-cpu-request=16", "--runner-cpu-limit=16"});
  REQUIRE(s.start("huge").status == 201);
  REQUIRE(eventually(30s, [&] {
    return jsonpath(s.ns, "repl/huge", "{.status.conditions[?(@.type==\"Ready\")].reason}") ==
           "Unschedulable";
  }));
  CHECK(jsonpath(s.ns, "repl/huge", "{.status.phase}") == "Failed");
  CHECK_THAT(jsonpath(s.ns, "repl/huge", "{.status.conditions[?(@.type==\"Ready\")].message}"),
             Catch::Contains("Insufficient cpu"));
  // kubectl wait for Ready gives up, as it should.
  CHECK(s.wait_ready("huge", "2s").exit_code != 0);
}

TEST_CASE("e2e: a namespace enforcing Pod Security \"restricted\" refuses a root pod and runs a Repl's",
          "[e2e]") {
  Setup s("e2e-restricted");
  // As a user would, before any Repl is created in it.
  const auto labelled =
      kubectl({"label", "namespace", s.ns, "pod-security.kubernetes.io/enforce=restricted"});
  INFO(labelled.err);
  REQUIRE(labelled.exit_code == 0);

  // The label is enforced: a pod secured in every other way but free to run as root (what the
  // templates rendered before runAsNonRoot) is refused, for that reason alone.
  const auto refused = kubectl({"create", "-n", s.ns, "-f", "-"}, R"(apiVersion: v1
kind: Pod
metadata:
  name: may-run-as-root
spec:
  automountServiceAccountToken: false
  securityContext:
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: runner
      image: 100xdevs/runner:latest
      securityContext:
        allowPrivilegeEscalation: false
        capabilities:
          drop: [ALL]
)");
  INFO(refused.out << refused.err);
  CHECK(refused.exit_code != 0);
  CHECK_THAT(refused.err,
             Catch::Contains("violates PodSecurity \"restricted:latest\": runAsNonRoot != true"));
  CHECK(jsonpath(s.ns, "pod/may-run-as-root", "{.metadata.name}").empty());

  REQUIRE(s.start("secure").status == 201);
  const auto waited = s.wait_ready("secure");
  INFO(waited.out << waited.err << "\n--- operator ---\n" << s.op->log());
  REQUIRE(waited.exit_code == 0);
  CHECK(s.running_pods("secure") == 1);
  const std::string pod = *s.objects("pods", "secure").begin();
  CHECK(jsonpath(s.ns, pod, "{.spec.securityContext.runAsNonRoot}") == "true");
  CHECK(jsonpath(s.ns, pod, "{.spec.securityContext.runAsUser}") == "1000");
  CHECK(jsonpath(s.ns, pod, "{.spec.securityContext.runAsGroup}") == "1000");
  CHECK(jsonpath(s.ns, pod, "{.spec.securityContext.fsGroup}") == "1000");
  CHECK(jsonpath(s.ns, pod, "{.status.initContainerStatuses[0].state.terminated.reason}") == "Completed");
}

TEST_CASE(
    "e2e: with --s3-egress-cidr the NetworkPolicy lets the pod reach the endpoint, and keeps letting it",
    "[e2e]") {
  Setup s("e2e-s3-egress", {"--s3-endpoint=http://10.88.0.1:9000", "--s3-egress-cidr=10.88.0.1/32"});
  REQUIRE(s.start("private-s3").status == 201);
  const auto rule = [&] {
    return jsonpath(s.ns, "networkpolicy/private-s3",
                    "{.spec.egress[2].to[0].ipBlock.cidr} {.spec.egress[2].ports[0].protocol} "
                    "{.spec.egress[2].ports[0].port}");
  };
  REQUIRE(eventually(20s, [&] { return rule() == "10.88.0.1/32 TCP 9000"; }));
  CHECK(jsonpath(s.ns, "networkpolicy/private-s3", "{range .spec.egress[*]}rule {end}") == "rule rule rule ");
  // The rule is part of what the operator manages (its Shape was taken with these settings): taken
  // out by hand, it is put back.
  const auto removed = kubectl({"patch", "networkpolicy/private-s3", "-n", s.ns, "--type=json", "-p",
                                R"([{"op": "remove", "path": "/spec/egress/2"}])"});
  INFO(removed.err);
  REQUIRE(removed.exit_code == 0);
  CHECK(eventually(20s, [&] { return rule() == "10.88.0.1/32 TCP 9000"; }));
}
