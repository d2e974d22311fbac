#!/usr/bin/env bash
# Builds the local control plane's binaries (kube-apiserver, etcd) from the Go module proxy, at the
# versions pinned in go.mod, into a per-version cache outside the clone:
#   ${REPL_CACHE:-~/.cache/repl-operator}/k8s-<version>/{kube-apiserver,etcd}
# and links the current ones into ${REPL_CACHE}/bin/. With a warm cache it only checks and returns.
# Prints the bin directory as its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${REPL_CACHE:-$HOME/.cache/repl-operator}

cd "$here"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
# Versions as the module graph resolves them (go.mod's own formatting is go mod tidy's business).
k8s_version=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
etcd_version=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
[ -n "$k8s_version" ] && [ -n "$etcd_version" ] || { echo "build.sh: cannot read versions from $here/go.mod" >&2; exit 1; }

k8s_dir="$cache/k8s-$k8s_version"
etcd_dir="$cache/etcd-$etcd_version"
mkdir -p "$k8s_dir" "$etcd_dir" "$cache/bin"

if [ ! -x "$k8s_dir/kube-apiserver" ]; then
  echo "building kube-apiserver $k8s_version (first time only; cached in $k8s_dir)" >&2
  minor=${k8s_version#v1.}; minor=${minor%%.*}
  pkg=k8s.io/component-base/version
  ldflags="-s -w -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags="$ldflags -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  go build -trimpath -ldflags "$ldflags" -o "$k8s_dir/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  mv "$k8s_dir/kube-apiserver.tmp" "$k8s_dir/kube-apiserver"
fi
if [ ! -x "$etcd_dir/etcd" ]; then
  echo "building etcd $etcd_version (first time only; cached in $etcd_dir)" >&2
  go build -trimpath -ldflags "-s -w" -o "$etcd_dir/etcd.tmp" ./cmd/etcd
  mv "$etcd_dir/etcd.tmp" "$etcd_dir/etcd"
fi
ln -sfn "$k8s_dir/kube-apiserver" "$cache/bin/kube-apiserver"
ln -sfn "$etcd_dir/etcd" "$cache/bin/etcd"
echo "$cache/bin"
