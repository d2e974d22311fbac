// The controller's per-key retry delay.
#include "controller.hpp"

#include <catch2/catch.hpp>
#include <climits>

using namespace std::chrono_literals;

TEST_CASE("retry_delay doubles from 5 ms and is capped at 5 minutes", "[operator][controller]") {
  CHECK(repl::retry_delay(1) == 5ms);
  CHECK(repl::retry_delay(2) == 10ms);
  CHECK(repl::retry_delay(3) == 20ms);
  CHECK(repl::retry_delay(4) == 40ms);
  CHECK(repl::retry_delay(11) == 5120ms);
  CHECK(repl::retry_delay(16) == 163840ms);
  CHECK(repl::retry_delay(17) == 5min);  // 327.68 s, capped
  CHECK(repl::retry_delay(30) == 5min);
  CHECK(repl::retry_delay(INT_MAX) == 5min);
  for (int n = 1; n < 40; ++n) {
    INFO("failures " << n);
    CHECK(repl::retry_delay(n + 1) >= repl::retry_delay(n));
  }
}

TEST_CASE("retry_delay treats fewer than one failure as the first", "[operator][controller]") {
  CHECK(repl::retry_delay(0) == 5ms);
  CHECK(repl::retry_delay(-3) == 5ms);
}
