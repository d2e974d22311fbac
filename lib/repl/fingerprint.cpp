#include "repl/fingerprint.hpp"

#include <cstring>

namespace repl {
namespace {

// FNV-1a, 64 bit: stable across runs and machines (std::hash is neither promised).
void mix(std::uint64_t& h, const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ULL;
  }
}
void mix_tag(std::uint64_t& h, char tag) { mix(h, &tag, 1); }

}  // namespace

Shape::Node Shape::build(const rapidjson::Value& v) {
  Node n;
  if (v.IsObject()) {
    n.kind = Node::Kind::kObject;
    for (const auto& m : v.GetObject()) n.members.push_back({m.name.GetString(), build(m.value)});
  } else if (v.IsArray()) {
    n.kind = Node::Kind::kArray;
    for (const auto& e : v.GetArray()) n.items.push_back(build(e));
  }
  return n;
}

Shape Shape::of(const rapidjson::Value& desired) {
  Node root = build(desired);
  // apiVersion and kind name what the object is, not what it holds; and the API server leaves them
  // out of the items of a LIST of built-in types, so counting them would make every listed child
  // look changed.
  std::erase_if(root.members, [](const auto& m) { return m.key == "apiVersion" || m.key == "kind"; });
  Shape s;
  s.root_ = std::make_shared<const Node>(std::move(root));
  return s;
}

void Shape::hash(const Node& shape, const rapidjson::Value* v, std::uint64_t& h) {
  if (v == nullptr) {
    mix_tag(h, 'M');  // missing
    return;
  }
  switch (shape.kind) {
    case Node::Kind::kObject:
      if (!v->IsObject()) {
        mix_tag(h, 'X');  // a different kind of value where an object belongs
        return;
      }
      mix_tag(h, '{');
      for (const auto& [key, child] : shape.members) {
        mix(h, key.data(), key.size() + 1);
        const auto it = v->FindMember(key.c_str());
        hash(child, it == v->MemberEnd() ? nullptr : &it->value, h);
      }
      return;
    case Node::Kind::kArray:
      if (!v->IsArray()) {
        mix_tag(h, 'X');
        return;
      }
      mix_tag(h, '[');
      for (std::size_t i = 0; i < shape.items.size(); ++i) {
        hash(shape.items[i], i < v->Size() ? &(*v)[static_cast<rapidjson::SizeType>(i)] : nullptr, h);
      }
      return;
    case Node::Kind::kLeaf:
      break;
  }
  if (v->IsString() && v->GetStringLength() == 0) {
    mix_tag(h, 'M');  // the API server omits empty strings (Go's omitempty): "" and absent are one
  } else if (v->IsString()) {
    mix_tag(h, 's');
    mix(h, v->GetString(), v->GetStringLength() + 1);
  } else if (v->IsBool()) {
    mix_tag(h, v->GetBool() ? 't' : 'f');
  } else if (v->IsNull()) {
    mix_tag(h, 'n');
  } else if (v->IsInt64()) {
    mix_tag(h, 'i');
    const std::int64_t i = v->GetInt64();
    mix(h, &i, sizeof i);
  } else if (v->IsNumber()) {
    mix_tag(h, 'd');
    const double d = v->GetDouble();
    mix(h, &d, sizeof d);
  } else if (v->IsObject() && v->MemberCount() == 0) {
    mix_tag(h, 'o');  // e.g. emptyDir: {}
  } else if (v->IsArray() && v->Size() == 0) {
    mix_tag(h, 'a');
  } else {
    mix_tag(h, 'X');
  }
}

std::uint64_t Shape::fingerprint(const rapidjson::Value& object) const {
  std::uint64_t h = 14695981039346656037ULL;
  if (root_) hash(*root_, &object, h);
  return h;
}

}  // namespace repl
