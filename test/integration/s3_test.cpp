// The init container's script, as the operator renders it from templates/deployment.yaml, run for
// real: Debian's aws CLI against moto's S3 server on loopback (with IAM auth enforced), the
// container's environment resolved the way the kubelet does (values, then the optional envFrom
// Secret), and the workspace volume mounted at a temporary directory. No Kubernetes involved.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/json.hpp"
#include "integration/support.hpp"
#include "repl/children.hpp"

using namespace repl::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

using SecretData = std::map<std::string, std::string>;
using Secrets = std::map<std::string, SecretData>;  // by name, as in the Repl's namespace

const char* kAws = "/usr/bin/aws";  // Debian's awscli

// moto's S3 (and IAM) on a free loopback port. IAM auth is enforced after the first three
// requests, which create the user "init" with an access key allowed s3:* and nothing else.
struct S3Server {
  std::unique_ptr<OperatorProcess> process;
  std::string endpoint;
  std::string key_id;
  std::string secret;

  S3Server() {
    const char* moto = std::getenv("REPL_MOTO_SERVER");
    REQUIRE(moto != nullptr);
    REQUIRE(::setenv("INITIAL_NO_AUTH_ACTION_COUNT", "3", 1) == 0);
    process = OperatorProcess::spawn({moto, "-H", "127.0.0.1", "-p", "0"});
    ::unsetenv("INITIAL_NO_AUTH_ACTION_COUNT");
    REQUIRE(eventually(20s, [&] {
      const std::string log = process->log();
      const auto at = log.find("Running on http://127.0.0.1:");
      if (at == std::string::npos) return false;
      const auto start = at + std::string("Running on ").size();
      endpoint = log.substr(start, log.find_first_of("\r\n \x1b", start) - start);
      return true;
    }));
    auto r = aws({"iam", "create-user", "--user-name", "init"}, "bootstrap", "bootstrap");
    REQUIRE(r.exit_code == 0);
    r = aws({"iam", "put-user-policy", "--user-name", "init", "--policy-name", "s3", "--policy-document",
             R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]})"},
            "bootstrap", "bootstrap");
    REQUIRE(r.exit_code == 0);
    r = aws({"iam", "create-access-key", "--user-name", "init", "--query",
             "AccessKey.[AccessKeyId,SecretAccessKey]", "--output", "text"},
            "bootstrap", "bootstrap");
    REQUIRE(r.exit_code == 0);
    std::istringstream keys(r.out);
    keys >> key_id >> secret;
    REQUIRE(!key_id.empty());
    REQUIRE(!secret.empty());
  }

  CommandResult aws(std::vector<std::string> args, const std::string& id, const std::string& key) const {
    std::vector<std::string> argv = {"env",
                                     "-i",
                                     "PATH=/usr/bin:/bin",
                                     "HOME=/tmp",
                                     "AWS_DEFAULT_REGION=us-east-1",
                                     "AWS_ACCESS_KEY_ID=" + id,
                                     "AWS_SECRET_ACCESS_KEY=" + key,
                                     kAws,
                                     "--endpoint-url",
                                     endpoint};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }
  // As the "init" user.
  CommandResult aws(std::vector<std::string> args) const { return aws(std::move(args), key_id, secret); }
};

// Uploads `files` (path -> content) under s3://bucket/prefix/ through a local directory.
void upload(const S3Server& s3, const std::string& bucket, const std::string& prefix,
            const std::map<std::string, std::string>& files) {
  TempDir dir;
  for (const auto& [path, content] : files) {
    fs::create_directories((dir.path / path).parent_path());
    std::ofstream(dir.path / path) << content;
  }
  const auto r =
      s3.aws({"s3", "cp", "--recursive", dir.path.string(), "s3://" + bucket + "/" + prefix + "/"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
}

// The objects under s3://bucket/prefix/, as keys relative to it.
std::set<std::string> keys_under(const S3Server& s3, const std::string& bucket, const std::string& prefix) {
  const auto r = s3.aws({"s3api", "list-objects-v2", "--bucket", bucket, "--prefix", prefix + "/", "--query",
                         "Contents[].Key", "--output", "text"});
  REQUIRE(r.exit_code == 0);
  std::set<std::string> out;
  std::istringstream words(r.out);
  for (std::string k; words >> k;) {
    if (k != "None") out.insert(k.substr(prefix.size() + 1));
  }
  return out;
}

const rapidjson::Value& init_container(const rapidjson::Value& deployment) {
  const auto* spec = repl::json::member(
      repl::json::member(repl::json::member(repl::json::member(&deployment, "spec"), "template"), "spec"),
      "initContainers");
  REQUIRE(spec != nullptr);
  REQUIRE(spec->IsArray());
  for (const auto& c : spec->GetArray()) {
    if (repl::json::string_at(&c, "name") == "copy-s3-resources") return c;
  }
  FAIL("no init container copy-s3-resources");
  return (*spec)[0];
}

// Runs the rendered init container of `repl` as the kubelet would: its command and args, its env
// (value entries, then envFrom Secrets, optional ones skipped when missing), the workspace volume
// at `workspace` (its restore marker's volume beside it). The container's /tmp is HOME's directory too.
CommandResult run_init(const repl::Repl& repl, const repl::ChildSettings& settings, const Secrets& secrets,
                       const fs::path& workspace, std::map<std::string, std::string> extra_env = {}) {
  auto templates = repl::load_child_templates(std::string(REPL_SOURCE_DIR) + "/templates");
  REQUIRE(templates);
  auto children = repl::desired_children(repl, settings, *templates);
  REQUIRE(children);
  const auto& c = init_container((*children)[0].object);

  // Each volume at a directory of the test's: the workspace where the caller says, the others in
  // one directory removed at exit.
  static const TempDir volumes;
  std::map<std::string, std::string> mounts;
  for (const auto& m : c["volumeMounts"].GetArray()) {
    const std::string name = repl::json::string_at(&m, "name");
    fs::path at = workspace;
    if (name != "workspace-volume") {
      at = volumes.path / (workspace.filename().string() + "-" + name);
      fs::create_directories(at);
    }
    mounts[repl::json::string_at(&m, "mountPath")] = at.string();
  }
  REQUIRE(mounts.contains("/workspace"));

  std::map<std::string, std::string> env;
  for (const auto& e : c["env"].GetArray()) {
    REQUIRE(e.HasMember("value"));  // the template's own env never reads Secrets directly
    std::string value = e["value"].GetString();
    if (const auto m = mounts.find(value); m != mounts.end()) value = m->second;
    env[e["name"].GetString()] = value;
  }
  if (c.HasMember("envFrom")) {
    for (const auto& from : c["envFrom"].GetArray()) {
      const auto* ref = repl::json::member(&from, "secretRef");
      REQUIRE(ref != nullptr);
      const auto found = secrets.find(repl::json::string_at(ref, "name"));
      if (found == secrets.end()) {
        REQUIRE(repl::json::bool_at(ref, "optional"));
        continue;
      }
      for (const auto& [k, v] : found->second) env.emplace(k, v);
    }
  }
  for (const auto& [k, v] : extra_env) env[k] = v;

  std::vector<std::string> argv = {"env", "-i", "PATH=/usr/bin:/bin"};
  for (const auto& [k, v] : env) argv.push_back(k + "=" + v);
  for (const auto& part : c["command"].GetArray()) argv.emplace_back(part.GetString());
  for (const auto& part : c["args"].GetArray()) argv.emplace_back(part.GetString());
  return run(argv);
}

repl::Repl repl_named(const std::string& name, const std::string& language) {
  repl::Repl r;
  r.key = {"users", name};
  r.uid = "11111111-2222-3333-4444-555555555555";
  r.spec.user_id = "u1";
  r.spec.language = language;
  return r;
}

}  // namespace

TEST_CASE("the init container copies a repl's code from S3, seeding it from base/<language>/ the first time",
          "[s3]") {
  // One server and bucket for every section (Catch runs the body once per section).
  static const S3Server& s3 = []() -> const S3Server& {
    static S3Server server;
    REQUIRE(server.aws({"s3", "mb", "s3://repl-code"}).exit_code == 0);
    upload(server, "repl-code", "base/python", {{"main.py", "print('hello')\n"}, {"lib/util.py", "X = 1\n"}});
    upload(server, "repl-code", "code/existing", {{"app.js", "console.log(1)\n"}});
    return server;
  }();

  repl::ChildSettings settings;
  settings.bucket = "repl-code";
  settings.s3_endpoint = s3.endpoint;
  const Secrets secrets = {
      {"aws-credentials", {{"AWS_ACCESS_KEY_ID", s3.key_id}, {"AWS_SECRET_ACCESS_KEY", s3.secret}}}};

  SECTION("a repl with code gets exactly its code") {
    TempDir ws;
    const auto r = run_init(repl_named("existing", "python"), settings, secrets, ws.path);
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(read_file(ws.path / "app.js") == "console.log(1)\n");
    CHECK_FALSE(fs::exists(ws.path / "main.py"));  // not seeded: it has code
    CHECK(r.out.find("copied s3://repl-code/code/existing/") != std::string::npos);
  }

  SECTION("a new repl is seeded in S3 from base/<language>/, then copied") {
    TempDir ws;
    const auto r = run_init(repl_named("fresh", "python"), settings, secrets, ws.path);
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(read_file(ws.path / "main.py") == "print('hello')\n");
    CHECK(read_file(ws.path / "lib" / "util.py") == "X = 1\n");
    CHECK(r.out.find("seeded s3://repl-code/code/fresh/ from s3://repl-code/base/python/") !=
          std::string::npos);
    // The seed is the repl's own code now: the next start copies it without seeding again.
    CHECK(keys_under(s3, "repl-code", "code/fresh") == std::set<std::string>{"lib/util.py", "main.py"});
    TempDir again;
    const auto second = run_init(repl_named("fresh", "python"), settings, secrets, again.path);
    REQUIRE(second.exit_code == 0);
    CHECK(second.out.find("seeded") == std::string::npos);
    CHECK(fs::exists(again.path / "main.py"));
  }

  SECTION("configured prefixes are used for both code and seed") {
    upload(s3, "repl-code", "tenants/a/templates/go", {{"main.go", "package main\n"}});
    settings.code_prefix = "tenants/a/repls";
    settings.base_prefix = "tenants/a/templates";
    TempDir ws;
    const auto r = run_init(repl_named("prefixed", "go"), settings, secrets, ws.path);
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(read_file(ws.path / "main.go") == "package main\n");
    CHECK(keys_under(s3, "repl-code", "tenants/a/repls/prefixed") == std::set<std::string>{"main.go"});
  }

  // Every failure: non-zero exit, nothing in the workspace, one line naming what and where (the
  // line the kubelet keeps as the termination message, which the operator puts in the Repl's status).
  const auto fails_with = [](const CommandResult& r, const std::string& message, const fs::path& ws) {
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("copy-s3-resources: " + message) != std::string::npos);
    CHECK(fs::is_empty(ws));
  };

  SECTION("a wrong bucket fails loudly") {
    settings.bucket = "no-such-bucket";
    TempDir ws;
    fails_with(run_init(repl_named("existing", "python"), settings, secrets, ws.path),
               "cannot list s3://no-such-bucket/code/existing/: An error occurred (NoSuchBucket)", ws.path);
  }

  SECTION("an unknown access key fails loudly") {
    const Secrets wrong = {
        {"aws-credentials",
         {{"AWS_ACCESS_KEY_ID", "AKIAUNKNOWN0000000000"}, {"AWS_SECRET_ACCESS_KEY", "x"}}}};
    TempDir ws;
    fails_with(run_init(repl_named("existing", "python"), settings, wrong, ws.path),
               "cannot list s3://repl-code/code/existing/: An error occurred (InvalidAccessKeyId)", ws.path);
  }

  SECTION("a wrong secret key fails loudly") {
    const Secrets wrong = {
        {"aws-credentials", {{"AWS_ACCESS_KEY_ID", s3.key_id}, {"AWS_SECRET_ACCESS_KEY", "not-the-secret"}}}};
    TempDir ws;
    fails_with(run_init(repl_named("existing", "python"), settings, wrong, ws.path),
               "cannot list s3://repl-code/code/existing/: An error occurred (SignatureDoesNotMatch)",
               ws.path);
  }

  SECTION("a missing credentials Secret fails before any request") {
    TempDir ws;
    fails_with(run_init(repl_named("existing", "python"), settings, Secrets{}, ws.path),
               "no AWS_ACCESS_KEY_ID: the Secret aws-credentials is missing or lacks the key", ws.path);
  }

  SECTION("with ambient credentials no Secret is needed") {
    // As with workload identity: the platform, not a Secret, gives the process its credentials
    // (here through the CLI's shared credentials file, one link of the same default chain).
    settings.s3_credentials = "ambient";
    TempDir ws;
    TempDir home;
    std::ofstream(home.path / "credentials") << "[default]\naws_access_key_id = " << s3.key_id
                                             << "\naws_secret_access_key = " << s3.secret << "\n";
    const auto r = run_init(repl_named("existing", "python"), settings, Secrets{}, ws.path,
                            {{"AWS_SHARED_CREDENTIALS_FILE", (home.path / "credentials").string()}});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(fs::exists(ws.path / "app.js"));
  }

  SECTION("a new repl without a language has nothing to start from") {
    TempDir ws;
    fails_with(run_init(repl_named("nolang", ""), settings, secrets, ws.path),
               "s3://repl-code/code/nolang/ is empty and the Repl names no language to start from", ws.path);
  }

  SECTION("a language without a base fails loudly") {
    TempDir ws;
    fails_with(run_init(repl_named("newrust", "rust"), settings, secrets, ws.path),
               "s3://repl-code/base/rust/ is empty: nothing to start newrust from", ws.path);
    CHECK(keys_under(s3, "repl-code", "code/newrust").empty());
  }
}
