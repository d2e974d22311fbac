// The operator's cache of Repls: the parsed Repl (the fields reconcile needs), keyed and owned by
// itself, so every change reports the Repl's own key. See store.hpp for the semantics.
#pragma once

#include "repl/repl.hpp"
#include "store.hpp"

namespace repl {

class ReplStore final : public Store<Repl> {
 public:
  explicit ReplStore(OnChange on_change);
};

}  // namespace repl
