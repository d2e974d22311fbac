// Calendar times and durations in the API server's forms, and the clock's calendar time.
#include "common/time.hpp"

#include <catch2/catch.hpp>

namespace {

using namespace std::chrono_literals;
using repl::WallTime;

WallTime at(std::int64_t unix_seconds) { return WallTime{std::chrono::seconds(unix_seconds)}; }

}  // namespace

TEST_CASE("rfc3339 writes UTC with whole seconds; parse_rfc3339 reads it back", "[common][time]") {
  CHECK(repl::rfc3339(at(1767225600)) == "2026-01-01T00:00:00Z");
  CHECK(repl::rfc3339(at(1767225600) + 1500ms) == "2026-01-01T00:00:01Z");
  CHECK(repl::parse_rfc3339("2026-01-01T00:00:00Z") == at(1767225600));
  CHECK(repl::parse_rfc3339("2024-02-29T23:59:59Z") == at(1709251199));
  // The kubelet's RFC 3339 with nanoseconds.
  CHECK(repl::parse_rfc3339("2026-01-01T00:00:00.250000000Z") == at(1767225600) + 250ms);
  CHECK(repl::parse_rfc3339("2026-01-01T00:00:00.5Z") == at(1767225600) + 500ms);
}

TEST_CASE("parse_rfc3339 refuses anything else", "[common][time]") {
  for (const char* bad : {"", "2026-01-01", "2026-01-01T00:00:00", "2026-01-01T00:00:00+01:00",
                          "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z",
                          "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00.1234567890Z", "2026-01-01 00:00:00Z",
                          "x026-01-01T00:00:00Z", "2026-01-01T00:00:00.12a4Z"}) {
    INFO(bad);
    CHECK_FALSE(repl::parse_rfc3339(bad));
  }
}

TEST_CASE("parse_hms_duration: Go's h, m, s in order, or 0", "[common][time]") {
  CHECK(repl::parse_hms_duration("0") == 0s);
  CHECK(repl::parse_hms_duration("90s") == 90s);
  CHECK(repl::parse_hms_duration("30m") == 30min);
  CHECK(repl::parse_hms_duration("1h30m") == 90min);
  CHECK(repl::parse_hms_duration("168h") == 168h);
  CHECK(repl::parse_hms_duration("1h2m3s") == 3723s);
  CHECK(repl::parse_hms_duration("0s") == 0s);
  CHECK(repl::parse_hms_duration("87600h") == 87600h);
  CHECK(repl::parse_hms_duration("87599h59m60s") == 87600h);
  CHECK(repl::parse_hms_duration("5256000m") == 87600h);
  CHECK(repl::parse_hms_duration("315360000s") == 87600h);
  // The CRD's grammar exactly: at most 5, 7 and 9 digits, at most 87600h in all.
  for (const char* bad :
       {"", "s", "30", "1m1h", "1h1h", "-5m", "+5m", "5d", "1.5h", "5 m", "99999999999h", "1h30", "87601h",
        "87600h1s", "9999999m", "000001h", "00000001m", "0000000001s", "h5"}) {
    INFO(bad);
    CHECK_FALSE(repl::parse_hms_duration(bad));
  }
}

TEST_CASE("ManualClock's calendar time starts at 2026-01-01 and moves with its time", "[common][time]") {
  repl::ManualClock clock;
  CHECK(repl::rfc3339(clock.wall()) == "2026-01-01T00:00:00Z");
  clock.advance(90min);
  CHECK(repl::rfc3339(clock.wall()) == "2026-01-01T01:30:00Z");
}
