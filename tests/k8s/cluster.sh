#!/usr/bin/env bash
# Starts the local single-node Kubernetes of ../shared/k8s for the tests (building it once into a
# cache outside the clone), or stops it. Prints the kubeconfig path on start.
#
#   tests/k8s/cluster.sh start     # ~6 min the first time on a machine, then ~16 s
#   tests/k8s/cluster.sh stop
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../.ci/lib.sh"
shared=${HATCHERY_SHARED:-$here/../../../shared}
[ -d "$shared/k8s" ] || { echo "no $shared/k8s: set HATCHERY_SHARED to the shared/ folder" >&2; exit 2; }
cache=${HATCHERY_K8S_CACHE:-$HATCHERY_CACHE/k8s}
state=${HATCHERY_K8S_STATE:-/tmp/hatchery-k8s}
case "${1:-}" in
  start)
    bash "$shared/k8s/build-node.sh" "$cache" >&2
    # Every run starts from an empty state: the images of earlier runs pile up in containerd's
    # store (613 MB after a day here), and start-cluster.sh's `ctr images ls -q | grep -qx`
    # then failed under pipefail ("pause image ... not imported" though it was: grep's early
    # exit sent ctr a SIGPIPE).
    bash "$shared/k8s/stop-cluster.sh" "$state" >/dev/null 2>&1 || true
    awk -v s="$state" 'index($2, s) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r umount -l
    rm -rf "$state"
    bash "$shared/k8s/start-cluster.sh" "$cache/bin" "$state" >&2
    echo "$state/kubeconfig"
    ;;
  stop)
    bash "$shared/k8s/stop-cluster.sh" "$state" >&2
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
