#include "repl_store.hpp"

namespace repl {

ReplStore::ReplStore(OnChange on_change)
    : Store<Repl>(
          "repls",
          [](const rapidjson::Value& object) -> std::optional<Item> {
            auto r = parse_repl(object);
            if (!r) {
              log::warn("skipping unreadable Repl", {{"error", r.error().message}});
              return std::nullopt;
            }
            const ObjectKey key = r->key;
            return Item{key, key, std::move(*r)};
          },
          std::move(on_change)) {}

}  // namespace repl
