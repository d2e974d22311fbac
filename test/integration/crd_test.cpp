// The Repl CRD against the real API server: it is Established, and the server itself accepts a
// good Repl and refuses bad ones with its own messages (schema and CEL rules).
#include <catch2/catch.hpp>

#include "integration/support.hpp"

using namespace repl::test;

namespace {

const std::string kCrd = std::string(REPL_SOURCE_DIR) + "/crd/repls.peetcode.com.yaml";

std::string repl_yaml(const std::string& name, const std::string& spec) {
  return "apiVersion: peetcode.com/v1alpha1\nkind: Repl\nmetadata:\n  name: " + name + "\nspec:\n" + spec;
}

}  // namespace

TEST_CASE("the CRD is accepted and Established", "[crd-install]") {
  const auto applied = kubectl({"apply", "-f", kCrd});
  INFO(applied.err);
  REQUIRE(applied.exit_code == 0);
  const auto established =
      kubectl({"wait", "--for=condition=Established", "crd/repls.peetcode.com", "--timeout=60s"});
  INFO(established.err);
  REQUIRE(established.exit_code == 0);
  const auto resources = kubectl({"api-resources", "--api-group=peetcode.com", "--no-headers"});
  REQUIRE(resources.exit_code == 0);
  CHECK_THAT(resources.out, Catch::Contains("repls") && Catch::Contains("rpl") && Catch::Contains("Repl"));
}

TEST_CASE("the API server accepts a good Repl and shows its columns", "[crd]") {
  const std::string ns = fresh_namespace("crd-good");
  const auto r = kubectl({"apply", "-n", ns, "-f", std::string(REPL_SOURCE_DIR) + "/examples/repl.yaml"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto table = kubectl({"get", "repls", "-n", ns});
  REQUIRE(table.exit_code == 0);
  CHECK_THAT(table.out, Catch::StartsWith("NAME") && Catch::Contains("USER") && Catch::Contains("PHASE") &&
                            Catch::Contains("IDE") && Catch::Contains("AGE") && Catch::Contains("user123"));
  // The short name works as a user would type it.
  CHECK(kubectl({"get", "rpl", "hello-world", "-n", ns}).exit_code == 0);
}

TEST_CASE("the API server refuses bad Repls with its own message", "[crd]") {
  const std::string ns = fresh_namespace("crd-bad");
  struct Case {
    const char* what;
    std::string yaml;
    const char* message;  // part of what the API server says
  };
  const std::vector<Case> cases = {
      {"missing userId", repl_yaml("r1", "  language: python\n"), "spec.userId: Required value"},
      {"bad characters in userId", repl_yaml("r2", "  userId: \"bob; rm -rf /\"\n"), "spec.userId"},
      {"userId starting with a dot", repl_yaml("r3", "  userId: .bob\n"), "should match"},
      {"userId too long", repl_yaml("r4", "  userId: " + std::string(64, 'u') + "\n"),
       "may not be more than 63"},
      {"name longer than 63", repl_yaml(std::string(64, 'n'), "  userId: bob\n"), "at most 63 characters"},
      {"name that is not a DNS label", repl_yaml("a.b", "  userId: bob\n"), "must be a DNS label"},
      {"name starting with a digit (it names a Service)", repl_yaml("1abc", "  userId: bob\n"),
       "starting with a letter"},
      {"wrong type for suspended", repl_yaml("r5", "  userId: bob\n  suspended: \"yes\"\n"),
       "spec.suspended: Invalid value: \"string\""},
      {"wrong type for userId", repl_yaml("r6", "  userId: [a, b]\n"),
       "spec.userId: Invalid value: \"array\""},
      {"bad language", repl_yaml("r7", "  userId: bob\n  language: \"../etc\"\n"), "spec.language"},
      {"image with whitespace", repl_yaml("r8", "  userId: bob\n  image: \"a b\"\n"), "spec.image"},
      {"syncIntervalSeconds 0", repl_yaml("r10", "  userId: bob\n  syncIntervalSeconds: 0\n"),
       "should be greater than or equal to 1"},
      {"syncIntervalSeconds above a day", repl_yaml("r11", "  userId: bob\n  syncIntervalSeconds: 86401\n"),
       "should be less than or equal to 86400"},
      {"idleTimeout in days", repl_yaml("r12", "  userId: bob\n  idleTimeout: 2d\n"),
       "spec.idleTimeout: Invalid value: \"2d\": must be 0 or a duration"},
      {"no spec at all", "apiVersion: peetcode.com/v1alpha1\nkind: Repl\nmetadata:\n  name: r9\n",
       "spec: Required value"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    const auto r = kubectl({"apply", "-n", ns, "-f", "-"}, c.yaml);
    INFO(r.err);
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.err, Catch::Contains(c.message));
  }
  // Nothing was created by any of them.
  const auto left = kubectl({"get", "repls", "-n", ns, "-o", "name"});
  REQUIRE(left.exit_code == 0);
  CHECK(left.out.empty());
}

TEST_CASE("userId is immutable and unknown fields are pruned", "[crd]") {
  const std::string ns = fresh_namespace("crd-immutable");
  // kubectl asks for strict field validation: an unknown field is refused by name...
  const auto strict =
      kubectl({"apply", "-n", ns, "-f", "-"}, repl_yaml("mine", "  userId: alice\n  extra: field\n"));
  CHECK(strict.exit_code != 0);
  CHECK_THAT(strict.err, Catch::Contains("unknown field \"spec.extra\""));
  // ...and a client that does not ask gets it pruned, never stored.
  const auto lax = kubectl({"apply", "--validate=false", "-n", ns, "-f", "-"},
                           repl_yaml("mine", "  userId: alice\n  extra: field\n"));
  INFO(lax.err);
  REQUIRE(lax.exit_code == 0);
  CHECK(jsonpath(ns, "repl/mine", "{.spec}") == R"({"userId":"alice"})");

  const auto changed = kubectl({"apply", "-n", ns, "-f", "-"}, repl_yaml("mine", "  userId: mallory\n"));
  INFO(changed.err);
  CHECK(changed.exit_code != 0);
  CHECK_THAT(changed.err, Catch::Contains("userId is immutable"));
  CHECK(jsonpath(ns, "repl/mine", "{.spec.userId}") == "alice");
  // Other fields stay mutable.
  CHECK(kubectl({"apply", "-n", ns, "-f", "-"}, repl_yaml("mine", "  userId: alice\n  suspended: true\n"))
            .exit_code == 0);
  CHECK(jsonpath(ns, "repl/mine", "{.spec.suspended}") == "true");
}
