#include "common/time.hpp"

#include <charconv>
#include <cstdint>
#include <ctime>

namespace repl {
namespace {

// Reads exactly `n` digits at `pos`.
std::optional<int> digits(std::string_view s, std::size_t pos, std::size_t n) {
  if (pos + n > s.size()) return std::nullopt;
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

}  // namespace

std::string rfc3339(WallTime t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<WallTime> parse_rfc3339(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.fraction]Z
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
      s[16] != ':' || (s.back() != 'Z' && s.back() != 'z'))
    return std::nullopt;
  const auto year = digits(s, 0, 4), month = digits(s, 5, 2), day = digits(s, 8, 2);
  const auto hour = digits(s, 11, 2), minute = digits(s, 14, 2), second = digits(s, 17, 2);
  if (!year || !month || !day || !hour || !minute || !second) return std::nullopt;
  if (*month < 1 || *month > 12 || *day < 1 || *day > 31 || *hour > 23 || *minute > 59 || *second > 60)
    return std::nullopt;
  std::chrono::nanoseconds fraction{0};
  if (s.size() > 20) {
    if (s[19] != '.' || s.size() == 21 || s.size() > 30) return std::nullopt;  // 1..9 digits
    std::int64_t ns = 0;
    std::size_t n = 0;
    for (std::size_t i = 20; i + 1 < s.size(); ++i, ++n) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      ns = ns * 10 + (s[i] - '0');
    }
    for (; n < 9; ++n) ns *= 10;
    fraction = std::chrono::nanoseconds(ns);
  }
  const std::chrono::year_month_day date{std::chrono::year(*year), std::chrono::month(*month),
                                         std::chrono::day(*day)};
  if (!date.ok()) return std::nullopt;
  const auto t = std::chrono::sys_days(date) + std::chrono::hours(*hour) + std::chrono::minutes(*minute) +
                 std::chrono::seconds(*second) + fraction;
  return std::chrono::time_point_cast<WallTime::duration>(t);
}

std::optional<std::chrono::seconds> parse_hms_duration(std::string_view s) {
  if (s == "0") return std::chrono::seconds(0);
  std::int64_t total = 0;
  const char* p = s.data();
  const char* end = s.data() + s.size();
  if (p == end) return std::nullopt;
  std::size_t next_unit = 0;  // units must come in the order h, m, s
  constexpr std::string_view kUnits = "hms";
  constexpr std::int64_t kSeconds[] = {3600, 60, 1};
  // The CRD's rule allows as many digits (5, 7, 9), so that CEL's duration() cannot overflow.
  constexpr std::ptrdiff_t kDigits[] = {5, 7, 9};
  while (p != end) {
    if (*p < '0' || *p > '9') return std::nullopt;
    std::int64_t n = 0;
    const auto [after, ec] = std::from_chars(p, end, n);
    if (ec != std::errc{} || after == end) return std::nullopt;
    const std::size_t unit = kUnits.find(*after);
    if (unit == std::string_view::npos || unit < next_unit || after - p > kDigits[unit]) return std::nullopt;
    total += n * kSeconds[unit];
    next_unit = unit + 1;
    p = after + 1;
  }
  if (total > kMaxHmsDuration.count()) return std::nullopt;
  return std::chrono::seconds(total);
}

}  // namespace repl
