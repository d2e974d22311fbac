// Hostile replId/userId values (bypassing validation, as if the CRD's rules were missing) can only
// change string contents of the rendered children, never their structure.
#include <yaml-cpp/yaml.h>

#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <vector>

#include "repl/children.hpp"
#include "unit/support/json.hpp"
#include "unit/support/repl_fixtures.hpp"

namespace {

using repl::Child;
using repl::test::string_at;

// The structure of a JSON value: keys in order, array lengths and scalar types, no contents.
std::string shape(const rapidjson::Value& v) {
  switch (v.GetType()) {
    case rapidjson::kObjectType: {
      std::string out = "{";
      for (const auto& m : v.GetObject()) out += std::string(m.name.GetString()) + ":" + shape(m.value) + ",";
      return out + "}";
    }
    case rapidjson::kArrayType: {
      std::string out = "[";
      for (const auto& e : v.GetArray()) out += shape(e) + ",";
      return out + "]";
    }
    case rapidjson::kStringType:
      return "s";
    case rapidjson::kNumberType:
      return v.IsInt64() ? "i" : "d";
    case rapidjson::kTrueType:
    case rapidjson::kFalseType:
      return "b";
    case rapidjson::kNullType:
      return "0";
  }
  return "?";
}

// JSON pointers of the string values that contain `needle`.
void paths_containing(const rapidjson::Value& v, const std::string& needle, const std::string& path,
                      std::set<std::string>& out) {
  if (v.IsObject()) {
    for (const auto& m : v.GetObject())
      paths_containing(m.value, needle, path + "/" + m.name.GetString(), out);
  } else if (v.IsArray()) {
    for (rapidjson::SizeType i = 0; i < v.Size(); ++i)
      paths_containing(v[i], needle, path + "/" + std::to_string(i), out);
  } else if (v.IsString() &&
             std::string(v.GetString(), v.GetStringLength()).find(needle) != std::string::npos) {
    out.insert(path);
  }
}

std::set<std::string> paths_containing(const rapidjson::Value& v, const std::string& needle) {
  std::set<std::string> out;
  paths_containing(v, needle, "", out);
  return out;
}

// The containers' script as templates/deployment.yaml holds it, read with yaml-cpp (not rendered):
// every value reaches it as an environment variable, none is pasted into it.
const std::string& script() {
  static const std::string text =
      YAML::LoadFile(std::string(REPL_SOURCE_DIR) +
                     "/templates/deployment.yaml")["spec"]["template"]["spec"]["initContainers"][0]["args"][0]
          .as<std::string>();
  return text;
}

std::vector<std::string> hostile_values() {
  return {"a\"b'c",
          "line1\nline2",
          "$(rm -rf /)",
          "`reboot`",
          "x: {y: z}",
          "}}",
          "{{ replId }}",
          "{{ userId }}",
          "\n- name: x\n  value: y",
          "---\nkind: Secret",
          "&anchor *alias # comment",
          "back\\slash\t\r",
          std::string("nul\0byte", 8),
          "ü",
          "\xF0\x9F\x99\x82 emoji",
          std::string(64, 'a'),
          std::string(300, 'z') + "\""};
}

// Renders with one field replaced and checks each child against the normal render.
void check_same_structure(const repl::Repl& hostile, const std::string& value,
                          const std::string& normal_value) {
  const auto normal = repl::test::render_children(repl::test::sample_repl());
  const auto changed = repl::test::render_children(hostile);
  for (std::size_t i = 0; i < normal.size(); ++i) {
    INFO(normal[i].resource.kind);
    CHECK(shape(changed[i].object) == shape(normal[i].object));
    // The value lands exactly where the normal value does, and nowhere else.
    CHECK(paths_containing(changed[i].object, value) == paths_containing(normal[i].object, normal_value));
  }
  REQUIRE_THAT(script(), Catch::Contains("s3 s3 sync --delete"));
  for (const char* path :
       {"/spec/template/spec/initContainers/0/args/0", "/spec/template/spec/initContainers/1/args/0"}) {
    CHECK(string_at(changed[0].object, path) == script());
    CHECK(string_at(normal[0].object, path) == script());
  }
}

}  // namespace

TEST_CASE("a hostile replId cannot change the structure of the children", "[render][repl][security]") {
  for (const std::string& value : hostile_values()) {
    INFO("replId = \"" << value << "\"");
    auto hostile = repl::test::sample_repl();
    hostile.key.name = value;
    check_same_structure(hostile, value, "abc123");
    const auto children = repl::test::render_children(hostile);
    CHECK(string_at(children[0].object, "/metadata/name") == value);
    CHECK(string_at(children[0].object, "/spec/template/spec/initContainers/0/env/0/value") == value);
    CHECK(string_at(children[2].object, "/metadata/name") == value + "-ingress");
    CHECK(string_at(children[2].object, "/spec/rules/0/host") == value + ".peetcode.com");
    CHECK(string_at(children[3].object, "/metadata/name") == value);
    CHECK(string_at(children[3].object, "/spec/podSelector/matchLabels/peetcode.com~1repl") == value);
  }
}

TEST_CASE("a hostile userId cannot change the structure of the children", "[render][repl][security]") {
  for (const std::string& value : hostile_values()) {
    INFO("userId = \"" << value << "\"");
    auto hostile = repl::test::sample_repl();
    hostile.spec.user_id = value;
    check_same_structure(hostile, value, "user-42");
    const auto children = repl::test::render_children(hostile);
    for (const auto& child : children) {
      CHECK(string_at(child.object, "/metadata/labels/peetcode.com~1user") == value);
    }
  }
}

TEST_CASE("a hostile language cannot change the structure of the children", "[render][repl][security]") {
  for (const std::string& value : hostile_values()) {
    INFO("language = \"" << value << "\"");
    auto hostile = repl::test::sample_repl();
    hostile.spec.language = value;
    check_same_structure(hostile, value, "python");
    const auto children = repl::test::render_children(hostile);
    const auto& env = children[0].object["spec"]["template"]["spec"]["initContainers"][0]["env"];
    bool found = false;
    for (const auto& e : env.GetArray()) {
      if (string_at(e, "/name") == "LANGUAGE") {
        CHECK(string_at(e, "/value") == value);
        found = true;
      }
    }
    CHECK(found);
  }
}

TEST_CASE("a hostile value rendered through a bare Template stays one string", "[render][security]") {
  auto t = repl::render::Template::parse("t.yaml", "a:\n  b: \"{{ userId }}\"\n  c: [\"x-{{ userId }}\"]\n",
                                         {"userId"});
  REQUIRE(t);
  for (const std::string& value : hostile_values()) {
    INFO("userId = \"" << value << "\"");
    auto doc = t->render({{"userId", value}});
    REQUIRE(doc);
    CHECK(shape(*doc) == "{a:{b:s,c:[s,],},}");
    CHECK(string_at(*doc, "/a/b") == value);
    CHECK(string_at(*doc, "/a/c/0") == "x-" + value);
  }
}
