// A sample Repl and the repository's own templates, for tests of what a Repl renders into.
#pragma once

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "repl/children.hpp"
#include "repl/repl.hpp"

namespace repl::test {

inline Repl sample_repl() {
  Repl r;
  r.key = {"team-a", "abc123"};
  r.uid = "6f1c2b4e-0d3a-4c55-9e8f-1a2b3c4d5e6f";
  r.generation = 3;
  r.spec.user_id = "user-42";
  r.spec.language = "python";
  return r;
}

// templates/*.yaml of this repository, parsed and checked as the operator does at start-up (with the
// NetworkPolicy, the default): Deployment, Service, Ingress, NetworkPolicy, in that order.
inline std::vector<ChildTemplate> repo_templates() {
  auto loaded = load_child_templates(std::string(REPL_SOURCE_DIR) + "/templates");
  INFO((loaded ? "" : loaded.error().message));
  REQUIRE(loaded);
  return std::move(*loaded);
}

inline std::vector<Child> render_children(const Repl& repl, const ChildSettings& settings = {}) {
  static const std::vector<ChildTemplate> templates = repo_templates();
  auto children = desired_children(repl, settings, templates);
  INFO((children ? "" : children.error().message));
  REQUIRE(children);
  REQUIRE(children->size() == 4);
  return std::move(*children);
}

}  // namespace repl::test
