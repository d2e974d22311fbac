// Fingerprints for "does the live object still carry what we applied?" without keeping objects.
//
// A Shape is the structure of what the operator applies for one template: the keys of every
// object and the length of every array, down to the scalars (top-level apiVersion and kind aside:
// LIST responses leave them out of their items). Templates only substitute scalars, so
// every Repl's child of one template has the same shape. Shape::fingerprint(obj) hashes the values
// of `obj` found at the shape's paths, and nothing else: fields the API server defaults, or that
// other managers set beside ours, do not count, so the fingerprint of a live object equals that of
// the desired one exactly when every field we manage holds our value. The store keeps 8 bytes per
// child instead of the object; reconcile compares two numbers.
//
// An empty string and a missing value count as the same: the API server drops empty strings
// (e.g. an env var's `value: ""`) from what it stores.
//
// Arrays are compared index by index up to the shape's length (extra live elements, such as a
// sidecar someone else added, are theirs). Values the server rewrites into another form (e.g. a
// quantity "0.5" stored as "500m") never compare equal: write templates in canonical form, or
// such a child is re-applied (a no-op on the server) whenever it changes.
//
// Pure value type; thread-safe once built.
#pragma once

#include <rapidjson/document.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace repl {

class Shape {
 public:
  Shape() = default;
  static Shape of(const rapidjson::Value& desired);
  std::uint64_t fingerprint(const rapidjson::Value& object) const;

 private:
  struct Member;
  struct Node {
    enum class Kind { kLeaf, kObject, kArray } kind = Kind::kLeaf;
    std::vector<Member> members;  // kObject, in the desired object's order
    std::vector<Node> items;      // kArray
  };
  // Not a std::pair: a pair may not hold a type still incomplete (Node, in Node).
  struct Member {
    std::string key;
    Node value;
  };
  static Node build(const rapidjson::Value& v);
  static void hash(const Node& shape, const rapidjson::Value* v, std::uint64_t& h);
  std::shared_ptr<const Node> root_;
};

}  // namespace repl
