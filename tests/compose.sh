#!/usr/bin/env bash
# deploy/compose.yaml with podman on its private network, headless: one master, 3 workers and
# the demo target, all from the hatchery image. Asserts the web UI answers on its published
# port, the run completes (master exit 0), the workers all joined, and the master's CSV totals
# equal what the target counted (its /_stats).
#
#   tests/compose.sh       (needs root; builds the images unless HATCHERY_SKIP_IMAGES=1;
#                           HATCHERY_IMAGE_PROFILE=dev builds them from debug binaries)
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/.ci/lib.sh"
log() { printf '[compose %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
project="hatchery-ci-$$"
workers=3
work=$(mktemp -d)
compose() { podman-compose -p "$project" -f "$repo/deploy/compose.yaml" "$@"; }
cleanup() {
  compose down >/dev/null 2>&1 || true
  podman network rm -f "${project}_loadtest" "${project}_ui" >/dev/null 2>&1 || true
  rm -rf "$work"
}
fail() { log "FAIL: $*"; podman logs "${project}_master_1" 2>&1 | tail -30 >&2 || true; exit 1; }
trap cleanup EXIT

command -v podman-compose >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman-compose >/dev/null
}
if [ "${HATCHERY_SKIP_IMAGES:-0}" != 1 ]; then
  bash "$repo/deploy/build-images.sh" --profile "${HATCHERY_IMAGE_PROFILE:-release}" >&2
fi

# The containers run as uid 65532: the output folder must be theirs.
mkdir -p "$work/out"; chown 65532:65532 "$work/out"
export HATCHERY_OUT_DIR="$work/out" HATCHERY_CSV=/out/run HATCHERY_HTML=/out/report.html \
  HATCHERY_WORKERS=$workers HATCHERY_HEADLESS=true \
  HATCHERY_USERS=12 HATCHERY_SPAWN_RATE=12 HATCHERY_RUN_TIME=8s HATCHERY_STOP_TIMEOUT=5s \
  HATCHERY_WEB_PORT=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
compose up -d >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; fail "compose up"; }
log "up: target, master and $workers workers on the internal network ${project}_loadtest"
# The web UI answers on the published port (a port cannot be published from an internal network:
# the master's second network, ui, carries it).
end=$((SECONDS + 30))
until curl -sf "http://127.0.0.1:$HATCHERY_WEB_PORT/healthz" >/dev/null; do
  [ $SECONDS -lt $end ] || fail "the web UI does not answer on 127.0.0.1:$HATCHERY_WEB_PORT"
  sleep 0.2
done
log "the web UI answers on 127.0.0.1:$HATCHERY_WEB_PORT"
code=$(timeout 120 podman wait "${project}_master_1") || fail "the master did not exit within 120 s"
[ "$code" = 0 ] || fail "the master exited $code"
podman logs "${project}_master_1" > "$work/master.log" 2>&1
joined=$(grep -c 'worker connected' "$work/master.log" || true)
[ "$joined" -ge "$workers" ] || fail "$joined of $workers workers connected"
served=$(podman exec "${project}_target_1" hatchery probe http://127.0.0.1:8080/_stats \
  | sed -n 's/.*"requests":\([0-9]*\).*/\1/p')
reported=$(awk -F, '$2 == "\"Aggregated\"" || $2 == "Aggregated" {print $3}' "$work/out/run_stats.csv")
log "the master reports $reported requests, the target served $served"
[ -n "$reported" ] && [ "$reported" -gt 0 ] || fail "no requests in run_stats.csv"
[ "$reported" = "$served" ] || fail "totals differ: master $reported, target $served"
[ -s "$work/out/report.html" ] || fail "no HTML report"
log "ALL OK: run completed, totals exact"
