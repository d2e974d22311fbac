// Catch2 prints an ObjectKey as "namespace/name" in failure messages (instead of "{?}").
#pragma once

#include <catch2/catch.hpp>
#include <string>

#include "common/object_key.hpp"

namespace Catch {
template <>
struct StringMaker<repl::ObjectKey> {
  static std::string convert(const repl::ObjectKey& key) { return key.str(); }
};
}  // namespace Catch
