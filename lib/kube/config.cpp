#include "kube/config.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/yaml_load.hpp"

namespace repl::kube {
namespace {

Result<std::string, ConfigError> base64_decode(const std::string& in, const std::string& what) {
  std::string clean;
  for (char c : in) {
    if (c != '\n' && c != '\r' && c != ' ') clean.push_back(c);
  }
  if (clean.size() % 4 != 0) return Fail(ConfigError{what + " is not valid base64"});
  std::string out(clean.size() / 4 * 3, '\0');
  const int n =
      EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(clean.data()), static_cast<int>(clean.size()));
  if (n < 0) return Fail(ConfigError{what + " is not valid base64"});
  // EVP_DecodeBlock counts padding as zero bytes; drop them.
  std::size_t len = static_cast<std::size_t>(n);
  if (!clean.empty() && clean.back() == '=') --len;
  if (clean.size() > 1 && clean[clean.size() - 2] == '=') --len;
  out.resize(len);
  return out;
}

std::string join_path(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path.front() == '/' || base_dir.empty()) return path;
  return base_dir + "/" + path;
}

// Finds the entry named `name` in a kubeconfig list (clusters, users, contexts) and returns its
// inner mapping (the "cluster", "user" or "context" key).
std::optional<YAML::Node> find_named(const YAML::Node& root, const char* list, const char* inner,
                                     const std::string& name) {
  const YAML::Node entries = root[list];
  if (!entries || !entries.IsSequence()) return std::nullopt;
  for (const auto& e : entries) {
    if (e["name"] && e["name"].IsScalar() && e["name"].Scalar() == name) {
      const YAML::Node body = e[inner];
      return body ? body : YAML::Node(YAML::NodeType::Map);
    }
  }
  return std::nullopt;
}

std::string scalar(const YAML::Node& n, const char* key) {
  const YAML::Node v = n[key];
  return v && v.IsScalar() ? v.Scalar() : std::string();
}

// Inline base64 data wins over a file, as in client-go.
Result<std::string, ConfigError> pem_from(const YAML::Node& n, const char* data_key, const char* file_key,
                                          const std::string& base_dir) {
  if (const std::string data = scalar(n, data_key); !data.empty()) return base64_decode(data, data_key);
  if (const std::string file = scalar(n, file_key); !file.empty()) {
    auto text = read_file(join_path(base_dir, file));
    if (!text) return Fail(ConfigError{std::string(file_key) + ": " + text.error().message});
    return text;
  }
  return std::string();
}

}  // namespace

Result<std::string, ConfigError> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(ConfigError{"cannot read " + path});
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace {

Result<ClusterConfig, ConfigError> config_from(const YAML::Node& root, const std::string& base_dir) {
  if (!root.IsMap()) return Fail(ConfigError{"kubeconfig is not a mapping"});
  const std::string context_name = scalar(root, "current-context");
  if (context_name.empty()) return Fail(ConfigError{"kubeconfig has no current-context"});
  const auto context = find_named(root, "contexts", "context", context_name);
  if (!context) return Fail(ConfigError{"kubeconfig has no context named \"" + context_name + "\""});

  const std::string cluster_name = scalar(*context, "cluster");
  const auto cluster = find_named(root, "clusters", "cluster", cluster_name);
  if (!cluster)
    return Fail(
        ConfigError{"context \"" + context_name + "\" names no known cluster \"" + cluster_name + "\""});

  ClusterConfig cfg;
  cfg.source = "kubeconfig context " + context_name;
  cfg.ns = scalar(*context, "namespace");
  cfg.server = scalar(*cluster, "server");
  if (cfg.server.empty()) return Fail(ConfigError{"cluster \"" + cluster_name + "\" has no server"});
  while (!cfg.server.empty() && cfg.server.back() == '/') cfg.server.pop_back();
  const std::string insecure = scalar(*cluster, "insecure-skip-tls-verify");
  cfg.insecure_skip_tls_verify = insecure == "true" || insecure == "True" || insecure == "TRUE";
  auto ca = pem_from(*cluster, "certificate-authority-data", "certificate-authority", base_dir);
  if (!ca) return Fail(ca.error());
  cfg.ca_pem = std::move(*ca);

  // A context without a user is legal (anonymous access).
  if (const std::string user_name = scalar(*context, "user"); !user_name.empty()) {
    const auto user = find_named(root, "users", "user", user_name);
    if (!user)
      return Fail(ConfigError{"context \"" + context_name + "\" names no known user \"" + user_name + "\""});
    auto cert = pem_from(*user, "client-certificate-data", "client-certificate", base_dir);
    if (!cert) return Fail(cert.error());
    auto key = pem_from(*user, "client-key-data", "client-key", base_dir);
    if (!key) return Fail(key.error());
    if (cert->empty() != key->empty()) {
      return Fail(ConfigError{"user \"" + user_name +
                              "\" has a client certificate without a key, or a key without a certificate"});
    }
    cfg.client_cert_pem = std::move(*cert);
    cfg.client_key_pem = std::move(*key);
    cfg.token = scalar(*user, "token");
    if (const std::string f = scalar(*user, "tokenFile"); !f.empty()) cfg.token_file = join_path(base_dir, f);
    if ((*user)["exec"] || (*user)["auth-provider"]) {
      return Fail(ConfigError{"user \"" + user_name +
                              "\" uses an exec or auth-provider plugin, which is not supported; use a token "
                              "or client certificate"});
    }
  }
  return cfg;
}

}  // namespace

Result<ClusterConfig, ConfigError> parse_kubeconfig(std::string_view yaml, const std::string& base_dir) {
  // yaml-cpp reports both syntax errors and subscripts of the wrong node kind (a list where a
  // mapping belongs) by exception; this is where they become values.
  auto docs = load_yaml_documents(yaml);
  if (!docs) return Fail(ConfigError{"kubeconfig is not valid: " + docs.error()});
  try {
    return config_from(docs->empty() ? YAML::Node() : docs->front(), base_dir);
  } catch (const YAML::Exception& e) {
    return Fail(ConfigError{std::string("kubeconfig is not valid: ") + e.what()});
  }
}

Result<ClusterConfig, ConfigError> load_kubeconfig(const std::string& path) {
  auto text = read_file(path);
  if (!text) return Fail(text.error());
  const auto slash = path.rfind('/');
  auto cfg = parse_kubeconfig(*text, slash == std::string::npos ? "." : path.substr(0, slash));
  if (!cfg) return Fail(ConfigError{path + ": " + cfg.error().message});
  cfg->source = "kubeconfig " + path + " (" + cfg->source + ")";
  return cfg;
}

Result<ClusterConfig, ConfigError> in_cluster_config(const Getenv& getenv, const std::string& sa_dir) {
  const auto host = getenv("KUBERNETES_SERVICE_HOST");
  const auto port = getenv("KUBERNETES_SERVICE_PORT");
  if (!host || host->empty() || !port || port->empty()) {
    return Fail(ConfigError{
        "not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set"});
  }
  ClusterConfig cfg;
  cfg.source = "in-cluster service account";
  const bool ipv6 = host->find(':') != std::string::npos;
  cfg.server = "https://" + (ipv6 ? "[" + *host + "]" : *host) + ":" + *port;
  cfg.token_file = sa_dir + "/token";
  if (auto t = read_file(cfg.token_file); !t) return Fail(ConfigError{"in-cluster: " + t.error().message});
  auto ca = read_file(sa_dir + "/ca.crt");
  if (!ca) return Fail(ConfigError{"in-cluster: " + ca.error().message});
  cfg.ca_pem = std::move(*ca);
  if (auto ns = read_file(sa_dir + "/namespace")) cfg.ns = *ns;
  while (!cfg.ns.empty() && std::isspace(static_cast<unsigned char>(cfg.ns.back()))) cfg.ns.pop_back();
  return cfg;
}

Result<ClusterConfig, ConfigError> resolve_config(const std::string& kubeconfig_flag, const Getenv& getenv) {
  if (!kubeconfig_flag.empty()) return load_kubeconfig(kubeconfig_flag);
  if (const auto env = getenv("KUBECONFIG"); env && !env->empty()) {
    // $KUBECONFIG may list several files; kubectl merges them, we take the first one named.
    std::size_t begin = env->find_first_not_of(':');
    if (begin != std::string::npos) return load_kubeconfig(env->substr(begin, env->find(':', begin) - begin));
  }
  return in_cluster_config(getenv, std::string(kServiceAccountDir));
}

}  // namespace repl::kube
