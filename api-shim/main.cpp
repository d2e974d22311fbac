// repl-shim: the frontend's door (POST /start and friends). This first version only parses its
// flags and documents them; the HTTP endpoints arrive with the API shim issue.
#include <iostream>

#include "common/flags.hpp"

int main(int argc, char** argv) {
  using namespace repl;
  std::string listen = ":3002";
  std::string ns = "default";
  std::string kubeconfig;
  std::string token_file;
  std::string cors_origins;
  std::string default_user;
  int max_body_bytes = 16 * 1024;
  std::string log_level = "info";

  Flags flags(
      "repl-shim",
      "HTTP front for the Repl API: turns POST /start {userId, replId} into a Repl object and answers\n"
      "with its status and URLs. (Not serving yet: this build only parses its flags.)");
  flags.add("listen", "SHIM_LISTEN", &listen, "address to listen on, host:port");
  flags.add("namespace", "SHIM_NAMESPACE", &ns, "namespace the Repls are created in");
  flags.add("kubeconfig", "", &kubeconfig, "kubeconfig file; without it $KUBECONFIG, then in-cluster config");
  flags.add("auth-token-file", "SHIM_AUTH_TOKEN_FILE", &token_file,
            "file holding the bearer token clients must send; auth is off when empty");
  flags.add("cors-origins", "SHIM_CORS_ORIGINS", &cors_origins, "comma-separated origins allowed by CORS");
  flags.add("default-user", "SHIM_DEFAULT_USER", &default_user,
            "userId for requests that send only a replId");
  flags.add("max-body-bytes", "SHIM_MAX_BODY_BYTES", &max_body_bytes, "largest request body accepted");
  flags.add("log-level", "SHIM_LOG_LEVEL", &log_level, "debug, info, warn or error");

  if (auto exit_code = flags.parse_main(argc, argv)) return *exit_code;
  std::cerr << "repl-shim: the HTTP endpoints are not implemented yet; see --help\n";
  return 1;
}
