// Reconcile of one Repl: render its children, server-side apply each, then write the status if it
// differs from what the Repl already shows. Level-based: it reads the Repl as it is now and never
// depends on which event brought the key here.
//
// Failures the user must fix (an invalid spec, a template that renders an object the API server
// refuses) are reported in the Repl's status and are not retried; transient ones (the API server
// cannot be reached, a conflict) are returned so the caller retries later.
//
// Thread-safety: reconcile() may run on several threads at once, for different Repls.
#pragma once

#include <vector>

#include "common/result.hpp"
#include "kube/client.hpp"
#include "repl/children.hpp"
#include "repl/repl.hpp"
#include "repl/status.hpp"

namespace repl {

inline constexpr const char* kFieldManager = "repl-operator";

class Reconciler final {
 public:
  Reconciler(kube::Client& client, ChildSettings settings, std::vector<ChildTemplate> templates);

  Result<void, kube::ApiError> reconcile(const Repl& repl);

 private:
  // Applies the children; fills `seen` with what a status needs. Returns transient errors only.
  Result<void, kube::ApiError> apply_children(const Repl& repl, ChildObservation& seen);
  Result<void, kube::ApiError> write_status(const Repl& repl, const ChildObservation& seen);

  kube::Client& client_;  // not owned; outlives this
  const ChildSettings settings_;
  const std::vector<ChildTemplate> templates_;
};

// Whether an apply error is the request's fault (so retrying the same request cannot help).
bool is_permanent(const kube::ApiError& e);

}  // namespace repl
