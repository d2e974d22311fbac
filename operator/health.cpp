#include "health.hpp"

#include <memory>

namespace repl {
namespace {

kube::HttpReply text(int status, std::string body) {
  kube::HttpReply r;
  r.status = status;
  r.content_type = "text/plain; charset=utf-8";
  r.body = std::move(body);
  return r;
}

bool passes(const ReadinessCheck& check) {
  if (!check.ready) return false;
  try {
    return check.ready();
  } catch (...) {
    return false;  // a probe answers; it does not take the server down
  }
}

}  // namespace

kube::HttpReply liveness_reply() { return text(200, "ok\n"); }

kube::HttpReply readiness_reply(const std::vector<ReadinessCheck>& checks) {
  std::string failing;
  for (const ReadinessCheck& check : checks) {
    if (passes(check)) continue;
    if (!failing.empty()) failing += ", ";
    failing += check.name;
  }
  if (failing.empty()) return text(200, "ok\n");
  return text(503, "not ready: " + failing + "\n");
}

kube::HttpReply metrics_reply(const metrics::Registry& registry) {
  kube::HttpReply r;
  r.status = 200;
  r.content_type = metrics::kContentType;
  r.body = registry.render();
  return r;
}

kube::Routes health_routes(std::vector<ReadinessCheck> checks) {
  // Shared by the handler copies std::function may make.
  auto shared = std::make_shared<const std::vector<ReadinessCheck>>(std::move(checks));
  kube::Routes routes;
  routes.emplace("/healthz", [] { return liveness_reply(); });
  routes.emplace("/readyz", [shared] { return readiness_reply(*shared); });
  return routes;
}

kube::Routes metrics_routes(const metrics::Registry& registry) {
  kube::Routes routes;
  routes.emplace("/metrics", [&registry] { return metrics_reply(registry); });
  return routes;
}

}  // namespace repl
