// Small read helpers over RapidJSON values, for picking fields out of API objects without
// repeating the FindMember/type-check dance. Missing or mistyped fields read as absent.
//
// Pure functions; thread-safe.
#pragma once

#include <rapidjson/document.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace repl::json {

// The member `name` of an object, or nullptr (also when `v` is null or not an object).
inline const rapidjson::Value* member(const rapidjson::Value* v, const char* name) {
  if (v == nullptr || !v->IsObject()) return nullptr;
  const auto it = v->FindMember(name);
  return it == v->MemberEnd() ? nullptr : &it->value;
}
inline const rapidjson::Value* member(const rapidjson::Value& v, const char* name) {
  return member(&v, name);
}

inline std::string string_at(const rapidjson::Value* v, const char* name) {
  const rapidjson::Value* m = member(v, name);
  return m != nullptr && m->IsString() ? std::string(m->GetString(), m->GetStringLength()) : std::string();
}

inline std::int64_t int_at(const rapidjson::Value* v, const char* name) {
  const rapidjson::Value* m = member(v, name);
  return m != nullptr && m->IsInt64() ? m->GetInt64() : 0;
}

// A string value copied into `allocator` (RapidJSON's own constructor, without the casts).
inline rapidjson::Value string_value(std::string_view s, rapidjson::Document::AllocatorType& allocator) {
  return rapidjson::Value(s.data(), static_cast<rapidjson::SizeType>(s.size()), allocator);
}

inline bool bool_at(const rapidjson::Value* v, const char* name) {
  const rapidjson::Value* m = member(v, name);
  return m != nullptr && m->IsBool() && m->GetBool();
}

}  // namespace repl::json
