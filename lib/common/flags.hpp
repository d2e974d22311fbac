// Command-line flags with environment-variable equivalents, for both binaries.
//
//   Flags f("repl-operator", "Reconciles Repls into Deployments, Services and Ingresses.");
//   f.add("namespace", "REPL_NAMESPACE", &opts.ns, "namespace to watch (default: all)");
//   if (auto exit_code = f.parse_main(argc, argv)) return *exit_code;   // --help, or a bad flag
//
// The environment is read first, then the command line wins.
//
// Accepted forms: --name=value, --name value, and for booleans --name / --name=false.
// Not thread-safe; used once at start-up.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/env.hpp"
#include "common/result.hpp"

namespace repl {

class Flags {
 public:
  enum class Outcome { kRun, kHelp };
  Flags(std::string program, std::string summary);

  // The target's current value is the default shown in --help.
  void add(std::string name, std::string env, std::string* target, std::string help);
  void add(std::string name, std::string env, int* target, std::string help);
  void add(std::string name, std::string env, bool* target, std::string help);

  Result<Outcome, std::string> parse(const std::vector<std::string>& args, const Getenv& getenv);

  // For main(): parses argv and the process environment. Returns the exit code when the program
  // should stop now: 0 after printing --help to stdout, 2 after printing an error to stderr.
  std::optional<int> parse_main(int argc, char** argv);
  std::string help() const;

 private:
  struct Flag {
    std::string name;
    std::string env;
    std::variant<std::string*, int*, bool*> target;
    std::string help;
    std::string default_text;
  };
  static std::optional<std::string> assign(const Flag& flag, const std::string& value,
                                           const std::string& origin);
  const Flag* find(const std::string& name) const;

  std::string program_;
  std::string summary_;
  std::vector<Flag> flags_;
};

}  // namespace repl
