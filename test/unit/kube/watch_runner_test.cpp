// WatchRunner, the I/O around the watcher's state machine, driven by a scripted transport on the
// test's own thread: the sink stops the runner once the script is played, and every step of the
// script needs no backoff, so nothing sleeps.
#include <catch2/catch.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kube/watcher.hpp"
#include "unit/support/fake_transport.hpp"
#include "unit/support/quiet_logs.hpp"
#include "unit/support/status_json.hpp"

namespace {

using repl::kube::EventType;
using repl::test::query_params;

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

// Records what it is told as short strings; calls `stop` once `calls_before_stop` were recorded.
class RecordingSink final : public repl::kube::WatchSink {
 public:
  std::function<void()> stop;
  std::size_t calls_before_stop = 0;
  std::vector<std::string> calls;

  void begin_resync() override { record("begin"); }
  void resync_item(const rapidjson::Value& o) override {
    record(std::string("item:") + o["metadata"]["name"].GetString());
  }
  void end_resync() override { record("end"); }
  void on_event(EventType t, const rapidjson::Value& o) override {
    record(std::string(type_name(t)) + ":" + o["metadata"]["name"].GetString());
  }

 private:
  void record(std::string call) {
    calls.push_back(std::move(call));
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

}  // namespace

TEST_CASE("WatchRunner lists, watches from the list's version, re-watches and relists on 410",
          "[kube][watcher]") {
  repl::test::QuietLogs quiet;
  auto transport = std::make_shared<repl::test::FakeTransport>();
  transport->respond(200, page(object("a", "90") + "," + object("b", "95"), "100"));
  transport->stream({event("ADDED", object("c", "101")), event("BOOKMARK", object("", "150"))});  // then ends
  transport->stream({event("MODIFIED", object("c", "151")),
                     event("ERROR", repl::test::status_json(410, "Expired", "too old resource version"))});
  transport->respond(200, page(object("c", "151"), "200"));

  repl::kube::Client client(transport);
  RecordingSink sink;
  repl::kube::WatchRunner runner(client, {"/apis/peetcode.com/v1alpha1/repls", "app=repl", 50, "test"}, sink);
  sink.stop = [&runner] { runner.stop(); };
  sink.calls_before_stop = 9;
  runner.run();  // returns once the sink has stopped it

  CHECK(sink.calls == std::vector<std::string>{"begin", "item:a", "item:b", "end", "ADDED:c", "MODIFIED:c",
                                               "begin", "item:c", "end"});
  const auto& requests = transport->requests;
  REQUIRE(requests.size() == 4);
  CHECK(param(requests[0].target, "limit") == "50");
  CHECK(param(requests[0].target, "labelSelector") == "app%3Drepl");
  CHECK(param(requests[0].target, "watch") == "(absent)");
  CHECK(param(requests[1].target, "watch") == "true");
  CHECK(param(requests[1].target, "resourceVersion") == "100");
  CHECK(param(requests[1].target, "labelSelector") == "app%3Drepl");
  CHECK(param(requests[1].target, "allowWatchBookmarks") == "true");
  const int timeout = std::stoi(param(requests[1].target, "timeoutSeconds"));
  CHECK(timeout >= 300);
  CHECK(timeout <= 600);
  CHECK(param(requests[2].target, "resourceVersion") == "150");  // from the bookmark
  CHECK(param(requests[3].target, "watch") == "(absent)");
  CHECK(transport->unused_responses() == 0);
}
