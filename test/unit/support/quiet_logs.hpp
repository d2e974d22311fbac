// Silences info and warning logs for the lifetime of the object (code under test logs to stderr).
#pragma once

#include "common/log.hpp"

namespace repl::test {

struct QuietLogs {
  QuietLogs() { log::set_level(log::Level::kError); }
  ~QuietLogs() { log::set_level(log::Level::kInfo); }  // the default
  QuietLogs(const QuietLogs&) = delete;
  QuietLogs& operator=(const QuietLogs&) = delete;
};

}  // namespace repl::test
