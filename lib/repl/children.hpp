// What a Repl should own: its Deployment, Service and Ingress, rendered from the templates with the
// Repl's values, then stamped with what the operator guarantees regardless of the templates
// (namespace, the common labels on the object and on its pod template, the controller
// ownerReference to the Repl). Also the URLs a Repl is reached at.
//
// Pure functions over parsed templates; load_child_templates() reads files. Thread-safe.
#pragma once

#include <rapidjson/document.h>

#include <map>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "kube/resource.hpp"
#include "render/template.hpp"
#include "repl/fingerprint.hpp"
#include "repl/repl.hpp"

namespace repl {

// Operator-wide settings that reach the templates.
struct ChildSettings {
  std::string runner_image = "100xdevs/runner:latest";
  std::string init_image = "amazon/aws-cli:latest";
  std::string bucket = "repl";
  std::string ide_domain = "peetcode.com";
  std::string preview_domain = "autogpt-cloud.com";
  std::string ingress_class = "nginx";
  std::string aws_secret_name = "aws-credentials";
  std::string url_scheme = "https";
};

// The variables a template may use ("{{ name }}").
const std::set<std::string, std::less<>>& template_variables();

struct ChildTemplate {
  kube::Resource resource;  // what the template must render
  render::Template tmpl;
  Shape shape;  // of what it renders, stamped fields included (see fingerprint.hpp)
};

// Loads deployment.yaml, service.yaml and ingress.yaml from `dir`, checks each renders an object
// of the right kind with a name, using sample values, and takes each one's Shape from that render.
Result<std::vector<ChildTemplate>, render::RenderError> load_child_templates(const std::string& dir);

struct Child {
  kube::Resource resource;
  std::string name;
  rapidjson::Document object;
};

struct ReplUrls {
  std::string ide;
  std::string preview;
};
ReplUrls urls_for(const Repl& repl, const ChildSettings& settings);

// The labels every child carries (and a Deployment's pods, through its pod template).
std::map<std::string, std::string> common_labels(const Repl& repl);

// The template values for a Repl.
render::Values template_values(const Repl& repl, const ChildSettings& settings);

// Renders every child of `repl`.
Result<std::vector<Child>, render::RenderError> desired_children(const Repl& repl,
                                                                 const ChildSettings& settings,
                                                                 const std::vector<ChildTemplate>& templates);

}  // namespace repl
