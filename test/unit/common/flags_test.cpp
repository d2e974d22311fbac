// Flags: command-line forms, environment variables under the command line, errors, and --help.
#include "common/flags.hpp"

#include <catch2/catch.hpp>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace {

using repl::Flags;

struct Options {
  std::string ns = "default";
  int workers = 4;
  bool verbose = false;
  std::string kubeconfig;
};

struct Fixture {
  Options opts;
  Flags flags{"prog", "Does things to Repls."};
  std::map<std::string, std::string> env;
  std::vector<std::string> env_reads;

  Fixture() {
    flags.add("namespace", "REPL_NAMESPACE", &opts.ns, "namespace to watch");
    flags.add("workers", "REPL_WORKERS", &opts.workers, "Repls reconciled in parallel");
    flags.add("verbose", "REPL_VERBOSE", &opts.verbose, "log more");
    flags.add("kubeconfig", "", &opts.kubeconfig, "kubeconfig file");
  }

  repl::Result<Flags::Outcome, std::string> parse(const std::vector<std::string>& args) {
    return flags.parse(args, [this](const char* name) -> std::optional<std::string> {
      env_reads.emplace_back(name);
      const auto it = env.find(name);
      if (it == env.end()) return std::nullopt;
      return it->second;
    });
  }

  // Parses and requires success with Outcome::kRun.
  void run(const std::vector<std::string>& args) {
    auto r = parse(args);
    INFO((r ? "" : r.error()));
    REQUIRE(r);
    CHECK(*r == Flags::Outcome::kRun);
  }

  std::string error(const std::vector<std::string>& args) {
    auto r = parse(args);
    REQUIRE_FALSE(r);
    return r.error();
  }
};

}  // namespace

TEST_CASE("without arguments the defaults stay", "[common][flags]") {
  Fixture f;
  f.run({});
  CHECK(f.opts.ns == "default");
  CHECK(f.opts.workers == 4);
  CHECK_FALSE(f.opts.verbose);
}

TEST_CASE("flags take --name=value and --name value", "[common][flags]") {
  Fixture f;
  SECTION("joined") {
    f.run({"--namespace=team-a", "--workers=8"});
    CHECK(f.opts.ns == "team-a");
    CHECK(f.opts.workers == 8);
  }
  SECTION("separate") {
    f.run({"--namespace", "team-b", "--workers", "-2"});
    CHECK(f.opts.ns == "team-b");
    CHECK(f.opts.workers == -2);
  }
  SECTION("the value may contain '=' or be empty") {
    f.run({"--namespace=a=b"});
    CHECK(f.opts.ns == "a=b");
    f.run({"--namespace="});
    CHECK(f.opts.ns.empty());
  }
  SECTION("a separate value may start with dashes") {
    f.run({"--namespace", "--odd"});
    CHECK(f.opts.ns == "--odd");
  }
  SECTION("the last occurrence wins") {
    f.run({"--namespace=a", "--namespace=b"});
    CHECK(f.opts.ns == "b");
  }
}

TEST_CASE("boolean flags", "[common][flags]") {
  Fixture f;
  f.run({"--verbose"});
  CHECK(f.opts.verbose);
  f.run({"--verbose=false"});
  CHECK_FALSE(f.opts.verbose);
  f.run({"--verbose=1"});
  CHECK(f.opts.verbose);
  f.run({"--verbose=0"});
  CHECK_FALSE(f.opts.verbose);
  f.run({"--verbose=true"});
  CHECK(f.opts.verbose);
  CHECK(f.error({"--verbose=yes"}) == "--verbose: \"yes\" is not true or false");
  // A boolean never takes the next argument as its value.
  CHECK(f.error({"--verbose", "false"}) == "unexpected argument \"false\" (see --help)");
}

TEST_CASE("environment variables are read first, the command line wins", "[common][flags]") {
  Fixture f;
  f.env = {{"REPL_NAMESPACE", "from-env"}, {"REPL_WORKERS", "2"}, {"REPL_VERBOSE", "true"}};
  SECTION("environment only") {
    f.run({});
    CHECK(f.opts.ns == "from-env");
    CHECK(f.opts.workers == 2);
    CHECK(f.opts.verbose);
  }
  SECTION("the flag overrides") {
    f.run({"--namespace=from-flag", "--verbose=false"});
    CHECK(f.opts.ns == "from-flag");
    CHECK(f.opts.workers == 2);
    CHECK_FALSE(f.opts.verbose);
  }
  SECTION("only the declared variables are read") {
    f.run({});
    CHECK(f.env_reads == std::vector<std::string>{"REPL_NAMESPACE", "REPL_WORKERS", "REPL_VERBOSE"});
  }
  SECTION("a bad value names the variable") {
    f.env["REPL_WORKERS"] = "many";
    CHECK(f.error({"--workers=3"}) == "$REPL_WORKERS: \"many\" is not an integer");
  }
}

TEST_CASE("flag errors", "[common][flags]") {
  Fixture f;
  CHECK(f.error({"--nope"}) == "unknown flag --nope (see --help)");
  CHECK(f.error({"--nope=1"}) == "unknown flag --nope (see --help)");
  CHECK(f.error({"--namespace"}) == "flag --namespace needs a value");
  CHECK(f.error({"--workers"}) == "flag --workers needs a value");
  CHECK(f.error({"extra"}) == "unexpected argument \"extra\" (see --help)");
  CHECK(f.error({"-n", "x"}) == "unexpected argument \"-n\" (see --help)");
  for (const std::string bad : {"abc", "8x", "", " 8", "1.5", "99999999999", "+3"}) {
    INFO("--workers=" << bad);
    CHECK(f.error({"--workers=" + bad}) == "--workers: \"" + bad + "\" is not an integer");
  }
  CHECK(f.opts.workers == 4);  // failed parses do not assign
}

TEST_CASE("flags: --help and -h ask for help", "[common][flags]") {
  Fixture f;
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--help"}, {"-h"}, {"--namespace=x", "--help"}, {"--help", "--nope"}}) {
    auto r = f.parse(args);
    REQUIRE(r);
    CHECK(*r == Flags::Outcome::kHelp);
  }
  // Arguments are taken in order: an error before --help wins.
  CHECK(f.error({"--nope", "--help"}) == "unknown flag --nope (see --help)");
}

TEST_CASE("help lists every flag with its help, default and environment variable", "[common][flags]") {
  Fixture f;
  const std::string help = f.flags.help();
  CHECK_THAT(help, Catch::StartsWith("Usage: prog [flags]\n\nDoes things to Repls.\n"));
  CHECK_THAT(help,
             Catch::Contains(
                 "  --namespace VALUE\n      namespace to watch (default \"default\") [$REPL_NAMESPACE]\n"));
  CHECK_THAT(help,
             Catch::Contains(
                 "  --workers VALUE\n      Repls reconciled in parallel (default \"4\") [$REPL_WORKERS]\n"));
  CHECK_THAT(help, Catch::Contains("  --verbose\n      log more (default \"false\") [$REPL_VERBOSE]\n"));
  CHECK_THAT(help, Catch::Contains("  --kubeconfig VALUE\n      kubeconfig file\n"));
  CHECK_THAT(help, Catch::EndsWith("  --help\n      print this help and exit\n"));
}

namespace {

// Replaces a stream's buffer for the lifetime of the object.
class Capture {
 public:
  explicit Capture(std::ostream& stream) : stream_(stream), old_(stream.rdbuf(buf_.rdbuf())) {}
  ~Capture() { stream_.rdbuf(old_); }
  std::string text() const { return buf_.str(); }

 private:
  std::ostream& stream_;
  std::ostringstream buf_;
  std::streambuf* old_;
};

struct MainResult {
  std::optional<int> exit_code;
  std::string out, err;
};

// Runs parse_main on `args` (argv[0] is added) with one string flag read from an unset variable.
MainResult run_main(std::vector<std::string> args, std::string& value) {
  Flags flags("prog", "Does things.");
  flags.add("name", "REPL_UNIT_TEST_NEVER_SET_VARIABLE", &value, "a name");
  args.insert(args.begin(), "prog");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  Capture out(std::cout), err(std::cerr);
  const auto code = flags.parse_main(static_cast<int>(argv.size()), argv.data());
  return {code, out.text(), err.text()};
}

}  // namespace

TEST_CASE("parse_main: run on, or the exit code after --help or a bad flag", "[common][flags]") {
  std::string value = "default";
  SECTION("good flags: carry on") {
    const auto r = run_main({"--name=x"}, value);
    CHECK_FALSE(r.exit_code);
    CHECK(value == "x");
    CHECK(r.out.empty());
    CHECK(r.err.empty());
  }
  SECTION("--help: the help on stdout, exit 0") {
    const auto r = run_main({"--help"}, value);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::StartsWith("Usage: prog [flags]") && Catch::Contains("--name VALUE"));
    CHECK(r.err.empty());
  }
  SECTION("a bad flag: the error on stderr, exit 2") {
    const auto r = run_main({"--nope"}, value);
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK(r.err == "prog: unknown flag --nope (see --help)\n");
  }
}
