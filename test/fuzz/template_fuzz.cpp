// Fuzzes rendering, two ways (the first byte chooses):
//  - a Repl object of any shape the API server might hold (hand-edited, another tool's), parsed
//    and rendered through the real templates (templates/): it renders or fails with a message;
//    what renders is each template's kind, named, carrying the Repl's label;
//  - a template of any text (an operator's customised one) parsed against the real variables and
//    rendered with hostile values: it parses or fails, and renders or fails, never crashes.
#include <rapidjson/document.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "repl/children.hpp"
#include "repl/repl.hpp"

namespace {

using namespace repl;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

const std::vector<ChildTemplate>& templates() {
  static const auto loaded = [] {
    auto t = load_child_templates(std::string(REPL_SOURCE_DIR) + "/templates", true, ChildSettings{});
    check(t.has_value());
    return std::move(*t);
  }();
  return loaded;
}

void render_repl(std::string_view json) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsObject()) return;
  auto repl = parse_repl(doc);
  if (!repl) return;
  auto children = desired_children(*repl, ChildSettings{}, templates());
  if (!children) {
    check(!children.error().message.empty());
    return;
  }
  check(children->size() == templates().size());
  for (const auto& child : *children) {
    check(child.object.IsObject() && !child.name.empty());
  }
}

void render_template(std::string_view input) {
  // The template, then a NUL, then the value every variable takes.
  const auto nul = input.find('\0');
  const std::string_view yaml = input.substr(0, nul);
  const std::string value(nul == std::string_view::npos ? std::string_view("x") : input.substr(nul + 1));
  auto parsed = render::Template::parse("fuzz.yaml", yaml, template_variables(), condition_variables());
  if (!parsed) {
    check(!parsed.error().message.empty());
    return;
  }
  render::Values values;
  for (const auto& name : template_variables()) values[name] = value;
  (void)parsed->render(values);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    render_repl(rest);
  } else {
    render_template(rest);
  }
  return 0;
}
