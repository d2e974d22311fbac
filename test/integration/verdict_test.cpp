// The verdict table: for each (replId, userId) pair, the shim's own validation (lib/repl/validation)
// and the API server enforcing the CRD (crd/repls.peetcode.com.yaml) must give the same verdict.
// The shim gets the pair as POST /start; the API server gets a Repl with that name and userId from
// `kubectl apply --dry-run=server` (validated and admitted, never stored) in a namespace of its own.
// A shim refusal must come from the shim itself (400 naming the field), not be the API server's
// refusal relayed: otherwise a too-lax shim would pass unnoticed.
#include <catch2/catch.hpp>
#include <cstdio>
#include <set>
#include <sstream>

#include "integration/support.hpp"

using namespace repl::test;
using namespace std::chrono_literals;

namespace {

// `s` as a JSON string literal: quotes, backslashes and control characters escaped; other bytes
// (UTF-8 included) as they are.
std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  return out + "\"";
}

struct Verdict {
  std::string repl_id;
  std::string user_id;
  bool valid;  // what the rules say; both sides must agree with it and with each other
};

}  // namespace

TEST_CASE("the shim and the API server give the same verdict on every replId and userId", "[browser]") {
  const std::string a63(63, 'a'), u63(63, 'u');
  // Valid replIds are all different: the shim really creates those Repls.
  const std::vector<Verdict> table = {
      // Accepted.
      {"alpha", "alice", true},
      {"a", "u", true},
      {"a-b-c", "user-1", true},
      {"a--b", "7", true},
      {"x1", "U_s.e-r", true},
      {"z" + std::string(62, '9'), "bob", true},  // 63 characters
      {"long-user", u63, true},
      {"mixed-case-user", "AbC.d_E-f", true},
      // replId refused.
      {"b" + a63, "alice", false},  // 64 characters
      {"Alpha", "alice", false},
      {"a.b", "alice", false},  // a valid subdomain, which the API server allows by itself
      {"a_b", "alice", false},
      {"1abc", "alice", false},  // DNS-1123 would allow it; DNS-1035 (the Service name) does not
      {"-abc", "alice", false},
      {"abc-", "alice", false},
      {"caf\u00e9", "alice", false},
      {"\uff41\uff42\uff43", "alice", false},  // full-width "abc"
      {"a b", "alice", false},
      {"a\"b", "alice", false},
      {"a'b", "alice", false},
      {"$(x)", "alice", false},
      {"a: {", "alice", false},
      {"abc\n", "alice", false},
      {"a\tb", "alice", false},
      {std::string("a\0b", 3), "alice", false},
      {"a?b", "alice", false},
      {"a%2fb", "alice", false},
      // kubectl refuses these before sending the Repl (its GET of the current object fails): a
      // refusal all the same.
      {"", "alice", false},
      {"a/b", "alice", false},
      {"..", "alice", false},
      // userId refused.
      {"uid-empty", "", false},
      {"uid-long", "v" + u63, false},  // 64 characters
      {"uid-lead-underscore", "_user", false},
      {"uid-trail-underscore", "user_", false},
      {"uid-lead-dot", ".user", false},
      {"uid-trail-dot", "user.", false},
      {"uid-lead-dash", "-user", false},
      {"uid-trail-dash", "user-", false},
      {"uid-only-dash", "-", false},
      {"uid-space", "us er", false},
      {"uid-unicode", "us\u00e9r", false},
      {"uid-newline", "user\n", false},
      {"uid-shell", "$(x)", false},
      {"uid-yaml", "a: {", false},
      {"uid-quote", "u\"q", false},
      {"uid-backslash", "u\\q", false},
      {"uid-slash", "u/q", false},
      {"uid-colon", "u:q", false},
      // Both refused.
      {"BAD", "", false},
  };
  REQUIRE(table.size() >= 25);

  const std::string shim_ns = fresh_namespace("verdict-shim");
  const std::string dry_ns = fresh_namespace("verdict-dry");
  auto shim = start_shim({"--namespace", shim_ns});
  std::string addr;
  REQUIRE(eventually(30s, [&] { return !(addr = shim->served_addr("")).empty(); }));
  const std::string url = "http://" + addr;

  std::set<std::string> created;
  for (const auto& v : table) {
    const std::string repl = json_string(v.repl_id), user = json_string(v.user_id);
    INFO("replId " << repl << ", userId " << user << ": expected " << (v.valid ? "accepted" : "refused"));

    const auto shim_reply =
        http("POST", url + "/start", R"({"userId":)" + user + R"(,"replId":)" + repl + "}",
             {"Content-Type: application/json"});
    INFO("shim: " << shim_reply.status << " " << shim_reply.body);
    const bool shim_accepted = shim_reply.status == 201 || shim_reply.status == 200;
    // Anything else than accepted or "your input is wrong" is a broken test, not a verdict.
    REQUIRE((shim_accepted || shim_reply.status == 400));
    if (!shim_accepted) {
      CHECK_THAT(shim_reply.body,
                 Catch::Contains(R"("field":"replId")") || Catch::Contains(R"("field":"userId")"));
    } else {
      created.insert(v.repl_id);
    }

    const std::string manifest =
        R"({"apiVersion":"peetcode.com/v1alpha1","kind":"Repl","metadata":{"name":)" + repl +
        R"(},"spec":{"userId":)" + user + "}}";
    const auto dry = kubectl({"apply", "--dry-run=server", "-n", dry_ns, "-f", "-"}, manifest);
    INFO("kubectl: exit " << dry.exit_code << " " << dry.out << dry.err);
    const bool server_accepted = dry.exit_code == 0;

    CHECK(shim_accepted == server_accepted);
    CHECK(shim_accepted == v.valid);
  }

  // What the shim accepted exists, and nothing else; the dry runs stored nothing.
  const auto names = kubectl(
      {"get", "repls", "-n", shim_ns, "-o", R"(jsonpath={range .items[*]}{.metadata.name}{"\n"}{end})"});
  REQUIRE(names.exit_code == 0);
  std::set<std::string> stored;
  std::istringstream lines(names.out);
  for (std::string line; std::getline(lines, line);) stored.insert(line);
  CHECK(stored == created);
  const auto dry_names = kubectl({"get", "repls", "-n", dry_ns, "-o", "name"});
  REQUIRE(dry_names.exit_code == 0);
  CHECK(dry_names.out.empty());
}

TEST_CASE("idleTimeout and ttlAfterSuspend: the shim and the API server's CEL rule agree, word for word",
          "[browser]") {
  struct Duration {
    std::string value;
    bool valid;
  };
  const std::vector<Duration> table = {
      {"0", true},       {"5s", true},       {"30m", true},          {"1h30m", true},
      {"1h2m3s", true},  {"87600h", true},   {"5256000m", true},     {"315360000s", true},
      {"0s", true},      {"", false},        {"30", false},          {"1d", false},
      {"-5m", false},    {"+5m", false},     {"1m1h", false},        {"1h1h", false},
      {"1.5h", false},   {"5 m", false},     {"87601h", false},      {"87600h1s", false},
      {"99999h", false}, {"100000h", false}, {"0000000001s", false}, {"99999999999h", false},
      {"1ms", false},
  };
  const std::string shim_ns = fresh_namespace("verdict-duration");
  const std::string dry_ns = fresh_namespace("verdict-duration-dry");
  auto shim = start_shim({"--namespace", shim_ns});
  std::string addr;
  REQUIRE(eventually(30s, [&] { return !(addr = shim->served_addr("")).empty(); }));
  const std::string url = "http://" + addr;
  const std::string message =
      "must be 0 or a duration of hours, minutes and seconds such as 30m, 1h30m or 168h, at most 87600h";

  int n = 0;
  for (const auto& v : table) {
    for (const std::string field : {"idleTimeout", "ttlAfterSuspend"}) {
      INFO(field << " " << json_string(v.value) << ": expected " << (v.valid ? "accepted" : "refused"));
      const std::string repl = "d" + std::to_string(++n);
      const auto shim_reply = http(
          "POST", url + "/start",
          R"({"userId":"alice","replId":")" + repl + R"(",")" + field + R"(":)" + json_string(v.value) + "}",
          {"Content-Type: application/json"});
      INFO("shim: " << shim_reply.status << " " << shim_reply.body);
      REQUIRE((shim_reply.status == 201 || shim_reply.status == 400));
      const auto dry =
          kubectl({"apply", "--dry-run=server", "-n", dry_ns, "-f", "-"},
                  R"({"apiVersion":"peetcode.com/v1alpha1","kind":"Repl","metadata":{"name":")" + repl +
                      R"("},"spec":{"userId":"alice",")" + field + R"(":)" + json_string(v.value) + "}}");
      INFO("kubectl: exit " << dry.exit_code << " " << dry.out << dry.err);
      CHECK((shim_reply.status == 201) == v.valid);
      CHECK((dry.exit_code == 0) == v.valid);
      if (v.valid) {
        CHECK(jsonpath(shim_ns, "repl/" + repl, "{.spec." + field + "}") == v.value);
      } else {
        // The shim's own refusal, naming the field, with the CRD rule's message.
        CHECK_THAT(shim_reply.body, Catch::Contains(R"("field":")" + field + R"(")") &&
                                        Catch::Contains(R"("message":")" + message + R"(")"));
        CHECK_THAT(dry.err, Catch::Contains("spec." + field) && Catch::Contains(message));
        CHECK(kubectl({"get", "repl", "-n", shim_ns, repl}).exit_code != 0);
      }
    }
  }
}
