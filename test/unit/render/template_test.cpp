// render::Template: how placeholders are typed and substituted, and which templates are refused.
#include "render/template.hpp"

#include <catch2/catch.hpp>
#include <string>

#include "kube/client.hpp"
#include "unit/support/json.hpp"

namespace {

using repl::Fail;
using repl::Result;
using repl::render::Template;
using repl::render::Values;
using repl::test::at;

const std::set<std::string, std::less<>> kVariables = {"name", "count", "flag", "userId"};

Result<Template, repl::render::RenderError> parse(std::string_view yaml) {
  Result<Template, repl::render::RenderError> t = Fail(repl::render::RenderError{"not parsed"});
  REQUIRE_NOTHROW(t = Template::parse("t.yaml", yaml, kVariables));
  return t;
}

// Parses and renders; the test fails if either step does.
rapidjson::Document render(std::string_view yaml, const Values& values = {}) {
  auto t = parse(yaml);
  INFO((t ? "" : t.error().message));
  REQUIRE(t);
  auto doc = t->render(values);
  INFO((doc ? "" : doc.error().message));
  REQUIRE(doc);
  return std::move(*doc);
}

// The message of a template that must not parse.
std::string parse_error(std::string_view yaml) {
  auto t = parse(yaml);
  REQUIRE_FALSE(t);
  return t.error().message;
}

}  // namespace

TEST_CASE("a scalar that is exactly one placeholder takes the type of the value", "[render]") {
  SECTION("an integer value renders a JSON number") {
    const auto doc = render(R"(replicas: "{{ count }}")", {{"count", std::int64_t{1}}});
    REQUIRE(at(doc, "/replicas").IsInt64());
    CHECK(at(doc, "/replicas").GetInt64() == 1);
    CHECK(repl::kube::to_json(doc) == R"({"replicas":1})");
  }
  SECTION("a boolean value renders a JSON boolean") {
    const auto doc = render(R"(on: "{{ flag }}")", {{"flag", true}});
    CHECK(repl::kube::to_json(doc) == R"({"on":true})");
  }
  SECTION("a string that looks like a number stays a string") {
    const auto doc = render(R"(user: "{{ userId }}")", {{"userId", std::string("123")}});
    CHECK(repl::kube::to_json(doc) == R"({"user":"123"})");
  }
  SECTION("a string that looks like a boolean or null stays a string") {
    const auto doc = render(R"({a: "{{ name }}", b: "{{ userId }}"})",
                            {{"name", std::string("true")}, {"userId", std::string("null")}});
    CHECK(repl::kube::to_json(doc) == R"({"a":"true","b":"null"})");
  }
  SECTION("spacing inside the braces does not matter") {
    const auto doc = render(R"({a: "{{count}}", b: "{{    count   }}"})", {{"count", std::int64_t{7}}});
    CHECK(repl::kube::to_json(doc) == R"({"a":7,"b":7})");
  }
}

TEST_CASE("a scalar mixing text and placeholders is a string", "[render]") {
  const Values values = {{"name", std::string("abc")}, {"count", std::int64_t{3}}, {"flag", false}};
  const auto doc =
      render(R"({host: "{{ name }}.example.com", n: "n-{{ count }}", twice: "{{ count }}{{ count }}",
                             f: " {{ flag }}"})",
             values);
  CHECK(repl::kube::to_json(doc) == R"({"host":"abc.example.com","n":"n-3","twice":"33","f":" false"})");
}

TEST_CASE("a placeholder may sit in an unquoted scalar after other text", "[render]") {
  const auto doc = render("name: x-{{ name }}\n", {{"name", std::string("abc")}});
  CHECK(repl::kube::to_json(doc) == R"({"name":"x-abc"})");
}

TEST_CASE("scalars without placeholders follow the YAML 1.2 core schema when plain", "[render]") {
  const auto doc = render(R"(
t: true
f: False
i: 42
neg: -7
plus: +5
float: 3.5
exp: 1e3
n1: null
n2: ~
n3:
word: hello
q42: "42"
qtrue: 'true'
qnull: "null"
block: |
  42
)");
  CHECK(repl::kube::to_json(doc) ==
        R"({"t":true,"f":false,"i":42,"neg":-7,"plus":5,"float":3.5,"exp":1000.0,"n1":null,"n2":null,)"
        R"("n3":null,"word":"hello","q42":"42","qtrue":"true","qnull":"null","block":"42\n"})");
}

TEST_CASE("rendering keeps the template's key order and nesting", "[render]") {
  const auto doc = render("b: 1\na:\n  - {y: 2, x: 1}\n  - [3]\n");
  CHECK(repl::kube::to_json(doc) == R"({"b":1,"a":[{"y":2,"x":1},[3]]})");
}

TEST_CASE("values are substituted once and never expanded again", "[render]") {
  const Values values = {{"name", std::string("{{ userId }}")}, {"userId", std::string("{{ name }}")}};
  const auto doc = render(R"({a: "{{ name }}", b: "x {{ userId }} y"})", values);
  CHECK(repl::kube::to_json(doc) == R"({"a":"{{ userId }}","b":"x {{ name }} y"})");
}

TEST_CASE("a parsed template renders many times with different values", "[render]") {
  auto t = parse(R"(name: "{{ name }}")");
  REQUIRE(t);
  for (const std::string name : {"one", "two", "three"}) {
    auto doc = t->render({{"name", name}});
    REQUIRE(doc);
    CHECK(repl::test::string_at(*doc, "/name") == name);
  }
}

TEST_CASE("a template naming an unknown variable fails to parse, naming the variable and where", "[render]") {
  const std::string msg = parse_error("metadata:\n  name: \"{{ nmae }}\"\n");
  CHECK_THAT(msg, Catch::Contains("'nmae'"));
  CHECK_THAT(msg, Catch::Contains("t.yaml.metadata.name"));
  CHECK_THAT(msg, Catch::Contains("userId"));  // the known variables are listed
}

TEST_CASE("an empty placeholder is an unknown variable", "[render]") {
  CHECK_THAT(parse_error(R"(a: "{{ }}")"), Catch::Contains("unknown variable ''"));
}

TEST_CASE("an unclosed placeholder fails to parse", "[render]") {
  CHECK_THAT(parse_error(R"(a: "{{ name")"), Catch::Contains("unclosed '{{'"));
  CHECK_THAT(parse_error(R"(a: "{{ name }} and {{ count")"), Catch::Contains("unclosed '{{'"));
}

TEST_CASE("placeholders are refused in mapping keys", "[render]") {
  CHECK_THAT(parse_error(R"("{{ name }}": value)"), Catch::Contains("not allowed in keys"));
  CHECK_THAT(parse_error("outer:\n  \"x-{{ name }}\": 1\n"), Catch::Contains("not allowed in keys"));
}

TEST_CASE("an unquoted placeholder is a YAML flow mapping and is refused", "[render]") {
  // `{{ name }}` unquoted is a mapping used as a key: not a scalar key.
  CHECK_THAT(parse_error("name: {{ name }}\n"), Catch::Contains("mapping keys must be scalars"));
}

TEST_CASE("a template must be exactly one YAML document holding a mapping", "[render]") {
  CHECK_THAT(parse_error("a: 1\n---\nb: 2\n"), Catch::Contains("exactly one YAML document, found 2"));
  CHECK_THAT(parse_error(""), Catch::Contains("found 0"));
  CHECK_THAT(parse_error("- a\n- b\n"), Catch::Contains("must be a mapping"));
  CHECK_THAT(parse_error("just a scalar"), Catch::Contains("must be a mapping"));
}

TEST_CASE("invalid YAML is an error value, not an exception", "[render]") {
  for (const char* yaml : {"a: [1, 2", "a: \"unterminated", "a: b: c", "a:\n\tb: 1", "{a: 1"}) {
    INFO(yaml);
    const std::string msg = parse_error(yaml);
    CHECK_THAT(msg, Catch::StartsWith("t.yaml: "));
  }
}

TEST_CASE("rendering without a value for a declared variable fails", "[render]") {
  auto t = parse(R"(a: "{{ name }}")");
  REQUIRE(t);
  auto doc = t->render({{"count", std::int64_t{1}}});
  REQUIRE_FALSE(doc);
  CHECK_THAT(doc.error().message, Catch::Contains("no value for variable 'name'"));
  CHECK_THAT(doc.error().message, Catch::StartsWith("t.yaml: "));
}

TEST_CASE("an out-of-range plain float is an error value, not an exception", "[render]") {
  for (const char* yaml : {"x: 1e999", "x: -1e999", "x: 1e-999"}) {
    INFO(yaml);
    auto t = Template::parse("t.yaml", yaml, kVariables);
    REQUIRE_FALSE(t);
    CHECK_THAT(t.error().message, Catch::Contains("t.yaml.x") && Catch::Contains("out of range"));
  }
}
