# One real node beside the cluster.sh control plane, sourced by cluster.sh (up --real-node): a
# kubelet of the pinned release, Debian's containerd and runc, the CNI bridge plugin, images built
# by images.sh and imported (no registry), kube-proxy (nftables) for Services, kube-router's
# NetworkPolicy firewall, Traefik as the ingress controller (a pod in the ingress-nginx namespace),
# and moto's S3 server on the bridge's host address, where pods reach it. Facts and the settings each failure forced:
# shared/notes/real-node.md.
#
# One real node per machine (a bridge, /run/containerd, the kubepods cgroups and the firewall are
# machine-wide): /run/repl-operator/real-node names the directory of the one running; a second `up`
# is refused while it lives, and reclaims it when it is dead. `down` (node_down) removes everything
# the node made: processes (by pid, checked against their binary), containers (by cgroup), mounts
# under the cluster directory, the bridge, kube-proxy's tables, kube-router's chains and ipsets, CNI
# state, the kubepods cgroup directories and the sysctls it changed, restored to their values before
# `up`. It is safe on
# a half-started node: every step tolerates the part that never ran.
#
# Addresses: the bridge repl0 is 10.88.0.1/16, pods get 10.88.0.10 and up and have no default route,
# only one to the Services' range 10.96.0.0/16 through the bridge, which kube-proxy turns into an
# endpoint on this node or drops: a pod can reach nothing but this bridge, no packet from a pod can
# leave the machine.

real_node_lock=/run/repl-operator/real-node
# Sockets and the kubelet's root live here, not under the cluster directory: a unix socket's path
# has at most 107 bytes, and a clone's path can be long. Images and snapshots stay under DIR.
node_state=/var/lib/repl-operator/node
bridge=repl0
bridge_addr=10.88.0.1
pod_cidr=10.88.0.0/16
# The Services' ClusterIPs (the API server's range). Pods route only it through the bridge, where
# kube-proxy translates it to an endpoint on this node or drops it (an unallocated ClusterIP).
service_cidr=10.96.0.0/16
cni_network=repl-real-node
guard_table=repl-real-node

# Everything a real node needs that can be missing, named in one line.
real_node_preflight() {
  local missing=()
  [ "$(id -u)" -eq 0 ] || missing+=("root (the kubelet, containerd and the CNI plugins need it)")
  grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || missing+=("the overlay filesystem")
  local tool
  for tool in containerd containerd-shim-runc-v2 ctr runc ipset iptables iptables-save nft umoci debootstrap; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  for tool in bridge host-local loopback; do
    [ -x "/usr/lib/cni/$tool" ] || missing+=("/usr/lib/cni/$tool (containernetworking-plugins)")
  done
  [ -d /sys/fs/cgroup/cpu ] || [ -f /sys/fs/cgroup/cgroup.controllers ] || missing+=("cgroups under /sys/fs/cgroup")
  [ ${#missing[@]} -eq 0 ] || die "this machine cannot run a real node: missing ${missing[*]}"
  # `down` kills whatever runs in the kubepods cgroups: refuse a machine where a kubelet that is not
  # ours (no real node of ours is recorded) has them, or runs.
  if [ ! -f "$real_node_lock" ]; then
    # A zombie does not count: a node of ours killed by `down` stays one until PID 1 reaps it, and
    # some container inits (this machine's) reap late.
    if ls -d /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods >/dev/null 2>&1 ||
      ps -eo stat=,comm= | awk '$1 !~ /^Z/ && $2 == "kubelet" {found = 1} END {exit !found}'; then
      die "a kubelet not started by cluster.sh runs on this machine (or left its kubepods cgroups): a real node needs the machine to itself"
    fi
  fi
}

# The node's own certificates: the kubelet's client (Node authorizer: O=system:nodes) and the API
# server's client towards the kubelet (kubectl logs/exec), both from the cluster CA.
real_node_certs() {
  local d=$1/pki node=$2
  (
    cd "$d"
    printf 'extendedKeyUsage=clientAuth\n' > client.ext
    openssl req -newkey rsa:2048 -nodes -keyout kubelet.key -out kubelet.csr \
      -subj "/O=system:nodes/CN=system:node:$node" 2>/dev/null
    openssl x509 -req -in kubelet.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out kubelet.crt -days 2 \
      -extfile client.ext 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout apiserver-kubelet-client.key -out apiserver-kubelet-client.csr \
      -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" 2>/dev/null
    openssl x509 -req -in apiserver-kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -out apiserver-kubelet-client.crt -days 2 -extfile client.ext 2>/dev/null
    rm -f ./*.csr client.ext
  )
}

# Claims the machine's one real node for DIR, or says who has it.
real_node_claim() {
  local dir=$1 other
  mkdir -p "$(dirname "$real_node_lock")"
  if [ -f "$real_node_lock" ]; then
    other=$(cat "$real_node_lock")
    [ -n "$other" ] || die "$real_node_lock is empty: remove it by hand once no real node runs"
    if [ "$other" != "$dir" ] && [ -f "$other/cluster.env" ] && alive "$(cat "$other/kubelet.pid" 2>/dev/null || echo 0)"; then
      die "a real node already runs from $other (one per machine): cluster.sh down $other first"
    fi
    echo "cluster.sh: cleaning up the real node left by $other" >&2
    node_down "$other"
  fi
  echo "$dir" > "$real_node_lock"
}

sysctl_value() { cat "/proc/sys/${1//.//}" 2>/dev/null || echo absent; }

# The sysctls the node changes: the bridge plugin's and the firewall's, and those the kubelet sets
# for itself (panic on oops, overcommit, key quotas). `down` puts each back.
node_sysctls=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables kernel.panic kernel.panic_on_oops
  vm.overcommit_memory vm.panic_on_oom kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

real_node_up() {
  local dir=$1
  # shellcheck disable=SC1091
  . "$dir/cluster.env"
  local node=$NODE_NAME
  mkdir -p "$dir/node"
  # What `down` restores: the sysctls the bridge plugin and the firewall change, the nftables
  # tables the machine had, and whether it had a /run/containerd of its own.
  local name
  for name in "${node_sysctls[@]}"; do echo "$name $(sysctl_value "$name")"; done > "$dir/node/sysctls.before"
  echo "had_run_containerd=$([ -e /run/containerd ] && echo 1 || echo 0)" > "$dir/node/before.env"
  nft list tables > "$dir/node/nft-tables.before" 2>/dev/null || true
  if ip -o addr show | grep "inet 10\.88\." > /dev/null; then
    die "10.88.0.0/16 is already in use on this machine (ip addr): the real node's pods need it"
  fi
  # A fixed MAC: a bridge without one takes the lowest of its ports' MACs, so adding or removing a
  # pod's veth can change it, and a pod that resolved the bridge's address before keeps sending to
  # the old MAC: its connections to the bridge (S3) stall until its ARP entry fails, up to a minute.
  ip link add "$bridge" address 02:88:00:00:00:01 type bridge
  ip addr add "$bridge_addr/16" dev "$bridge"
  ip link set "$bridge" up
  # A pod reaching a Service on another pod (the shim's, from `helm test`) is forwarded by the host,
  # bridge to bridge, after kube-proxy's translation: forwarding is on, and a table of ours first
  # drops every forwarded packet that enters or leaves by another interface than the bridge, so
  # nothing is routed between the pods and the machine's network.
  nft -f - <<NFT
table inet $guard_table {
  chain forward {
    type filter hook forward priority filter - 10; policy accept;
    iifname "$bridge" oifname != "$bridge" drop comment "pods reach nothing beyond the bridge"
    oifname "$bridge" iifname != "$bridge" drop comment "nothing else reaches the pods"
  }
}
NFT
  echo 1 > /proc/sys/net/ipv4/ip_forward

  # CNI: the bridge plugin on repl0 with host-local addresses, no default route and no
  # masquerading; only the Services' range is routed, through the bridge's host address.
  mkdir -p "$dir/node/cni/net.d" "$dir/node/cni/ipam"
  cat > "$dir/node/cni/net.d/10-repl.conflist" <<CNI
{
  "cniVersion": "1.0.0",
  "name": "$cni_network",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$dir/node/cni/ipam",
        "ranges": [[{"subnet": "$pod_cidr", "rangeStart": "10.88.0.10", "gateway": "$bridge_addr"}]],
        "routes": [{"dst": "$service_cidr", "gw": "$bridge_addr"}]
      }
    }
  ]
}
CNI

  # containerd: every path under the cluster directory; the CRI settings this VM needs (root lacks
  # CAP_SYS_RESOURCE, so oom_score_adj must not be lowered; no AppArmor; cgroupfs).
  local ctrd=$dir/node/containerd sock=$node_state/containerd.sock
  rm -rf "$node_state"
  mkdir -p "$ctrd" "$node_state"
  cat > "$ctrd/config.toml" <<TOML
version = 2
root = "$ctrd/root"
state = "$node_state/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$ctrd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$node_state/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/node/cni/net.d"
TOML
  daemon "$dir" containerd containerd --config "$ctrd/config.toml"
  await_daemon "$dir" containerd 30 "containerd did not start" ctr --address "$sock" version
  local tar
  for tar in $IMAGE_TARS; do
    ctr --address "$sock" -n k8s.io images import --base-name localhost/repl "$tar" > /dev/null ||
      die "cannot import $tar into containerd (log: $dir/containerd.log)"
  done

  # The kubelet: cgroup v1 with cgroupfs, no swap check, no iptables chains of its own, image GC
  # off (the images cannot be pulled again), probes and its API on loopback.
  local kd=$node_state/kubelet
  mkdir -p "$kd"
  printf 'nameserver 127.0.0.1\n' > "$dir/node/resolv.conf"
  write_kubeconfig "$dir/kubelet.kubeconfig" "https://127.0.0.1:$API_PORT" "system:node:$node" \
    "    client-certificate-data: $(base64 -w0 < "$dir/pki/kubelet.crt")
    client-key-data: $(base64 -w0 < "$dir/pki/kubelet.key")"
  cat > "$dir/node/kubelet-config.yaml" <<KUBELET
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://$sock
address: 127.0.0.1
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
makeIPTablesUtilChains: false
resolvConf: $dir/node/resolv.conf
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $dir/pki/ca.crt}
authorization:
  mode: Webhook
KUBELET
  daemon "$dir" kubelet "$BIN/kubelet" --config="$dir/node/kubelet-config.yaml" --kubeconfig="$dir/kubelet.kubeconfig" \
    --root-dir="$kd" --hostname-override="$node" --v=1
  await_daemon "$dir" kubelet 60 "the real node did not become Ready" node_ready "$dir" 1

  # Services by kube-proxy in nftables mode: everything it writes is in its own two tables ("ip
  # kube-proxy", "ip6 kube-proxy"), which `down` deletes. NodePorts only on the bridge's address,
  # conntrack sysctls left alone (0: do not set). Started before kube-router, so the cleanup of
  # other modes' leftovers it runs at start-up meets no chain of the firewall's.
  cat > "$dir/node/kube-proxy.yaml" <<PROXY
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection:
  kubeconfig: $dir/admin.kubeconfig
hostnameOverride: $node
clusterCIDR: $pod_cidr
nodePortAddresses: [$bridge_addr/32]
healthzBindAddress: 127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$KUBE_PROXY_METRICS_PORT
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
PROXY
  daemon "$dir" kube-proxy "$BIN/kube-proxy" --config="$dir/node/kube-proxy.yaml" --v=1
  await_daemon "$dir" kube-proxy 30 "kube-proxy did not sync the Services" \
    curl -sf "http://127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT/healthz"

  # NetworkPolicies enforced by kube-router's firewall only (no routing, no service proxy, no CNI).
  daemon "$dir" kube-router "$BIN/kube-router" --kubeconfig="$dir/admin.kubeconfig" --run-firewall=true --run-router=false \
    --run-service-proxy=false --enable-cni=false --hostname-override="$node" \
    --service-cluster-ip-range="$service_cidr" --health-port=0

  # S3 on the bridge's host address, the only place outside the pods that they can reach, with IAM
  # auth enforced after the first three requests: they create the user "init", allowed s3:* and
  # iam:* (tests make users and keys of their own, and revoke them), whose key DIR/s3.env holds (a
  # throwaway of this cluster, like its certificates).
  daemon "$dir" moto env INITIAL_NO_AUTH_ACTION_COUNT=3 "$BIN/moto_server" -H "$bridge_addr" -p "$S3_PORT"
  await_daemon "$dir" moto 30 "moto did not start" bash -c "echo > /dev/tcp/$bridge_addr/$S3_PORT"
  local keys key_id secret
  keys=$(
    export AWS_ACCESS_KEY_ID=bootstrap AWS_SECRET_ACCESS_KEY=bootstrap AWS_DEFAULT_REGION=us-east-1 HOME=$dir
    s3=(aws --endpoint-url "$S3_ENDPOINT")
    "${s3[@]}" iam create-user --user-name init > /dev/null
    "${s3[@]}" iam put-user-policy --user-name init --policy-name s3 \
      --policy-document '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*","iam:*"],"Resource":"*"}]}'
    "${s3[@]}" iam create-access-key --user-name init --query 'AccessKey.[AccessKeyId,SecretAccessKey]' --output text
  ) || die "cannot create the S3 user (log: $dir/moto.log)"
  read -r key_id secret <<< "$keys"
  (umask 077 && printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' "$key_id" "$secret" > "$dir/s3.env")

  real_node_ingress "$dir"
}

# Traefik in the ingress-nginx namespace, as a pod on the node: its ingress-nginx provider serves
# ingressClassName nginx. It reaches the API server in-cluster, through the `kubernetes` Service.
real_node_ingress() {
  local dir=$1
  # shellcheck disable=SC1091
  . "$dir/cluster.env"
  "$BIN/kubectl" --kubeconfig="$dir/admin.kubeconfig" apply -f - > /dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata:
  name: ingress-nginx
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx
spec:
  controller: k8s.io/ingress-nginx
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: traefik
  namespace: ingress-nginx
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: traefik
rules:
  - apiGroups: [""]
    resources: [services, secrets, nodes, configmaps, namespaces]
    verbs: [get, list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [ingresses, ingressclasses]
    verbs: [get, list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [ingresses/status]
    verbs: [update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: traefik
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: traefik
subjects:
  - kind: ServiceAccount
    name: traefik
    namespace: ingress-nginx
---
apiVersion: v1
kind: Pod
metadata:
  name: traefik
  namespace: ingress-nginx
  labels:
    app: traefik
spec:
  serviceAccountName: traefik
  enableServiceLinks: false
  terminationGracePeriodSeconds: 1
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    seccompProfile: {type: RuntimeDefault}
  containers:
    - name: traefik
      image: $TRAEFIK_IMAGE
      imagePullPolicy: Never
      args:
        - --entryPoints.web.address=:8000
        - --providers.kubernetesIngressNGINX=true
        - --ping=true
        - --ping.entryPoint=web
        - --global.checkNewVersion=false
        - --global.sendAnonymousUsage=false
        - --log.level=INFO
        - --log.noColor=true
      ports:
        - {name: web, containerPort: 8000}
      readinessProbe:
        httpGet: {path: /ping, port: 8000}
        periodSeconds: 1
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {drop: [ALL]}
YAML
  if ! "$BIN/kubectl" --kubeconfig="$dir/admin.kubeconfig" -n ingress-nginx wait --for=condition=Ready pod/traefik \
      --timeout=90s > /dev/null; then
    "$BIN/kubectl" --kubeconfig="$dir/admin.kubeconfig" -n ingress-nginx describe pod traefik >&2 || true
    "$BIN/kubectl" --kubeconfig="$dir/admin.kubeconfig" -n ingress-nginx logs traefik >&2 || true
    die "Traefik did not become Ready"
  fi
  local ip
  ip=$("$BIN/kubectl" --kubeconfig="$dir/admin.kubeconfig" -n ingress-nginx get pod traefik -o jsonpath='{.status.podIP}')
  echo "INGRESS_ADDR=$ip:8000" >> "$dir/cluster.env"
}

# A process of ours, by pid file and binary name, or nothing.
stop_node_processes() {
  local dir=$1
  stop_pid_file "$dir/moto.pid" 'python3*' KILL
  stop_pid_file "$dir/kube-router.pid" kube-router KILL
  stop_pid_file "$dir/kube-proxy.pid" kube-proxy KILL
  stop_pid_file "$dir/kubelet.pid" kubelet KILL
  # Containers outlive the kubelet and containerd (their shims keep them): every process in the
  # node's kubepods cgroups is a container of this node.
  local h pid
  for h in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [ -d "$h" ] || continue
    for pid in $(find "$h" -name cgroup.procs -exec cat {} + 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
  done
  local shim cmd
  for shim in $(pgrep -f containerd-shim-runc-v2 || true); do
    cmd=$(tr '\0' ' ' 2>/dev/null < "/proc/$shim/cmdline" || true)
    case "$cmd" in *"$node_state/containerd.sock"*) kill -KILL "$shim" 2>/dev/null || true ;; esac
  done
  stop_pid_file "$dir/containerd.pid" containerd TERM
}

# Every mount under a directory, deepest first (pods' volumes, overlays, shm, netns, the kubelet's
# bind mount of its root onto itself).
unmount_under() {
  local dir=$1 m
  for _ in 1 2 3; do
    local mounts
    mounts=$(awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r)
    [ -n "$mounts" ] || return 0
    for m in $mounts; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  done
}

# kube-router's rules, chains and ipsets (everything named KUBE-, in every table, IPv4 and IPv6),
# then the nftables tables that iptables-nft made for them and kube-proxy's own two, each unless it
# existed before `up`, and the forwarding guard.
remove_firewall() {
  local tables_before=$1 family save restore table rules
  for family in ip ip6; do
    save=iptables-save restore=iptables-restore
    [ "$family" = ip ] || save=ip6tables-save restore=ip6tables-restore
    for table in filter mangle nat raw; do
      nft list table "$family" "$table" >/dev/null 2>&1 || continue
      rules=$("$save" -t "$table" 2>/dev/null) || continue
      if grep -q 'KUBE-' <<< "$rules"; then
        grep -v 'KUBE-' <<< "$rules" | "$restore" -T "$table" || true
        rules=$("$save" -t "$table" 2>/dev/null) || continue
      fi
      if ! grep -qx "table $family $table" "$tables_before" 2>/dev/null && ! grep -q '^-A' <<< "$rules"; then
        nft delete table "$family" "$table" 2>/dev/null || true
      fi
    done
  done
  nft delete table inet "$guard_table" 2>/dev/null || true
  for family in ip ip6; do
    grep -qx "table $family kube-proxy" "$tables_before" 2>/dev/null || nft delete table "$family" kube-proxy 2>/dev/null || true
  done
  local set
  for set in $(ipset list -n 2>/dev/null | grep 'KUBE-' || true); do ipset destroy "$set" 2>/dev/null || true; done
}

remove_cgroups() {
  local h
  for h in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [ -d "$h" ] || continue
    find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

# Takes the real node of DIR down and undoes what it changed on the machine. Each step also works
# when `up` stopped before it.
node_down() {
  local dir=$1 owner
  # Another directory's node holds the machine: this one can only have stale files.
  owner=$(cat "$real_node_lock" 2>/dev/null || true)
  if [ -n "$owner" ] && [ "$owner" != "$dir" ]; then
    echo "cluster.sh: the real node of $owner runs; $dir's was already gone" >&2
    return 0
  fi
  local had_run_containerd=1
  # shellcheck disable=SC1091
  [ -f "$dir/node/before.env" ] && . "$dir/node/before.env"
  stop_node_processes "$dir"
  unmount_under "$node_state"
  unmount_under "$dir"
  rm -rf "$node_state"
  remove_cgroups
  ip link del "$bridge" 2>/dev/null || true
  # Test hosts on the bridge (network namespaces named repl-test-*, made by the real-node tests).
  local netns
  for netns in $(ip netns list 2>/dev/null | sed -n 's/^\(repl-test-[^ ]*\).*/\1/p'); do ip netns del "$netns" 2>/dev/null || true; done
  remove_firewall "$dir/node/nft-tables.before"
  # libcni's cache of each pod's results (this network's and the CRI's own loopback).
  rm -rf /var/lib/cni/results/"$cni_network"-* /var/lib/cni/results/cni-loopback-* 2>/dev/null || true
  rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null || true
  [ "$had_run_containerd" = 1 ] || pgrep -x containerd >/dev/null || rm -rf /run/containerd
  local name value
  while read -r name value; do
    [ "$value" = absent ] || echo "$value" > "/proc/sys/${name//.//}" 2>/dev/null || true
  done < <(cat "$dir/node/sysctls.before" 2>/dev/null)
  [ "$(cat "$real_node_lock" 2>/dev/null)" != "$dir" ] || rm -f "$real_node_lock"
  rmdir "$(dirname "$real_node_lock")" "$(dirname "$node_state")" 2>/dev/null || true
}
