// Store<R>, with a record of its own: the owner comes from an "owner" label, the record from
// data.value. Which owners each change reports, and how write_through orders by resourceVersion.
#include "store.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "unit/support/json.hpp"
#include "unit/support/object_key.hpp"
#include "unit/support/quiet_logs.hpp"

namespace {

using repl::ObjectKey;
using repl::kube::EventType;
using Keys = std::vector<ObjectKey>;
using Values = std::vector<std::string>;

struct Record {
  std::string value;
};
using TestStore = repl::Store<Record>;

const ObjectKey kOwner1{"ns", "owner-1"};
const ObjectKey kOwner2{"ns", "owner-2"};
const ObjectKey kX{"ns", "x"};
const ObjectKey kY{"ns", "y"};
const ObjectKey kZ{"ns", "z"};

std::optional<TestStore::Item> parse_record(const rapidjson::Value& object) {
  namespace json = repl::json;
  const auto* meta = json::member(object, "metadata");
  const std::string owner = json::string_at(json::member(meta, "labels"), "owner");
  const std::string name = json::string_at(meta, "name");
  if (owner.empty() || name.empty()) return std::nullopt;
  const std::string ns = json::string_at(meta, "namespace");
  return TestStore::Item{{ns, name}, {ns, owner}, {json::string_at(json::member(object, "data"), "value")}};
}

rapidjson::Document object(const ObjectKey& key, const ObjectKey& owner, const std::string& value,
                           const std::string& rv = "1") {
  return repl::test::parse_json(R"({"metadata":{"namespace":")" + key.ns + R"(","name":")" + key.name +
                                R"(","resourceVersion":")" + rv + R"(","labels":{"owner":")" + owner.name +
                                R"("}},"data":{"value":")" + value + R"("}})");
}

struct Fixture {
  repl::test::QuietLogs quiet;
  Keys changes;
  TestStore store{"test", parse_record, [this](const ObjectKey& owner) { changes.push_back(owner); }};

  std::string value_of(const ObjectKey& key) const {
    const auto r = store.get(key);
    REQUIRE(r);
    return r->value;
  }
  Values owned_by(const ObjectKey& owner) const {
    Values out;
    store.for_owner(owner, [&out](const Record& r) { out.push_back(r.value); });
    std::sort(out.begin(), out.end());
    return out;
  }
  void event(EventType type, const ObjectKey& key, const ObjectKey& owner, const std::string& value,
             const std::string& rv = "1") {
    store.on_event(type, object(key, owner, value, rv));
  }
  void write(const ObjectKey& key, const ObjectKey& owner, const std::string& value, const std::string& rv) {
    store.write_through(object(key, owner, value, rv));
  }
  // One complete list of the given objects (each owned by `owner`, value = its name).
  void resync(const std::vector<std::pair<ObjectKey, ObjectKey>>& objects, const std::string& list_rv = "1") {
    store.begin_resync();
    for (const auto& [key, owner] : objects) store.resync_item(object(key, owner, key.name));
    store.end_resync();
    store.on_progress(list_rv);
  }
  Keys sorted_changes() const {
    Keys out = changes;
    std::sort(out.begin(), out.end());
    return out;
  }
};

}  // namespace

TEST_CASE("write_through stores our own write without reporting a change", "[operator][store]") {
  Fixture f;
  f.write(kX, kOwner1, "ours", "5");
  CHECK(f.value_of(kX) == "ours");
  CHECK(f.owned_by(kOwner1) == Values{"ours"});
  CHECK(f.store.size() == 1);
  CHECK(f.changes.empty());
  CHECK_FALSE(f.store.synced());  // a write is not a list
}

TEST_CASE("write_through keeps whichever resourceVersion is newer", "[operator][store]") {
  Fixture f;
  SECTION("an older write does not replace a newer one") {
    f.write(kX, kOwner1, "new", "10");
    f.write(kX, kOwner1, "old", "9");
    CHECK(f.value_of(kX) == "new");
  }
  SECTION("nor does the same version") {
    f.write(kX, kOwner1, "first", "10");
    f.write(kX, kOwner1, "second", "10");
    CHECK(f.value_of(kX) == "first");
  }
  SECTION("a newer write replaces an older one") {
    f.write(kX, kOwner1, "old", "9");
    f.write(kX, kOwner1, "new", "10");
    CHECK(f.value_of(kX) == "new");
  }
  SECTION("versions compare as numbers, not strings") {
    f.write(kX, kOwner1, "old", "9");
    f.write(kX, kOwner1, "new", "10");  // "10" < "9" as text
    f.write(kX, kOwner1, "older", "8");
    CHECK(f.value_of(kX) == "new");
  }
  SECTION("against what a watch event stored") {
    f.event(EventType::kModified, kX, kOwner1, "watched", "20");
    f.changes.clear();
    f.write(kX, kOwner1, "stale", "19");
    CHECK(f.value_of(kX) == "watched");
    f.write(kX, kOwner1, "ours", "21");
    CHECK(f.value_of(kX) == "ours");
  }
  SECTION("a version that is not a number counts as 0") {
    f.write(kX, kOwner1, "numbered", "1");
    f.write(kX, kOwner1, "opaque", "abc");
    CHECK(f.value_of(kX) == "numbered");
  }
  CHECK(f.store.size() == 1);
  CHECK(f.changes.empty());
}

TEST_CASE("write_through moves an object to its new owner's index", "[operator][store]") {
  Fixture f;
  f.write(kX, kOwner1, "v1", "1");
  f.write(kX, kOwner2, "v2", "2");
  CHECK(f.owned_by(kOwner1).empty());
  CHECK(f.owned_by(kOwner2) == Values{"v2"});
  CHECK(f.changes.empty());
}

TEST_CASE("for_owner visits exactly the owner's objects", "[operator][store]") {
  Fixture f;
  f.event(EventType::kAdded, kX, kOwner1, "x");
  f.event(EventType::kAdded, kY, kOwner1, "y");
  f.event(EventType::kAdded, kZ, kOwner2, "z");
  f.event(EventType::kAdded, {"other-ns", "w"}, kOwner1, "w");  // owner-1 in another namespace
  CHECK(f.owned_by(kOwner1) == Values{"x", "y"});
  CHECK(f.owned_by(kOwner2) == Values{"z"});
  CHECK(f.owned_by({"other-ns", "owner-1"}) == Values{"w"});
  CHECK(f.owned_by({"ns", "nobody"}).empty());
}

TEST_CASE("watch events report the owner; a re-owned object reports both owners", "[operator][store]") {
  Fixture f;
  f.event(EventType::kAdded, kX, kOwner1, "x1");
  CHECK(f.changes == Keys{kOwner1});
  f.event(EventType::kModified, kX, kOwner1, "x2", "2");
  CHECK(f.value_of(kX) == "x2");
  CHECK(f.changes == Keys{kOwner1, kOwner1});
  f.changes.clear();
  f.event(EventType::kModified, kX, kOwner2, "x3", "3");
  CHECK(f.sorted_changes() == Keys{kOwner1, kOwner2});
  CHECK(f.owned_by(kOwner1).empty());
  CHECK(f.owned_by(kOwner2) == Values{"x3"});
}

TEST_CASE("a DELETED event removes the object and reports its owner", "[operator][store]") {
  Fixture f;
  f.event(EventType::kAdded, kX, kOwner1, "x");
  f.event(EventType::kAdded, kY, kOwner1, "y");
  f.changes.clear();
  f.event(EventType::kDeleted, kX, kOwner1, "x", "2");
  CHECK_FALSE(f.store.get(kX));
  CHECK(f.store.size() == 1);
  CHECK(f.owned_by(kOwner1) == Values{"y"});
  CHECK(f.changes == Keys{kOwner1});
  SECTION("the owner's index goes once it is empty") {
    f.event(EventType::kDeleted, kY, kOwner1, "y", "3");
    CHECK(f.owned_by(kOwner1).empty());
    CHECK(f.store.size() == 0);
  }
  SECTION("deleting an object never seen only reports its owner") {
    f.event(EventType::kDeleted, kZ, kOwner2, "z", "3");
    CHECK(f.store.size() == 1);
    CHECK(f.changes == Keys{kOwner1, kOwner2});
  }
}

TEST_CASE("a resync reports listed owners and owners whose objects vanished", "[operator][store]") {
  Fixture f;
  f.resync({{kX, kOwner1}, {kY, kOwner2}});
  CHECK(f.store.synced());
  CHECK(f.sorted_changes() == Keys{kOwner1, kOwner2});
  f.changes.clear();
  f.resync({{kY, kOwner2}});  // x vanished while not watching
  CHECK_FALSE(f.store.get(kX));
  CHECK(f.owned_by(kOwner1).empty());
  CHECK(f.sorted_changes() == Keys{kOwner1, kOwner2});
  SECTION("each owner once, however many objects it has") {
    f.changes.clear();
    f.resync({{kX, kOwner1}, {kY, kOwner2}, {kZ, kOwner1}});
    CHECK(f.sorted_changes() == Keys{kOwner1, kOwner2});
    CHECK(f.owned_by(kOwner1) == Values{"x", "z"});
  }
}

// A store of children is looked up by key and keeps no index by owner: it still reports every
// owner a change concerns (the object's, the previous one's, a vanished object's).
TEST_CASE("without an owner index, changes still report their owners", "[operator][store]") {
  repl::test::QuietLogs quiet;
  Keys changes;
  TestStore store{"test", parse_record, [&changes](const ObjectKey& owner) { changes.push_back(owner); },
                  TestStore::OwnerIndex::kNone};
  store.on_event(EventType::kAdded, object(kX, kOwner1, "x"));
  store.on_event(EventType::kAdded, object(kOwner2, kOwner2, "self"));
  CHECK(changes == Keys{kOwner1, kOwner2});
  CHECK(store.get(kX)->value == "x");
  Values owned;
  store.for_owner(kOwner1, [&owned](const Record& r) { owned.push_back(r.value); });
  store.for_owner(kOwner2, [&owned](const Record& r) { owned.push_back(r.value); });
  CHECK(owned == Values{"self"});  // only an object that is its own owner
  changes.clear();
  store.on_event(EventType::kModified, object(kX, kOwner2, "x2", "2"));
  CHECK(changes == Keys{kOwner2, kOwner1});
  changes.clear();
  store.begin_resync();
  store.resync_item(object(kOwner2, kOwner2, "self"));
  store.end_resync();  // x vanished
  std::sort(changes.begin(), changes.end());
  CHECK(changes == Keys{kOwner2});
  CHECK_FALSE(store.get(kX));
  CHECK(store.size() == 1);
}

// As on_event does: the previous owner of a re-owned object is told it lost a child.
TEST_CASE("a resync that re-owns an object reports the previous owner too", "[operator][store]") {
  Fixture f;
  f.resync({{kX, kOwner1}});
  f.changes.clear();
  f.resync({{kX, kOwner2}});
  CHECK(f.owned_by(kOwner2) == Values{"x"});
  CHECK(f.sorted_changes() == Keys{kOwner1, kOwner2});
}

TEST_CASE("objects the parser refuses are ignored", "[operator][store]") {
  Fixture f;
  const auto ownerless = repl::test::parse_json(R"({"metadata":{"namespace":"ns","name":"x"}})");
  const auto garbage = repl::test::parse_json(R"([1, 2])");
  f.event(EventType::kAdded, kY, kOwner1, "y");
  f.changes.clear();
  for (const auto* bad : {&ownerless, &garbage}) {
    f.store.on_event(EventType::kAdded, *bad);
    f.store.on_event(EventType::kDeleted, *bad);
    f.store.write_through(*bad);
  }
  CHECK(f.changes.empty());
  CHECK(f.store.size() == 1);
  f.store.begin_resync();
  f.store.resync_item(ownerless);
  f.store.resync_item(garbage);
  f.store.resync_item(object(kZ, kOwner2, "z"));
  f.store.end_resync();
  CHECK(f.store.size() == 1);
  CHECK(f.value_of(kZ) == "z");
  CHECK(f.sorted_changes() == Keys{kOwner1, kOwner2});  // y vanished, z listed
}

TEST_CASE("write_through never goes behind the watch: a deletion it delivered stays deleted",
          "[operator][store]") {
  Fixture f;
  f.write(kX, kOwner1, "ours", "5");
  f.event(EventType::kDeleted, kX, kOwner1, "ours", "8");
  REQUIRE_FALSE(f.store.get(kX));
  f.changes.clear();
  SECTION("an older write does not bring the object back") {
    f.write(kX, kOwner1, "late answer", "7");
    CHECK_FALSE(f.store.get(kX));
    CHECK(f.owned_by(kOwner1).empty());
    CHECK(f.store.size() == 0);
  }
  SECTION("nor does a write of the deletion's own version") {
    f.write(kX, kOwner1, "late answer", "8");
    CHECK_FALSE(f.store.get(kX));
    CHECK(f.store.size() == 0);
  }
  SECTION("a newer write does: the object was created again") {
    f.write(kX, kOwner1, "recreated", "9");
    CHECK(f.value_of(kX) == "recreated");
    CHECK(f.owned_by(kOwner1) == Values{"recreated"});
  }
  SECTION("the horizon is the watch's, not the key's: a write the watch has passed is its to deliver") {
    f.write(kY, kOwner1, "passed", "7");
    CHECK_FALSE(f.store.get(kY));
    f.write(kY, kOwner1, "ahead", "9");
    CHECK(f.value_of(kY) == "ahead");
  }
  SECTION("a deletion of an object never stored works as well") {
    f.event(EventType::kDeleted, kZ, kOwner2, "z", "20");
    f.write(kZ, kOwner2, "late", "19");
    CHECK_FALSE(f.store.get(kZ));
  }
}

TEST_CASE("a list's version and a bookmark move the horizon; nothing is kept per deleted object",
          "[operator][store]") {
  Fixture f;
  SECTION("a list at version 20: an older answer is the list's to have, a newer one is stored") {
    f.resync({{kY, kOwner2}}, "20");
    f.write(kX, kOwner1, "before the list", "19");
    CHECK_FALSE(f.store.get(kX));
    f.write(kX, kOwner1, "after the list", "21");
    CHECK(f.value_of(kX) == "after the list");
  }
  SECTION("a bookmark at 30") {
    f.store.on_progress("30");
    f.write(kX, kOwner1, "passed", "25");
    CHECK_FALSE(f.store.get(kX));
    f.write(kX, kOwner1, "ahead", "31");
    CHECK(f.value_of(kX) == "ahead");
  }
  SECTION("the horizon never goes back, and a version that is not a number moves nothing") {
    f.store.on_progress("30");
    f.store.on_progress("10");
    f.store.on_progress("not-a-number");
    f.write(kX, kOwner1, "passed", "29");
    CHECK_FALSE(f.store.get(kX));
  }
  SECTION("churn: a thousand objects created and deleted leave an empty store that still takes new writes") {
    for (int i = 1; i <= 1000; ++i) {
      const ObjectKey key{"ns", "churn-" + std::to_string(i)};
      f.event(EventType::kAdded, key, kOwner1, "v", std::to_string(2 * i));
      f.event(EventType::kDeleted, key, kOwner1, "v", std::to_string(2 * i + 1));
    }
    CHECK(f.store.size() == 0);
    f.write(kX, kOwner1, "new", "2002");
    CHECK(f.value_of(kX) == "new");
  }
}

TEST_CASE("a watch event older than the stored version is ignored", "[operator][store]") {
  Fixture f;
  f.event(EventType::kAdded, kX, kOwner1, "watched", "10");
  f.write(kX, kOwner1, "ours", "12");  // our write's answer came before its event
  f.changes.clear();
  SECTION("an older MODIFIED event neither replaces it nor notifies") {
    f.event(EventType::kModified, kX, kOwner1, "stale", "11");
    CHECK(f.value_of(kX) == "ours");
    CHECK(f.changes.empty());
  }
  SECTION("nor does an older event that would re-own it") {
    f.event(EventType::kModified, kX, kOwner2, "stale", "11");
    CHECK(f.owned_by(kOwner1) == Values{"ours"});
    CHECK(f.owned_by(kOwner2).empty());
    CHECK(f.changes.empty());
  }
  SECTION("the event of the same version replaces it and notifies") {
    f.event(EventType::kModified, kX, kOwner1, "the event", "12");
    CHECK(f.value_of(kX) == "the event");
    CHECK(f.changes == Keys{kOwner1});
  }
  SECTION("a newer event replaces it and notifies") {
    f.event(EventType::kModified, kX, kOwner2, "someone else's", "13");
    CHECK(f.value_of(kX) == "someone else's");
    CHECK(f.sorted_changes() == Keys{kOwner1, kOwner2});
  }
  SECTION("a DELETED event removes it whatever its version") {
    f.event(EventType::kDeleted, kX, kOwner1, "ours", "11");
    CHECK_FALSE(f.store.get(kX));
    CHECK(f.changes == Keys{kOwner1});
  }
}
