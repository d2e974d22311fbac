// ObjectKey: the namespace/name identity of a namespaced Kubernetes object, used as the key of
// caches and of the reconcile queue instead of bare strings. A plain value type.
#pragma once

#include <compare>
#include <string>

namespace repl {

struct ObjectKey {
  std::string ns;
  std::string name;

  auto operator<=>(const ObjectKey&) const = default;
  std::string str() const { return ns + "/" + name; }
};

}  // namespace repl
