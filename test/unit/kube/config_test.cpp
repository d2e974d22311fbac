// Cluster configuration: kubeconfig parsing (inline and file credentials, tokens, errors), the
// in-cluster service account, and which source resolve_config picks.
#include "kube/config.hpp"

#include <catch2/catch.hpp>
#include <map>
#include <string>

#include "unit/support/temp_dir.hpp"

namespace {

using repl::kube::ClusterConfig;
using repl::kube::parse_kubeconfig;
using repl::test::TempDir;

std::string base64(const std::string& in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < in.size(); i += 3) {
    const std::size_t n = std::min<std::size_t>(3, in.size() - i);
    std::uint32_t chunk = 0;
    for (std::size_t j = 0; j < 3; ++j)
      chunk = chunk << 8 | (j < n ? static_cast<unsigned char>(in[i + j]) : 0);
    for (std::size_t j = 0; j < 4; ++j) out.push_back(j <= n ? kAlphabet[(chunk >> (18 - 6 * j)) & 63] : '=');
  }
  return out;
}

const std::string kCaPem = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n";
const std::string kCertPem = "-----BEGIN CERTIFICATE-----\nCLIENT!\n-----END CERTIFICATE-----\n";
const std::string kKeyPem = "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n";

// A kubeconfig whose current context "dev" uses cluster "c" and user "u", with the given
// (indented) bodies of the cluster and user entries.
std::string kubeconfig(const std::string& cluster_body, const std::string& user_body,
                       const std::string& context_extra = "") {
  return "apiVersion: v1\nkind: Config\ncurrent-context: dev\n"
         "contexts:\n- name: other\n  context: {cluster: nowhere, user: nobody}\n"
         "- name: dev\n  context:\n    cluster: c\n    user: u\n" +
         context_extra + "clusters:\n- name: c\n  cluster:\n" + cluster_body +
         "users:\n- name: u\n  user:\n" + user_body;
}

const std::string kServer = "    server: https://127.0.0.1:6443/\n";

ClusterConfig parse_ok(const std::string& yaml, const std::string& base_dir = "/nonexistent") {
  auto cfg = parse_kubeconfig(yaml, base_dir);
  INFO((cfg ? "" : cfg.error().message));
  REQUIRE(cfg);
  return std::move(*cfg);
}

std::string parse_error(const std::string& yaml, const std::string& base_dir = "/nonexistent") {
  auto cfg = parse_kubeconfig(yaml, base_dir);
  REQUIRE_FALSE(cfg);
  return cfg.error().message;
}

}  // namespace

TEST_CASE("kubeconfig with inline base64 client certificate, key and CA", "[kube][config]") {
  const auto cfg = parse_ok(kubeconfig(kServer + "    certificate-authority-data: " + base64(kCaPem) + "\n",
                                       "    client-certificate-data: " + base64(kCertPem) +
                                           "\n    client-key-data: " + base64(kKeyPem) + "\n"));
  CHECK(cfg.server == "https://127.0.0.1:6443");  // trailing slash dropped
  CHECK(cfg.ca_pem == kCaPem);
  CHECK(cfg.client_cert_pem == kCertPem);
  CHECK(cfg.client_key_pem == kKeyPem);
  CHECK(cfg.token.empty());
  CHECK(cfg.token_file.empty());
  CHECK_FALSE(cfg.insecure_skip_tls_verify);
  CHECK(cfg.ns.empty());
  CHECK(cfg.source == "kubeconfig context dev");
}

TEST_CASE("inline base64 decodes exactly, whatever the padding, also when wrapped", "[kube][config]") {
  for (const std::string& pem : {std::string("x"), std::string("xy"), std::string("xyz"), kCaPem + "1",
                                 kCaPem + "12", kCaPem + "123", std::string("\0\xff\x80", 3)}) {
    std::string encoded = base64(pem);
    if (encoded.size() > 8) encoded.insert(8, "\n ");  // a folded plain scalar keeps a space
    INFO("base64 " << encoded);
    const auto cfg =
        parse_ok(kubeconfig(kServer + "    certificate-authority-data: \"" + encoded + "\"\n", "    {}\n"));
    CHECK(cfg.ca_pem == pem);
  }
}

TEST_CASE("kubeconfig credentials from files, relative to the kubeconfig's directory", "[kube][config]") {
  TempDir dir;
  dir.write("pki/ca.crt", kCaPem);
  dir.write("pki/client.crt", kCertPem);
  const std::string key_path = dir.write("elsewhere/client.key", kKeyPem);
  const auto cfg =
      parse_ok(kubeconfig(kServer + "    certificate-authority: pki/ca.crt\n",
                          "    client-certificate: pki/client.crt\n    client-key: " + key_path + "\n"),
               dir.path());
  CHECK(cfg.ca_pem == kCaPem);
  CHECK(cfg.client_cert_pem == kCertPem);
  CHECK(cfg.client_key_pem == kKeyPem);
}

TEST_CASE("inline data wins over a file reference", "[kube][config]") {
  const auto cfg = parse_ok(kubeconfig(kServer +
                                           "    certificate-authority: missing.crt\n"
                                           "    certificate-authority-data: " +
                                           base64(kCaPem) + "\n",
                                       "    {}\n"));
  CHECK(cfg.ca_pem == kCaPem);
}

TEST_CASE("kubeconfig bearer tokens", "[kube][config]") {
  SECTION("inline token") {
    const auto cfg = parse_ok(kubeconfig(kServer, "    token: abc.def.ghi\n"));
    CHECK(cfg.token == "abc.def.ghi");
    CHECK(cfg.token_file.empty());
  }
  SECTION("tokenFile is resolved against the base directory but not read") {
    const auto cfg = parse_ok(kubeconfig(kServer, "    tokenFile: secrets/token\n"), "/etc/kube");
    CHECK(cfg.token_file == "/etc/kube/secrets/token");
    CHECK(cfg.token.empty());
  }
  SECTION("an absolute tokenFile stays as it is") {
    CHECK(parse_ok(kubeconfig(kServer, "    tokenFile: /run/token\n"), "/etc/kube").token_file ==
          "/run/token");
  }
}

TEST_CASE("kubeconfig insecure-skip-tls-verify and the context's namespace", "[kube][config]") {
  const auto cfg = parse_ok(kubeconfig(kServer + "    insecure-skip-tls-verify: true\n", "    token: t\n",
                                       "    namespace: team-a\n"));
  CHECK(cfg.insecure_skip_tls_verify);
  CHECK(cfg.ns == "team-a");
}

TEST_CASE("a context without a user is anonymous", "[kube][config]") {
  const auto cfg = parse_ok(
      "current-context: anon\ncontexts:\n- name: anon\n  context: {cluster: c}\n"
      "clusters:\n- name: c\n  cluster: {server: 'http://localhost:8080'}\n");
  CHECK(cfg.server == "http://localhost:8080");
  CHECK(cfg.token.empty());
  CHECK(cfg.client_cert_pem.empty());
}

TEST_CASE("kubeconfig errors say what is wrong", "[kube][config]") {
  const std::string user = "    token: t\n";
  CHECK_THAT(parse_error("clusters: []\n"), Catch::Contains("no current-context"));
  CHECK_THAT(parse_error("current-context: \"\"\n"), Catch::Contains("no current-context"));
  CHECK_THAT(parse_error("current-context: prod\ncontexts: []\n"),
             Catch::Contains("no context named \"prod\""));
  CHECK_THAT(
      parse_error("current-context: dev\ncontexts:\n- name: dev\n  context: {cluster: gone, user: u}\n"),
      Catch::Contains("context \"dev\" names no known cluster \"gone\""));
  std::string unknown_user = kubeconfig(kServer, user);
  unknown_user.replace(unknown_user.find("- name: u"), 9, "- name: v");
  CHECK_THAT(parse_error(unknown_user), Catch::Contains("context \"dev\" names no known user \"u\""));
  CHECK_THAT(parse_error(kubeconfig("    insecure-skip-tls-verify: true\n", user)),
             Catch::Contains("cluster \"c\" has no server"));
  CHECK_THAT(parse_error(kubeconfig(kServer, "    client-certificate-data: " + base64(kCertPem) + "\n")),
             Catch::Contains("user \"u\" has a client certificate without a key"));
  CHECK_THAT(parse_error(kubeconfig(kServer, "    client-key-data: " + base64(kKeyPem) + "\n")),
             Catch::Contains("without a key, or a key without a certificate"));
  CHECK_THAT(parse_error(kubeconfig(kServer + "    certificate-authority-data: not-base64!\n", user)),
             Catch::Contains("certificate-authority-data is not valid base64"));
  CHECK_THAT(parse_error(kubeconfig(kServer + "    certificate-authority-data: \"@@@@\"\n", user)),
             Catch::Contains("certificate-authority-data is not valid base64"));
  CHECK_THAT(parse_error(kubeconfig(kServer, "    exec: {command: aws, args: [eks, get-token]}\n")),
             Catch::Contains("exec or auth-provider plugin, which is not supported"));
  CHECK_THAT(parse_error(kubeconfig(kServer, "    auth-provider: {name: gcp}\n")),
             Catch::Contains("not supported"));
  CHECK_THAT(parse_error("current-context: [unclosed\n"), Catch::StartsWith("kubeconfig is not valid: "));
  CHECK_THAT(parse_error("- a list\n"), Catch::Contains("not a mapping"));
  // Lists and mappings where the other belongs are errors too, not exceptions.
  for (const char* odd : {"current-context: dev\ncontexts: [dev]\n",
                          "current-context: dev\ncontexts:\n- name: dev\n  context: dev\n",
                          "current-context: dev\ncontexts:\n- name: dev\n  context: {cluster: c, user: x}\n"
                          "clusters:\n- name: c\n  cluster: {server: \"https://h\"}\nusers: [x]\n"}) {
    INFO(odd);
    CHECK_FALSE(parse_error(odd).empty());
  }
}

TEST_CASE("an unreadable credential file is an error naming the key and the path", "[kube][config]") {
  TempDir dir;
  const std::string msg = parse_error(
      kubeconfig(kServer, "    client-certificate: nope.crt\n    client-key: nope.key\n"), dir.path());
  CHECK_THAT(msg, Catch::Contains("client-certificate: cannot read " + dir.path() + "/nope.crt"));
}

TEST_CASE("load_kubeconfig reads a file, resolving paths against its directory", "[kube][config]") {
  TempDir dir;
  dir.write("kube/ca.crt", kCaPem);
  const std::string path = dir.write(
      "kube/config", kubeconfig(kServer + "    certificate-authority: ca.crt\n", "    tokenFile: token\n"));
  auto cfg = repl::kube::load_kubeconfig(path);
  REQUIRE(cfg);
  CHECK(cfg->ca_pem == kCaPem);
  CHECK(cfg->token_file == dir.path() + "/kube/token");
  CHECK(cfg->source == "kubeconfig " + path + " (kubeconfig context dev)");

  SECTION("errors name the file") {
    const std::string bad = dir.write("kube/bad", "current-context: x\n");
    auto err = repl::kube::load_kubeconfig(bad);
    REQUIRE_FALSE(err);
    CHECK_THAT(err.error().message,
               Catch::StartsWith(bad + ": ") && Catch::Contains("no context named \"x\""));
    auto missing = repl::kube::load_kubeconfig(dir.path() + "/none");
    REQUIRE_FALSE(missing);
    CHECK_THAT(missing.error().message, Catch::Contains("cannot read " + dir.path() + "/none"));
  }
}

namespace {

repl::Getenv env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// A service-account directory with token, ca.crt and namespace.
void write_service_account(const TempDir& dir) {
  dir.write("token", "sa-token");
  dir.write("ca.crt", kCaPem);
  dir.write("namespace", "team-a\n");
}

}  // namespace

TEST_CASE("in_cluster_config from the service environment and account files", "[kube][config]") {
  TempDir dir;
  write_service_account(dir);
  const auto ipv4 = env_of({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}});
  SECTION("IPv4") {
    auto cfg = repl::kube::in_cluster_config(ipv4, dir.path());
    REQUIRE(cfg);
    CHECK(cfg->server == "https://10.96.0.1:443");
    CHECK(cfg->token_file == dir.path() + "/token");
    CHECK(cfg->token.empty());  // re-read from the file by the client
    CHECK(cfg->ca_pem == kCaPem);
    CHECK(cfg->ns == "team-a");
  }
  SECTION("an IPv6 host is bracketed") {
    auto cfg = repl::kube::in_cluster_config(
        env_of({{"KUBERNETES_SERVICE_HOST", "fd00:10:96::1"}, {"KUBERNETES_SERVICE_PORT", "6443"}}),
        dir.path());
    REQUIRE(cfg);
    CHECK(cfg->server == "https://[fd00:10:96::1]:6443");
  }
  SECTION("the namespace file is optional") {
    std::filesystem::remove(dir.path() + "/namespace");
    auto cfg = repl::kube::in_cluster_config(ipv4, dir.path());
    REQUIRE(cfg);
    CHECK(cfg->ns.empty());
  }
  SECTION("a missing token or CA is an error") {
    std::filesystem::remove(dir.path() + (GENERATE(true, false) ? "/token" : "/ca.crt"));
    auto cfg = repl::kube::in_cluster_config(ipv4, dir.path());
    REQUIRE_FALSE(cfg);
    CHECK_THAT(cfg.error().message, Catch::StartsWith("in-cluster: cannot read " + dir.path()));
  }
}

TEST_CASE("in_cluster_config without the service environment is an error", "[kube][config]") {
  TempDir dir;
  write_service_account(dir);
  for (const auto& vars : std::vector<std::map<std::string, std::string>>{
           {},
           {{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}},
           {{"KUBERNETES_SERVICE_PORT", "443"}},
           {{"KUBERNETES_SERVICE_HOST", ""}, {"KUBERNETES_SERVICE_PORT", "443"}}}) {
    auto cfg = repl::kube::in_cluster_config(env_of(vars), dir.path());
    REQUIRE_FALSE(cfg);
    CHECK_THAT(cfg.error().message, Catch::Contains("KUBERNETES_SERVICE_HOST"));
  }
}

TEST_CASE("resolve_config: the flag, then $KUBECONFIG, then in-cluster", "[kube][config]") {
  TempDir dir;
  const std::string from_flag =
      dir.write("flag.yaml", kubeconfig("    server: https://flag:6443\n", "    token: t\n"));
  const std::string from_env =
      dir.write("env.yaml", kubeconfig("    server: https://env:6443\n", "    token: t\n"));
  const auto env = env_of({{"KUBECONFIG", from_env + ":" + from_flag}});

  SECTION("the flag wins over $KUBECONFIG") {
    auto cfg = repl::kube::resolve_config(from_flag, env);
    REQUIRE(cfg);
    CHECK(cfg->server == "https://flag:6443");
  }
  SECTION("$KUBECONFIG's first file, without a flag") {
    auto cfg = repl::kube::resolve_config("", env);
    REQUIRE(cfg);
    CHECK(cfg->server == "https://env:6443");
    CHECK_THAT(cfg->source, Catch::Contains(from_env));
  }
  SECTION("a broken flag file is an error, not a fallback") {
    auto cfg = repl::kube::resolve_config(dir.path() + "/missing", env);
    REQUIRE_FALSE(cfg);
    CHECK_THAT(cfg.error().message, Catch::Contains("missing"));
  }
  SECTION("neither: the in-cluster configuration") {
    for (const auto& vars : std::vector<std::map<std::string, std::string>>{{}, {{"KUBECONFIG", ""}}}) {
      auto cfg = repl::kube::resolve_config("", env_of(vars));
      REQUIRE_FALSE(cfg);
      CHECK_THAT(cfg.error().message, Catch::Contains("not running in a cluster"));
    }
  }
}
