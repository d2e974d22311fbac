// Calendar times and durations as the API server writes them: RFC 3339 in UTC (metav1.Time, and
// the kubelet's RFC 3339 with nanoseconds), and durations in Go's h/m/s form ("30m", "1h30m",
// "168h", "0").
//
// Pure functions; thread-safe.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.hpp"

namespace repl {

// "2026-01-02T03:04:05Z": UTC, whole seconds (metav1.Time's precision).
std::string rfc3339(WallTime t);

// Reads "2026-01-02T03:04:05Z", with or without fractional seconds; std::nullopt for anything else
// (another offset than Z included: the API server writes only UTC).
std::optional<WallTime> parse_rfc3339(std::string_view text);

// The longest duration parse_hms_duration accepts: 87600h (ten years of 365 days).
inline constexpr std::chrono::seconds kMaxHmsDuration{87600LL * 3600};

// "0", or a sequence of <digits><unit> with units h, m, s, each at most once and in that order
// ("90s", "30m", "1h30m"), with at most 5, 7 and 9 digits; at most kMaxHmsDuration. std::nullopt
// when malformed. The same grammar as the Repl CRD's rule for idleTimeout and ttlAfterSuspend.
std::optional<std::chrono::seconds> parse_hms_duration(std::string_view text);

}  // namespace repl
