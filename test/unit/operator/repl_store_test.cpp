// ReplStore: the cache the watcher fills, and the keys it reports as changed.
#include "repl_store.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "unit/support/json.hpp"
#include "unit/support/quiet_logs.hpp"

namespace {

using repl::ObjectKey;
using Keys = std::vector<ObjectKey>;

const ObjectKey kA{"ns", "a"};
const ObjectKey kB{"ns", "b"};
const ObjectKey kC{"other", "c"};

rapidjson::Document repl_json(const ObjectKey& key, const std::string& user) {
  return repl::test::parse_json(
      R"({"apiVersion":"peetcode.com/v1alpha1","kind":"Repl","metadata":{"namespace":")" + key.ns +
      R"(","name":")" + key.name + R"("},"spec":{"userId":")" + user + R"("}})");
}

struct Fixture {
  repl::test::QuietLogs quiet;
  Keys changes;
  repl::ReplStore store{[this](const ObjectKey& key) { changes.push_back(key); }};

  void resync(const std::vector<std::pair<ObjectKey, std::string>>& repls) {
    store.begin_resync();
    for (const auto& [key, user] : repls) store.resync_item(repl_json(key, user));
    store.end_resync();
  }
  void event(repl::kube::EventType type, const ObjectKey& key, const std::string& user) {
    store.on_event(type, repl_json(key, user));
  }
  std::string user_of(const ObjectKey& key) {
    const auto r = store.get(key);
    REQUIRE(r);
    return r->spec.user_id;
  }
};

}  // namespace

TEST_CASE("a resync fills the store and reports every listed key", "[operator][repl_store]") {
  Fixture f;
  f.resync({{kB, "u2"}, {kA, "u1"}});
  CHECK(f.store.size() == 2);
  CHECK(f.user_of(kA) == "u1");
  CHECK(f.user_of(kB) == "u2");
  CHECK(f.changes == Keys{kA, kB});
  CHECK(f.store.wait_synced());  // returns at once: synced
}

TEST_CASE("a resync replaces the contents and reports keys that vanished", "[operator][repl_store]") {
  Fixture f;
  f.resync({{kA, "u1"}, {kB, "u2"}});
  f.changes.clear();
  f.store.begin_resync();
  f.store.resync_item(repl_json(kB, "u2-new"));
  f.store.resync_item(repl_json(kC, "u3"));
  // Until the list is complete, the old contents stay.
  CHECK(f.store.size() == 2);
  CHECK(f.user_of(kB) == "u2");
  CHECK_FALSE(f.store.get(kC));
  f.store.end_resync();
  CHECK(f.store.size() == 2);
  CHECK_FALSE(f.store.get(kA));
  CHECK(f.user_of(kB) == "u2-new");
  CHECK(f.user_of(kC) == "u3");
  // The listed keys and the vanished one, each once (in no promised order).
  std::sort(f.changes.begin(), f.changes.end());
  CHECK(f.changes == Keys{kA, kB, kC});
}

TEST_CASE("an empty resync empties the store", "[operator][repl_store]") {
  Fixture f;
  f.resync({{kA, "u1"}});
  f.changes.clear();
  f.resync({});
  CHECK(f.store.size() == 0);
  CHECK(f.changes == Keys{kA});
}

TEST_CASE("a failed list's partial resync is discarded by the next one", "[operator][repl_store]") {
  Fixture f;
  f.store.begin_resync();
  f.store.resync_item(repl_json(kA, "partial"));  // the list then failed: no end_resync
  f.resync({{kB, "u2"}});
  CHECK(f.store.size() == 1);
  CHECK_FALSE(f.store.get(kA));
}

TEST_CASE("watch events add, replace and remove Repls", "[operator][repl_store]") {
  Fixture f;
  using repl::kube::EventType;
  f.event(EventType::kAdded, kA, "u1");
  CHECK(f.user_of(kA) == "u1");
  f.event(EventType::kModified, kA, "u1-new");
  CHECK(f.user_of(kA) == "u1-new");
  f.event(EventType::kAdded, kB, "u2");
  CHECK(f.store.size() == 2);
  f.event(EventType::kDeleted, kA, "u1-new");
  CHECK_FALSE(f.store.get(kA));
  CHECK(f.store.size() == 1);
  f.event(EventType::kDeleted, kC, "never-seen");  // harmless
  CHECK(f.store.size() == 1);
  CHECK(f.changes == Keys{kA, kA, kB, kA, kC});
}

TEST_CASE("unreadable Repls are skipped", "[operator][repl_store]") {
  Fixture f;
  const auto nameless = repl::test::parse_json(R"({"metadata":{"namespace":"ns"}})");
  f.store.begin_resync();
  f.store.resync_item(nameless);
  f.store.resync_item(repl_json(kA, "u1"));
  f.store.end_resync();
  CHECK(f.store.size() == 1);
  f.changes.clear();
  f.store.on_event(repl::kube::EventType::kAdded, nameless);
  CHECK(f.store.size() == 1);
  CHECK(f.changes.empty());
}

TEST_CASE("wait_synced returns false once cancelled before any list", "[operator][repl_store]") {
  Fixture f;
  f.event(repl::kube::EventType::kAdded, kA, "u1");  // events alone do not make it synced
  f.store.cancel_wait();
  CHECK_FALSE(f.store.wait_synced());
}
