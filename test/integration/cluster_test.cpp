// Tests that own a control plane (they stop or restart its API server): test/cluster/cluster.sh
// itself, and the operator through outages. CTest runs this group alone (RUN_SERIAL).
#include <catch2/catch.hpp>
#include <filesystem>
#include <thread>

#include "integration/support.hpp"

using namespace repl::test;
using namespace std::chrono_literals;

namespace {

std::string server_of(const std::string& kubeconfig) {
  return run({"kubectl", "--kubeconfig", kubeconfig, "config", "view", "--minify", "-o",
              "jsonpath={.clusters[0].cluster.server}"})
      .out;
}

const std::string kExample = std::string(REPL_SOURCE_DIR) + "/examples/repl.yaml";

bool has_children(const PrivateCluster& c, const std::string& ns, const std::string& id) {
  return c.kubectl({"get", "-n", ns, "deployment/" + id, "service/" + id, "ingress/" + id + "-ingress"})
             .exit_code == 0;
}

std::string repl_yaml(const std::string& name, const std::string& extra = "") {
  return "apiVersion: peetcode.com/v1alpha1\nkind: Repl\nmetadata:\n  name: " + name +
         "\nspec:\n  userId: u1\n" + extra;
}

// Lines of the operator's log that report a failed request to the API server.
int failed_requests(const OperatorProcess& op) {
  return op.count_log("\"list failed\"") + op.count_log("\"watch failed\"") +
         op.count_log("\"watch stream broke\"");
}

}  // namespace

TEST_CASE("a second control plane runs beside the first, survives an API server restart, and goes away",
          "[cluster]") {
  PrivateCluster second;
  const std::string server = server_of(second.kubeconfig());
  CHECK(server != server_of(admin_kubeconfig()));
  REQUIRE(second.kubectl({"create", "configmap", "before-restart", "--from-literal=k=v"}).exit_code == 0);

  // The operator, pointed at the second cluster, through a SIGKILL of its API server.
  // No --namespace: it watches every namespace.
  OperatorProcess op({"--kubeconfig", second.kubeconfig()});
  REQUIRE(eventually(5s, [&] { return op.count_log("caches synced") == 1; }));
  const auto restarted = second.cluster_sh("restart-apiserver");
  INFO(restarted.err);
  REQUIRE(restarted.exit_code == 0);
  CHECK(server_of(second.kubeconfig()) == server);
  CHECK(second.kubectl({"get", "configmap", "before-restart", "-o", "jsonpath={.data.k}"}).out == "v");

  REQUIRE(second.kubectl({"create", "namespace", "other"}).exit_code == 0);
  for (const std::string ns : {"default", "other"}) {
    INFO(ns);
    REQUIRE(second.kubectl({"apply", "-n", ns, "-f", kExample}).exit_code == 0);
    CHECK(eventually(30s, [&] { return has_children(second, ns, "hello-world"); }));
  }
  CHECK(op.stop() == 0);

  // The fixture's cluster was never touched.
  const auto untouched = kubectl({"get", "configmap", "before-restart", "-n", "default"});
  CHECK(untouched.exit_code != 0);
  CHECK_THAT(untouched.err, Catch::Contains("NotFound"));

  const std::string dir = second.dir();
  const auto down = second.down();
  CHECK(down.exit_code == 0);
  CHECK_FALSE(std::filesystem::exists(dir));
  CHECK(run({"curl", "-sk", "--max-time", "2", server + "/readyz"}).exit_code != 0);
}

TEST_CASE("while the API server is down the operator backs off, and it recovers on its own", "[cluster]") {
  PrivateCluster c;
  OperatorProcess op({"--kubeconfig", c.kubeconfig()});
  REQUIRE(eventually(5s, [&] { return op.count_log("caches synced") == 1; }));
  REQUIRE(c.cluster_sh("stop-apiserver").exit_code == 0);
  const int before = failed_requests(op);
  std::this_thread::sleep_for(8s);
  const int during = failed_requests(op) - before;
  // Five watchers, each backing off from 0.8 s doubling (jitter 0.5-1.5): a handful of attempts
  // each in 8 s. A busy loop would make thousands.
  CHECK(during > 0);
  CHECK(during <= 40);
  // The same, as the operator counts its own requests: those that reached no server.
  CHECK(op.metric("repl_operator_api_requests_total{code=\"0\"}") <= 40);
  INFO("failed requests while down: " << during);

  REQUIRE(c.cluster_sh("start-apiserver").exit_code == 0);
  REQUIRE(c.kubectl({"apply", "-f", kExample}).exit_code == 0);
  CHECK(eventually(30s, [&] { return has_children(c, "default", "hello-world"); }));
}

TEST_CASE("an expired resourceVersion makes the operator list again, and it misses nothing", "[cluster]") {
  PrivateCluster c;
  OperatorProcess op({"--kubeconfig", c.kubeconfig()});
  REQUIRE(c.kubectl({"apply", "-f", "-"}, repl_yaml("before")).exit_code == 0);
  REQUIRE(eventually(10s, [&] { return has_children(c, "default", "before"); }));
  const int lists_before = op.count_log("\"msg\":\"listed\",\"watcher\":\"repls\"");

  // Freeze the operator with its watch at version V, restart the API server, change things,
  // compact etcd's history past V, and thaw it: re-watching from V is answered 410 Gone (by the
  // new watch cache, which starts after V, or by etcd, if the server passes the watch on to it
  // while its cache fills).
  op.pause();
  const auto restarted = c.cluster_sh("restart-apiserver");
  INFO(restarted.err);
  REQUIRE(restarted.exit_code == 0);
  REQUIRE(c.kubectl({"apply", "-f", "-"}, repl_yaml("during")).exit_code == 0);
  REQUIRE(c.kubectl({"apply", "-f", "-"}, repl_yaml("before", "  suspended: true\n")).exit_code == 0);
  const auto compacted = c.cluster_sh("compact-etcd");
  INFO(compacted.err);
  REQUIRE(compacted.exit_code == 0);
  op.resume();

  CHECK(eventually(30s, [&] { return has_children(c, "default", "during"); }));
  CHECK(eventually(10s, [&] {
    return c.kubectl({"get", "deployment/before", "-o", "jsonpath={.spec.replicas}"}).out == "0";
  }));
  CHECK(op.count_log("too old resource version") >= 1);
  CHECK(op.metric("repl_operator_watch_relists_total{watcher=\"repls\"}") >= 1);
  CHECK(op.count_log("\"msg\":\"listed\",\"watcher\":\"repls\"") > lists_before);
}
