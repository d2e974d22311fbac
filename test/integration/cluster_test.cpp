// test/cluster/cluster.sh itself: a second control plane beside the fixture's never collides with
// it, restart-apiserver keeps the port and the data, and down removes everything. The operator
// rides through the restart.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "integration/support.hpp"

using namespace repl::test;
using namespace std::chrono_literals;

namespace {

const std::string kClusterSh = std::string(REPL_SOURCE_DIR) + "/test/cluster/cluster.sh";

std::string server_of(const std::string& kubeconfig) {
  return run({"kubectl", "--kubeconfig", kubeconfig, "config", "view", "--minify", "-o",
              "jsonpath={.clusters[0].cluster.server}"})
      .out;
}

// Takes the second cluster down even when a REQUIRE fails.
struct SecondCluster {
  std::string dir;
  std::string kubeconfig;
  ~SecondCluster() {
    if (!dir.empty()) run({kClusterSh, "down", dir});
  }
  CommandResult kubectl(const std::vector<std::string>& args, const std::string& input = "") const {
    std::vector<std::string> argv = {"kubectl", "--kubeconfig", kubeconfig};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, input);
  }
};

}  // namespace

TEST_CASE("a second control plane runs beside the first, survives an API server restart, and goes away",
          "[cluster]") {
  char tmpl[] = "/tmp/repl-second-cluster.XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  SecondCluster second{tmpl, ""};
  const auto up = run({kClusterSh, "up", second.dir});
  INFO(up.err);
  REQUIRE(up.exit_code == 0);
  second.kubeconfig = up.out.substr(0, up.out.find('\n'));
  REQUIRE(second.kubeconfig == second.dir + "/admin.kubeconfig");
  const std::string server = server_of(second.kubeconfig);
  CHECK(server != server_of(admin_kubeconfig()));

  REQUIRE(second.kubectl({"apply", "-f", std::string(REPL_SOURCE_DIR) + "/crd/repls.peetcode.com.yaml"})
              .exit_code == 0);
  REQUIRE(second.kubectl({"wait", "--for=condition=Established", "crd/repls.peetcode.com", "--timeout=60s"})
              .exit_code == 0);
  REQUIRE(second.kubectl({"create", "configmap", "before-restart", "--from-literal=k=v"}).exit_code == 0);

  // The operator, pointed at the second cluster, through a SIGKILL of its API server.
  // No --namespace: it watches every namespace.
  OperatorProcess op({"--kubeconfig", second.kubeconfig});
  REQUIRE(eventually(5s, [&] { return op.count_log("caches synced") == 1; }));
  const auto restarted = run({kClusterSh, "restart-apiserver", second.dir});
  INFO(restarted.err);
  REQUIRE(restarted.exit_code == 0);
  CHECK(server_of(second.kubeconfig) == server);
  CHECK(second.kubectl({"get", "configmap", "before-restart", "-o", "jsonpath={.data.k}"}).out == "v");

  REQUIRE(second.kubectl({"create", "namespace", "other"}).exit_code == 0);
  for (const std::string ns : {"default", "other"}) {
    INFO(ns);
    REQUIRE(second.kubectl({"apply", "-n", ns, "-f", std::string(REPL_SOURCE_DIR) + "/examples/repl.yaml"})
                .exit_code == 0);
    CHECK(eventually(30s, [&] {
      return second
                 .kubectl({"get", "-n", ns, "deployment/hello-world", "service/hello-world",
                           "ingress/hello-world-ingress"})
                 .exit_code == 0;
    }));
  }
  CHECK(op.stop() == 0);

  // The fixture's cluster was never touched.
  const auto untouched = kubectl({"get", "configmap", "before-restart", "-n", "default"});
  CHECK(untouched.exit_code != 0);
  CHECK_THAT(untouched.err, Catch::Contains("NotFound"));

  const auto down = run({kClusterSh, "down", second.dir});
  CHECK(down.exit_code == 0);
  CHECK_FALSE(std::filesystem::exists(second.dir));
  second.dir.clear();
  CHECK(run({"curl", "-sk", "--max-time", "2", server + "/readyz"}).exit_code != 0);
}
