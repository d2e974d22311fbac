// A cache fed by one watcher: a map from an object's key to a small record parsed from it (never
// the object itself), plus the key of the Repl each object belongs to, which is what gets
// reported as changed. Events and resyncs are applied as the watcher delivers them; a resync
// replaces the contents and reports every owner whose objects were listed or have vanished.
//
// Memory: per object the store keeps its name, the parsed record and its version. Namespaces are
// interned (each stored once per store, however many objects share it), and the owner is kept
// only when it differs from the object's own key (a Repl's children are named after it). The
// index by owner, which for_owner() needs, is kept only by stores made with OwnerIndex::kKept
// (pods, Events); a store of children is looked up by key and goes without it.
//
// Thread-safety: the WatchSink methods are called by one watcher at a time; get(), for_owner(),
// size(), wait_synced() and write_through() by any thread. The change callback runs outside the lock.
#pragma once

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/json.hpp"
#include "common/log.hpp"
#include "common/object_key.hpp"
#include "kube/watcher.hpp"

namespace repl {

template <class R>
class Store : public kube::WatchSink {
 public:
  struct Item {
    ObjectKey key;
    ObjectKey owner;
    R record;
    std::uint64_t version = 0;  // metadata.resourceVersion, set by the store
  };
  // Parses an object; std::nullopt when it is unreadable or not one of ours (it is then ignored).
  using Parse = std::function<std::optional<Item>(const rapidjson::Value&)>;
  using OnChange = std::function<void(const ObjectKey& owner)>;
  enum class OwnerIndex { kKept, kNone };

  Store(std::string name, Parse parse, OnChange on_change, OwnerIndex index = OwnerIndex::kKept)
      : name_(std::move(name)), parse_(std::move(parse)), on_change_(std::move(on_change)), index_(index) {}

  std::optional<R> get(const ObjectKey& key) const {
    std::lock_guard lock(mu_);
    const auto it = find(live_.items, key);
    if (it == live_.items.end()) return std::nullopt;
    return it->second.record;
  }

  // Calls f(record) for every object owned by `owner` (with OwnerIndex::kNone: only the one whose key
  // is `owner`, if it is its own owner).
  template <class F>
  void for_owner(const ObjectKey& owner, F f) const {
    for_owner_items(owner, [&f](const ObjectKey&, const R& record) { f(record); });
  }

  // Calls f(key, record) for every object owned by `owner`.
  template <class F>
  void for_owner_items(const ObjectKey& owner, F f) const {
    std::lock_guard lock(mu_);
    if (const auto self = find(live_.items, owner); self != live_.items.end() && !self->second.owner) {
      f(owner, self->second.record);
    }
    const auto it = live_.by_owner.find(owner);
    if (it == live_.by_owner.end()) return;
    for (const ObjectKey& key : it->second) f(key, find(live_.items, key)->second.record);
  }

  std::size_t size() const {
    std::lock_guard lock(mu_);
    return live_.items.size();
  }

  // Calls f(key, record) for every object, under the store's lock (f must not call back into it).
  template <class F>
  void for_each(F f) const {
    std::lock_guard lock(mu_);
    for (const auto& [key, entry] : live_.items) f(ObjectKey{*key.ns, key.name}, entry.record);
  }

  // Blocks until the first list has been stored (true) or cancel_wait() is called (false).
  bool wait_synced() {
    std::unique_lock lock(mu_);
    synced_cv_.wait(lock, [this] { return synced_ || wait_cancelled_; });
    return synced_;
  }
  bool synced() const {
    std::lock_guard lock(mu_);
    return synced_;
  }
  void cancel_wait() {
    std::lock_guard lock(mu_);
    wait_cancelled_ = true;
    synced_cv_.notify_all();
  }

  // Stores what our own write returned (the API server's answer to an apply), so a reconcile that
  // runs before the watch event arrives sees it. An older version never replaces a newer one;
  // nobody is notified (we know already).
  //
  // Our answer may arrive after the watch reported a newer change, or the deletion: never go back.
  // No tombstones are needed for that: watch events come in resourceVersion order, so once the
  // watch has passed the write's version (the horizon: the newest version an event, a list or a
  // bookmark delivered), the store already holds that write or what came after it, a deletion
  // included. Only a write ahead of the watch is stored; memory does not grow with deletions.
  void write_through(const rapidjson::Value& object) {
    auto item = parse(object);
    if (!item) return;
    std::lock_guard lock(mu_);
    if (item->version <= horizon_) return;
    if (const auto old = find(live_.items, item->key); old != live_.items.end()) {
      if (old->second.version >= item->version) return;
      erase(live_, old);
    }
    insert(live_, std::move(*item));
  }

  // A resync builds the new contents in their final form, which then replace the old: each object
  // is allocated once, not copied from a staging map that is freed afterwards (that left the heap
  // full of holes after every list).
  void begin_resync() override { incoming_ = Table{}; }

  void resync_item(const rapidjson::Value& object) override {
    if (auto item = parse(object)) {
      std::lock_guard lock(mu_);  // the namespaces are shared with readers
      if (const auto old = find(incoming_.items, item->key); old != incoming_.items.end())
        erase(incoming_, old);
      insert(incoming_, std::move(*item));
    }
  }

  void end_resync() override {
    std::set<ObjectKey> changed;
    Table replaced;  // freed after the lock is released: readers do not wait for that
    {
      std::lock_guard lock(mu_);
      for (const auto& [key, entry] : live_.items) {
        // Vanished while we were not watching, or now owned by another Repl: the old owner must
        // look again either way.
        ObjectKey k{*key.ns, key.name};
        ObjectKey owner = owner_of(k, entry);
        const auto now = incoming_.items.find(key);
        if (now == incoming_.items.end() || owner_of(k, now->second) != owner)
          changed.insert(std::move(owner));
      }
      for (const auto& [key, entry] : incoming_.items)
        changed.insert(owner_of(ObjectKey{*key.ns, key.name}, entry));
      replaced = std::exchange(live_, std::exchange(incoming_, Table{}));
      synced_ = true;
    }
    synced_cv_.notify_all();
    for (const auto& owner : changed) on_change_(owner);
  }

  void on_event(kube::EventType type, const rapidjson::Value& object) override {
    auto item = parse(object);
    if (!item) {
      log::debug("ignoring object", {{"store", name_}});
      return;
    }
    std::vector<ObjectKey> owners = {item->owner};
    {
      std::lock_guard lock(mu_);
      horizon_ = std::max(horizon_, item->version);
      const auto old = find(live_.items, item->key);
      // An event older than what our own write already stored changes nothing.
      if (type != kube::EventType::kDeleted && old != live_.items.end() &&
          old->second.version > item->version)
        return;
      if (old != live_.items.end()) {
        // Re-owned (a label changed): the previous owner must look again too.
        if (ObjectKey previous = owner_of(item->key, old->second); previous != item->owner) {
          owners.push_back(std::move(previous));
        }
        erase(live_, old);
      }
      if (type != kube::EventType::kDeleted) insert(live_, std::move(*item));
    }
    for (const auto& owner : owners) on_change_(owner);
  }

  void on_progress(const std::string& resource_version) override {
    std::uint64_t version = 0;
    std::from_chars(resource_version.data(), resource_version.data() + resource_version.size(), version);
    std::lock_guard lock(mu_);
    horizon_ = std::max(horizon_, version);
  }

 private:
  std::optional<Item> parse(const rapidjson::Value& object) const {
    auto item = parse_(object);
    if (item) {
      // Versions are opaque strings to clients, but etcd's are decimal revisions; a version that
      // is not a number counts as 0 and is simply never preferred by write_through().
      const std::string rv = json::string_at(json::member(object, "metadata"), "resourceVersion");
      std::from_chars(rv.data(), rv.data() + rv.size(), item->version);
    }
    return item;
  }

  // The stored form of a key: the namespace interned (a pointer into namespaces_), the name.
  struct Key {
    const std::string* ns;
    std::string name;
  };
  struct KeyLess {
    using is_transparent = void;
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      if (a.ns != b.ns) return std::less<const std::string*>()(a.ns, b.ns);
      return std::string_view(a.name) < std::string_view(b.name);
    }
  };
  struct KeyView {
    const std::string* ns;
    std::string_view name;
  };
  struct Entry {
    R record;
    std::uint64_t version = 0;
    std::unique_ptr<ObjectKey> owner;  // null: the object is owned by its own key
  };
  using Items = std::map<Key, Entry, KeyLess>;
  struct Table {
    Items items;
    // Objects owned by another key than their own, by owner.
    std::map<ObjectKey, std::set<ObjectKey>> by_owner;
  };

  static ObjectKey owner_of(const ObjectKey& key, const Entry& entry) {
    return entry.owner ? *entry.owner : key;
  }
  // The entry at `key`; a namespace never interned holds nothing.
  typename Items::const_iterator find(const Items& items, const ObjectKey& key) const {
    const auto ns = namespaces_.find(key.ns);
    if (ns == namespaces_.end()) return items.end();
    return items.find(KeyView{&*ns, key.name});
  }
  typename Items::iterator find(Items& items, const ObjectKey& key) {
    const auto ns = namespaces_.find(key.ns);
    if (ns == namespaces_.end()) return items.end();
    return items.find(KeyView{&*ns, key.name});
  }
  void insert(Table& table, Item item) {
    const std::string* ns = &*namespaces_.insert(item.key.ns).first;
    std::unique_ptr<ObjectKey> owner;
    if (item.owner != item.key) {
      if (index_ == OwnerIndex::kKept) table.by_owner[item.owner].insert(item.key);
      owner = std::make_unique<ObjectKey>(std::move(item.owner));
    }
    table.items.insert_or_assign(Key{ns, std::move(item.key.name)},
                                 Entry{std::move(item.record), item.version, std::move(owner)});
  }
  void erase(Table& table, typename Items::iterator it) {
    if (const auto& owner = it->second.owner) {
      if (auto index = table.by_owner.find(*owner); index != table.by_owner.end()) {
        index->second.erase(ObjectKey{*it->first.ns, it->first.name});
        if (index->second.empty()) table.by_owner.erase(index);
      }
    }
    table.items.erase(it);
  }

  const std::string name_;
  const Parse parse_;
  const OnChange on_change_;
  const OwnerIndex index_;
  mutable std::mutex mu_;
  std::condition_variable synced_cv_;
  // Namespaces seen, each once (a few per cluster: never pruned).
  std::set<std::string, std::less<>> namespaces_;
  Table live_;
  // The newest resourceVersion the watch has delivered (see write_through()).
  std::uint64_t horizon_ = 0;
  Table incoming_;  // a resync in progress; only the watcher writes it (under mu_: see resync_item)
  bool synced_ = false;
  bool wait_cancelled_ = false;
};

}  // namespace repl
