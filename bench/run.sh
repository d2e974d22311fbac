#!/usr/bin/env bash
# `make bench`: measures the operator on the simulated cluster (test/cluster/cluster.sh up --nodes)
# and writes bench/results/<stamp>.json, bench/results/<stamp>-latency.png and a table on stdout.
#
#   latency  200 Repls one after another, created through the API and then through the shim's
#            /start: time to all four children seen by a watch, and to Ready (p50/p90/p99)
#   burst    1,000 Repls created at once (32 in flight): time until every child exists and every
#            status is written; and, with no operator running, the baseline: the writes an operator
#            must make per Repl (its create, four child creates, one status apply) issued directly at
#            the same concurrency
#   floor    with no operator running, latency's floor: per Repl its create, the Repl watch's
#            delivery, its four children created directly at once, until a watch has seen them; and
#            the API server's own time per child write (its request-duration metric) during ours
#   scale    the operator restarted with 1,000 and with 10,000 Repls in the cluster: time from start
#            to caches synced, peak RSS after sync, CPU and write requests over an idle minute
#   soak     an operator limited to one namespace while Repls are created and deleted there for a
#            set time (10 a second, 100 live, so pods come and go): its RSS every 10 s, and the end
#            against the value after the first 5 minutes
#   peer     the same reconcile written with controller-runtime (bench/peer), one operator at a
#            time on the same cluster: latency and burst with controller-runtime's defaults (client
#            QPS 20, one worker), and latency, burst and scale unthrottled (no client-side limit, 16
#            workers); the report prints ours / peer for each figure
#   shim     wrk against /start (a new replId per request) while the operator runs
#   real     on one real node (cluster.sh up --real-node; root): 20 repls one after another, from
#            /start to Ready and to the first websocket byte through the ingress (p50/p99)
#
# BENCH_SCALE="1000 10000", BENCH_LATENCY=200, BENCH_BURST=1000, BENCH_IDLE=60, BENCH_SOAK=1800
# (seconds; 0 skips the soak), BENCH_REAL=20 (0 skips the real node) change the sizes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
results=$root/bench/results
mkdir -p "$results"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
work=$(mktemp -d "${TMPDIR:-/tmp}/repl-bench.XXXXXX")
bin=$("$root/test/cluster/build.sh" | tail -n 1)
# The bench's own tools, from Debian: wrk (the shim under load) and gnuplot (the chart).
for tool in wrk gnuplot; do
  command -v "$tool" >/dev/null 2>&1 && continue
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends wrk gnuplot-nox >/dev/null
  break
done
export PATH="$bin:$PATH"
latency_n=${BENCH_LATENCY:-200}
burst_n=${BENCH_BURST:-1000}
scale_ns=${BENCH_SCALE:-1000 10000}
idle=${BENCH_IDLE:-60}
soak=${BENCH_SOAK:-1800}

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$root/test/cluster/cluster.sh" down "$work/cluster" >/dev/null 2>&1 || true
  "$root/test/cluster/cluster.sh" down "$work/real" >/dev/null 2>&1 || true
}
trap cleanup EXIT
say() { echo "bench: $*" >&2; }

# Pods become ready after kwok's stages (20-50 ms each here): the figures to Ready include them.
# 256 CPUs a node: the phases leave their pods (100m each) behind, and three bursts of 1,000 plus
# the latency runs' did not fit in 4 x 64 (the unthrottled peer's pods were never scheduled).
say "starting the simulated cluster (4 nodes)"
KWOK_POD_DELAY_MS=20 KWOK_POD_JITTER_MS=50 KWOK_NODE_PODS=2000 KWOK_NODE_CPU=256 KWOK_NODE_MEMORY=512Gi \
  "$root/test/cluster/cluster.sh" up "$work/cluster" --nodes 4 --crds "$root/crd/repls.peetcode.com.yaml" >/dev/null
export KUBECONFIG=$work/cluster/admin.kubeconfig
for ns in bench bench-start bench-burst bench-baseline bench-floor bench-scale bench-soak \
  bench-peer-d bench-peer-d-burst bench-peer-u bench-peer-u-burst bench-peer-u-scale; do
  kubectl create namespace "$ns" >/dev/null
done

# The peer, built like the other Go tools into the cache, under a name that changes with its source.
cache=${REPL_CACHE:-$HOME/.cache/repl-operator}
peer_dir=$cache/repl-peer-$(cat "$root"/bench/peer/go.mod "$root"/bench/peer/go.sum "$root"/bench/peer/*.go | sha256sum | cut -c1-12)
if [ ! -x "$peer_dir/repl-peer" ]; then
  say "building the peer (first time only; cached in $peer_dir)"
  mkdir -p "$peer_dir"
  (cd "$root/bench/peer" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -o "$peer_dir/repl-peer.tmp" .)
  mv -f "$peer_dir/repl-peer.tmp" "$peer_dir/repl-peer"
fi

# Which operator start_operator runs, and the metrics that tell its queue and its requests.
use_ours() {
  # No idle suspends: the peer has none, and the phases leave Repls running past the default 30 m.
  operator_cmd=("$build/bin/repl-operator" --templates "$root/templates" --metrics-addr 127.0.0.1:0
    --health-addr 127.0.0.1:0 --idle-timeout 0)
  depth_re='^repl_operator_workqueue_depth'
  busy_re='^repl_operator_workqueue_in_flight'
  requests_re='^repl_operator_api_requests_total'
  writes_re='^repl_operator_api_requests_total\{.*verb="(POST|PUT|PATCH|DELETE)"'
}
use_peer() {  # use_peer QPS WORKERS
  operator_cmd=("$peer_dir/repl-peer" --qps "$1" --workers "$2")
  depth_re='^workqueue_depth\{.*name="repl"'
  busy_re='^controller_runtime_active_workers'
  requests_re='^rest_client_requests_total'
  writes_re='^rest_client_requests_total\{.*method="(POST|PUT|PATCH|DELETE)"'
}
use_ours

operator_pid=""
# start_operator LOG [ARGS...]: the current operator (all namespaces unless ARGS say), metrics on a
# free port written to $work/metrics.
start_operator() {
  local log=$1
  shift
  "${operator_cmd[@]}" "$@" > "$log" 2>&1 &
  operator_pid=$!
  pids+=("$operator_pid")
  local addr=""
  for _ in $(seq 1 100); do
    addr=$(sed -n 's/.*"msg":"serving metrics","addr":"\([^"]*\)".*/\1/p' "$log" | head -n 1)
    [ -n "$addr" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || { say "the operator did not serve metrics (log: $log)"; exit 1; }
  echo "$addr" > "$work/metrics"
}
stop_operator() {
  kill -TERM "$operator_pid"
  wait "$operator_pid" 2>/dev/null || true
}
metric() {  # metric NAME_REGEX: the sum of the series whose line matches
  curl -sf "http://$(cat "$work/metrics")/metrics" | awk -v re="$1" '$0 ~ re && $1 !~ /^#/ {s += $NF} END {printf "%d\n", s}'
}
writes() { metric "$writes_re"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$operator_pid/stat"; }
# quiet: until the cluster's own controllers have caught up (no Deployment changed anywhere for
# 10 s; at most 5 minutes), so that one phase's backlog (the controller manager's ReplicaSets and
# status writes for thousands of new Deployments) does not land in the next phase's figures.
quiet() {
  local deadline=$(( $(date +%s) + 300 )) n
  while [ "$(date +%s)" -lt "$deadline" ]; do
    n=$(timeout 10 kubectl get deployments -A --watch-only -o name 2>/dev/null | wc -l || true)
    [ "$n" -eq 0 ] && return 0
  done
  say "the cluster was still busy after 5 minutes (Deployments changing)"
}
# apiserver_writes: "SECONDS COUNT", the API server's own time on writes of the four kinds of child
# so far (its apiserver_request_duration_seconds, which excludes the network and the client).
apiserver_writes() {
  kubectl get --raw /metrics | awk '/^apiserver_request_duration_seconds_(sum|count)[{]/ &&
    /verb="(POST|APPLY|PATCH)"/ && /resource="(deployments|services|ingresses|networkpolicies)"/ {
      if ($1 ~ /_sum[{]/) s += $NF; else c += $NF } END {printf "%f %d\n", s, c}'
}
settle() {  # until the queue is empty and nothing is in flight, twice in a row
  local quiet=0
  while [ $quiet -lt 2 ]; do
    if [ "$(metric "$depth_re")" = 0 ] && [ "$(metric "$busy_re")" = 0 ]; then
      quiet=$((quiet + 1))
    else
      quiet=0
    fi
    sleep 1
  done
}

"$build/bin/repl-shim" --listen 127.0.0.1:0 --namespace bench-start --workers 64 > "$work/shim.log" 2>&1 &
pids+=($!)
shim_addr=""
for _ in $(seq 1 100); do
  shim_addr=$(sed -n 's/.*"msg":"serving","addr":"\([^"]*\)".*/\1/p' "$work/shim.log" | head -n 1)
  [ -n "$shim_addr" ] && break
  sleep 0.1
done
[ -n "$shim_addr" ] || { say "the shim did not start (log: $work/shim.log)"; exit 1; }

# latency_and_burst TAG NS_LATENCY NS_BURST: the current operator, limited to each namespace in turn.
latency_and_burst() {
  local tag=$1
  quiet
  say "$tag: latency: $latency_n Repls one after another, through the API"
  start_operator "$work/operator-$tag-latency.log" --namespace "$2"
  local before after
  before=$(apiserver_writes)
  "$build/bin/repl-bench" latency --namespace "$2" --count "$latency_n" > "$work/latency-$tag.json"
  after=$(apiserver_writes)
  echo "$before $after" | awk '{printf "{\"writes\":%d,\"mean_ms\":%.2f}\n", $4 - $2, ($4 > $2) ? 1000 * ($3 - $1) / ($4 - $2) : 0}' \
    > "$work/server-$tag.json"
  stop_operator
  quiet
  say "$tag: burst: $burst_n Repls at once"
  start_operator "$work/operator-$tag-burst.log" --namespace "$3"
  "$build/bin/repl-bench" burst --namespace "$3" --count "$burst_n" --concurrency 32 > "$work/burst-$tag.json"
  stop_operator
}

# scale TAG NS: suspended Repls (no pods: the figures are the operator's own), added up to each size
# by the current operator, in a namespace of their own that it is limited to; then a fresh operator.
scale() {
  local tag=$1 ns=$2
  : > "$work/scale-$tag.jsonl"
  for n in $scale_ns; do
    say "$tag: scale: $n Repls"
    start_operator "$work/operator-$tag-populate-$n.log" --namespace "$ns"
    "$build/bin/repl-bench" populate --namespace "$ns" --prefix "s" --count "$n" --concurrency 32 --suspended \
      > "$work/populate-$tag-$n.json"
    settle
    quiet
    stop_operator
    # A fresh operator: the time to sync is from its start to its "caches synced" line.
    local log=$work/operator-$tag-scale-$n.log started synced=""
    started=$(date +%s%3N)
    start_operator "$log" --namespace "$ns"
    for _ in $(seq 1 1200); do
      synced=$(sed -n 's/^{"ts":"\([^"]*\)","level":"info","msg":"caches synced".*/\1/p' "$log")
      [ -n "$synced" ] && break
      sleep 0.05
    done
    [ -n "$synced" ] || { say "the operator did not sync within 60 s (log: $log)"; exit 1; }
    local sync_ms=$(( $(date -d "$synced" +%s%3N) - started ))
    settle
    quiet
    local rss_after_sync ticks0 writes0 requests0 ticks1 writes1 requests1 rss_peak rss_now threads
    rss_after_sync=$(awk '/VmHWM/ {print $2}' "/proc/$operator_pid/status")
    ticks0=$(cpu_ticks); writes0=$(writes); requests0=$(metric "$requests_re")
    # What the idle CPU is spent on: a sampled profile of the idle minute (perf, when the machine
    # has it), the top symbols kept as idle-profile-TAG-N.txt.
    if command -v perf >/dev/null 2>&1; then
      perf record -q -F 199 -g -p "$operator_pid" -o "$work/perf-$tag-$n.data" -- sleep "$idle" >/dev/null 2>&1 || sleep "$idle"
      perf report -q -i "$work/perf-$tag-$n.data" --no-children --sort dso,symbol --stdio 2>/dev/null \
        | grep -v '^$' | head -n 60 > "$work/idle-profile-$tag-$n.txt" || true
    else
      sleep "$idle"
    fi
    ticks1=$(cpu_ticks); writes1=$(writes); requests1=$(metric "$requests_re")
    rss_peak=$(awk '/VmHWM/ {print $2}' "/proc/$operator_pid/status")
    rss_now=$(awk '/VmRSS/ {print $2}' "/proc/$operator_pid/status")
    threads=$(awk '/^Threads/ {print $2}' "/proc/$operator_pid/status")
    stop_operator
    echo "{\"repls\":$n,\"sync_ms\":$sync_ms,\"peak_rss_kb\":$rss_peak,\"peak_rss_after_sync_kb\":$rss_after_sync,\"rss_kb\":$rss_now,\"threads\":$threads,\"idle_seconds\":$idle,\"idle_cpu_ticks\":$((ticks1 - ticks0)),\"clk_tck\":$(getconf CLK_TCK),\"idle_writes\":$((writes1 - writes0)),\"idle_requests\":$((requests1 - requests0))}" \
      >> "$work/scale-$tag.jsonl"
  done
}

say "ours: latency: $latency_n Repls one after another, through the shim's /start"
start_operator "$work/operator-start.log"
"$build/bin/repl-bench" latency --namespace bench-start --count "$latency_n" --shim "http://$shim_addr" \
  > "$work/latency-start.json"
stop_operator
latency_and_burst ours bench bench-burst
quiet
say "baseline: the writes of $burst_n Repls, directly, no operator running"
"$build/bin/repl-bench" baseline --namespace bench-baseline --count "$burst_n" --concurrency 32 \
  --templates "$root/templates" > "$work/baseline.json"
quiet
say "floor: $latency_n Repls one after another, their children written directly, no operator running"
"$build/bin/repl-bench" floor --namespace bench-floor --count "$latency_n" --templates "$root/templates" \
  > "$work/floor.json"
scale ours bench-scale

# The peer: controller-runtime's defaults (its client's QPS 20 and burst 30, one worker), then
# unthrottled (no client-side limit, 16 workers). Scale only unthrottled: with QPS 20, populating
# 10,000 Repls (60,000 writes) alone would take 50 minutes.
use_peer 20 1
latency_and_burst peer-default bench-peer-d bench-peer-d-burst
use_peer -1 16
latency_and_burst peer-unthrottled bench-peer-u bench-peer-u-burst
scale peer-unthrottled bench-peer-u-scale
use_ours

if [ "$soak" -gt 0 ]; then
  quiet
  say "soak: $soak s of churn, 10 Repls a second created and as many deleted, 100 live"
  start_operator "$work/operator-soak.log" --namespace bench-soak
  "$build/bin/repl-bench" soak --namespace bench-soak --prefix soak- --seconds "$soak" --rate 10 --count 100 \
    > "$work/soak.json" &
  soak_pid=$!
  pids+=("$soak_pid")
  soak_start=$(date +%s)
  : > "$work/soak-rss"
  # Seconds since the start, the operator's RSS in kB, and the Deployments in the namespace: the
  # garbage collector deletes a deleted Repl's children, and while it lags the operator caches them.
  while kill -0 "$soak_pid" 2>/dev/null; do
    echo "$(( $(date +%s) - soak_start )) $(awk '/VmRSS/ {print $2}' "/proc/$operator_pid/status")" \
      "$(kubectl get deployments -n bench-soak -o name | wc -l)" >> "$work/soak-rss"
    sleep 10
  done
  wait "$soak_pid" || say "soak: some requests failed (see $work/soak.json)"
  stop_operator
fi

# Last, as it leaves thousands of new Repls (and pods) behind.
say "shim: wrk -t2 -c64 -d30s against /start, the operator running"
start_operator "$work/operator-wrk.log"
wrk -t2 -c64 -d30s --latency -s "$root/bench/start.lua" "http://$shim_addr" > "$work/wrk.txt" 2>&1
stop_operator

"$root/test/cluster/cluster.sh" down "$work/cluster" >/dev/null

# The real node: real containers, Traefik, S3; what a user waits for. The test binary's hidden
# bench case drives it (the same set-up as the real-node tests). BENCH_REAL=0 skips it.
real_n=${BENCH_REAL:-20}
if [ "$real_n" -gt 0 ]; then
  say "real node: $real_n repls one after another, /start to Ready and to the first websocket byte"
  "$root/test/cluster/cluster.sh" up "$work/real" --real-node --crds "$root/crd/repls.peetcode.com.yaml" >/dev/null
  REPL_TEST_KUBECONFIG=$work/real/admin.kubeconfig REPL_BENCH_OUT=$work/real.json REPL_BENCH_COUNT=$real_n \
    "$build/bin/integration-tests" "[.real-bench]" >&2
  "$root/test/cluster/cluster.sh" down "$work/real" >/dev/null
fi

python3 "$root/bench/report.py" "$work" "$results/$stamp"
cp "$work"/*.log "$work"/idle-profile-*.txt "$results/" 2>/dev/null || true
rm -rf "$work"  # its logs and profiles are in $results; a failed run keeps it for them
say "results: $results/$stamp.json, $results/$stamp-latency.png"
