#!/usr/bin/env bash
# Builds the test tooling into a per-version cache outside the clone, and links the current ones
# into ${REPL_CACHE:-~/.cache/repl-operator}/bin/:
#   k8s-<version>/{kube-apiserver,kube-controller-manager,    from the Go module proxy, at the
#                  kube-scheduler,kubectl,kubelet,           versions pinned in go.mod
#                  kube-proxy}
#   etcd-<version>/etcd
#   faultproxy-<hash>/faultproxy   the fault tests' proxy (cmd/faultproxy, this module)
#   helm-<version>/helm, kube-score-<version>/kube-score      from the Go module proxy (each
#   kwok-<version>/kwok  (fake nodes for the e2e tier)        module's own go.mod, no replaces)
#   moto-<version>/bin/moto_server                            an S3 server, from PyPI
#   traefik-<version>/traefik      the real node's ingress controller (pinned in traefik/go.mod)
#   kube-router-<version>/kube-router   the real node's NetworkPolicy firewall
# kubectl is built from the same release so the tests never depend on whatever kubectl (and
# version skew) a machine happens to have.
# With a warm cache it only checks files and returns. Prints the bin directory as its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${REPL_CACHE:-$HOME/.cache/repl-operator}

# The pinned versions, read from go.mod's text (no Go, no network needed when the cache is warm).
module_version() {
  sed -n -E "s#^[[:space:]]*(require[[:space:]]+)?$1[[:space:]]+(v[^[:space:]]+).*#\\2#p" "$here/go.mod" | head -n 1
}
k8s_version=$(module_version k8s.io/kubernetes)
etcd_version=$(module_version go.etcd.io/etcd/server/v3)
[ -n "$k8s_version" ] && [ -n "$etcd_version" ] || { echo "build.sh: cannot read versions from $here/go.mod" >&2; exit 1; }

k8s_dir="$cache/k8s-$k8s_version"
etcd_dir="$cache/etcd-$etcd_version"
mkdir -p "$k8s_dir" "$etcd_dir" "$cache/bin"

# go_build OUT PACKAGE [LDFLAGS]: builds into a temporary name and renames, so two builds at
# once, or one interrupted, never leave a half-written binary under the final name.
go_build() {
  local out=$1 pkg=$2 ldflags=${3:-}
  [ -x "$out" ] && return 0
  echo "building $(basename "$out") (first time only; cached in $(dirname "$out"))" >&2
  local tmp
  tmp=$(mktemp "$out.XXXXXX")
  (cd "$here" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w $ldflags" -o "$tmp" "$pkg")
  mv -f "$tmp" "$out"
}

minor=${k8s_version#v1.}; minor=${minor%%.*}
pkg=k8s.io/component-base/version
stamp="-X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
stamp="$stamp -X $pkg.buildDate=1970-01-01T00:00:00Z"
go_build "$k8s_dir/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver "$stamp"
go_build "$k8s_dir/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager "$stamp"
go_build "$k8s_dir/kube-scheduler" k8s.io/kubernetes/cmd/kube-scheduler "$stamp"
go_build "$k8s_dir/kubectl" k8s.io/kubernetes/cmd/kubectl "$stamp"
go_build "$k8s_dir/kubelet" k8s.io/kubernetes/cmd/kubelet "$stamp"
go_build "$k8s_dir/kube-proxy" k8s.io/kubernetes/cmd/kube-proxy "$stamp"
go_build "$etcd_dir/etcd" ./cmd/etcd
# The fault-injecting proxy of the fault tests, cached by its source's hash (it changes with the repo).
faultproxy_dir="$cache/faultproxy-$(sha256sum "$here/cmd/faultproxy/main.go" | cut -c1-16)"
mkdir -p "$faultproxy_dir"
go_build "$faultproxy_dir/faultproxy" ./cmd/faultproxy

# go_install NAME PACKAGE VERSION: `go install PACKAGE@VERSION` (the module's own go.mod decides
# its dependencies) into $cache/NAME-VERSION/NAME, through a temporary GOBIN renamed when complete.
go_install() {
  local name=$1 pkg=$2 version=$3
  local dir="$cache/$name-$version"
  [ -x "$dir/$name" ] || {
    echo "building $name $version (first time only; cached in $dir)" >&2
    mkdir -p "$dir"
    local tmp
    tmp=$(mktemp -d "$dir/gobin.XXXXXX")
    GOBIN="$tmp" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "$pkg@$version"
    mv -f "$tmp/$name" "$dir/$name"
    rm -rf "$tmp"
  }
  ln -sfn "$dir/$name" "$cache/bin/$name"
}
go_install helm helm.sh/helm/v4/cmd/helm v4.3.1
# kube-score: the third-party checker the chart's rendered objects are held to.
go_install kube-score github.com/zegl/kube-score/cmd/kube-score v1.20.0
# kube-router v2.1.0 is the only version the proxy serves; it has reported security flaws, so it is
# a loopback test enforcer only (the firewall of the real node), never shipped.
go_install kube-router github.com/cloudnativelabs/kube-router/v2/cmd/kube-router v2.1.0
# Traefik's go.mod has replace directives, which `go install PACKAGE@VERSION` refuses: it is built in
# a wrapper module (traefik/go.mod) that carries them.
traefik_version=$(here="$here/traefik" module_version github.com/traefik/traefik/v3)
traefik_dir="$cache/traefik-$traefik_version"
mkdir -p "$traefik_dir"
(here="$here/traefik" go_build "$traefik_dir/traefik" github.com/traefik/traefik/v3/cmd/traefik \
  "-X github.com/traefik/traefik/v3/pkg/version.Version=$traefik_version")
ln -sfn "$traefik_dir/traefik" "$cache/bin/traefik"
kwok_version=v0.8.0
go_install kwok sigs.k8s.io/kwok/cmd/kwok "$kwok_version"
# kwok plays the kubelet by "stages" (status changes of nodes and pods), which the kwok binary does
# not carry: take the release's own from its module. Nodes: initialize, heartbeat with a Lease.
# Pods: the "general" stages (created, init containers running, then completed, then ready and
# running, each after a delay cluster.sh sets), and the immediate delete of the "fast" ones (the
# general one waits out the whole grace period).
kwok_stages="$cache/kwok-$kwok_version/stages"
[ -f "$kwok_stages/.complete" ] || {
  kwok_src=$(cd "$cache" && go mod download -json "sigs.k8s.io/kwok@$kwok_version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$kwok_src/kustomize/stage" ] || { echo "build.sh: no stages in the kwok module ($kwok_src)" >&2; exit 1; }
  rm -rf "$kwok_stages"
  mkdir -p "$kwok_stages/node" "$kwok_stages/pod"
  cp "$kwok_src/kustomize/stage/node/fast/node-initialize.yaml" \
    "$kwok_src/kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" "$kwok_stages/node/"
  for f in pod-create pod-init-container-running pod-init-container-completed pod-ready pod-complete; do
    cp "$kwok_src/kustomize/stage/pod/general/$f.yaml" "$kwok_stages/pod/"
  done
  cp "$kwok_src/kustomize/stage/pod/fast/pod-delete.yaml" "$kwok_stages/pod/"
  chmod -R u+w "$kwok_stages"
  touch "$kwok_stages/.complete"
}
ln -sfn "$kwok_stages" "$cache/bin/kwok-stages"

# moto's S3 server (Apache-2.0) for the init container's test, in a virtualenv of its own. A venv
# cannot be moved, so it is built in place and marked complete last; an unmarked one is redone.
moto_version=5.2.5
moto_dir="$cache/moto-$moto_version"
if [ ! -f "$moto_dir/.complete" ]; then
  echo "installing moto $moto_version (first time only; cached in $moto_dir)" >&2
  rm -rf "$moto_dir"
  python3 -m venv "$moto_dir"
  "$moto_dir/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$moto_version"
  touch "$moto_dir/.complete"
fi

ln -sfn "$moto_dir/bin/moto_server" "$cache/bin/moto_server"
ln -sfn "$k8s_dir/kube-apiserver" "$cache/bin/kube-apiserver"
ln -sfn "$k8s_dir/kube-controller-manager" "$cache/bin/kube-controller-manager"
ln -sfn "$k8s_dir/kube-scheduler" "$cache/bin/kube-scheduler"
ln -sfn "$k8s_dir/kubectl" "$cache/bin/kubectl"
ln -sfn "$k8s_dir/kubelet" "$cache/bin/kubelet"
ln -sfn "$k8s_dir/kube-proxy" "$cache/bin/kube-proxy"
ln -sfn "$etcd_dir/etcd" "$cache/bin/etcd"
ln -sfn "$faultproxy_dir/faultproxy" "$cache/bin/faultproxy"
echo "$cache/bin"
