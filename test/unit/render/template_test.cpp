// render::Template: how placeholders are typed and substituted, optional `!if` items, and which
// templates are refused.
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
// The variables `!if` may name: userId is a variable that may not decide an item.
const std::set<std::string, std::less<>> kConditions = {"name", "count", "flag"};

Result<Template, repl::render::RenderError> parse(std::string_view yaml) {
  Result<Template, repl::render::RenderError> t = Fail(repl::render::RenderError{"not parsed"});
  REQUIRE_NOTHROW(t = Template::parse("t.yaml", yaml, kVariables, kConditions));
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

TEST_CASE("a placeholder tagged !!str is a string whatever its value", "[render]") {
  const auto doc =
      render(R"({a: !!str "{{ count }}", b: !!str "{{ flag }}", c: !!str "{{ name }}", d: "{{ count }}"})",
             {{"count", std::int64_t{15}}, {"flag", true}, {"name", std::string("x")}});
  CHECK(repl::kube::to_json(doc) == R"({"a":"15","b":"true","c":"x","d":15})");
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

namespace {

const char* kOptionalItem = R"(items:
  - first
  - !if
    flag:
      x: "{{ name }}"
  - last
)";

// The message of a template that parses but must not render with `values`.
std::string render_error(std::string_view yaml, const Values& values) {
  auto t = parse(yaml);
  INFO((t ? "" : t.error().message));
  REQUIRE(t);
  auto doc = t->render(values);
  REQUIRE_FALSE(doc);
  return doc.error().message;
}

}  // namespace

TEST_CASE("an !if item is rendered when its variable is true or a non-empty string", "[render][if]") {
  SECTION("a boolean") {
    const auto doc = render(kOptionalItem, {{"flag", true}, {"name", std::string("abc")}});
    CHECK(repl::kube::to_json(doc) == R"({"items":["first",{"x":"abc"},"last"]})");
  }
  SECTION("a string") {
    const auto doc =
        render("items:\n  - !if {name: {n: \"{{ name }}\", one: 1}}\n", {{"name", std::string("abc")}});
    CHECK(repl::kube::to_json(doc) == R"({"items":[{"n":"abc","one":1}]})");
  }
  SECTION("in flow style, and of any kind of node") {
    const auto doc = render(R"({a: [!if {flag: scalar}, !if {flag: [1, 2]}, !if {name: "{{ count }}"}]})",
                            {{"flag", true}, {"name", std::string("x")}, {"count", std::int64_t{7}}});
    CHECK(repl::kube::to_json(doc) == R"({"a":["scalar",[1,2],7]})");
  }
}

TEST_CASE("an !if item is left out when its variable is false or empty; the other items stay in order",
          "[render][if]") {
  SECTION("false") {
    const auto doc = render(kOptionalItem, {{"flag", false}, {"name", std::string("abc")}});
    CHECK(repl::kube::to_json(doc) == R"({"items":["first","last"]})");
  }
  SECTION("an empty string") {
    const auto doc = render("items:\n  - a\n  - !if {name: b}\n  - c\n", {{"name", std::string()}});
    CHECK(repl::kube::to_json(doc) == R"({"items":["a","c"]})");
  }
  SECTION("every item left out: an empty sequence") {
    const auto doc =
        render("items: [!if {name: a}, !if {flag: b}]\n", {{"name", std::string()}, {"flag", false}});
    CHECK(repl::kube::to_json(doc) == R"({"items":[]})");
  }
}

TEST_CASE("one parsed template renders an !if item in or out by the values of each render", "[render][if]") {
  auto t = parse(kOptionalItem);
  REQUIRE(t);
  for (const bool flag : {true, false, true}) {
    auto doc = t->render({{"flag", flag}, {"name", std::string("n")}});
    REQUIRE(doc);
    CHECK(at(*doc, "/items").Size() == (flag ? 3u : 2u));
  }
}

TEST_CASE("the value deciding an !if item cannot inject anything", "[render][if][security]") {
  for (const std::string value :
       {"x\n- evil: 1", "{{ flag }}", "]: [", "true\n---\nkind: Secret", "\"}, {\"y\": 1"}) {
    INFO(value);
    // It only decides: nothing of it is written.
    const auto decided = render("items: [!if {name: {fixed: 1}}]\n", {{"name", value}});
    CHECK(repl::kube::to_json(decided) == R"({"items":[{"fixed":1}]})");
    // Where the item holds its placeholder, it is one string, substituted once.
    const auto used = render("items: [!if {name: {v: \"{{ name }}\"}}]\n", {{"name", value}});
    CHECK(at(used, "/items").Size() == 1);
    CHECK(at(used, "/items/0").MemberCount() == 1);
    CHECK(repl::test::string_at(used, "/items/0/v") == value);
  }
}

TEST_CASE("an !if naming an unknown variable, or one that may not decide an item, fails to parse",
          "[render][if]") {
  const std::string unknown = parse_error("spec:\n  items:\n    - a\n    - !if {flga: b}\n");
  CHECK_THAT(unknown, Catch::Contains("unknown variable 'flga' in !if"));
  CHECK_THAT(unknown, Catch::Contains("t.yaml.spec.items[1]"));
  CHECK_THAT(unknown, Catch::Contains("those that can decide an item: count, flag, name"));
  CHECK_THAT(parse_error("items: [!if {userId: b}]\n"),
             Catch::Contains("variable 'userId' cannot decide an item (those that can: count, flag, name)"));
  // A placeholder is not a variable's name.
  CHECK_THAT(parse_error("items: [!if {\"{{ flag }}\": b}]\n"),
             Catch::Contains("unknown variable '{{ flag }}'"));
  // Without conditions, no !if at all.
  auto t = Template::parse("t.yaml", "items: [!if {flag: b}]\n", kVariables);
  REQUIRE_FALSE(t);
  CHECK_THAT(t.error().message,
             Catch::Contains("variable 'flag' cannot decide an item (those that can: none)"));
}

TEST_CASE("!if anywhere but on a sequence item, or not of one key, fails to parse", "[render][if]") {
  for (const char* yaml : {"a: !if {flag: 1}\n", "a:\n  b: !if\n    flag: 1\n", "!if flag: 1\n",
                           "--- !if\nflag: 1\n", "items: [{k: !if {flag: 1}}]\n"}) {
    INFO(yaml);
    const std::string msg = parse_error(yaml);
    CHECK_THAT(msg, Catch::Contains("!if belongs on a sequence item only"));
  }
  for (const char* yaml : {"items: [!if flag]\n", "items: [!if {flag: 1, name: 2}]\n",
                           "items: [!if [flag]]\n", "items: [!if {}]\n", "items:\n  - !if\n"}) {
    INFO(yaml);
    CHECK_THAT(parse_error(yaml), Catch::Contains("!if takes a mapping of one key"));
  }
  // The item itself cannot be another !if.
  CHECK_THAT(parse_error("items: [!if {flag: !if {name: 1}}]\n"),
             Catch::Contains("belongs on a sequence item only"));
  // Nested sequences inside an item may hold their own.
  const auto doc =
      render("items: [!if {flag: {inner: [a, !if {name: b}]}}]\n", {{"flag", true}, {"name", std::string()}});
  CHECK(repl::kube::to_json(doc) == R"({"items":[{"inner":["a"]}]})");
}

TEST_CASE("a tag of one's own other than !if fails to parse; YAML's standard tags are left alone",
          "[render][if]") {
  CHECK_THAT(parse_error("items: [!iff {flag: 1}]\n"),
             Catch::Contains("t.yaml.items[0]: unknown tag '!iff'"));
  CHECK_THAT(parse_error("a: !secret x\n"), Catch::Contains("unknown tag '!secret'"));
  CHECK_THAT(parse_error("!key a: x\n"), Catch::Contains("unknown tag '!key'"));
  const auto doc = render("a: !!str 12\nb: ! 13\n");
  CHECK(repl::kube::to_json(doc) == R"({"a":"12","b":"13"})");
}

TEST_CASE("rendering an !if fails when its variable is a number or has no value", "[render][if]") {
  CHECK_THAT(render_error("items: [!if {count: 1}]\n", {{"count", std::int64_t{1}}}),
             Catch::Contains("variable 'count' is a number: only a string or a boolean decides an !if item"));
  const std::string missing = render_error("items: [!if {flag: 1}]\n", {});
  CHECK_THAT(missing, Catch::Contains("no value for variable 'flag'"));
  CHECK_THAT(missing, Catch::StartsWith("t.yaml: "));
}
