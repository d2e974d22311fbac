// WatchRunner, the I/O around the watcher's state machine, driven by a scripted transport on the
// test's own thread: the sink (or the observer) stops the runner once the script is played. Time is
// virtual (repl::ManualClock): nothing sleeps, and backoffs are checked exactly.
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kube/watcher.hpp"
#include "unit/support/fake_transport.hpp"
#include "unit/support/quiet_logs.hpp"
#include "unit/support/status_json.hpp"

namespace {

using repl::kube::EventType;
using repl::kube::WatchSignal;
using repl::test::query_params;
using Strings = std::vector<std::string>;

const std::string kCollection = "/apis/peetcode.com/v1alpha1/repls";

const char* type_name(EventType t) {
  switch (t) {
    case EventType::kAdded:
      return "ADDED";
    case EventType::kModified:
      return "MODIFIED";
    case EventType::kDeleted:
      return "DELETED";
    case EventType::kBookmark:
      return "BOOKMARK";
    case EventType::kError:
      return "ERROR";
  }
  return "?";
}

const char* signal_name(WatchSignal s) {
  switch (s) {
    case WatchSignal::kListed:
      return "listed";
    case WatchSignal::kRelisted:
      return "relisted";
    case WatchSignal::kRewatched:
      return "rewatched";
    case WatchSignal::kFailed:
      return "failed";
    case WatchSignal::kRecovered:
      return "recovered";
  }
  return "?";
}

// Records what it is told as short strings; calls `stop` once `calls_before_stop` were recorded.
class RecordingSink final : public repl::kube::WatchSink {
 public:
  std::function<void()> stop;
  std::size_t calls_before_stop = 0;
  std::vector<std::string> calls;
  repl::Clock* clock = nullptr;
  std::vector<repl::SteadyTime> times;  // of each call, in virtual time

  void begin_resync() override { record("begin"); }
  void resync_item(const rapidjson::Value& o) override {
    record(std::string("item:") + o["metadata"]["name"].GetString());
  }
  void end_resync() override { record("end"); }
  void on_event(EventType t, const rapidjson::Value& o) override {
    record(std::string(type_name(t)) + ":" + o["metadata"]["name"].GetString());
  }
  std::vector<std::string> progress;  // on_progress's versions, in order
  void on_progress(const std::string& rv) override { progress.push_back(rv); }

 private:
  void record(std::string call) {
    calls.push_back(std::move(call));
    times.push_back(clock->now());
    if (calls.size() == calls_before_stop) stop();
  }
};

std::string object(const std::string& name, const std::string& rv) {
  return R"({"metadata":{"name":")" + name + R"(","resourceVersion":")" + rv + R"("}})";
}
std::string event(const std::string& type, const std::string& obj) {
  return R"({"type":")" + type + R"(","object":)" + obj + "}";
}
std::string page(const std::string& items, const std::string& rv) {
  return R"({"metadata":{"resourceVersion":")" + rv + R"("},"items":[)" + items + "]}";
}

std::string param(const std::string& target, const std::string& name) {
  for (const auto& [k, v] : query_params(target)) {
    if (k == name) return v;
  }
  return "(absent)";
}

// A watch stream whose every read is answered at once by the test's function.
class FuncStream final : public repl::kube::LineStream {
 public:
  using Next = std::function<Line()>;
  explicit FuncStream(Next next) : next_(std::move(next)) {}
  void next_async(LineDone done) override { done(next_()); }
  void cancel() override {}

 private:
  Next next_;
};

// The shortest backoff there is: the first one, with the smallest jitter.
constexpr auto kShortestBackoff = repl::kube::watcher::kInitialBackoff / 2;

// A scripted transport, a recording sink and the signals the runner reports, with their times on a
// virtual clock that a driver thread moves to the next timer whenever the runner waits for one (a
// backoff passes at once in real time, and exactly in virtual time).
struct Harness {
  repl::test::QuietLogs quiet;
  repl::ManualClock clock;
  std::shared_ptr<repl::test::FakeTransport> transport = std::make_shared<repl::test::FakeTransport>();
  repl::kube::Client client{transport};
  RecordingSink sink;
  Strings signals;
  std::vector<repl::SteadyTime> signal_times;
  std::string field_selector;
  // Off unless a test is about it: the driver moves time to the earliest timer the moment it is
  // armed, so a stall deadline would pass under every stream before its first line is taken in.
  repl::SteadyDuration stall_timeout{};

  // Runs until the sink has recorded `calls_before_stop` calls, or the runner signals `stop_on`;
  // a runner still going after 10 s is stopped and fails the test.
  void run(std::size_t calls_before_stop, std::optional<WatchSignal> stop_on = std::nullopt) {
    repl::kube::WatchRunner* self = nullptr;
    repl::kube::WatcherOptions options{kCollection,
                                       "app=repl",
                                       50,
                                       "test",
                                       [&](WatchSignal s) {
                                         signals.emplace_back(signal_name(s));
                                         signal_times.push_back(clock.now());
                                         if (s == stop_on) self->stop();
                                       },
                                       field_selector,
                                       stall_timeout};
    boost::asio::io_context io;
    auto work = boost::asio::make_work_guard(io);
    std::thread io_thread([&io] { io.run(); });
    repl::kube::WatchRunner runner(client, clock, io.get_executor(), std::move(options), sink);
    self = &runner;
    sink.clock = &clock;
    sink.stop = [&runner] { runner.stop(); };
    sink.calls_before_stop = calls_before_stop;
    std::promise<void> done;
    std::atomic<bool> timed_out{false};
    std::thread watchdog([&runner, &timed_out, finished = done.get_future()] {
      if (finished.wait_for(std::chrono::seconds(10)) == std::future_status::timeout) {
        timed_out = true;
        runner.stop();
      }
    });
    std::atomic<bool> finished{false};
    std::thread driver([this, &finished] {
      while (!finished) {
        if (auto due = clock.wait_armed(std::chrono::milliseconds(10))) clock.advance_to(*due);
      }
    });
    runner.start();
    runner.wait();
    finished = true;
    done.set_value();
    driver.join();
    watchdog.join();
    work.reset();
    io_thread.join();
    INFO("sink calls: " << sink.calls.size() << ", signals: " << signals.size());
    REQUIRE_FALSE(timed_out);
  }

  // When the runner first signalled `name`.
  repl::SteadyTime signalled(const std::string& name) const {
    for (std::size_t i = 0; i < signals.size(); ++i) {
      if (signals[i] == name) return signal_times[i];
    }
    FAIL("no signal " << name);
    return {};
  }
  // When the sink was first told `call`.
  repl::SteadyTime told(const std::string& call) const {
    for (std::size_t i = 0; i < sink.calls.size(); ++i) {
      if (sink.calls[i] == call) return sink.times[i];
    }
    FAIL("no sink call " << call);
    return {};
  }
};

}  // namespace

TEST_CASE("WatchRunner lists, watches from the list's version, re-watches and relists on 410",
          "[kube][watcher]") {
  Harness h;
  h.transport->respond(200, page(object("a", "90") + "," + object("b", "95"), "100"));
  h.transport->stream(
      {event("ADDED", object("c", "101")), event("BOOKMARK", object("", "150"))});  // then ends
  h.transport->stream({event("MODIFIED", object("c", "151")),
                       event("ERROR", repl::test::status_json(410, "Expired", "too old resource version"))});
  h.transport->respond(200, page(object("c", "151"), "200"));
  h.run(9);

  CHECK(h.sink.calls ==
        Strings{"begin", "item:a", "item:b", "end", "ADDED:c", "MODIFIED:c", "begin", "item:c", "end"});
  // Every list's version and every bookmark's: all changes up to there were delivered.
  CHECK(h.sink.progress == Strings{"100", "150", "200"});
  const auto& requests = h.transport->requests;
  REQUIRE(requests.size() == 4);
  CHECK(param(requests[0].target, "limit") == "50");
  CHECK(param(requests[0].target, "labelSelector") == "app%3Drepl");
  CHECK(param(requests[0].target, "watch") == "(absent)");
  CHECK(param(requests[1].target, "watch") == "true");
  CHECK(param(requests[1].target, "resourceVersion") == "100");
  CHECK(param(requests[1].target, "labelSelector") == "app%3Drepl");
  CHECK(param(requests[1].target, "allowWatchBookmarks") == "true");
  CHECK(param(requests[1].target, "fieldSelector") == "(absent)");
  const int timeout = std::stoi(param(requests[1].target, "timeoutSeconds"));
  CHECK(timeout >= 300);
  CHECK(timeout <= 600);
  CHECK(param(requests[2].target, "resourceVersion") == "150");  // from the bookmark
  CHECK(param(requests[3].target, "watch") == "(absent)");
  CHECK(h.transport->unused_responses() == 0);
  // The ERROR 410 event is not a failed request: it relists at once.
  CHECK(h.signals == Strings{"listed", "rewatched", "relisted"});
}

TEST_CASE("a watch that ends at once without events is a failure and backs off", "[kube][watcher]") {
  Harness h;
  h.transport->respond(200, page(object("a", "90"), "100"));
  h.transport->stream({});  // ends at once, empty
  h.transport->stream({event("ADDED", object("c", "101"))});
  h.run(4);

  CHECK(h.sink.calls == Strings{"begin", "item:a", "end", "ADDED:c"});
  CHECK(h.signals == Strings{"listed", "failed", "rewatched", "recovered"});
  const auto& requests = h.transport->requests;
  REQUIRE(requests.size() == 3);
  CHECK(param(requests[1].target, "resourceVersion") == "100");
  CHECK(param(requests[2].target, "resourceVersion") == "100");  // watched again, not relisted
  CHECK(h.told("ADDED:c") - h.signalled("failed") >= kShortestBackoff);
}

TEST_CASE("a watch that delivered events and then ended re-watches at once from the last version",
          "[kube][watcher]") {
  Harness h;
  h.transport->respond(200, page(object("a", "90"), "100"));
  Strings calls{"begin", "item:a", "end"};
  std::string version;
  SECTION("events") {
    h.transport->stream({event("ADDED", object("c", "101")), event("MODIFIED", object("c", "102"))});
    calls.insert(calls.end(), {"ADDED:c", "MODIFIED:c"});
    version = "102";
  }
  SECTION("a bookmark only") {
    h.transport->stream({event("BOOKMARK", object("", "150"))});
    version = "150";
  }
  const std::string ended_after = calls.back();
  h.transport->stream({event("DELETED", object("c", "160"))});
  calls.emplace_back("DELETED:c");
  h.run(calls.size());

  CHECK(h.sink.calls == calls);
  CHECK(h.signals == Strings{"listed", "rewatched"});
  const auto& requests = h.transport->requests;
  REQUIRE(requests.size() == 3);
  CHECK(param(requests[2].target, "resourceVersion") == version);
  CHECK(h.told("DELETED:c") == h.told(ended_after));  // no backoff at all
}

// A quiet collection's watch ends at its timeoutSeconds without events, and that is no failure.
TEST_CASE("a watch that ends without events after a while re-watches at once", "[kube][watcher]") {
  Harness h;
  h.transport->respond(200, page(object("a", "90"), "100"));
  h.transport->custom_stream(std::make_unique<FuncStream>([&h] {
    h.clock.advance(std::chrono::milliseconds(1100));  // the stream stays open, quiet, for 1.1 s
    return std::optional<std::string>();
  }));
  h.transport->stream({event("ADDED", object("c", "101"))});
  h.run(4);

  CHECK(h.sink.calls == Strings{"begin", "item:a", "end", "ADDED:c"});
  CHECK(h.signals == Strings{"listed", "rewatched"});
  REQUIRE(h.transport->requests.size() == 3);
  CHECK(param(h.transport->requests[2].target, "resourceVersion") == "100");
}

TEST_CASE("WatcherOptions.on_signal hears of lists, relists, re-watches and failures", "[kube][watcher]") {
  Harness h;
  SECTION("a failed list") {
    h.transport->respond(500, repl::test::status_json(500, "InternalError", "etcd"));
    h.run(0, WatchSignal::kFailed);
    CHECK(h.signals == Strings{"failed"});
    CHECK(h.sink.calls == Strings{"begin"});  // never ended: the contents stay as they were
  }
  SECTION("the first list, a re-watch, a relist after 410, a watch that cannot be opened") {
    h.transport->respond(200, page(object("a", "90"), "100"));
    h.transport->stream({event("ADDED", object("b", "101"))});
    h.transport->stream({event("ERROR", repl::test::status_json(410, "Expired", "too old"))});
    h.transport->respond(200, page(object("b", "101"), "200"));
    h.transport->fail_stream(repl::kube::transport_error("connection refused"));
    h.run(0, WatchSignal::kFailed);
    CHECK(h.signals == Strings{"listed", "rewatched", "relisted", "failed"});
    CHECK(h.transport->unused_responses() == 0);
  }
  SECTION("a stream that breaks") {
    h.transport->respond(200, page(object("a", "90"), "100"));
    h.transport->custom_stream(std::make_unique<FuncStream>(
        []() -> FuncStream::Line { return repl::Fail(repl::kube::transport_error("reset")); }));
    h.run(0, WatchSignal::kFailed);
    CHECK(h.signals == Strings{"listed", "failed"});
  }
}

TEST_CASE("WatchRunner sends the field selector with its list and its watch", "[kube][watcher]") {
  Harness h;
  h.field_selector = "involvedObject.kind=Pod,reason=Failed";
  h.transport->respond(200, page(object("a", "100"), "100"));
  h.transport->stream({event("ADDED", object("b", "101"))});
  h.run(4);
  const auto& requests = h.transport->requests;
  REQUIRE(requests.size() >= 2);
  CHECK(param(requests[0].target, "fieldSelector") == "involvedObject.kind%3DPod%2Creason%3DFailed");
  CHECK(param(requests[1].target, "watch") == "true");
  CHECK(param(requests[1].target, "fieldSelector") == "involvedObject.kind%3DPod%2Creason%3DFailed");
}

TEST_CASE("a watch that yields nothing for the stall timeout is replaced, from the same version",
          "[kube][watcher]") {
  Harness h;
  h.stall_timeout = repl::kube::kDefaultStallTimeout;
  h.transport->respond(200, page(object("a", "90"), "100"));
  auto silent = std::make_shared<repl::test::PushStream>();  // open, and never a line
  h.transport->custom_stream(silent->reader(silent));
  auto next = std::make_shared<repl::test::PushStream>();
  h.transport->custom_stream(next->reader(next));
  h.run(0, WatchSignal::kRewatched);  // stopped as the replacement opens

  CHECK(h.sink.calls == Strings{"begin", "item:a", "end"});
  CHECK(h.signals == Strings{"listed", "failed", "rewatched"});
  // The deadline, exactly (virtual time), then the shortest backoff at least.
  CHECK(h.signalled("failed") - h.told("end") == repl::kube::kDefaultStallTimeout);
  CHECK(h.signalled("rewatched") - h.signalled("failed") >= kShortestBackoff);
  REQUIRE(h.transport->requests.size() == 3);
  CHECK(param(h.transport->requests[2].target, "watch") == "true");
  CHECK(param(h.transport->requests[2].target, "resourceVersion") == "100");
}

TEST_CASE("a 429's Retry-After holds the next list back that long", "[kube][watcher]") {
  Harness h;
  h.transport->respond(429, repl::test::status_json(429, "TooManyRequests", "slow down"), "6");
  h.transport->respond(200, page(object("a", "90"), "100"));
  h.transport->stream({event("ADDED", object("c", "101"))});
  h.run(5);
  CHECK(h.sink.calls == Strings{"begin", "begin", "item:a", "end", "ADDED:c"});
  CHECK(h.signals == Strings{"failed", "recovered", "listed"});
  CHECK(h.told("item:a") - h.signalled("failed") >= std::chrono::seconds(6));
}
