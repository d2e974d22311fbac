// Structured logging: one JSON object per line on stderr, with a process-wide minimum level.
//
//   log::info("applied", {{"repl", key.str()}, {"kind", "Deployment"}});
//
// Thread-safety: every function may be called from any thread; a line is written whole.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace repl::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

using Field = std::pair<std::string_view, std::string_view>;

// Parses "debug", "info", "warn" or "error".
std::optional<Level> parse_level(std::string_view name);
void set_level(Level level);
bool enabled(Level level);

// Renders one log line (without the trailing newline); exposed for tests.
std::string format_line(Level level, std::string_view msg, std::initializer_list<Field> fields);

void write(Level level, std::string_view msg, std::initializer_list<Field> fields = {});
inline void debug(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::kDebug, m, f); }
inline void info(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::kInfo, m, f); }
inline void warn(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::kWarn, m, f); }
inline void error(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::kError, m, f); }

}  // namespace repl::log
