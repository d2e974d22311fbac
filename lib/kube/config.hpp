// Where the API server is and how to authenticate to it: from a kubeconfig file (its current
// context) or from the in-cluster service-account mount.
//
// Credentials are kept as PEM text (files named by a kubeconfig are read when it is loaded, with
// relative paths taken from the kubeconfig's own directory, as kubectl does). A bearer token given
// as a file (in-cluster, or `tokenFile` in a kubeconfig) is not read here: the client re-reads it,
// so a rotated token keeps working.
//
// Pure functions except load_*, which read files; all are thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/env.hpp"
#include "common/result.hpp"

namespace repl::kube {

struct ConfigError {
  std::string message;
};

struct ClusterConfig {
  std::string server;  // https://host:port, no trailing slash
  std::string ca_pem;  // empty: the system trust store
  bool insecure_skip_tls_verify = false;
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string token;       // a bearer token given inline
  std::string token_file;  // a bearer token re-read from this file...
  std::chrono::milliseconds token_refresh{std::chrono::minutes(1)};  // ...this often (as client-go)
  std::string ns;      // the context's namespace (or the pod's, in cluster); may be empty
  std::string source;  // where this came from, for logs ("kubeconfig /x (context admin)")
};

// Parses kubeconfig text. `base_dir` resolves relative file references.
Result<ClusterConfig, ConfigError> parse_kubeconfig(std::string_view yaml, const std::string& base_dir);
Result<ClusterConfig, ConfigError> load_kubeconfig(const std::string& path);

// The in-cluster configuration: KUBERNETES_SERVICE_HOST/PORT from `getenv`, token, CA and
// namespace from `sa_dir` (normally /var/run/secrets/kubernetes.io/serviceaccount).
inline constexpr std::string_view kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";
Result<ClusterConfig, ConfigError> in_cluster_config(const Getenv& getenv, const std::string& sa_dir);

// --kubeconfig flag, then $KUBECONFIG, then in-cluster: the first that is set wins.
Result<ClusterConfig, ConfigError> resolve_config(const std::string& kubeconfig_flag, const Getenv& getenv);

// Reads a whole file; used for credentials and templates.
Result<std::string, ConfigError> read_file(const std::string& path);

}  // namespace repl::kube
