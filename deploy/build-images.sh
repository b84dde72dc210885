#!/usr/bin/env bash
# Builds Hatchery's images with podman from host-built release binaries (deploy/Dockerfile):
#   localhost/hatchery:VERSION           master, worker, standalone, demo target
#   localhost/hatchery-operator:VERSION  the Kubernetes operator
#
#   deploy/build-images.sh [--profile release|dev] [--save DIR] [--cold]
#
# --save writes DIR/hatchery.tar and DIR/hatchery-operator.tar (docker archives) for a cluster
# without a registry (../shared/k8s/load-image.sh). Needs root for podman (rootful). Installs
# podman, buildah, runc and debootstrap from apt when missing, and makes the Debian base image
# with debootstrap when no registry can be reached (cached in $HATCHERY_CACHE). --cold makes that
# base image anew in an empty cache folder, as on a fresh machine (CI runs it so, every time: a
# warm cache once hid a mirror lookup that failed on a new machine).
cd "$(dirname "$0")/.."
. .ci/lib.sh

profile=release save="" cold=0
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=${2:?}; shift 2 ;;
    --save) save=${2:?}; shift 2 ;;
    --cold) cold=1; shift ;;
    *) echo "usage: $0 [--profile release|dev] [--save DIR] [--cold]" >&2; exit 2 ;;
  esac
done
cache=$HATCHERY_CACHE
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
base=localhost/hatchery-base:bookworm
log() { printf '[images %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

if ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null || ! command -v runc >/dev/null; then
  log "installing podman, buildah, runc, debootstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman buildah runc debootstrap >/dev/null
fi
# crun refuses this machine's hybrid cgroup layout, and podman's default rlimits cannot be set.
if ! grep -qs 'runtime = "runc"' /etc/containers/containers.conf; then
  mkdir -p /etc/containers
  cat > /etc/containers/containers.conf <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF
fi

# The first Debian archive in the apt sources, one-line (sources.list, *.list) or deb822
# (*.sources) style, whichever of those files exist; empty when none names one.
apt_mirror() {
  local files=() f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  [ ${#files[@]} -gt 0 ] || return 0
  awk '$1 == "URIs:" || $1 == "deb" {
         for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\/.*\/debian\/?$/) { print $i; exit }
       }' "${files[@]}"
}

if [ "$cold" = 1 ]; then
  cache=$(mktemp -d)
  podman image rm -f "$base" >/dev/null 2>&1 || true
  log "cold: the base image is made anew in the empty cache $cache"
fi
if ! podman image exists "$base"; then
  tarball="$cache/debian-bookworm-minbase.tar"
  if [ ! -s "$tarball" ]; then
    mirror=$(apt_mirror)
    mirror=${mirror:-http://deb.debian.org/debian}
    log "debootstrap bookworm minbase from $mirror (about a minute)"
    rootfs=$(mktemp -d)
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
      || { tail -20 "$rootfs.log"; exit 1; }
    mkdir -p "$cache"
    tar -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs" "$rootfs.log"
  fi
  podman import -q "$tarball" "$base" >/dev/null
  log "base image $base imported"
fi

dir=${CARGO_TARGET_DIR:-target}/$([ "$profile" = dev ] && echo debug || echo "$profile")
if [ "${HATCHERY_IMAGE_PREBUILT:-0}" = 1 ]; then
  # CI: the binaries `cargo test --workspace` just built. A `cargo build -p` here would resolve
  # features for two packages only and compile most dependencies a second time.
  for bin in hatchery hatchery-operator; do
    [ -x "$dir/$bin" ] || { echo "error: HATCHERY_IMAGE_PREBUILT=1 but $dir/$bin was not built" >&2; exit 1; }
  done
  log "using the binaries already built in $dir"
else
  log "cargo build --profile $profile"
  cargo build --locked --profile "$profile" -p hatchery-cli -p hatchery-operator
fi
context=$(mktemp -d); trap 'rm -rf "$context"; if [ "$cold" = 1 ]; then rm -rf "$cache"; fi' EXIT
for bin in hatchery hatchery-operator; do
  strip -o "$context/$bin" "$dir/$bin"
done

for image in hatchery hatchery-operator; do
  podman build -q --format docker --pull=never --build-arg BASE="$base" --build-arg VERSION="$version" \
    -f deploy/Dockerfile --target "$image" -t "localhost/$image:$version" "$context" >/dev/null
  size=$(podman image inspect --format '{{.Size}}' "localhost/$image:$version")
  log "localhost/$image:$version built: $((size / 1024 / 1024)) MiB ($size bytes)"
  if [ -n "$save" ]; then
    mkdir -p "$save"
    rm -f "$save/$image.tar"
    podman save -q --format docker-archive -o "$save/$image.tar" "localhost/$image:$version"
  fi
done
