#include "render/template.hpp"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <regex>
#include <utility>
#include <vector>

#include "common/yaml_load.hpp"

namespace repl::render {

struct Segment {
  bool is_variable;
  std::string text;  // literal text, or the variable's name
};

struct Entry;  // a mapping's key and value (not a std::pair: a pair may not hold Node while incomplete)

struct Template::Node {
  enum class Type { kMap, kSeq, kNull, kBool, kInt, kFloat, kString, kInterpolated };
  Type type = Type::kNull;
  std::vector<Entry> map;
  std::vector<Node> seq;
  bool boolean = false;
  std::int64_t integer = 0;
  double real = 0;
  std::string string;
  std::vector<Segment> segments;  // kInterpolated only
  bool typed_by_value = false;    // kInterpolated: the scalar is exactly one placeholder
  std::string condition;          // a sequence item under `!if`: the variable that decides it
};

struct Entry {
  std::string key;
  Template::Node value;
};

namespace {

using Node = Template::Node;
using Variables = std::set<std::string, std::less<>>;

constexpr std::string_view kIfTag = "!if";

std::string joined(const Variables& vars) {
  std::string out;
  for (const auto& v : vars) out += (out.empty() ? "" : ", ") + v;
  return out.empty() ? "none" : out;
}

// Plain ("?") and quoted ("!") nodes carry no tag of their own; YAML's standard tags (!!str, ...)
// are yaml-cpp's business. Any other tag is refused, so a typo such as `!iff` fails at load
// instead of rendering its item unconditionally; `!if` itself only where convert_item takes it.
Result<void, RenderError> check_tag(const YAML::Node& y, const std::string& where) {
  const std::string& tag = y.Tag();
  if (tag.empty() || tag == "?" || tag == "!" || tag.starts_with("tag:yaml.org,2002:")) return Ok{};
  if (tag == kIfTag) {
    return Fail(RenderError{where + ": !if belongs on a sequence item only, as `- !if {variable: item}`"});
  }
  return Fail(RenderError{where + ": unknown tag '" + tag + "' (the only one is !if, on a sequence item)"});
}

Result<std::vector<Segment>, RenderError> split_placeholders(std::string_view text, const Variables& vars,
                                                             const std::string& where) {
  std::vector<Segment> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t open = text.find("{{", pos);
    if (open == std::string_view::npos) {
      out.push_back({false, std::string(text.substr(pos))});
      break;
    }
    if (open > pos) out.push_back({false, std::string(text.substr(pos, open - pos))});
    const std::size_t close = text.find("}}", open + 2);
    if (close == std::string_view::npos) return Fail(RenderError{where + ": unclosed '{{'"});
    std::string_view name = text.substr(open + 2, close - open - 2);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    if (!vars.contains(name)) {
      return Fail(RenderError{where + ": unknown variable '" + std::string(name) +
                              "' (known: " + joined(vars) + ")"});
    }
    out.push_back({true, std::string(name)});
    pos = close + 2;
  }
  return out;
}

// YAML 1.2 core schema resolution of a plain scalar without placeholders.
Result<Node, RenderError> resolve_plain(const std::string& s, const std::string& where) {
  static const std::regex kInt("[-+]?[0-9]+");
  static const std::regex kFloat("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  Node n;
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") {
    n.type = Node::Type::kNull;
  } else if (s == "true" || s == "True" || s == "TRUE" || s == "false" || s == "False" || s == "FALSE") {
    n.type = Node::Type::kBool;
    n.boolean = s[0] == 't' || s[0] == 'T';
  } else if (std::int64_t v = 0;
             std::regex_match(s, kInt) &&
             std::from_chars(s.data() + (s[0] == '+'), s.data() + s.size(), v).ec == std::errc{}) {
    n.type = Node::Type::kInt;
    n.integer = v;
  } else if (std::regex_match(s, kFloat)) {
    n.type = Node::Type::kFloat;
    const char* begin = s.data() + (s[0] == '+');
    if (std::from_chars(begin, s.data() + s.size(), n.real).ec != std::errc{}) {
      return Fail(RenderError{where + ": number " + s + " is out of range"});
    }
  } else {
    n.type = Node::Type::kString;
    n.string = s;
  }
  return n;
}

Result<Node, RenderError> convert(const YAML::Node& y, const Variables& vars, const Variables& conditions,
                                  const std::string& where);

// One item of a sequence: a node, or `!if {variable: item}`, the item rendered only when the
// variable is true or a non-empty string.
Result<Node, RenderError> convert_item(const YAML::Node& y, const Variables& vars,
                                       const Variables& conditions, const std::string& where) {
  if (y.Tag() != kIfTag) return convert(y, vars, conditions, where);
  if (!y.IsMap() || y.size() != 1) {
    return Fail(RenderError{where + ": !if takes a mapping of one key, the variable that decides the item: "
                                    "`- !if {variable: item}`"});
  }
  const auto entry = *y.begin();
  if (auto tagged = check_tag(entry.first, where); !tagged) return Fail(tagged.error());
  if (!entry.first.IsScalar()) return Fail(RenderError{where + ": !if's key must name a variable"});
  const std::string& name = entry.first.Scalar();
  if (!conditions.contains(name)) {
    if (vars.contains(name)) {
      return Fail(RenderError{where + ": variable '" + name +
                              "' cannot decide an item (those that can: " + joined(conditions) + ")"});
    }
    return Fail(RenderError{where + ": unknown variable '" + name +
                            "' in !if (those that can decide an item: " + joined(conditions) + ")"});
  }
  auto item = convert(entry.second, vars, conditions, where);
  if (!item) return Fail(item.error());
  item->condition = name;
  return item;
}

Result<Node, RenderError> convert(const YAML::Node& y, const Variables& vars, const Variables& conditions,
                                  const std::string& where) {
  if (auto tagged = check_tag(y, where); !tagged) return Fail(tagged.error());
  Node n;
  switch (y.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      n.type = Node::Type::kNull;
      return n;
    case YAML::NodeType::Map:
      n.type = Node::Type::kMap;
      for (const auto& kv : y) {
        if (!kv.first.IsScalar()) return Fail(RenderError{where + ": mapping keys must be scalars"});
        if (auto tagged = check_tag(kv.first, where); !tagged) return Fail(tagged.error());
        const std::string key = kv.first.Scalar();
        if (key.find("{{") != std::string::npos) {
          return Fail(RenderError{where + ": placeholders are not allowed in keys ('" + key + "')"});
        }
        auto child = convert(kv.second, vars, conditions, where + "." + key);
        if (!child) return Fail(child.error());
        n.map.push_back({key, std::move(*child)});
      }
      return n;
    case YAML::NodeType::Sequence:
      n.type = Node::Type::kSeq;
      for (std::size_t i = 0; i < y.size(); ++i) {
        auto child = convert_item(y[i], vars, conditions, where + "[" + std::to_string(i) + "]");
        if (!child) return Fail(child.error());
        n.seq.push_back(std::move(*child));
      }
      return n;
    case YAML::NodeType::Scalar:
      break;
  }
  const std::string& text = y.Scalar();
  const bool plain = y.Tag() == "?";
  auto segments = split_placeholders(text, vars, where);
  if (!segments) return Fail(segments.error());
  const bool has_variable =
      std::any_of(segments->begin(), segments->end(), [](const Segment& s) { return s.is_variable; });
  if (!has_variable) {
    if (plain) return resolve_plain(text, where);
    n.type = Node::Type::kString;
    n.string = text;
    return n;
  }
  n.type = Node::Type::kInterpolated;
  // `!!str "{{ x }}"` is a string whatever x is (an environment variable's value of a number).
  n.typed_by_value = segments->size() == 1 && y.Tag() != "tag:yaml.org,2002:str";
  n.segments = std::move(*segments);
  return n;
}

using Allocator = rapidjson::Document::AllocatorType;

std::string value_as_text(const Value& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  if (const auto* i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
  return std::get<bool>(v) ? "true" : "false";
}

// Whether an `!if` item is rendered: its variable is true or a non-empty string. A number decides
// nothing (0 and 1 both read as "set"), so it is an error rather than a guess.
Result<bool, RenderError> decides(const std::string& variable, const Values& values) {
  const auto it = values.find(variable);
  if (it == values.end()) return Fail(RenderError{"no value for variable '" + variable + "'"});
  if (const auto* s = std::get_if<std::string>(&it->second)) return !s->empty();
  if (const auto* b = std::get_if<bool>(&it->second)) return *b;
  return Fail(
      RenderError{"variable '" + variable + "' is a number: only a string or a boolean decides an !if item"});
}

Result<rapidjson::Value, RenderError> emit(const Node& n, const Values& values, Allocator& a) {
  using rapidjson::Value;
  switch (n.type) {
    case Node::Type::kNull:
      return Value(rapidjson::kNullType);
    case Node::Type::kBool:
      return Value(n.boolean);
    case Node::Type::kInt:
      return Value(static_cast<int64_t>(n.integer));
    case Node::Type::kFloat:
      return Value(n.real);
    case Node::Type::kString:
      return Value(n.string.c_str(), static_cast<rapidjson::SizeType>(n.string.size()), a);
    case Node::Type::kMap: {
      Value obj(rapidjson::kObjectType);
      for (const auto& [key, child] : n.map) {
        auto v = emit(child, values, a);
        if (!v) return Fail(v.error());
        obj.AddMember(Value(key.c_str(), static_cast<rapidjson::SizeType>(key.size()), a), std::move(*v), a);
      }
      return obj;
    }
    case Node::Type::kSeq: {
      Value arr(rapidjson::kArrayType);
      for (const auto& child : n.seq) {
        if (!child.condition.empty()) {
          auto present = decides(child.condition, values);
          if (!present) return Fail(present.error());
          if (!*present) continue;
        }
        auto v = emit(child, values, a);
        if (!v) return Fail(v.error());
        arr.PushBack(std::move(*v), a);
      }
      return arr;
    }
    case Node::Type::kInterpolated:
      break;
  }
  std::string text;
  for (const auto& seg : n.segments) {
    if (!seg.is_variable) {
      text += seg.text;
      continue;
    }
    const auto it = values.find(seg.text);
    if (it == values.end()) return Fail(RenderError{"no value for variable '" + seg.text + "'"});
    if (n.typed_by_value) {
      if (const auto* i = std::get_if<std::int64_t>(&it->second)) return Value(static_cast<int64_t>(*i));
      if (const auto* b = std::get_if<bool>(&it->second)) return Value(*b);
    }
    text += value_as_text(it->second);
  }
  return Value(text.c_str(), static_cast<rapidjson::SizeType>(text.size()), a);
}

}  // namespace

Template::Template(std::string source, std::shared_ptr<const Node> root)
    : source_(std::move(source)), root_(std::move(root)) {}

Result<Template, RenderError> Template::parse(std::string_view source, std::string_view yaml,
                                              const Variables& variables, const Variables& conditions) {
  const std::string where(source);
  auto loaded = load_yaml_documents(yaml);
  if (!loaded) return Fail(RenderError{where + ": " + loaded.error()});
  const std::vector<YAML::Node>& docs = *loaded;
  if (docs.size() != 1) {
    return Fail(
        RenderError{where + ": expected exactly one YAML document, found " + std::to_string(docs.size())});
  }
  if (!docs[0].IsMap())
    return Fail(RenderError{where + ": the document must be a mapping (a Kubernetes object)"});
  auto root = convert(docs[0], variables, conditions, where);
  if (!root) return Fail(root.error());
  return Template(where, std::make_shared<const Node>(std::move(*root)));
}

Result<rapidjson::Document, RenderError> Template::render(const Values& values) const {
  rapidjson::Document doc;
  auto v = emit(*root_, values, doc.GetAllocator());
  if (!v) return Fail(RenderError{source_ + ": " + v.error().message});
  static_cast<rapidjson::Value&>(doc) = std::move(*v);
  return doc;
}

}  // namespace repl::render
