// The controller against the real API server: drift repair, status from the children (a test writes
// the Deployment's and Pods' status through their status subresources, standing in for the
// Deployment controller and a kubelet), Events, and churn.
#include <catch2/catch.hpp>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

#include "common/json.hpp"
#include "integration/support.hpp"
#include "kube/client.hpp"
#include "kube/config.hpp"
#include "kube/resource.hpp"

using namespace repl::test;
using namespace std::chrono_literals;

namespace {

std::string repl_yaml(const std::string& name, const std::string& extra_spec = "") {
  return "apiVersion: peetcode.com/v1alpha1\nkind: Repl\nmetadata:\n  name: " + name +
         "\nspec:\n  userId: u-" + name + "\n" + extra_spec;
}

void apply_repl(const std::string& ns, const std::string& name, const std::string& extra_spec = "") {
  const auto r = kubectl({"apply", "-n", ns, "-f", "-"}, repl_yaml(name, extra_spec));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
}

bool has_children(const std::string& ns, const std::string& id) {
  return kubectl({"get", "-n", ns, "deployment/" + id, "service/" + id, "ingress/" + id + "-ingress"})
             .exit_code == 0;
}

std::string phase(const std::string& ns, const std::string& id) {
  return jsonpath(ns, "repl/" + id, "{.status.phase}");
}

std::string ready_condition(const std::string& ns, const std::string& id) {
  return jsonpath(
      ns, "repl/" + id,
      "{.status.conditions[?(@.type==\"Ready\")].status}/{.status.conditions[?(@.type==\"Ready\")].reason}");
}

void patch_status(const std::string& ns, const std::string& object, const std::string& status_json) {
  const auto r =
      kubectl({"patch", "-n", ns, object, "--subresource=status", "--type=merge", "-p", status_json});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
}

// A runner pod as the Deployment's ReplicaSet would create it (labels from the pod template).
void create_runner_pod(const std::string& ns, const std::string& id, const std::string& pod) {
  const std::string yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + pod +
                           "\n  labels:\n    peetcode.com/repl: " + id +
                           "\n    app.kubernetes.io/managed-by: repl-operator\nspec:\n  initContainers:\n"
                           "  - {name: copy-s3-resources, image: amazon/aws-cli}\n  containers:\n"
                           "  - {name: runner, image: 100xdevs/runner:latest}\n";
  const auto r = kubectl({"apply", "-n", ns, "-f", "-"}, yaml);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
}

std::string container_status(const std::string& name, const std::string& image, const std::string& state) {
  return R"({"name":")" + name + R"(","image":")" + image +
         R"(","imageID":"","ready":false,"restartCount":0,"state":)" + state + "}";
}

std::string events_of(const std::string& ns, const std::string& id) {
  return kubectl({"get", "events", "-n", ns, "--field-selector", "involvedObject.name=" + id, "-o",
                  "jsonpath={range .items[*]}{.type} {.reason}: {.message}{\"\\n\"}{end}"})
      .out;
}

}  // namespace

TEST_CASE("a deleted child comes back and changed managed fields are restored; others are left alone",
          "[controller]") {
  const std::string ns = fresh_namespace("drift");
  OperatorProcess op({"--namespace", ns});
  apply_repl(ns, "drifty");
  REQUIRE(eventually(5s, [&] { return has_children(ns, "drifty"); }));

  // The operator's reaction, from just before the change to its log line saying it repaired it (the
  // log's clock is this machine's), must be within 2 s; kubectl's own slowness does not count.
  const auto repaired_within = [&](const std::string& needle, std::chrono::system_clock::time_point since) {
    std::optional<std::chrono::system_clock::time_point> at;
    REQUIRE(eventually(10s, [&] { return (at = op.logged_at(needle, since)).has_value(); }));
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(*at - since);
    INFO(needle << " after " << took.count() << " ms");
    CHECK(took <= 2s);
  };

  SECTION("deleted children") {
    for (const std::string child :
         {"service/drifty", "ingress/drifty-ingress", "networkpolicy/drifty", "deployment/drifty"}) {
      INFO(child);
      const std::string uid = jsonpath(ns, child, "{.metadata.uid}");
      const auto since = std::chrono::system_clock::now();
      REQUIRE(kubectl({"delete", "-n", ns, child, "--wait=false"}).exit_code == 0);
      CHECK(eventually(10s, [&] {
        const std::string now = jsonpath(ns, child, "{.metadata.uid}");
        return !now.empty() && now != uid;
      }));
      const std::string kind = child.substr(0, child.find('/'));
      const std::string name = child.substr(child.find('/') + 1);
      const std::string kind_name = (kind == "service"         ? "Service "
                                     : kind == "ingress"       ? "Ingress "
                                     : kind == "networkpolicy" ? "NetworkPolicy "
                                                               : "Deployment ") +
                                    name;
      repaired_within("\"msg\":\"created\",\"repl\":\"" + ns + "/drifty\",\"child\":\"" + kind_name, since);
    }
  }
  SECTION("managed fields changed by someone else") {
    const auto since = std::chrono::system_clock::now();
    REQUIRE(kubectl({"set", "image", "-n", ns, "deployment/drifty", "runner=evil:1"}).exit_code == 0);
    REQUIRE(kubectl({"patch", "-n", ns, "ingress/drifty-ingress", "--type=json", "-p",
                     R"([{"op":"replace","path":"/spec/rules/0/host","value":"evil.example.com"}])"})
                .exit_code == 0);
    REQUIRE(kubectl({"patch", "-n", ns, "service/drifty", "--type=json", "-p",
                     R"([{"op":"replace","path":"/spec/ports/0/port","value":4444}])"})
                .exit_code == 0);
    CHECK(eventually(10s, [&] {
      return jsonpath(ns, "deployment/drifty", "{.spec.template.spec.containers[0].image}") ==
             "100xdevs/runner:latest";
    }));
    CHECK(eventually(10s, [&] {
      return jsonpath(ns, "ingress/drifty-ingress", "{.spec.rules[0].host}") == "drifty.peetcode.com";
    }));
    CHECK(eventually(10s, [&] { return jsonpath(ns, "service/drifty", "{.spec.ports[0].port}") == "3001"; }));
    CHECK(op.count_log("\"msg\":\"restored\"") >= 3);
    repaired_within("\"child\":\"Deployment drifty\"", since);
    repaired_within("\"child\":\"Ingress drifty-ingress\"", since);
    repaired_within("\"child\":\"Service drifty\"", since);
  }
  SECTION("fields the operator does not manage") {
    REQUIRE(kubectl({"label", "-n", ns, "deployment/drifty", "team=blue"}).exit_code == 0);
    REQUIRE(kubectl({"annotate", "-n", ns, "service/drifty", "note=hands-off"}).exit_code == 0);
    REQUIRE(kubectl({"patch", "-n", ns, "deployment/drifty", "--type=merge", "-p",
                     R"({"spec":{"revisionHistoryLimit":3}})"})
                .exit_code == 0);
    std::this_thread::sleep_for(1s);
    CHECK(jsonpath(ns, "deployment/drifty", "{.metadata.labels.team}") == "blue");
    CHECK(jsonpath(ns, "service/drifty", "{.metadata.annotations.note}") == "hands-off");
    CHECK(jsonpath(ns, "deployment/drifty", "{.spec.revisionHistoryLimit}") == "3");
    CHECK(op.count_log("\"msg\":\"restored\"") == 0);
  }
}

TEST_CASE("the Deployment's readiness drives the phase; suspend keeps the objects at zero replicas",
          "[controller]") {
  const std::string ns = fresh_namespace("phases");
  OperatorProcess op({"--namespace", ns});
  apply_repl(ns, "runner");
  REQUIRE(eventually(5s, [&] { return phase(ns, "runner") == "Starting"; }));
  CHECK(ready_condition(ns, "runner") == "False/DeploymentNotReady");

  // The Deployment controller's report, written as it would write it.
  const std::string generation = jsonpath(ns, "deployment/runner", "{.metadata.generation}");
  patch_status(ns, "deployment/runner",
               R"({"status":{"replicas":1,"readyReplicas":1,"availableReplicas":1,"observedGeneration":)" +
                   generation + "}}");
  REQUIRE(eventually(10s, [&] { return phase(ns, "runner") == "Ready"; }));
  CHECK(ready_condition(ns, "runner") == "True/DeploymentReady");
  const auto wait = kubectl({"wait", "-n", ns, "--for=condition=Ready", "repl/runner", "--timeout=5s"});
  CHECK(wait.exit_code == 0);

  apply_repl(ns, "runner", "  suspended: true\n");
  REQUIRE(eventually(10s, [&] { return phase(ns, "runner") == "Suspended"; }));
  CHECK(jsonpath(ns, "deployment/runner", "{.spec.replicas}") == "0");
  CHECK(has_children(ns, "runner"));
  CHECK(ready_condition(ns, "runner") == "False/Suspended");

  apply_repl(ns, "runner", "  suspended: false\n");
  REQUIRE(eventually(10s, [&] { return jsonpath(ns, "deployment/runner", "{.spec.replicas}") == "1"; }));
  // The new generation is not observed yet: not Ready until the Deployment controller catches up.
  CHECK(eventually(10s, [&] { return phase(ns, "runner") == "Starting"; }));
}

TEST_CASE("a runner pod's failure shows in the Ready condition and as a Warning Event", "[controller]") {
  const std::string ns = fresh_namespace("podfail");
  OperatorProcess op({"--namespace", ns});
  apply_repl(ns, "broken");
  REQUIRE(eventually(5s, [&] { return phase(ns, "broken") == "Starting"; }));
  create_runner_pod(ns, "broken", "broken-abc12");

  SECTION("the image cannot be pulled") {
    patch_status(
        ns, "pod/broken-abc12",
        R"({"status":{"phase":"Pending","initContainerStatuses":[)" +
            container_status("copy-s3-resources", "amazon/aws-cli",
                             R"({"terminated":{"exitCode":0,"reason":"Completed"}})") +
            R"(],"containerStatuses":[)" +
            container_status(
                "runner", "100xdevs/runner:latest",
                R"({"waiting":{"reason":"ImagePullBackOff","message":"Back-off pulling image \"100xdevs/runner:latest\""}})") +
            "]}}");
    REQUIRE(eventually(10s, [&] { return ready_condition(ns, "broken") == "False/ImagePullFailed"; }));
    CHECK(phase(ns, "broken") == "Failed");
    CHECK_THAT(jsonpath(ns, "repl/broken", "{.status.conditions[0].message}"),
               Catch::Contains("Back-off pulling image"));
    CHECK(eventually(
        2s, [&] { return events_of(ns, "broken").find("Warning ImagePullFailed") != std::string::npos; }));
  }
  SECTION("the S3 copy init container failed") {
    patch_status(
        ns, "pod/broken-abc12",
        R"({"status":{"phase":"Pending","initContainerStatuses":[)" +
            container_status(
                "copy-s3-resources", "amazon/aws-cli",
                // The script's own last line, which the kubelet keeps (FallbackToLogsOnError).
                R"({"terminated":{"exitCode":1,"reason":"Error","message":"copy-s3-resources: cannot list s3://repl/code/broken/: An error occurred (NoSuchBucket) when calling the ListObjectsV2 operation: The specified bucket does not exist\n"}})") +
            "]}}");
    REQUIRE(eventually(10s, [&] { return ready_condition(ns, "broken") == "False/InitContainerFailed"; }));
    CHECK_THAT(jsonpath(ns, "repl/broken", "{.status.conditions[0].message}"),
               Catch::Contains("copy-s3-resources exited with code 1") && Catch::Contains("NoSuchBucket"));
  }
  SECTION("the pod cannot be scheduled") {
    patch_status(
        ns, "pod/broken-abc12",
        R"({"status":{"phase":"Pending","conditions":[{"type":"PodScheduled","status":"False","reason":"Unschedulable","message":"0/3 nodes are available: 3 Insufficient cpu."}]}})");
    REQUIRE(eventually(10s, [&] { return ready_condition(ns, "broken") == "False/Unschedulable"; }));
    CHECK_THAT(jsonpath(ns, "repl/broken", "{.status.conditions[0].message}"),
               Catch::Contains("Insufficient cpu"));
  }
  // Once the pod is gone (and the Deployment says nothing), the problem goes with it.
  REQUIRE(kubectl({"delete", "-n", ns, "pod/broken-abc12", "--grace-period=0", "--force"}).exit_code == 0);
  CHECK(eventually(10s, [&] { return phase(ns, "broken") == "Starting"; }));
}

TEST_CASE("Events on the Repl tell which children were created", "[controller]") {
  const std::string ns = fresh_namespace("events");
  OperatorProcess op({"--namespace", ns});
  apply_repl(ns, "told");
  REQUIRE(eventually(5s, [&] { return has_children(ns, "told"); }));
  const auto lines = [&] {
    const std::string e = events_of(ns, "told");
    return std::count(e.begin(), e.end(), '\n');
  };
  REQUIRE(eventually(10s, [&] { return lines() >= 1; }));
  std::this_thread::sleep_for(1s);  // duplicates, if any, would come right after
  const std::string events = events_of(ns, "told");
  // One Event names the four children created together.
  CHECK_THAT(events,
             Catch::Contains("Normal Created: created Deployment told, Service told, Ingress told-ingress, "
                             "NetworkPolicy told"));
  // Exactly one: a reconcile racing the watch does not create (or announce) them twice.
  CHECK(std::count(events.begin(), events.end(), '\n') == 1);
}

TEST_CASE("churn: 200 Repls created and deleted in an interleaved burst end with matching children",
          "[controller]") {
  const std::string ns = fresh_namespace("churn");
  OperatorProcess op({"--namespace", ns, "--workers", "4"});
  auto cfg = repl::kube::load_kubeconfig(admin_kubeconfig());
  REQUIRE(cfg);
  auto transport = repl::kube::make_http_transport(*cfg);
  REQUIRE(transport);
  repl::kube::Client client(*transport);
  const auto repls = repl::kube::repls();
  // Two writers at once: one creates c0..c199, the other deletes every third one shortly after.
  std::thread creator([&] {
    for (int i = 0; i < 200; ++i) {
      rapidjson::Document d;
      const std::string name = "c" + std::to_string(i);
      d.Parse((R"({"apiVersion":"peetcode.com/v1alpha1","kind":"Repl","metadata":{"name":")" + name +
               R"("},"spec":{"userId":"u)" + std::to_string(i % 7) + R"("}})")
                  .c_str());
      (void)client.apply(repl::kube::object_path(repls, ns, name), d, "churn-test");
    }
  });
  std::thread deleter([&] {
    for (int i = 0; i < 200; i += 3) {
      const std::string path = repl::kube::object_path(repls, ns, "c" + std::to_string(i));
      // It may not exist yet: try until the creator has made it, then delete it.
      for (int attempt = 0; attempt < 2000; ++attempt) {
        auto r = client.remove(path);
        if (r || !r.error().is_not_found()) break;
        std::this_thread::sleep_for(5ms);
      }
    }
  });
  creator.join();
  deleter.join();

  const auto names = [&](const char* kind, const char* selector) {
    std::vector<std::string> args = {"get", kind, "-n",
                                     ns,    "-o", "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}"};
    if (selector != nullptr) args.insert(args.end(), {"-l", selector});
    const auto r = kubectl(args);
    REQUIRE(r.exit_code == 0);
    std::set<std::string> out;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) out.insert(line);
    return out;
  };
  const std::set<std::string> final_repls = names("repls", nullptr);
  CHECK(final_repls.size() == 200 - 67);
  const char* managed = "app.kubernetes.io/managed-by=repl-operator";
  CHECK(eventually(60s, [&] {
    return names("deployments", managed) == final_repls && names("services", managed) == final_repls;
  }));
  std::set<std::string> ingresses;
  for (const auto& n : final_repls) ingresses.insert(n + "-ingress");
  CHECK(eventually(10s, [&] { return names("ingresses", managed) == ingresses; }));
  CHECK(eventually(10s, [&] { return names("networkpolicies", managed) == final_repls; }));
}

TEST_CASE("with leader election only one of two operators writes, and the other takes over", "[controller]") {
  const std::string ns = fresh_namespace("leader");
  const std::vector<std::string> args = {"--namespace", ns, "--leader-elect", "--leader-election-namespace",
                                         ns};
  auto first = std::make_unique<OperatorProcess>(args);
  REQUIRE(eventually(10s, [&] { return first->count_log("became leader") == 1; }));
  OperatorProcess second(args);
  REQUIRE(eventually(5s, [&] { return second.count_log("caches synced") == 1; }));
  CHECK_FALSE(jsonpath(ns, "lease/repl-operator", "{.spec.holderIdentity}").empty());

  apply_repl(ns, "one");
  REQUIRE(eventually(5s, [&] { return has_children(ns, "one"); }));
  // The server holds the children before the leader has its answers and logs them.
  CHECK(eventually(5s, [&] { return first->count_log("\"msg\":\"created\"") == 4; }));
  CHECK(second.count_log("became leader") == 0);
  CHECK(second.count_log("\"msg\":\"created\"") == 0);
  CHECK(second.count_log("\"msg\":\"status\"") == 0);

  // The leader dies without releasing: the standby takes over once the lease (15 s) has expired.
  const auto killed = std::chrono::steady_clock::now();
  first->kill_hard();
  REQUIRE(eventually(40s, [&] { return second.count_log("became leader") == 1; }));
  const auto takeover = std::chrono::steady_clock::now() - killed;
  // The lease is 15 s; the standby looks every 2 s with jitter, so it may notice up to ~2 retry
  // periods later (client-go behaves the same).
  INFO("takeover after " << std::chrono::duration_cast<std::chrono::milliseconds>(takeover).count() << " ms");
  CHECK(takeover <= 25s);
  apply_repl(ns, "two");
  CHECK(eventually(5s, [&] { return has_children(ns, "two"); }));

  // A graceful stop releases the Lease: a new standby takes over at once, not after 15 s.
  OperatorProcess third(args);
  REQUIRE(eventually(5s, [&] { return third.count_log("caches synced") == 1; }));
  CHECK(second.stop() == 0);
  CHECK(eventually(10s, [&] { return third.count_log("became leader") == 1; }));
  CHECK(std::stoi("0" + jsonpath(ns, "lease/repl-operator", "{.spec.leaseTransitions}")) >= 2);
}

TEST_CASE("with 100 Repls in steady state the operator sends no writes; metrics and health tell",
          "[controller]") {
  const std::string ns = fresh_namespace("steady");
  OperatorProcess op({"--namespace", ns});
  int status = 0;
  REQUIRE(eventually(5s, [&] {
    op.get("health", "/readyz", &status);
    return status == 200;
  }));
  CHECK_THAT(op.get("health", "/healthz", &status), Catch::StartsWith("ok"));
  CHECK(status == 200);

  std::string many;
  for (int i = 0; i < 100; ++i) many += "---\n" + repl_yaml("s" + std::to_string(i));
  REQUIRE(kubectl({"apply", "-n", ns, "-f", "-"}, many).exit_code == 0);
  const auto starting = [&] {
    const std::string phases = jsonpath(ns, "repls", "{.items[*].status.phase}");
    std::istringstream in(phases);
    int n = 0;
    for (std::string p; in >> p;) n += p == "Starting";
    return n;
  };
  REQUIRE(eventually(30s, [&] { return starting() == 100; }));
  REQUIRE(eventually(10s, [&] {
    return op.metric("repl_operator_workqueue_depth") == 0 &&
           op.metric("repl_operator_workqueue_in_flight") == 0;
  }));

  const auto writes = [&] {
    double n = 0;
    for (const char* verb : {"PATCH", "POST", "PUT", "DELETE"}) {
      n += op.metric(std::string("repl_operator_api_requests_total{verb=\"") + verb + "\"}");
    }
    return n;
  };
  const double writes_before = writes();
  const double reconciles_before = op.metric("repl_operator_reconcile_total");
  // 3 children + 1 status each, and the Events: at least 400 writes to get here.
  CHECK(writes_before >= 400);
  std::this_thread::sleep_for(15s);
  CHECK(writes() == writes_before);
  CHECK(op.metric("repl_operator_reconcile_total") == reconciles_before);

  const std::string text = op.get("metrics", "/metrics");
  for (const char* name :
       {"repl_operator_reconcile_duration_seconds_bucket", "repl_operator_reconcile_errors_total",
        "# TYPE repl_operator_workqueue_adds_total counter",
        "# TYPE repl_operator_workqueue_retries_total counter", "repl_operator_events_dropped_total 0",
        "repl_operator_leader 1", "repl_operator_cached_repls 100"}) {
    INFO(name);
    CHECK_THAT(text, Catch::Contains(name));
  }
  CHECK(op.metric("repl_operator_reconcile_total{result=\"success\"}") >= 100);
  CHECK(op.metric("repl_operator_api_requests_total{verb=\"LIST\",code=\"200\"}") >= 5);
}
