#!/usr/bin/env bash
# A real, throwaway Kubernetes control plane on loopback (etcd + kube-apiserver), as
# controller-runtime's envtest starts one, plus kube-controller-manager running only the garbage
# collector and the namespace controller (so deleting a Repl deletes what it owns). No nodes, no
# scheduler, no Deployment controller: pods never run here.
#
# With --nodes N (the simulated cluster, for end-to-end tests): kube-controller-manager runs every
# default controller, kube-scheduler schedules, and kwok (sigs.k8s.io/kwok) keeps N fake nodes
# (node-1..node-N, each with $KWOK_NODE_CPU CPUs, $KWOK_NODE_MEMORY and room for $KWOK_NODE_PODS
# pods: 4, 16Gi and 110 unless set) alive and plays their kubelets: a bound pod gets its init
# containers completed, then its containers running and ready, without any container. Images are
# never pulled.
#
#   cluster.sh up [DIR] [--nodes N | --real-node] [--crds FILE] [--reclaim]
#                                   start one; prints the admin kubeconfig path as its last line.
#                                   --crds installs CRDs before the controllers start, as in a real
#                                   cluster (the garbage collector only learns of a CRD created later
#                                   at its next discovery, up to 30 s on)
#   cluster.sh down DIR|KUBECONFIG  stop it and remove its files
#   cluster.sh restart-apiserver DIR|KUBECONFIG
#                                   SIGKILL the API server and start it again on the same etcd and port
#   cluster.sh stop-apiserver DIR|KUBECONFIG / start-apiserver DIR|KUBECONFIG
#                                   the two halves of a restart, for outages of a chosen length
#   cluster.sh stop-etcd DIR|KUBECONFIG / start-etcd DIR|KUBECONFIG
#                                   SIGKILL etcd / start it again on its data and ports
#   cluster.sh compact-etcd DIR|KUBECONFIG
#                                   compact etcd's history: older resourceVersions are gone (410)
#
# CLUSTER_CONTROLLERS overrides the controller-manager's --controllers list.
#
# With --real-node: one real node instead (test/cluster/real-node.sh): a kubelet, containerd, runc,
# the CNI bridge plugin, locally built images (images.sh), kube-proxy, kube-router's NetworkPolicy
# firewall, Traefik as the ingress controller and moto's S3 server on the bridge (S3_ENDPOINT,
# INGRESS_ADDR and the image names are in DIR/cluster.env). With REPL_BIN_DIR set (a build's bin/),
# also the operator's own image (OPERATOR_IMAGE), for the Helm chart's pods. Needs root; one per machine. `down` removes
# everything the node made on the machine, also for a node that never finished starting.
#
# A second `up` on a directory whose cluster still runs is refused, unless --reclaim says to take
# that one down first (the test fixtures do: a run interrupted by Ctrl-C leaves its cluster up).
#
# Everything lives in DIR (default: a fresh mktemp directory): certificates, etcd data, logs, pid
# files, kubeconfigs. Ports are picked free at start, so two clusters on one machine never collide.
#   admin.kubeconfig   client certificate, O=system:masters
#   nobody.kubeconfig  bearer token of user "nobody", who has no RBAC rights
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=real-node.sh
. "$here/real-node.sh"

die() { echo "cluster.sh: $*" >&2; exit 1; }

# N distinct free ports, found while all are held (so never the same twice), outside the kernel's
# ephemeral range (a restarted API server must be able to bind its port again, and an outgoing
# connection that was given that port as its source would stop it) and outside the NodePort range
# 30000-32767 (NetworkPolicy enforcers such as kube-router let pods reach the node on those ports).
free_ports() {
  python3 -c 'import random, socket, sys
low, high = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
candidates = [p for p in range(10000, 65000) if not low <= p <= high and not 30000 <= p <= 32767]
socks = []
while len(socks) < int(sys.argv[1]):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", random.choice(candidates)))
        socks.append(s)
    except OSError:
        s.close()
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

cluster_dir() {
  local arg=${1:?a cluster directory or its kubeconfig is required}
  [ -f "$arg" ] && arg=$(dirname "$arg")
  [ -f "$arg/cluster.env" ] || die "$arg is not a cluster directory (no cluster.env)"
  (cd "$arg" && pwd)
}

# daemon DIR NAME COMMAND...: starts COMMAND in a session of its own, detached, logging to
# DIR/NAME.log, its pid in DIR/NAME.pid.
daemon() {
  local dir=$1 name=$2
  shift 2
  setsid "$@" > "$dir/$name.log" 2>&1 < /dev/null &
  echo $! > "$dir/$name.pid"
  disown
}

# await_daemon DIR NAME SECONDS WHAT COMMAND...: waits until COMMAND succeeds while the daemon NAME
# lives; otherwise shows the end of its log and fails with "WHAT (log: ...)".
await_daemon() {
  local dir=$1 name=$2 seconds=$3 what=$4
  shift 4
  wait_for "$dir/$name.pid" "$seconds" "$@" && return 0
  tail -n 30 "$dir/$name.log" >&2
  die "$what (log: $dir/$name.log)"
}

# wait_for PID_FILE SECONDS COMMAND...: retries COMMAND every 0.2 s while the process lives.
wait_for() {
  local pid_file=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    alive "$(cat "$pid_file")" || return 1
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

make_certs() {
  local d=$1/pki
  mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=repl-test-ca" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
    # 10.88.0.1: the real node's bridge, where its pods reach the API server; 10.96.0.1 and the
    # kubernetes.default names: the `kubernetes` Service, the in-cluster address client libraries use.
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' \
      IP:127.0.0.1,IP:10.88.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local \
      > apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 2 \
      -extfile apiserver.ext 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=admin" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' > admin.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 2 \
      -extfile admin.ext 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    nobody_token=$(openssl rand -hex 16)
    printf '%s,nobody,uid-nobody\n' "$nobody_token" > tokens.csv
    echo "$nobody_token" > nobody.token
    rm -f ./*.csr ./*.ext
  )
}

# write_kubeconfig FILE SERVER USER USER_FIELDS: a kubeconfig for one user of this cluster.
write_kubeconfig() {
  local file=$1 server=$2 user=$3 user_fields=$4 dir
  dir=$(dirname "$file")
  cat > "$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 < "$dir/pki/ca.crt")
users:
- name: $user
  user:
$user_fields
contexts:
- name: $user@local
  context:
    cluster: local
    user: $user
    namespace: default
current-context: $user@local
KUBECONFIG
  chmod 600 "$file"
}

write_kubeconfigs() {
  local dir=$1 server=$2
  write_kubeconfig "$dir/admin.kubeconfig" "$server" admin \
    "    client-certificate-data: $(base64 -w0 < "$dir/pki/admin.crt")
    client-key-data: $(base64 -w0 < "$dir/pki/admin.key")"
  write_kubeconfig "$dir/nobody.kubeconfig" "$server" nobody "    token: $(cat "$dir/pki/nobody.token")"
}

start_etcd() {
  local dir=$1
  # shellcheck disable=SC1091
  . "$dir/cluster.env"
  # As for the API server: a killed etcd's ports may linger a moment.
  for _ in $(seq 1 50); do
    [ -n "$(ss -Hltn "sport = :$ETCD_PORT or sport = :$ETCD_PEER_PORT")" ] || break
    sleep 0.2
  done
  daemon "$dir" etcd "$BIN/etcd" --name=default --data-dir="$dir/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="default=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --log-level=warn
  await_daemon "$dir" etcd 30 "etcd did not become healthy" curl -sf "http://127.0.0.1:$ETCD_PORT/health"
}

# Compacts etcd's history at its current revision (through its JSON gateway): a watch from an older
# resourceVersion is then answered 410 Gone, whether the API server serves it from its watch cache
# or from etcd.
compact_etcd() {
  local dir=$1 rev
  # shellcheck disable=SC1091
  . "$dir/cluster.env"
  rev=$(curl -sf -X POST "http://127.0.0.1:$ETCD_PORT/v3/kv/range" -d '{"key":"AA=="}' |
    sed -n 's/.*"revision":"\([0-9]*\)".*/\1/p')
  [ -n "$rev" ] || { echo "cluster.sh: cannot read etcd's revision" >&2; return 1; }
  curl -sf -X POST "http://127.0.0.1:$ETCD_PORT/v3/kv/compaction" -d "{\"revision\":\"$rev\",\"physical\":true}" > /dev/null
}

start_apiserver() {
  local dir=$1
  # shellcheck disable=SC1091
  . "$dir/cluster.env"
  local pki=$dir/pki
  # After a restart the killed server's socket may linger a moment (its exit is not instant on a
  # loaded machine): binding too soon would fail.
  for _ in $(seq 1 50); do
    [ -n "$(ss -Hltn "sport = :$API_PORT")" ] || break
    sleep 0.2
  done
  # Without nodes no pod runs, so no service account token is needed. A real node's pods (Traefik)
  # reach the API server from the bridge, the kubelet is authorized as a node, and the API server
  # authenticates to the kubelet for logs and exec.
  # The real node's pods reach it through the `kubernetes` Service (kube-proxy), whose endpoint the
  # API server keeps at its advertised address, the bridge's.
  local bind=127.0.0.1 advertise=127.0.0.1 reconciler=none
  local mode=(--disable-admission-plugins=ServiceAccount --authorization-mode=RBAC)
  if [ "${REAL_NODE:-0}" = 1 ]; then
    bind=0.0.0.0 advertise=$bridge_addr reconciler=lease
    mode=(--authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction
      --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" --kubelet-client-key="$pki/apiserver-kubelet-client.key")
  fi
  daemon "$dir" apiserver "$BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address="$bind" --advertise-address="$advertise" --secure-port="$API_PORT" \
    --cert-dir="$dir/apiserver-certs" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --token-auth-file="$pki/tokens.csv" \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --endpoint-reconciler-type="$reconciler" \
    --service-cluster-ip-range="$service_cidr" \
    "${mode[@]}" \
    --allow-privileged=true \
    ${APISERVER_EXTRA_ARGS:-}
  await_daemon "$dir" apiserver 90 "the API server did not become ready" curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
      "https://127.0.0.1:$API_PORT/readyz"
}

# A killed process whose parent has not reaped it yet (a zombie) counts as gone.
# (Used right after start, and, via stop_pid_file, only for a process proven to be ours.)
alive() {
  local state
  state=$(sed -n 's/^[0-9]* (.*) \([A-Z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

start_controller_manager() {
  local dir=$1
  # shellcheck disable=SC1091
  . "$dir/cluster.env"
  local controllers=garbagecollector,namespace
  [ "$NODES" -eq 0 ] && [ "${REAL_NODE:-0}" = 0 ] || controllers='*'
  # Its client's default of 20 requests a second (burst 30) made it the bottleneck of every
  # benchmark: 10,000 new Deployments took it 20 minutes to catch up on (a ReplicaSet and a status
  # write each), and its garbage collector fell behind a churn of 10 Repls a second. Large
  # clusters raise it too; here the cores are the limit.
  daemon "$dir" controller-manager "$BIN/kube-controller-manager" --kubeconfig="$dir/admin.kubeconfig" \
    --controllers="${CLUSTER_CONTROLLERS:-$controllers}" \
    --service-account-private-key-file="$dir/pki/sa.key" --root-ca-file="$dir/pki/ca.crt" \
    --kube-api-qps=1000 --kube-api-burst=2000 \
    --leader-elect=false --bind-address=127.0.0.1 --secure-port=0
}

start_scheduler() {
  local dir=$1
  # shellcheck disable=SC1091
  . "$dir/cluster.env"
  daemon "$dir" scheduler "$BIN/kube-scheduler" --kubeconfig="$dir/admin.kubeconfig" \
    --authentication-kubeconfig="$dir/admin.kubeconfig" --authorization-kubeconfig="$dir/admin.kubeconfig" \
    --kube-api-qps=1000 --kube-api-burst=2000 \
    --leader-elect=false --bind-address=127.0.0.1 --secure-port=0
}

# The simulated nodes: kwok, and N Node objects that kwok manages.
start_nodes() {
  local dir=$1
  # shellcheck disable=SC1091
  . "$dir/cluster.env"
  # The pod stages' delays (kwok's own: 1 s, up to 6 s with jitter) shortened to
  # KWOK_POD_DELAY_MS, up to KWOK_POD_JITTER_MS: a simulated pod is ready in about a second.
  local f stages="$dir/kwok-stages.yaml"
  : > "$stages"
  for f in "$BIN"/kwok-stages/node/*.yaml "$BIN"/kwok-stages/pod/*.yaml; do
    { echo "---"; sed -e "s/durationMilliseconds: 1000$/durationMilliseconds: ${KWOK_POD_DELAY_MS:-100}/" \
        -e "s/jitterDurationMilliseconds: 5000$/jitterDurationMilliseconds: ${KWOK_POD_JITTER_MS:-300}/" "$f"; } >> "$stages"
  done
  daemon "$dir" kwok "$BIN/kwok" --kubeconfig="$dir/admin.kubeconfig" --config="$stages" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --manage-nodes-with-label-selector= --cidr=10.244.0.0/16 --node-ip=10.0.0.1 \
    --node-lease-duration-seconds=40
  local i nodes="" pods=${KWOK_NODE_PODS:-110} cpu=${KWOK_NODE_CPU:-4} memory=${KWOK_NODE_MEMORY:-16Gi}
  for i in $(seq 1 "$NODES"); do
    nodes+="---
apiVersion: v1
kind: Node
metadata:
  name: node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: \"0\"
  labels:
    kubernetes.io/hostname: node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
status:
  capacity: {cpu: \"$cpu\", memory: $memory, pods: \"$pods\", ephemeral-storage: 1Ti}
  allocatable: {cpu: \"$cpu\", memory: $memory, pods: \"$pods\", ephemeral-storage: 1Ti}
"
  done
  printf '%s' "$nodes" | "$BIN/kubectl" --kubeconfig="$dir/admin.kubeconfig" apply -f - > /dev/null
  await_daemon "$dir" kwok 60 "the $NODES fake nodes did not become Ready" node_ready "$dir" "$NODES"
}

node_ready() {
  local ready
  ready=$("$BIN/kubectl" --kubeconfig="$1/admin.kubeconfig" get nodes \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null | grep -c True)
  [ "$ready" -eq "$2" ]
}

# stop_pid_file FILE BINARY_NAME [SIGNAL]: stops the process, if it is still that binary (a glob:
# a stale pid file must never kill an unrelated process that reused the number).
stop_pid_file() {
  local file=$1 name=$2 signal=${3:-TERM}
  [ -f "$file" ] || return 0
  local pid exe
  pid=$(cat "$file")
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  exe=${exe% (deleted)}
  # shellcheck disable=SC2053
  if [[ "$(basename "$exe")" == $name ]] && alive "$pid"; then
    kill "-$signal" "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

up() {
  local bin dir="" nodes=0 real_node=0 reclaim=0 crds=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --nodes) nodes=${2:?--nodes needs a number}; shift 2 ;;
      --nodes=*) nodes=${1#--nodes=}; shift ;;
      --crds) crds+=("${2:?--crds needs a file}"); shift 2 ;;
      --crds=*) crds+=("${1#--crds=}"); shift ;;
      --real-node) real_node=1; shift ;;
      --reclaim) reclaim=1; shift ;;
      -*) die "unknown option $1" ;;
      *) dir=$1; shift ;;
    esac
  done
  [[ "$nodes" =~ ^[0-9]+$ ]] || die "--nodes must be a number, not '$nodes'"
  [ "$real_node" = 0 ] || [ "$nodes" -eq 0 ] || die "--real-node and --nodes exclude each other"
  [ "$real_node" = 0 ] || real_node_preflight
  bin=$("$here/build.sh" | tail -n 1)
  dir=$(realpath -m "${dir:-$(mktemp -d "${TMPDIR:-/tmp}/repl-cluster.XXXXXX")}")
  # A directory left by an interrupted run (Ctrl-C, a cancelled CI job) is reclaimed; one whose
  # cluster still runs only with --reclaim. A refusal creates nothing.
  if [ -f "$dir/cluster.env" ]; then
    if [ "$reclaim" = 0 ] && alive "$(cat "$dir/apiserver.pid" 2>/dev/null || echo 0)"; then
      die "a cluster already runs in $dir: cluster.sh down $dir first (or up --reclaim)"
    fi
    echo "cluster.sh: taking down the cluster left in $dir" >&2
    down "$dir"
  fi
  [ "$real_node" = 0 ] || real_node_claim "$dir"
  mkdir -p "$dir"
  # Any failure from here on takes down what was started (the logs stay in $dir).
  # (Expanded now: when set -e ends the script, bash runs the trap after leaving this function, where
  # the local $dir no longer exists.)
  # shellcheck disable=SC2064
  trap "stop_all $(printf %q "$dir")" EXIT

  make_certs "$dir"
  local ports
  read -r -a ports <<< "$(free_ports 8)"
  cat > "$dir/cluster.env" <<ENV
BIN=$bin
ETCD_PORT=${ports[0]}
ETCD_PEER_PORT=${ports[1]}
API_PORT=${ports[2]}
NODES=$nodes
REAL_NODE=$real_node
ENV
  if [ "$real_node" = 1 ]; then
    local node
    node=$(hostname | tr '[:upper:]' '[:lower:]')
    real_node_certs "$dir" "$node"
    {
      echo "NODE_NAME=$node"
      echo "KUBELET_PORT=${ports[3]}"
      echo "KUBELET_HEALTHZ_PORT=${ports[4]}"
      echo "S3_PORT=${ports[5]}"
      echo "KUBE_PROXY_HEALTHZ_PORT=${ports[6]}"
      echo "KUBE_PROXY_METRICS_PORT=${ports[7]}"
      echo "S3_ENDPOINT=http://$bridge_addr:${ports[5]}"
      "$here/images.sh"
    } >> "$dir/cluster.env"
  fi
  start_etcd "$dir"
  start_apiserver "$dir"
  write_kubeconfigs "$dir" "https://127.0.0.1:$API_PORT"
  local crd
  for crd in "${crds[@]}"; do
    "$bin/kubectl" --kubeconfig="$dir/admin.kubeconfig" apply -f "$crd" > /dev/null
    "$bin/kubectl" --kubeconfig="$dir/admin.kubeconfig" wait --for condition=established -f "$crd" --timeout=60s > /dev/null
  done
  start_controller_manager "$dir"
  [ "$nodes" -eq 0 ] && [ "$real_node" = 0 ] || start_scheduler "$dir"
  [ "$nodes" -eq 0 ] || start_nodes "$dir"
  [ "$real_node" = 0 ] || real_node_up "$dir"
  trap - EXIT
  echo "cluster up: kube-apiserver $("$bin/kube-apiserver" --version | cut -d' ' -f2) on https://127.0.0.1:$API_PORT" >&2
  echo "$dir/admin.kubeconfig"
}

# Its state is thrown away next (or it failed to start), so nothing is shut down gracefully.
stop_all() {
  if grep -qx REAL_NODE=1 "$1/cluster.env" 2>/dev/null; then node_down "$1"; fi
  stop_pid_file "$1/kwok.pid" kwok KILL
  stop_pid_file "$1/scheduler.pid" kube-scheduler KILL
  stop_pid_file "$1/controller-manager.pid" kube-controller-manager KILL
  stop_pid_file "$1/apiserver.pid" kube-apiserver KILL
  stop_pid_file "$1/etcd.pid" etcd KILL
}

down() {
  local dir
  dir=$(cluster_dir "$1")
  stop_all "$dir"
  rm -rf "$dir"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) shift; down "$@" ;;
  stop-apiserver) shift; stop_pid_file "$(cluster_dir "$1")/apiserver.pid" kube-apiserver KILL ;;
  start-apiserver) shift; start_apiserver "$(cluster_dir "$1")" ;;
  stop-etcd) shift; stop_pid_file "$(cluster_dir "$1")/etcd.pid" etcd KILL ;;
  compact-etcd) shift; compact_etcd "$(cluster_dir "$1")" ;;
  start-etcd) shift; start_etcd "$(cluster_dir "$1")" ;;
  restart-apiserver)
    shift
    stop_pid_file "$(cluster_dir "$1")/apiserver.pid" kube-apiserver KILL
    start_apiserver "$(cluster_dir "$1")"
    ;;
  *)
    echo "usage: cluster.sh up [DIR] [--nodes N | --real-node] [--crds FILE] [--reclaim] | down | restart-apiserver | stop-apiserver | start-apiserver | stop-etcd | start-etcd | compact-etcd  DIR|KUBECONFIG" >&2
    exit 2
    ;;
esac
