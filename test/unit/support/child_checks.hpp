// Checks shared by the tests of what the sample Repl (repl_fixtures.hpp) renders into: finding a child
// by kind, the metadata the operator stamps on every child, and container env vars.
#pragma once

#include <rapidjson/document.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "repl/children.hpp"
#include "unit/support/json.hpp"

namespace repl::test {

inline const Child& child_of_kind(const std::vector<Child>& children, const std::string& kind) {
  for (const auto& c : children) {
    if (c.resource.kind == kind) return c;
  }
  FAIL("no " << kind << " among the children");
  throw;  // unreachable
}

inline bool has_child_of_kind(const std::vector<Child>& children, const std::string& kind) {
  for (const auto& c : children) {
    if (c.resource.kind == kind) return true;
  }
  return false;
}

// The labels every child carries, for the sample Repl.
inline void check_common_labels(const rapidjson::Value& labels) {
  CHECK(string_at(labels, "/app.kubernetes.io~1name") == "repl");
  CHECK(string_at(labels, "/app.kubernetes.io~1managed-by") == "repl-operator");
  CHECK(string_at(labels, "/app.kubernetes.io~1instance") == "abc123");
  CHECK(string_at(labels, "/peetcode.com~1repl") == "abc123");
  CHECK(string_at(labels, "/peetcode.com~1user") == "user-42");
}

// Namespace, common labels and the controller ownerReference to the sample Repl.
inline void check_stamped_metadata(const rapidjson::Value& object) {
  CHECK(string_at(object, "/metadata/namespace") == "team-a");
  check_common_labels(at(object, "/metadata/labels"));
  const auto& owners = at(object, "/metadata/ownerReferences");
  REQUIRE(owners.IsArray());
  REQUIRE(owners.Size() == 1);
  CHECK(string_at(owners[0], "/apiVersion") == "peetcode.com/v1alpha1");
  CHECK(string_at(owners[0], "/kind") == "Repl");
  CHECK(string_at(owners[0], "/name") == "abc123");
  CHECK(string_at(owners[0], "/uid") == "6f1c2b4e-0d3a-4c55-9e8f-1a2b3c4d5e6f");
  CHECK(at(owners[0], "/controller").IsTrue());
  CHECK(at(owners[0], "/blockOwnerDeletion").IsTrue());
}

// An env var of a container, by name; fails the test when there is none.
inline const rapidjson::Value& env_var(const rapidjson::Value& container, const std::string& name) {
  for (const auto& e : at(container, "/env").GetArray()) {
    if (string_at(e, "/name") == name) return e;
  }
  FAIL("no env var " << name);
  throw;  // unreachable
}

}  // namespace repl::test
