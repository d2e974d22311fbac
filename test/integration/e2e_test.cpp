// End to end on the simulated cluster (test/cluster/cluster.sh up --nodes N): kube-controller-manager
// with every default controller, kube-scheduler, and kwok's fake nodes playing the kubelet. Nothing
// here writes a status by hand: Deployments get ReplicaSets and pods, pods are scheduled and become
// ready, the garbage collector deletes what a deleted Repl owned.
#include <catch2/catch.hpp>
#include <set>
#include <sstream>
#include <thread>

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

TEST_CASE(
    "e2e: idle 5 s suspends a Repl whose pod runs, heartbeats keep it, /start resumes it, TTL 10 s deletes "
    "it "
    "and the garbage collector its children",
    "[e2e]") {
  Setup s("e2e-idle", {"--idle-timeout", "5s", "--ttl-after-suspend", "10s"});
  // The shim writes activity at most once a second here (60 s by default).
  s.shim = start_shim({"--namespace", s.ns, "--activity-interval", "1"});
  std::string addr;
  REQUIRE(eventually(10s, [&] { return !(addr = s.shim->served_addr("")).empty(); }));
  s.url = "http://" + addr;
  REQUIRE(s.start("idle").status == 201);
  REQUIRE(s.wait_ready("idle").exit_code == 0);
  // Twice the idle timeout of heartbeats: still running.
  for (int i = 0; i < 10; ++i) {
    REQUIRE(http("POST", s.url + "/repls/idle/heartbeat", R"({"userId":"u1"})", kJson).status == 200);
    std::this_thread::sleep_for(1s);
  }
  CHECK(jsonpath(s.ns, "repl/idle", "{.status.phase}") == "Ready");
  CHECK(s.running_pods("idle") == 1);
  // Then none: suspended for being idle, once its pod is gone.
  const auto last_beat = std::chrono::steady_clock::now();
  REQUIRE(eventually(30s, [&] { return jsonpath(s.ns, "repl/idle", "{.status.phase}") == "Suspended"; }));
  const double idle_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_beat).count();
  CHECK(idle_s >= 4);  // the last write may be a second older than the last heartbeat
  CHECK(jsonpath(s.ns, "repl/idle", "{.status.conditions[?(@.type==\"Ready\")].reason}") == "Idle");
  CHECK(jsonpath(s.ns, "repl/idle", "{.spec.suspended}") == "true");
  CHECK(s.objects("pods", "idle").empty());
  CHECK(s.objects("deployments,services,ingresses", "idle").size() == 3);
  // /start resumes it.
  REQUIRE(s.start("idle").status == 200);
  REQUIRE(s.wait_ready("idle").exit_code == 0);
  CHECK(jsonpath(s.ns, "repl/idle", "{.spec.suspended}") == "false");
  // Stopped and left: 10 s after its pod is gone it is deleted, and its children with it.
  REQUIRE(http("POST", s.url + "/stop", R"({"userId":"u1","replId":"idle"})", kJson).status == 200);
  REQUIRE(eventually(30s, [&] { return jsonpath(s.ns, "repl/idle", "{.status.phase}") == "Suspended"; }));
  const auto suspended = std::chrono::steady_clock::now();
  const auto gone = kubectl({"wait", "-n", s.ns, "--for=delete", "repl/idle", "--timeout=60s"});
  INFO(gone.err << s.op->log());
  REQUIRE(gone.exit_code == 0);
  CHECK(std::chrono::steady_clock::now() - suspended >= 5s);  // counted from the stop, a little earlier
  CHECK(eventually(30s, [&] { return s.objects("deployments,services,ingresses,pods", "idle").empty(); }));
  CHECK(s.op->metric("repl_operator_idle_suspends_total") == 1);
  CHECK(s.op->metric("repl_operator_ttl_deletions_total") == 1);
  const auto events = kubectl({"get", "events", "-n", s.ns, "--field-selector", "involvedObject.kind=Repl"});
  CHECK_THAT(events.out, Catch::Contains("Idle") && Catch::Contains("Expired"));
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
