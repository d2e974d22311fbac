// Events on a Repl: the core/v1 Event object, ApiEventSender posting it (best-effort), and
// AsyncEventRecorder handing them to a sender one at a time.
#include "events.hpp"

#include <catch2/catch.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "unit/support/fake_transport.hpp"
#include "unit/support/json.hpp"
#include "unit/support/quiet_logs.hpp"
#include "unit/support/repl_fixtures.hpp"
#include "unit/support/status_json.hpp"

namespace {

using repl::test::at;
using repl::test::has;
using repl::test::string_at;

const std::string kNow = "2026-01-02T03:04:05Z";
const std::string kSecretMissing = R"(container runner: secret "aws-credentials" not found)";

}  // namespace

TEST_CASE("event_object is a core/v1 Event about the Repl", "[operator][events]") {
  const auto repl = repl::test::sample_repl();
  const auto e = repl::event_object(repl, repl::EventType::kWarning, "CreateContainerConfigError",
                                    kSecretMissing, kNow, "repl-operator-7c9f-x2");
  CHECK(string_at(e, "/apiVersion") == "v1");
  CHECK(string_at(e, "/kind") == "Event");
  // A fresh name per Event, in the Repl's namespace.
  CHECK(string_at(e, "/metadata/generateName") == "abc123.");
  CHECK_FALSE(has(e, "/metadata/name"));
  CHECK(string_at(e, "/metadata/namespace") == "team-a");

  CHECK(string_at(e, "/involvedObject/apiVersion") == "peetcode.com/v1alpha1");
  CHECK(string_at(e, "/involvedObject/kind") == "Repl");
  CHECK(string_at(e, "/involvedObject/name") == "abc123");
  CHECK(string_at(e, "/involvedObject/namespace") == "team-a");
  CHECK(string_at(e, "/involvedObject/uid") == "6f1c2b4e-0d3a-4c55-9e8f-1a2b3c4d5e6f");

  CHECK(string_at(e, "/type") == "Warning");
  CHECK(string_at(e, "/reason") == "CreateContainerConfigError");
  CHECK(string_at(e, "/message") == kSecretMissing);
  CHECK(string_at(e, "/firstTimestamp") == kNow);
  CHECK(string_at(e, "/lastTimestamp") == kNow);
  REQUIRE(at(e, "/count").IsInt());
  CHECK(at(e, "/count").GetInt() == 1);

  CHECK(string_at(e, "/source/component") == "repl-operator");
  CHECK(string_at(e, "/reportingComponent") == "repl-operator");
  CHECK(string_at(e, "/reportingInstance") == "repl-operator-7c9f-x2");
}

TEST_CASE("event_object: Normal events", "[operator][events]") {
  const auto e = repl::event_object(repl::test::sample_repl(), repl::EventType::kNormal, "Created",
                                    "created Deployment abc123", kNow, "i");
  CHECK(string_at(e, "/type") == "Normal");
  CHECK(string_at(e, "/reason") == "Created");
  CHECK(string_at(e, "/message") == "created Deployment abc123");
}

TEST_CASE("ApiEventSender posts the Event to the Repl's namespace", "[operator][events]") {
  repl::test::QuietLogs quiet;
  auto transport = std::make_shared<repl::test::FakeTransport>();
  repl::kube::Client client(transport);
  repl::ManualClock clock;
  clock.advance(std::chrono::seconds(65));
  repl::ApiEventSender sender(client, clock, "pod-1");
  const auto repl = repl::test::sample_repl();
  SECTION("accepted") { transport->respond(201, R"({"kind":"Event"})"); }
  SECTION("refused: dropped without failing the caller") {
    transport->respond(403, repl::test::status_json(403, "Forbidden", "cannot create events"));
  }
  SECTION("unreachable: dropped too") { transport->fail(repl::kube::transport_error("connection refused")); }
  bool done = false;
  sender.send(repl, repl::EventType::kWarning, "ImagePullFailed", "container runner: ErrImagePull",
              [&done] { done = true; });
  CHECK(done);  // the fake transport answers at once
  REQUIRE(transport->requests.size() == 1);
  const auto& r = transport->requests[0];
  CHECK(r.method == "POST");
  CHECK(repl::test::path_of(r.target) == "/api/v1/namespaces/team-a/events");
  const auto body = repl::test::parse_json(r.body);
  CHECK(string_at(body, "/kind") == "Event");
  CHECK(string_at(body, "/involvedObject/name") == "abc123");
  CHECK(string_at(body, "/type") == "Warning");
  CHECK(string_at(body, "/reason") == "ImagePullFailed");
  CHECK(string_at(body, "/reportingInstance") == "pod-1");
  CHECK(string_at(body, "/firstTimestamp") == "2026-01-01T00:01:05Z");  // the clock's
  CHECK(transport->unused_responses() == 0);
}

namespace {

// Collects what reaches it. While closed, each send stays in flight (its `done` is held) until
// the sender is opened, as a slow API server's answer would.
class CollectingSender final : public repl::EventSender {
 public:
  void send(const repl::Repl& repl, repl::EventType, const std::string& reason, const std::string&,
            std::function<void()> done) override {
    {
      std::lock_guard lock(mu_);
      ++entered_;
      seen_.push_back(repl.key.name + ":" + reason);
      if (!open_) {
        held_.push_back(std::move(done));
        return;
      }
    }
    done();
  }
  void set_open(bool open) {
    std::vector<std::function<void()>> held;
    {
      std::lock_guard lock(mu_);
      open_ = open;
      if (open) held.swap(held_);
    }
    for (auto& done : held) done();
  }
  std::size_t entered() {
    std::lock_guard lock(mu_);
    return entered_;
  }
  std::vector<std::string> seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  std::mutex mu_;
  bool open_ = true;
  std::size_t entered_ = 0;
  std::vector<std::string> seen_;
  std::vector<std::function<void()>> held_;
};

}  // namespace

TEST_CASE("AsyncEventRecorder sends Events in order, one at a time, without the caller waiting",
          "[operator][events]") {
  CollectingSender target;
  target.set_open(false);  // the caller must not wait for a slow sender
  repl::ManualClock clock;
  repl::AsyncEventRecorder async(target, clock);
  auto r = repl::test::sample_repl();
  async.record(r, repl::EventType::kNormal, "Created", "");
  async.record(r, repl::EventType::kNormal, "Updated", "");
  async.record(r, repl::EventType::kWarning, "Failed", "");
  CHECK(target.entered() == 1);  // the next goes out only when the first is through
  target.set_open(true);
  CHECK(target.seen() == std::vector<std::string>{"abc123:Created", "abc123:Updated", "abc123:Failed"});
  CHECK(async.dropped() == 0);
}

TEST_CASE("AsyncEventRecorder drops beyond its capacity and sends the rest at shutdown",
          "[operator][events]") {
  CollectingSender target;
  target.set_open(false);
  repl::ManualClock clock;
  auto r = repl::test::sample_repl();
  std::thread opener;
  {
    repl::AsyncEventRecorder async(target, clock, 2, std::chrono::milliseconds(5000));
    async.record(r, repl::EventType::kNormal, "a", "");  // in flight, held by the sender
    async.record(r, repl::EventType::kNormal, "b", "");
    async.record(r, repl::EventType::kNormal, "c", "");
    async.record(r, repl::EventType::kNormal, "d", "");  // the queue holds 2: dropped
    CHECK(async.dropped() == 1);
    opener = std::thread([&] {
      (void)clock.wait_armed(
          std::chrono::seconds(10));  // the drain has begun (Catch2 asserts only on the test thread)
      clock.advance(std::chrono::milliseconds(4999));  // within the drain time
      target.set_open(true);
    });
  }  // the destructor drains what is queued
  opener.join();
  CHECK(target.seen() == std::vector<std::string>{"abc123:a", "abc123:b", "abc123:c"});
  CHECK(clock.pending() == 0);  // its timer gone with it
}

TEST_CASE("AsyncEventRecorder gives up the queue after the drain time, but waits for the Event in flight",
          "[operator][events]") {
  repl::test::QuietLogs quiet;
  CollectingSender target;
  target.set_open(false);
  repl::ManualClock clock;
  auto r = repl::test::sample_repl();
  std::thread opener;
  {
    repl::AsyncEventRecorder async(target, clock, 10, std::chrono::milliseconds(20));
    async.record(r, repl::EventType::kNormal, "a", "");
    async.record(r, repl::EventType::kNormal, "b", "");
    opener = std::thread([&] {
      (void)clock.wait_armed(std::chrono::seconds(10));
      clock.advance(std::chrono::milliseconds(20));  // the drain time is over, "a" still in flight
      target.set_open(true);                         // "a" answered only now
    });
    async.drain();  // returns once "a" is through; "b" is dropped
    CHECK(target.entered() == 1);
  }
  opener.join();
  CHECK(target.seen() == std::vector<std::string>{"abc123:a"});
}
