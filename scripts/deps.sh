#!/usr/bin/env bash
# Installs what building and testing need, idempotently: Debian packages (compiler toolchain,
# cpprestsdk, yaml-cpp, RapidJSON, prometheus-cpp, Boost, Catch2, OpenSSL, clang-format, clang and its
# sanitizer and libFuzzer runtimes for `make sanitize`, Chromium for the browser
# test, the aws CLI for the S3 test; for the real node containerd, runc, the CNI plugins, umoci and
# debootstrap for its images, iptables, ipset and nftables for its firewall, python3-websockets for
# the tests' websocket client; wrk for the shim's heartbeat storm), then the test tooling
# (test/cluster/build.sh: the control plane, kubelet, kubectl, etcd, helm, kwok, kube-router and
# Traefik built from the Go module proxy, moto from PyPI, cached under ~/.cache/repl-operator); with
# --packages-only just the packages (`make test` builds the tooling beside the C++ build). Safe to
# run again: it only does what is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

packages=(build-essential cmake ninja-build pkg-config libcpprest-dev libyaml-cpp-dev rapidjson-dev prometheus-cpp-dev
  libboost-dev libboost-system-dev catch2 libssl-dev openssl curl python3 python3-venv clang-format clang-14 libclang-rt-14-dev chromium
  awscli
  containerd runc containernetworking-plugins umoci debootstrap iptables ipset nftables python3-websockets wrk)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The control plane is built with Go >= 1.21, which fetches the toolchain go.mod asks for by itself.
command -v go >/dev/null 2>&1 || { echo "deps: Go (1.21 or newer) is required to build the test control plane" >&2; exit 1; }
if [ "${1:-}" != --packages-only ]; then
  "$here/test/cluster/build.sh" >/dev/null
fi
echo "deps: ok" >&2
