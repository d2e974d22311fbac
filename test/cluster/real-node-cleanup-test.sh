#!/usr/bin/env bash
# The real node's scripts on bad input (CTest `real/cleanup`, run alone after the real tier): an
# `up --real-node` killed half way, then `down` of that half-started node, and a whole node with pods
# running, then `down`, must each leave the machine as it was: no process of it, no mount, no bridge, no firewall rule or ipset, no kubepods cgroup, no
# CNI or containerd state, the sysctls as before; `down` of a directory that is not a cluster says
# so and changes nothing; and a user who cannot run containers gets one line saying what is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "real-node-cleanup-test: FAILED: $*" >&2; exit 1; }

# What the machine looks like, in the parts a real node touches.
snapshot() {
  {
    echo "links: $(ip -o link show | awk -F': ' '{print $2}' | sort | tr '\n' ' ')"
    echo "netns: $(ip netns list | tr '\n' ' ')"
    echo "ip_forward: $(cat /proc/sys/net/ipv4/ip_forward)"
    echo "bridge-nf-call-iptables: $(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null)"
    echo "kubelet's sysctls: $(cat /proc/sys/kernel/panic /proc/sys/kernel/panic_on_oops /proc/sys/vm/overcommit_memory | tr '\n' ' ')"
    echo "nft tables: $(nft list tables 2>/dev/null | tr '\n' ' ')"
    echo "iptables KUBE-: $(iptables-save 2>/dev/null | grep -c KUBE- || true)"
    echo "ipsets: $(ipset list -n 2>/dev/null | tr '\n' ' ')"
    echo "kubepods cgroups: $(ls -d /sys/fs/cgroup/*/kubepods 2>/dev/null | tr '\n' ' ')"
    echo "overlay mounts: $(awk '$3 == "overlay"' /proc/mounts | wc -l)"
    echo "node state: $(ls -d /var/lib/repl-operator /run/repl-operator 2>/dev/null | tr '\n' ' ')"
    echo "/run/containerd: $(ls -A /run/containerd 2>/dev/null | tr '\n' ' ')"
    echo "cni results: $(ls -A /var/lib/cni/results 2>/dev/null | tr '\n' ' ')"
    # Live ones: a killed daemon stays a zombie until PID 1 reaps it.
    echo "processes: $(ps -eo stat=,pid=,comm= | awk '$1 !~ /^Z/ && $3 ~ /^(kubelet|kube-proxy|containerd|containerd-shim|kube-router|traefik|pause)$/' | tr '\n' ' ')"
  }
}

dir=$(mktemp -d "${TMPDIR:-/tmp}/repl-real-cleanup.XXXXXX")
trap '"$here/cluster.sh" down "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
before=$(snapshot)

# Start a real node and kill its `up` (the whole process group, as Ctrl-C would) once the kubelet
# runs: containerd, the kubelet, the bridge and the imported images exist; kube-router, moto and
# Traefik do not yet.
setsid "$here/cluster.sh" up "$dir" --real-node > "$dir.log" 2>&1 &
up_pid=$!
deadline=$((SECONDS + 300))
until [ -s "$dir/kubelet.pid" ]; do
  kill -0 "$up_pid" 2>/dev/null || { cat "$dir.log" >&2; fail "up ended before the kubelet started"; }
  [ "$SECONDS" -lt "$deadline" ] || fail "the kubelet did not start within 300 s"
  sleep 0.2
done
kill -KILL -- "-$up_pid"
wait "$up_pid" 2>/dev/null || true
rm -f "$dir.log"
[ -n "$(pgrep -x kubelet)" ] || fail "the half-started node has no kubelet running: nothing left to clean"

"$here/cluster.sh" down "$dir" || fail "down of the half-started node failed"
after=$(snapshot)
[ "$before" = "$after" ] || fail "down left the machine changed:
$(diff <(echo "$before") <(echo "$after"))"
[ ! -e "$dir" ] || fail "down left $dir"

# A whole node, with pods running (Traefik), Services proxied and forwarding on, then `down`: the
# machine is as before too.
"$here/cluster.sh" up "$dir" --real-node > "$dir.log" 2>&1 || { cat "$dir.log" >&2; fail "up --real-node failed"; }
rm -f "$dir.log"
[ -n "$(pgrep -x traefik)" ] || fail "the node runs no pod (Traefik)"
nft list table ip kube-proxy > /dev/null 2>&1 || fail "the node has no kube-proxy table"
[ "$(cat /proc/sys/net/ipv4/ip_forward)" = 1 ] || fail "the node does not forward (pod to Service to pod)"
"$here/cluster.sh" down "$dir" || fail "down of the whole node failed"
after=$(snapshot)
[ "$before" = "$after" ] || fail "down of the whole node left the machine changed:
$(diff <(echo "$before") <(echo "$after"))"
[ ! -e "$dir" ] || fail "down left $dir"

# Bad input: `down` of something that is not (or no longer) a cluster says so, and changes nothing.
mkdir -p "$dir"
if msg=$("$here/cluster.sh" down "$dir" 2>&1); then fail "down of an empty directory succeeded"; fi
case "$msg" in *"is not a cluster directory"*) ;; *) fail "down of an empty directory said: $msg" ;; esac
[ "$before" = "$(snapshot)" ] || fail "down of a non-cluster changed the machine"
# A machine (here: a user) that cannot run containers is told in one line what is missing.
if msg=$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$here/cluster.sh" up "$dir/x" --real-node 2>&1); then
  fail "up --real-node as nobody succeeded"
fi
[ "$(printf '%s\n' "$msg" | wc -l)" -eq 1 ] || fail "up --real-node as nobody said more than one line: $msg"
case "$msg" in *"cannot run a real node: missing root"*) ;; *) fail "up --real-node as nobody said: $msg" ;; esac
[ ! -e "$dir/x" ] && [ "$before" = "$(snapshot)" ] || fail "a refused up --real-node changed something"
echo "real-node-cleanup-test: a killed up --real-node, then down, and a whole node, then down: the machine is as before"
