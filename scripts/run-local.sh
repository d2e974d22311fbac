#!/usr/bin/env bash
# `make run`: starts a local control plane (unless REPL_USE_KUBECONFIG=1 and $KUBECONFIG is set),
# installs the CRD, runs the operator and the API shim (on $SHIM_LISTEN, default 127.0.0.1:3002), and
# takes everything down on Ctrl-C.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
# kubectl of the same release as the local API server (built by scripts/deps.sh).
bin=$("$root/test/cluster/build.sh" | tail -n 1)
export PATH="$bin:$PATH"

if [ "${REPL_USE_KUBECONFIG:-0}" = 1 ] && [ -n "${KUBECONFIG:-}" ]; then
  echo "using the cluster of \$KUBECONFIG ($KUBECONFIG)"
  kubectl apply -f "$root/crd/repls.peetcode.com.yaml" >/dev/null
  kubectl wait --for condition=established crd/repls.peetcode.com --timeout=60s >/dev/null
else
  dir=$(mktemp -d "${TMPDIR:-/tmp}/repl-run.XXXXXX")
  trap '"$root/test/cluster/cluster.sh" down "$dir" 2>/dev/null || rm -rf "$dir"' EXIT
  # The simulated cluster: controllers, scheduler and two kwok nodes, so Repls become Ready.
  KUBECONFIG=$("$root/test/cluster/cluster.sh" up "$dir" --nodes 2 --crds "$root/crd/repls.peetcode.com.yaml" | tail -n 1)
  export KUBECONFIG
fi

shim_addr=${SHIM_LISTEN:-127.0.0.1:3002}
cat <<MSG

The operator and the API shim (http://$shim_addr) are starting against
$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}'). In another shell, try:

  curl -H 'Content-Type: application/json' -d '{"userId":"u1","replId":"hello"}' http://$shim_addr/start
  export KUBECONFIG=$KUBECONFIG PATH=$bin:\$PATH
  kubectl wait --for=condition=Ready repl/hello
  kubectl get repls,deploy,pods,svc,ingress,networkpolicy

The local cluster is simulated: kube-controller-manager, kube-scheduler and two fake nodes (kwok) whose
pods become Running and Ready without containers (no image is pulled), so a Repl is Ready in about a
second. Press Ctrl-C to stop (the cluster goes with it).

MSG
# Not exec: the EXIT trap must run after both stop.
"$build/bin/repl-shim" --listen "$shim_addr" --namespace default &
shim=$!
"$build/bin/repl-operator" --templates "$root/templates" &
operator=$!
trap 'kill -TERM $operator $shim 2>/dev/null || true' INT TERM
# The first wait returns early when Ctrl-C arrives; the second collects the operator's exit status.
status=0
wait $operator || status=$?
if kill -0 $operator 2>/dev/null; then
  status=0
  wait $operator || status=$?
fi
kill -TERM $shim 2>/dev/null || true
wait $shim 2>/dev/null || true
exit $status
