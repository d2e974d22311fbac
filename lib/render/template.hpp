// Object templates: a Kubernetes manifest in YAML whose scalar values may hold placeholders
// ("{{ replId }}"), parsed once and rendered many times into JSON for server-side apply.
//
// Substitution happens in the parsed tree, scalar by scalar, never in the YAML text: whatever a
// value contains (quotes, newlines, "{{", ": {", shell syntax) it becomes the content of one string
// and cannot add keys, items or documents. Values are not themselves expanded again.
//
// Types follow the declared type of the value, never its content: a scalar that is exactly one
// placeholder takes the value's type (so `replicas: "{{ replicas }}"` renders the number 1, while
// a userId "123" stays the string "123"; `!!str "{{ port }}"` is a string whatever the value, as
// YAML's tag says); a scalar mixing text and placeholders is a string; a
// scalar without placeholders is resolved as in YAML 1.2's core schema when plain (null, booleans,
// numbers) and is a string when quoted. (Placeholders must be quoted: an unquoted `{{` opens a
// YAML flow mapping.)
//
// Placeholders are allowed in values only, never in mapping keys, and must name a variable the
// caller declared when parsing, so a typo fails when the template is loaded, not per object.
//
// Optional items: a sequence item written `- !if {variable: item}` renders `item` only when the
// variable's value is true or a non-empty string, and is left out otherwise (the other items keep
// their order; a sequence whose every item is left out renders []). For example
//
//   egress:
//     - !if
//       s3EgressCidr:
//         to: [{ipBlock: {cidr: "{{ s3EgressCidr }}"}}]
//
// The value only decides whether the item is there; nothing of it is written anywhere unless the
// item holds its placeholder, which is substituted as any other. Like placeholders, the variable is
// checked when parsing: it must be one of the caller's `conditions`, the variables allowed to
// decide structure (a caller whose objects must all share one structure passes only values that are
// the same for all of them, or none). `!if` anywhere else, and any tag of one's own but `!if`
// (a typo such as `!iff`), fails to parse; YAML's standard tags (`!!str`) are left alone. A number
// decides nothing: rendering an `!if` on one fails.
//
// Thread-safety: a parsed Template is immutable; render() may run on any number of threads.
#pragma once

#include <rapidjson/document.h>

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <variant>

#include "common/result.hpp"

namespace repl::render {

using Value = std::variant<std::string, std::int64_t, bool>;
using Values = std::map<std::string, Value, std::less<>>;

struct RenderError {
  std::string message;
};

class Template {
 public:
  struct Node;

  // Parses one YAML document. `source` names it in error messages (e.g. a file path). `conditions`
  // are the variables `!if` may name (none: the template may hold no `!if`).
  static Result<Template, RenderError> parse(std::string_view source, std::string_view yaml,
                                             const std::set<std::string, std::less<>>& variables,
                                             const std::set<std::string, std::less<>>& conditions = {});

  // Renders into a fresh JSON document. Fails only if a variable it needs has no value, or an `!if`
  // names a number.
  Result<rapidjson::Document, RenderError> render(const Values& values) const;

  const std::string& source() const { return source_; }

 private:
  Template(std::string source, std::shared_ptr<const Node> root);
  std::string source_;
  std::shared_ptr<const Node> root_;
};

}  // namespace repl::render
