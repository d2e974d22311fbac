// Shape::fingerprint: equal for a live object exactly when every field the desired object sets holds
// the desired value; whatever else the server or other managers add does not count.
#include "repl/fingerprint.hpp"

#include <rapidjson/pointer.h>

#include <catch2/catch.hpp>
#include <string>

#include "unit/support/json.hpp"
#include "unit/support/repl_fixtures.hpp"

namespace {

using repl::Shape;

// A small object with each kind of node: nested objects, arrays of objects, an empty object leaf,
// strings, numbers, a boolean and a null.
constexpr const char* kDesired = R"({
  "apiVersion": "v1", "kind": "Service",
  "metadata": {"name": "abc123", "labels": {"app": "repl", "peetcode.com/repl": "abc123"}},
  "spec": {
    "selector": {"peetcode.com/repl": "abc123"},
    "ports": [{"name": "ws", "port": 3001}, {"name": "user", "port": 3000}],
    "volume": {"emptyDir": {}},
    "publishNotReadyAddresses": false,
    "ratio": 0.5,
    "nothing": null
  }
})";

// A copy of `doc` with the value at `pointer` replaced by `value` (JSON text), or removed when
// `value` is empty.
rapidjson::Document edited(const rapidjson::Value& doc, const char* pointer, const std::string& value = "") {
  rapidjson::Document out;
  out.CopyFrom(doc, out.GetAllocator());
  if (value.empty()) {
    REQUIRE(rapidjson::Pointer(pointer).Erase(out));
  } else {
    const auto parsed = repl::test::parse_json(value);
    rapidjson::Value copy(parsed, out.GetAllocator());
    rapidjson::Pointer(pointer).Set(out, copy);
  }
  return out;
}

struct Fixture {
  rapidjson::Document desired = repl::test::parse_json(kDesired);
  Shape shape = Shape::of(desired);

  bool same(const rapidjson::Value& live) const {
    return shape.fingerprint(live) == shape.fingerprint(desired);
  }
  bool same_after(const char* pointer, const std::string& value = "") const {
    return same(edited(desired, pointer, value));
  }
};

}  // namespace

TEST_CASE("a fingerprint is stable and equal for the desired object itself", "[repl][fingerprint]") {
  Fixture f;
  CHECK(f.same(f.desired));
  CHECK(f.same(repl::test::parse_json(kDesired)));  // another parse of the same text
  CHECK(Shape::of(f.desired).fingerprint(f.desired) == f.shape.fingerprint(f.desired));
}

TEST_CASE("fields the server or others add do not change the fingerprint", "[repl][fingerprint]") {
  Fixture f;
  CHECK(f.same_after("/metadata/resourceVersion", R"("12345")"));
  CHECK(f.same_after("/metadata/uid", R"("0b7e...")"));
  CHECK(f.same_after("/metadata/managedFields", R"([{"manager":"repl-operator","operation":"Apply"}])"));
  CHECK(f.same_after("/metadata/labels/extra", R"("someone-else")"));
  CHECK(f.same_after("/metadata/annotations", R"({"note":"x"})"));
  CHECK(f.same_after("/spec/ports/0/protocol", R"("TCP")"));
  CHECK(f.same_after("/spec/clusterIP", R"("10.0.0.12")"));
  CHECK(f.same_after("/spec/volume/emptyDir/medium", R"("")"));
  CHECK(f.same_after("/status", R"({"loadBalancer":{}})"));
}

TEST_CASE("members in another order are the same object", "[repl][fingerprint]") {
  Fixture f;
  auto reordered = repl::test::parse_json(R"({
    "spec": {"nothing": null, "ratio": 0.5, "publishNotReadyAddresses": false, "volume": {"emptyDir": {}},
             "ports": [{"port": 3001, "name": "ws"}, {"port": 3000, "name": "user"}],
             "selector": {"peetcode.com/repl": "abc123"}},
    "metadata": {"labels": {"peetcode.com/repl": "abc123", "app": "repl"}, "name": "abc123"},
    "kind": "Service", "apiVersion": "v1"})");
  CHECK(f.same(reordered));
}

TEST_CASE("a managed value that changed changes the fingerprint", "[repl][fingerprint]") {
  Fixture f;
  CHECK_FALSE(f.same_after("/metadata/name", R"("abc124")"));
  CHECK_FALSE(f.same_after("/metadata/labels/app", R"("not-repl")"));
  CHECK_FALSE(f.same_after("/spec/selector/peetcode.com~1repl", R"("other")"));
  CHECK_FALSE(f.same_after("/spec/ports/1/port", "3002"));
  CHECK_FALSE(f.same_after("/spec/ports/0/name", R"("wss")"));
  CHECK_FALSE(f.same_after("/spec/publishNotReadyAddresses", "true"));
  CHECK_FALSE(f.same_after("/spec/ratio", "0.25"));
  CHECK_FALSE(f.same_after("/spec/nothing", "0"));
}

TEST_CASE("a managed key that is missing changes the fingerprint", "[repl][fingerprint]") {
  Fixture f;
  CHECK_FALSE(f.same_after("/metadata/labels/app"));
  CHECK_FALSE(f.same_after("/spec/selector"));
  CHECK_FALSE(f.same_after("/spec/ports/0/port"));
  CHECK_FALSE(f.same_after("/spec/nothing"));  // absent is not null
  CHECK_FALSE(f.same_after("/spec"));
}

TEST_CASE("an empty string and a missing value are the same (the API server omits empty strings)",
          "[repl][fingerprint]") {
  const auto desired = repl::test::parse_json(
      R"({"env": [{"name": "S3_ENDPOINT", "value": ""}, {"name": "A", "value": "x"}]})");
  const Shape shape = Shape::of(desired);
  const auto stored =
      repl::test::parse_json(R"({"env": [{"name": "S3_ENDPOINT"}, {"name": "A", "value": "x"}]})");
  CHECK(shape.fingerprint(stored) == shape.fingerprint(desired));
  // A value where ours is empty, or an empty one where ours is not, still differs.
  CHECK(shape.fingerprint(repl::test::parse_json(
            R"({"env": [{"name": "S3_ENDPOINT", "value": "http://x"}, {"name": "A", "value": "x"}]})")) !=
        shape.fingerprint(desired));
  CHECK(shape.fingerprint(
            repl::test::parse_json(R"({"env": [{"name": "S3_ENDPOINT"}, {"name": "A", "value": ""}]})")) !=
        shape.fingerprint(desired));
}

TEST_CASE("a value of another type changes the fingerprint", "[repl][fingerprint]") {
  Fixture f;
  CHECK_FALSE(f.same_after("/spec/ports/0/port", R"("3001")"));  // string vs number
  CHECK_FALSE(f.same_after("/metadata/name", R"(["abc123"])"));
  CHECK_FALSE(f.same_after("/spec/publishNotReadyAddresses", R"("false")"));
  CHECK_FALSE(f.same_after("/spec/selector", R"("peetcode.com/repl=abc123")"));        // object expected
  CHECK_FALSE(f.same_after("/spec/ports", R"({"0": {"name": "ws", "port": 3001}})"));  // array expected
  CHECK_FALSE(f.same_after("/spec/ratio", "1"));
  const auto one = repl::test::parse_json(R"({"n": 1})");
  CHECK(Shape::of(one).fingerprint(one) !=
        Shape::of(one).fingerprint(repl::test::parse_json(R"({"n": "1"})")));
}

TEST_CASE("arrays: our elements count, extra elements do not", "[repl][fingerprint]") {
  Fixture f;
  CHECK_FALSE(f.same_after("/spec/ports/1"));  // an element we set is missing
  CHECK_FALSE(f.same_after("/spec/ports", "[]"));
  CHECK_FALSE(f.same_after("/spec/ports",  // swapped
                           R"([{"name": "user", "port": 3000}, {"name": "ws", "port": 3001}])"));
  CHECK(f.same_after("/spec/ports/-", R"({"name": "sidecar", "port": 9090})"));  // someone else's
}

TEST_CASE("an empty object in the desired object is matched by any object", "[repl][fingerprint]") {
  Fixture f;
  CHECK(f.same_after("/spec/volume/emptyDir", "{}"));
  CHECK(f.same_after("/spec/volume/emptyDir", R"({"sizeLimit": "1Gi"})"));
  CHECK_FALSE(f.same_after("/spec/volume/emptyDir"));
  CHECK_FALSE(f.same_after("/spec/volume/emptyDir", "null"));
  CHECK_FALSE(f.same_after("/spec/volume/emptyDir", "[]"));
  CHECK_FALSE(f.same_after("/spec/volume/emptyDir", R"("")"));
}

TEST_CASE("a value moved to another key changes the fingerprint", "[repl][fingerprint]") {
  const auto desired = repl::test::parse_json(R"({"a": "x", "b": "y"})");
  const Shape shape = Shape::of(desired);
  CHECK(shape.fingerprint(desired) != shape.fingerprint(repl::test::parse_json(R"({"a": "y", "b": "x"})")));
  CHECK(shape.fingerprint(desired) != shape.fingerprint(repl::test::parse_json(R"({"a": "xy", "b": ""})")));
}

TEST_CASE("a template's Shape fits every Repl's rendered children", "[repl][fingerprint]") {
  const auto templates = repl::test::repo_templates();
  auto other = repl::test::sample_repl();
  other.key = {"team-b", "zz9"};
  other.spec.image = "custom/runner:2";
  other.spec.suspended = true;
  for (const auto& r : {repl::test::sample_repl(), other}) {
    const auto children = repl::test::render_children(r);
    for (std::size_t i = 0; i < children.size(); ++i) {
      INFO(r.key.str() << " " << children[i].resource.kind);
      const auto& desired = children[i].object;
      CHECK(templates[i].shape.fingerprint(desired) == Shape::of(desired).fingerprint(desired));
    }
  }
  const auto a = repl::test::render_children(repl::test::sample_repl());
  const auto b = repl::test::render_children(other);
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(templates[i].shape.fingerprint(a[i].object) != templates[i].shape.fingerprint(b[i].object));
  }
}

TEST_CASE("a live Deployment as the API server returns it matches the desired one", "[repl][fingerprint]") {
  const auto templates = repl::test::repo_templates();
  const auto children = repl::test::render_children(repl::test::sample_repl());
  const Shape& shape = templates[0].shape;
  const auto& desired = children[0].object;
  REQUIRE(children[0].resource == repl::kube::deployments());
  const auto want = shape.fingerprint(desired);

  // What the server adds: metadata, defaults for the Deployment and its pod template, status.
  auto live = edited(desired, "/metadata/resourceVersion", R"("4711")");
  live = edited(live, "/metadata/generation", "2");
  live = edited(live, "/metadata/uid", R"("0d1f7c44-aaaa-bbbb-cccc-111122223333")");
  live = edited(live, "/metadata/creationTimestamp", R"("2026-01-01T00:00:00Z")");
  live = edited(live, "/metadata/annotations", R"({"deployment.kubernetes.io/revision": "1"})");
  live = edited(live, "/metadata/managedFields",
                R"([{"manager": "repl-operator", "operation": "Apply", "fieldsType": "FieldsV1"}])");
  live = edited(live, "/spec/progressDeadlineSeconds", "600");
  live = edited(live, "/spec/revisionHistoryLimit", "10");
  live = edited(live, "/spec/template/metadata/creationTimestamp", "null");
  live = edited(live, "/spec/template/spec/restartPolicy", R"("Always")");
  live = edited(live, "/spec/template/spec/dnsPolicy", R"("ClusterFirst")");
  live = edited(live, "/spec/template/spec/schedulerName", R"("default-scheduler")");
  live = edited(live, "/spec/template/spec/volumes/0/emptyDir/medium", R"("")");
  live = edited(live, "/spec/template/spec/containers/0/imagePullPolicy", R"("Always")");
  live = edited(live, "/spec/template/spec/containers/0/terminationMessagePath", R"("/dev/termination-log")");
  live = edited(live, "/spec/template/spec/containers/0/terminationMessagePolicy", R"("File")");
  live = edited(live, "/spec/template/spec/containers/0/ports/0/protocol", R"("TCP")");
  live = edited(live, "/spec/template/spec/containers/0/ports/1/protocol", R"("TCP")");
  live = edited(live, "/spec/template/spec/containers/0/readinessProbe/timeoutSeconds", "1");
  live = edited(live, "/spec/template/spec/containers/0/readinessProbe/successThreshold", "1");
  live = edited(live, "/spec/template/spec/initContainers/0/imagePullPolicy", R"("Always")");
  live = edited(live, "/spec/template/spec/initContainers/0/terminationMessagePath",
                R"("/dev/termination-log")");
  live = edited(live, "/spec/template/spec/initContainers/1/imagePullPolicy", R"("Always")");
  live = edited(live, "/spec/template/spec/initContainers/1/terminationMessagePath",
                R"("/dev/termination-log")");
  live = edited(live, "/status", R"({"observedGeneration": 2, "replicas": 1, "readyReplicas": 1,
                                     "conditions": [{"type": "Available", "status": "True"}]})");
  CHECK(shape.fingerprint(live) == want);

  SECTION("someone else's sidecar container does not count") {
    CHECK(shape.fingerprint(edited(live, "/spec/template/spec/containers/-", R"({"name": "istio-proxy"})")) ==
          want);
  }
  SECTION("a changed image does") {
    CHECK(shape.fingerprint(edited(live, "/spec/template/spec/containers/0/image", R"("evil:latest")")) !=
          want);
  }
  SECTION("a changed replica count does") {
    CHECK(shape.fingerprint(edited(live, "/spec/replicas", "3")) != want);
  }
  SECTION("a removed pod template label does") {
    CHECK(shape.fingerprint(edited(live, "/spec/template/metadata/labels/peetcode.com~1repl")) != want);
  }
  SECTION("a changed container port does") {
    CHECK(shape.fingerprint(edited(live, "/spec/template/spec/containers/0/ports/1/containerPort", "8080")) !=
          want);
  }
  SECTION("a removed env var does") {
    CHECK(shape.fingerprint(edited(live, "/spec/template/spec/initContainers/0/env/3")) != want);
  }
  SECTION("a dropped ownerReference does") {
    CHECK(shape.fingerprint(edited(live, "/metadata/ownerReferences", "[]")) != want);
  }
  SECTION("a strategy switched to RollingUpdate does") {
    CHECK(shape.fingerprint(edited(live, "/spec/strategy",
                                   R"({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}})")) !=
          want);
  }
  SECTION("a pod securityContext without the seccomp profile does") {
    CHECK(shape.fingerprint(edited(live, "/spec/template/spec/securityContext", "{}")) != want);
  }
  SECTION("a runner allowed to escalate privileges does") {
    CHECK(shape.fingerprint(edited(
              live, "/spec/template/spec/containers/0/securityContext/allowPrivilegeEscalation", "true")) !=
          want);
  }
  SECTION("a raised runner memory limit does") {
    CHECK(shape.fingerprint(
              edited(live, "/spec/template/spec/containers/0/resources/limits/memory", R"("64Gi")")) != want);
  }
  SECTION("a removed envFrom does") {
    CHECK(shape.fingerprint(edited(live, "/spec/template/spec/initContainers/0/envFrom")) != want);
  }
}

TEST_CASE("a live Ingress with another host does not match", "[repl][fingerprint]") {
  const auto templates = repl::test::repo_templates();
  const auto children = repl::test::render_children(repl::test::sample_repl());
  const Shape& shape = templates[2].shape;
  const auto& desired = children[2].object;
  const auto want = shape.fingerprint(desired);
  CHECK(shape.fingerprint(
            edited(desired, "/status", R"({"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}})")) == want);
  CHECK(shape.fingerprint(edited(desired, "/spec/rules/0/host", R"("abc123.evil.com")")) != want);
  CHECK(shape.fingerprint(
            edited(desired, "/spec/rules/1/http/paths/0/backend/service/port/number", "3001")) != want);
}

// LIST responses of built-in types leave apiVersion and kind out of their items.
TEST_CASE("top-level apiVersion and kind do not count", "[repl][fingerprint]") {
  Fixture f;
  auto listed = edited(edited(f.desired, "/apiVersion"), "/kind");
  CHECK(f.same(listed));
  CHECK(f.same_after("/apiVersion"));
  CHECK(f.same_after("/kind"));
  CHECK(f.same_after("/apiVersion", R"("v2")"));
  CHECK(f.same_after("/kind", R"("Endpoints")"));
  CHECK(f.same_after("/kind", "42"));  // not even its type
  SECTION("everything else still does") {
    CHECK_FALSE(f.same(edited(listed, "/metadata/name", R"("abc124")")));
    CHECK_FALSE(f.same(edited(listed, "/spec/ports/0/port", "3002")));
    CHECK_FALSE(f.same(edited(listed, "/spec")));
  }
  SECTION("a desired object without them has the same shape") {
    CHECK(Shape::of(listed).fingerprint(listed) == f.shape.fingerprint(f.desired));
    CHECK(Shape::of(listed).fingerprint(f.desired) == f.shape.fingerprint(f.desired));
  }
}

TEST_CASE("apiVersion and kind below the top level still count", "[repl][fingerprint]") {
  const auto desired = repl::test::parse_json(R"({
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "x", "ownerReferences": [{"apiVersion": "peetcode.com/v1alpha1", "kind": "Repl",
                                                   "name": "x", "uid": "u"}]},
    "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment"}}})");
  const Shape shape = Shape::of(desired);
  const auto want = shape.fingerprint(desired);
  CHECK(shape.fingerprint(edited(desired, "/metadata/ownerReferences/0/kind", R"("Other")")) != want);
  CHECK(shape.fingerprint(edited(desired, "/metadata/ownerReferences/0/apiVersion", R"("v1")")) != want);
  CHECK(shape.fingerprint(edited(desired, "/metadata/ownerReferences/0/kind")) != want);
  CHECK(shape.fingerprint(edited(desired, "/spec/scaleTargetRef/kind", R"("StatefulSet")")) != want);
  CHECK(shape.fingerprint(edited(desired, "/spec/scaleTargetRef/apiVersion")) != want);
}

TEST_CASE("a listed child of each template matches the desired one", "[repl][fingerprint]") {
  const auto templates = repl::test::repo_templates();
  const auto children = repl::test::render_children(repl::test::sample_repl());
  for (std::size_t i = 0; i < children.size(); ++i) {
    INFO(children[i].resource.kind);
    const auto& desired = children[i].object;
    REQUIRE(desired.HasMember("apiVersion"));
    REQUIRE(desired.HasMember("kind"));
    const auto listed = edited(edited(desired, "/apiVersion"), "/kind");
    CHECK(templates[i].shape.fingerprint(listed) == templates[i].shape.fingerprint(desired));
  }
}
