#!/usr/bin/env bash
# Builds the container images of the real-node test tier locally, with no registry and no Docker
# engine: OCI image layouts made with Debian's umoci (as root), each packed into one tar that
# `ctr -n k8s.io images import --base-name localhost/repl FILE.tar` takes. Cached in
# ${REPL_CACHE:-~/.cache/repl-operator}/images/, each tar named by a hash of its inputs:
#   pause-<hash>.tar    images/pause.c, built static: PID 1 of every pod sandbox
#   tools-<hash>.tar    one Debian rootfs (debootstrap minbase + awscli + python3-websockets + curl,
#                       the mirror read from apt's sources, trimmed) with images/runner.py in it, as
#                       ONE layer shared by three images: init (the real aws CLI, for the S3 copy
#                       init container; with sh and curl also the chart's `helm test` pod), runner
#                       (the reference runner: ws 3001, http 3000) and crash (a runner that exits 3
#                       at once, for crash-loop tests)
#   traefik-<hash>.tar  the traefik binary of $TRAEFIK_BIN (default <cache>/bin/traefik)
#   operator-<hash>.tar only with REPL_BIN_DIR (a build's bin/, holding repl-operator and repl-shim):
#                       the Dockerfile's runtime stage, made the same way: a debootstrap minbase
#                       rootfs with its runtime packages and user 65532 (cached as the layout
#                       opbase-<hash>/), plus one layer with the two binaries, stripped, and
#                       templates/; the Dockerfile's env, user, ports and entrypoint. Only the newest
#                       operator-*.tar is kept.
# Changing runner.py rebuilds only tools-*.tar; with a warm cache it only hashes a few files and
# returns. A tar is written under a temporary name and renamed when complete, so an interrupted
# build never leaves a half file under the final name. Progress goes to stderr; stdout is only
# KEY=VALUE lines a caller can source:
#   PAUSE_IMAGE=localhost/repl:pause-<hash>    INIT_IMAGE=...:init-<hash>
#   RUNNER_IMAGE=...:runner-<hash>             CRASH_IMAGE=...:crash-<hash>
#   TRAEFIK_IMAGE=...:traefik-<hash>           OPERATOR_IMAGE=...:operator-<hash> (REPL_BIN_DIR)
#   IMAGE_TARS="<every tar to import, space separated>"
# Needs root, gcc (with glibc's static libs), umoci and debootstrap (only when a tar is missing).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${REPL_CACHE:-$HOME/.cache/repl-operator}
out="$cache/images"
base_name=localhost/repl
format=1 # bump when what this script puts into an image changes
suite=bookworm
packages=awscli,python3-cffi-backend,python3-websockets,curl
path_env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p "$out"

die() { echo "images.sh: $*" >&2; exit 1; }
short_hash() { sha256sum | cut -c1-12; }
file_sum() { sha256sum "$1" | cut -d' ' -f1; }

# Work directories live under one mktemp dir, made only when something is built. On any exit:
# unmount whatever a build left mounted under it (debootstrap mounts proc and sys in its target
# while it runs), then delete it without crossing a mount point; and delete half-written tars.
tmp=
partial=()
mounts_under() { awk -v d="$1/" 'index($2, d) == 1 { print $2 }' /proc/mounts; }
cleanup() {
  local rc=$?
  if [ ${#partial[@]} -gt 0 ]; then rm -f "${partial[@]}"; fi
  if [ -n "$tmp" ] && [ -d "$tmp" ]; then
    local m
    for m in $(mounts_under "$tmp" | sort -r); do umount -l "$m" || true; done
    if [ -n "$(mounts_under "$tmp")" ]; then
      echo "images.sh: still mounted under $tmp, left in place:" >&2
      mounts_under "$tmp" >&2
    else
      rm -rf --one-file-system "$tmp"
    fi
  fi
  return $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The work dir goes to $TMPDIR if set, else to /dev/shm when it is a tmpfs with 2 GiB free that
# allows devices and exec (debootstrap needs both): dpkg's fsyncs cost nothing there, and deleting
# a rootfs from a disk mounted with `discard` (as here) can take 20 s.
workdir() {
  [ -z "$tmp" ] || return 0
  local parent=${TMPDIR:-/tmp}
  if [ -z "${TMPDIR:-}" ] && [ -w /dev/shm ] &&
    awk '$2 == "/dev/shm" && $3 == "tmpfs" && $4 !~ /(^|,)no(dev|exec)(,|$)/ { ok = 1 }
      END { exit !ok }' /proc/mounts &&
    [ "$(df -k --output=avail /dev/shm | tail -n 1)" -gt $((2 * 1024 * 1024)) ]; then
    parent=/dev/shm
  fi
  tmp=$(mktemp -d "$parent/repl-images.XXXXXX")
}

# Builds are serialised by a lock, so two callers at once do not both bootstrap a rootfs.
locked=
lock() { [ -n "$locked" ] || { exec 9>"$out/.lock" && flock 9 && locked=1; }; }

# layout_new DIR: an OCI layout DIR/L with an empty image "base", unpacked into DIR/bundle.
layout_new() {
  umoci init --layout "$1/L"
  umoci new --image "$1/L:base"
  umoci unpack --image "$1/L:base" "$1/bundle" >/dev/null
}

# layout_pack DIR DEST: drops the "base" tag (every image was made from it with
# `umoci config --tag`), collects what no tag uses, and tars the layout into DEST through a
# temporary name in the same directory.
layout_pack() {
  local dir=$1 dest=$2 part
  umoci rm --image "$dir/L:base"
  umoci gc --layout "$dir/L"
  part=$(mktemp "$out/.$(basename "$dest").XXXXXX")
  partial+=("$part")
  tar -C "$dir/L" -cf "$part" oci-layout index.json blobs
  chmod 0644 "$part"
  mv -f "$part" "$dest"
  echo "images.sh: wrote $dest ($(du -h "$dest" | cut -f1))" >&2
}

# repack DIR: packs DIR/bundle/rootfs as the one layer of DIR/L:base (umoci gzips it).
repack() {
  local start=$SECONDS
  umoci repack --image "$1/L:base" "$1/bundle"
  echo "images.sh: packed the layer in $((SECONDS - start)) s" >&2
}

# --- pause ---------------------------------------------------------------------------------
pause_src="$here/images/pause.c"
pause_hash=$(printf 'pause %s %s %s\n' "$format" "$(file_sum "$pause_src")" "$(gcc -dumpfullversion)" | short_hash)
pause_tar="$out/pause-$pause_hash.tar"
build_pause() {
  echo "images.sh: building the pause image (cached in $out)" >&2
  workdir
  local d="$tmp/pause"
  mkdir -p "$d"
  layout_new "$d"
  gcc -static -Os -s -Wall -o "$d/bundle/rootfs/pause" "$pause_src"
  repack "$d"
  # The user of the upstream pause image.
  umoci config --image "$d/L:base" --tag "pause-$pause_hash" --no-history \
    --config.entrypoint /pause --config.user 65535:65535
  layout_pack "$d" "$pause_tar"
}

# --- tools: init, runner, crash ------------------------------------------------------------
# The Debian mirror of apt's own sources (deb822 first, then sources.list); DEBIAN_MIRROR wins.
apt_mirror() {
  local m=${DEBIAN_MIRROR:-} f=/etc/apt/sources.list.d/debian.sources
  if [ -z "$m" ] && [ -r "$f" ]; then
    m=$(awk -v s="$suite" '
      function stanza() { if (deb && hit && uri != "") { print uri; done = 1 } deb = hit = 0; uri = "" }
      done { next }
      /^[[:space:]]*#/ { next }
      /^[[:space:]]*$/ { stanza(); next }
      tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
      tolower($1) == "uris:" { uri = $2 }
      tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == s) hit = 1 }
      END { if (!done) stanza() }' "$f" | head -n 1)
  fi
  if [ -z "$m" ] && [ -r /etc/apt/sources.list ]; then
    m=$(awk -v s="$suite" '$1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == s) { print $i; exit } }' /etc/apt/sources.list)
  fi
  [ -n "$m" ] || die "no Debian mirror for $suite in apt's sources (set DEBIAN_MIRROR)"
  echo "$m"
}
runner_src="$here/images/runner.py"
mirror=$(apt_mirror)
tools_hash=$(printf 'tools %s %s %s %s %s\n' "$format" "$suite" "$mirror" "$packages" \
  "$(file_sum "$runner_src")" | short_hash)
tools_tar="$out/tools-$tools_hash.tar"
# bootstrap ROOT PACKAGES: a Debian minbase rootfs with PACKAGES (comma separated) in ROOT,
# trimmed of what no container needs: apt's caches and lists, docs, man pages, locales, logs and
# the device nodes (the runtime mounts its own /dev). Python's bytecode caches (__pycache__, made
# by the packages' postinst) stay: without them every aws call compiles botocore again (about 3 s
# instead of 1 s on a loaded 2-core machine) and writes ~14 MB into the container's layer.
bootstrap() {
  local root=$1 packages=$2 start=$SECONDS log
  command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
  log=$(mktemp "$tmp/debootstrap.XXXXXX")
  if ! debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    [ -f "$root/debootstrap/debootstrap.log" ] && tail -n 20 "$root/debootstrap/debootstrap.log" >&2
    die "debootstrap failed"
  fi
  echo "images.sh: debootstrap took $((SECONDS - start)) s" >&2
  # Never delete through a mount point: debootstrap unmounts what it mounted, check it did.
  [ -z "$(mounts_under "$root")" ] ||
    die "debootstrap left mounts under $root: $(mounts_under "$root" | tr '\n' ' ')"
  rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root"/dev/* \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
    "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old
}

build_tools() {
  echo "images.sh: building the init/runner/crash images: debootstrap $suite from $mirror" \
    "(first time only, about a minute; cached in $out)" >&2
  workdir
  local d="$tmp/tools" start=$SECONDS
  mkdir -p "$d"
  layout_new "$d"
  local root="$d/bundle/rootfs"
  bootstrap "$root" "$packages"
  # The runner's user, home and workspace, and the reference runner itself.
  echo 'runner:x:1000:1000:runner:/home/runner:/bin/sh' >>"$root/etc/passwd"
  echo 'runner:x:1000:' >>"$root/etc/group"
  install -d -o 1000 -g 1000 -m 0755 "$root/home/runner" "$root/workspace"
  install -D -m 0644 "$runner_src" "$root/opt/runner/runner.py"
  echo "images.sh: rootfs is $(du -sh "$root" | cut -f1) after trimming" >&2
  repack "$d"
  local img="$d/L:base"
  umoci config --image "$img" --tag "init-$tools_hash" --no-history \
    --config.env "$path_env" --config.env LANG=C.UTF-8
  umoci config --image "$img" --tag "runner-$tools_hash" --no-history \
    --config.env "$path_env" --config.env LANG=C.UTF-8 --config.env PYTHONUNBUFFERED=1 \
    --config.entrypoint python3 --config.entrypoint /opt/runner/runner.py \
    --config.user 1000:1000 --config.workingdir /workspace \
    --config.exposedports 3000/tcp --config.exposedports 3001/tcp
  umoci config --image "$img" --tag "crash-$tools_hash" --no-history \
    --config.env "$path_env" --config.entrypoint /bin/sh --config.entrypoint -c \
    --config.entrypoint "echo 'runner: exiting on purpose (test image)' >&2; exit 3" \
    --config.user 1000:1000 --config.workingdir /workspace
  layout_pack "$d" "$tools_tar"
  echo "images.sh: the init/runner/crash images took $((SECONDS - start)) s" >&2
}

# --- traefik -------------------------------------------------------------------------------
traefik_bin=${TRAEFIK_BIN:-$cache/bin/traefik}
[ -f "$traefik_bin" ] || die "no traefik binary at $traefik_bin (build it first, or set TRAEFIK_BIN)"
# Its sha256, remembered per (path, size, mtime, inode) so a warm run does not re-read ~100 MB.
traefik_sum() {
  local memo="$out/.traefik.sha256" id sum
  id="$(readlink -f "$traefik_bin") $(stat -L -c '%s %Y %i' "$traefik_bin")"
  if [ -f "$memo" ] && [ "$(sed -n 1p "$memo")" = "$id" ]; then
    sed -n 2p "$memo"
    return
  fi
  sum=$(file_sum "$traefik_bin")
  printf '%s\n%s\n' "$id" "$sum" >"$memo.$$" && mv -f "$memo.$$" "$memo"
  echo "$sum"
}
traefik_hash=$(printf 'traefik %s %s\n' "$format" "$(traefik_sum)" | short_hash)
traefik_tar="$out/traefik-$traefik_hash.tar"
build_traefik() {
  echo "images.sh: building the traefik image from $traefik_bin (cached in $out)" >&2
  workdir
  local d="$tmp/traefik"
  mkdir -p "$d"
  layout_new "$d"
  local root="$d/bundle/rootfs"
  install -m 0755 "$traefik_bin" "$root/traefik"
  install -d -m 0755 "$root/etc"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$root/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' >"$root/etc/group"
  chmod 0644 "$root/etc/passwd" "$root/etc/group"
  install -d -m 1777 "$root/tmp"
  repack "$d"
  umoci config --image "$d/L:base" --tag "traefik-$traefik_hash" --no-history \
    --config.entrypoint /traefik --config.user 65532:65532
  layout_pack "$d" "$traefik_tar"
}

# --- operator: the Dockerfile's runtime stage ----------------------------------------------
# Its packages, user and settings are the Dockerfile's (keep them in step); the binaries are the
# ones this machine built (the same Debian release and libraries as the Dockerfile's build stage),
# so no second compile is needed.
op_packages=libcpprest2.10,libyaml-cpp0.7,libprometheus-cpp-core1.0,libssl3,ca-certificates
opbase_hash=$(printf 'opbase %s %s %s %s\n' "$format" "$suite" "$mirror" "$op_packages" | short_hash)
opbase_dir="$out/opbase-$opbase_hash"
build_opbase() {
  echo "images.sh: building the operator image's base: debootstrap $suite (first time only; cached in $out)" >&2
  workdir
  local d="$tmp/opbase"
  mkdir -p "$d"
  layout_new "$d"
  local root="$d/bundle/rootfs"
  bootstrap "$root" "$op_packages"
  echo 'nonroot:x:65532:65532::/nonexistent:/usr/sbin/nologin' >>"$root/etc/passwd"
  echo 'nonroot:x:65532:' >>"$root/etc/group"
  repack "$d"
  rm -rf "$opbase_dir.part"
  cp -a "$d/L" "$opbase_dir.part"
  mv "$opbase_dir.part" "$opbase_dir"
}
if [ -n "${REPL_BIN_DIR:-}" ]; then
  templates_dir="$here/../../templates"
  for b in repl-operator repl-shim; do
    [ -x "$REPL_BIN_DIR/$b" ] || die "no $b in REPL_BIN_DIR=$REPL_BIN_DIR (build it first)"
  done
  operator_hash=$(
    {
      printf 'operator %s %s\n' "$format" "$opbase_hash"
      sha256sum "$REPL_BIN_DIR/repl-operator" "$REPL_BIN_DIR/repl-shim" | cut -d' ' -f1
      (cd "$templates_dir" && find . -type f | LC_ALL=C sort | xargs sha256sum)
    } | short_hash
  )
  operator_tar="$out/operator-$operator_hash.tar"
fi
build_operator() {
  [ -d "$opbase_dir" ] || build_opbase
  echo "images.sh: building the operator image from $REPL_BIN_DIR" >&2
  workdir
  local d="$tmp/operator" layer="$tmp/operator/layer"
  mkdir -p "$layer/usr/local/bin" "$layer/etc/repl-operator"
  cp -r "$opbase_dir" "$d/L"
  strip -o "$layer/usr/local/bin/repl-operator" "$REPL_BIN_DIR/repl-operator"
  strip -o "$layer/usr/local/bin/repl-shim" "$REPL_BIN_DIR/repl-shim"
  cp -r "$templates_dir" "$layer/etc/repl-operator/templates"
  chmod -R u=rwX,go=rX "$layer"
  tar -C "$layer" --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -cf "$d/layer.tar" usr etc
  umoci raw add-layer --image "$d/L:base" "$d/layer.tar"
  umoci config --image "$d/L:base" --tag "operator-$operator_hash" --no-history \
    --config.env "$path_env" --config.env REPL_TEMPLATES=/etc/repl-operator/templates \
    --config.user 65532:65532 --config.entrypoint /usr/local/bin/repl-operator \
    --config.exposedports 8080/tcp --config.exposedports 8081/tcp
  layout_pack "$d" "$operator_tar"
  local old
  for old in "$out"/operator-*.tar; do [ "$old" = "$operator_tar" ] || rm -f "$old"; done
}

# --- build what is missing, print the result -----------------------------------------------
ensure() {
  local tar=$1 build=$2
  [ -f "$tar" ] && return 0
  [ "$(id -u)" = 0 ] || die "building images needs root (umoci keeps file owners only as root)"
  lock
  [ -f "$tar" ] || "$build" >&2
}
ensure "$pause_tar" build_pause
ensure "$tools_tar" build_tools
ensure "$traefik_tar" build_traefik
[ -z "${REPL_BIN_DIR:-}" ] || ensure "$operator_tar" build_operator

echo "PAUSE_IMAGE=$base_name:pause-$pause_hash"
echo "INIT_IMAGE=$base_name:init-$tools_hash"
echo "RUNNER_IMAGE=$base_name:runner-$tools_hash"
echo "CRASH_IMAGE=$base_name:crash-$tools_hash"
echo "TRAEFIK_IMAGE=$base_name:traefik-$traefik_hash"
if [ -n "${REPL_BIN_DIR:-}" ]; then
  echo "OPERATOR_IMAGE=$base_name:operator-$operator_hash"
  echo "IMAGE_TARS=\"$pause_tar $tools_tar $traefik_tar $operator_tar\""
else
  echo "IMAGE_TARS=\"$pause_tar $tools_tar $traefik_tar\""
fi
