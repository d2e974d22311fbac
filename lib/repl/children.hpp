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
  std::string init_image = "amazon/aws-cli:2.17.0";
  std::string bucket = "repl";
  std::string s3_endpoint;  // empty: AWS's own endpoints
  // One IPv4 or IPv6 CIDR the NetworkPolicy lets the pod reach on the endpoint's port: a store on a
  // private address, which the policy's public-internet rule excludes. Empty: no such rule.
  std::string s3_egress_cidr;
  std::string s3_region = "us-east-1";
  std::string code_prefix = "code";  // a repl's code is <code_prefix>/<replId>/
  std::string base_prefix = "base";  // a new repl starts from <base_prefix>/<language>/
  // "secret": keys from the Secret aws_secret_name; "ambient": the platform's workload identity.
  std::string s3_credentials = "secret";
  std::string aws_secret_name = "aws-credentials";
  std::string ide_domain = "peetcode.com";
  std::string preview_domain = "autogpt-cloud.com";
  std::string ingress_class = "nginx";
  std::string ingress_namespace = "ingress-nginx";  // the only source the NetworkPolicy admits
  std::string url_scheme = "https";
  std::string runner_cpu_request = "100m";
  std::string runner_cpu_limit = "1";
  std::string runner_memory_request = "256Mi";
  std::string runner_memory_limit = "1Gi";
  std::string runner_ephemeral_storage_request = "256Mi";
  std::string runner_ephemeral_storage_limit = "2Gi";
  // The pod's runAsUser, and its runAsGroup and fsGroup: one uid for the init container and the
  // runner, so what the copy writes into the workspace is the runner's, and the workspace emptyDir
  // group-owned by that gid. 1000 is the `node` user of the platform's seed runner image.
  int runner_uid = 1000;
  int runner_gid = 1000;
  // The sync sidecar pushes the workspace to S3 this often, and once more when the pod stops,
  // within the pod's grace period (which the runner's own stop shares).
  int sync_interval_seconds = 15;
  int termination_grace_period_seconds = 60;
  // The sidecar reports live IDE connections at most this often (the operator's sync check
  // interval: it reads them no more often); 0: it does not look.
  int activity_report_seconds = 60;
};

// Every problem with `settings` (an empty list when they can work): checked at start-up, so a
// typo fails there and not in every apply.
std::vector<std::string> settings_problems(const ChildSettings& settings);

// The variables a template may use ("{{ name }}").
const std::set<std::string, std::less<>>& template_variables();

// The variables that may decide an optional item (`!if`, see render/template.hpp): those of the
// settings only, the same for every Repl, so every Repl's child of one template keeps the one
// structure its Shape was taken from.
const std::set<std::string, std::less<>>& condition_variables();

struct ChildTemplate {
  kube::Resource resource;  // what the template must render
  render::Template tmpl;
  Shape shape;  // of what it renders, stamped fields included (see fingerprint.hpp)
};

// Loads deployment.yaml, service.yaml, ingress.yaml and, with `network_policy`,
// networkpolicy.yaml from `dir`, checks each renders an object of the right kind with a name,
// for a sample Repl with `settings`, and takes each one's Shape from that render. The settings
// decide the `!if` items, so they must be the ones the children are rendered with.
Result<std::vector<ChildTemplate>, render::RenderError> load_child_templates(
    const std::string& dir, bool network_policy = true, const ChildSettings& settings = {});

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

// The template values every Repl shares: those of the operator's settings.
render::Values settings_values(const ChildSettings& settings);

// The template values for a Repl: its own, and settings_values().
render::Values template_values(const Repl& repl, const ChildSettings& settings);

// Renders every child of `repl`.
Result<std::vector<Child>, render::RenderError> desired_children(const Repl& repl,
                                                                 const ChildSettings& settings,
                                                                 const std::vector<ChildTemplate>& templates);

}  // namespace repl
