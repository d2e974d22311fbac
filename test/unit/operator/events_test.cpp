// Events on a Repl: the core/v1 Event object, and ApiEventRecorder posting it (best-effort).
#include "events.hpp"

#include <catch2/catch.hpp>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <regex>
#include <string>
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

TEST_CASE("ApiEventRecorder posts the Event to the Repl's namespace", "[operator][events]") {
  repl::test::QuietLogs quiet;
  auto transport = std::make_shared<repl::test::FakeTransport>();
  repl::kube::Client client(transport);
  repl::ApiEventRecorder recorder(client, "pod-1");
  const auto repl = repl::test::sample_repl();
  SECTION("accepted") { transport->respond(201, R"({"kind":"Event"})"); }
  SECTION("refused: dropped without failing the caller") {
    transport->respond(403, repl::test::status_json(403, "Forbidden", "cannot create events"));
  }
  SECTION("unreachable: dropped too") { transport->fail(repl::kube::transport_error("connection refused")); }
  recorder.record(repl, repl::EventType::kWarning, "ImagePullFailed", "container runner: ErrImagePull");
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
  CHECK(
      std::regex_match(string_at(body, "/firstTimestamp"), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")));
  CHECK(transport->unused_responses() == 0);
}

namespace {

// Collects what reaches it; `gate` (when set) holds each record() until opened.
class CollectingRecorder final : public repl::EventRecorder {
 public:
  void record(const repl::Repl& repl, repl::EventType, const std::string& reason,
              const std::string&) override {
    std::unique_lock lock(mu_);
    ++entered_;
    cv_.notify_all();
    cv_.wait(lock, [this] { return open_; });
    seen_.push_back(repl.key.name + ":" + reason);
    cv_.notify_all();
  }
  void set_open(bool open) {
    std::lock_guard lock(mu_);
    open_ = open;
    cv_.notify_all();
  }
  void wait_entered(std::size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(5), [&] { return entered_ >= n; });
  }
  std::vector<std::string> wait_for(std::size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(5), [&] { return seen_.size() >= n; });
    return seen_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  std::size_t entered_ = 0;
  std::vector<std::string> seen_;
};

}  // namespace

TEST_CASE("AsyncEventRecorder sends Events in order, off the caller's thread", "[operator][events]") {
  CollectingRecorder target;
  target.set_open(false);  // the caller must not wait for a blocked target
  repl::AsyncEventRecorder async(target);
  auto r = repl::test::sample_repl();
  async.record(r, repl::EventType::kNormal, "Created", "");
  async.record(r, repl::EventType::kNormal, "Updated", "");
  async.record(r, repl::EventType::kWarning, "Failed", "");
  target.set_open(true);
  CHECK(target.wait_for(3) == std::vector<std::string>{"abc123:Created", "abc123:Updated", "abc123:Failed"});
  CHECK(async.dropped() == 0);
}

TEST_CASE("AsyncEventRecorder drops beyond its capacity and sends the rest at shutdown",
          "[operator][events]") {
  CollectingRecorder target;
  target.set_open(false);
  auto r = repl::test::sample_repl();
  {
    repl::AsyncEventRecorder async(target, 2, std::chrono::milliseconds(5000));
    async.record(r, repl::EventType::kNormal, "a", "");  // taken by the thread, blocked in the target
    target.wait_entered(1);
    async.record(r, repl::EventType::kNormal, "b", "");
    async.record(r, repl::EventType::kNormal, "c", "");
    async.record(r, repl::EventType::kNormal, "d", "");  // the queue holds 2: dropped
    CHECK(async.dropped() == 1);
    target.set_open(true);
  }  // the destructor drains what is queued
  CHECK(target.wait_for(3) == std::vector<std::string>{"abc123:a", "abc123:b", "abc123:c"});
}
