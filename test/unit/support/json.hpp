// JSON helpers for tests: parse text (failing the test on a syntax error), look values up by JSON
// pointer, and pretty-print for golden files and failure messages.
#pragma once

#include <rapidjson/document.h>
#include <rapidjson/pointer.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <catch2/catch.hpp>
#include <string>
#include <string_view>

namespace repl::test {

inline rapidjson::Document parse_json(std::string_view text) {
  rapidjson::Document doc;
  doc.Parse(text.data(), text.size());
  INFO("JSON text: " << text);
  REQUIRE_FALSE(doc.HasParseError());
  return doc;
}

// The value at a JSON pointer such as "/spec/template/spec/containers/0/image"; fails the test
// when there is none.
inline const rapidjson::Value& at(const rapidjson::Value& root, const char* pointer) {
  const rapidjson::Value* v = rapidjson::Pointer(pointer).Get(root);
  INFO("JSON pointer " << pointer);
  REQUIRE(v != nullptr);
  return *v;
}

inline bool has(const rapidjson::Value& root, const char* pointer) {
  return rapidjson::Pointer(pointer).Get(root) != nullptr;
}

inline std::string string_at(const rapidjson::Value& root, const char* pointer) {
  const rapidjson::Value& v = at(root, pointer);
  INFO("JSON pointer " << pointer);
  REQUIRE(v.IsString());
  return {v.GetString(), v.GetStringLength()};
}

inline std::string pretty_json(const rapidjson::Value& v) {
  rapidjson::StringBuffer buf;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buf);
  w.SetIndent(' ', 2);
  v.Accept(w);
  return std::string(buf.GetString(), buf.GetSize()) + "\n";
}

}  // namespace repl::test
