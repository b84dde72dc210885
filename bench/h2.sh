#!/usr/bin/env bash
# HTTP/2 throughput: hatchery (`http2: true`, bench/h2.yaml) against h2load (Debian's
# nghttp2-client) in ONE run, on loopback only, at one stream per user: the same nginx in
# cleartext HTTP/2 (h2c by prior knowledge), the same number of connections, one generator
# thread pinned to core 1, nginx to core 0.
#
#   bench/h2.sh [-d SECONDS] [-u USERS] [-n RUNS] [--no-build]
#
# Environment equivalents: BENCH_DURATION (10), BENCH_USERS (50), BENCH_RUNS (3), BENCH_BUILD (1).
# Installs nginx, nghttp2-client, GNU time and jq from Debian if missing (needs root then), as
# bench/run.sh does for wrk. Prints, per run, the requests each tool counted and nginx served,
# the generator's CPU seconds (user + sys, GNU time) and requests per generator CPU-second; then
# the medians and hatchery's ratio to h2load.
set -euo pipefail

DURATION=${BENCH_DURATION:-10}
USERS=${BENCH_USERS:-50}
RUNS=${BENCH_RUNS:-3}
BUILD=${BENCH_BUILD:-1}
while [ $# -gt 0 ]; do
    case "$1" in
        -d|--duration) DURATION=${2:?}; shift 2 ;;
        -u|--users) USERS=${2:?}; shift 2 ;;
        -n|--runs) RUNS=${2:?}; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "h2.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
positive_ints h2.sh DURATION USERS RUNS

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
HATCHERY=${HATCHERY_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/hatchery}
log() { printf '[h2 bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

missing=()
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || missing+=(nginx)
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
[ -x /usr/bin/time ] || missing+=(time)
command -v jq >/dev/null 2>&1 || missing+=(jq)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
install_missing "${missing[@]}"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ "$BUILD" = 1 ]; then
    log "cargo build --release -p hatchery-cli"
    cargo build --release -p hatchery-cli >&2
fi
[ -x "$HATCHERY" ] || die "$HATCHERY not built"

TMP=$(mktemp -d /tmp/hatchery-h2-bench.XXXXXX)
NGINX_PID=
cleanup() {
    local rc=$?
    set +e
    nginx_stop
    wait 2>/dev/null
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# h2c on PORT (nginx 1.22: `listen ... http2` without ssl speaks HTTP/2 only, by prior
# knowledge); PORT + 1 in HTTP/1.1 for stub_status, read before and after each run.
PORT=
for _ in $(seq 10); do
    p=$((20000 + RANDOM % 10000))
    port_open "$p" && continue
    port_open $((p + 1)) && continue
    NGINX_KEEPALIVE=120s nginx_conf "$TMP/nginx" "    server {
        listen 127.0.0.1:$p http2;
        listen 127.0.0.1:$((p + 1));
        http2_max_requests 1000000000;
        location / { return 200 \"ok\"; }
        location = /nginx_status { stub_status; }
    }"
    if nginx_start "$NGINX" "$TMP/nginx" "$p" taskset -c 0; then PORT=$p; break; fi
done
[ -n "$PORT" ] || die "nginx did not start: $(tail -3 "$TMP/nginx/error.log" 2>/dev/null)"
TARGET=http://127.0.0.1:$PORT/
served() { curl -fsS --max-time 5 "http://127.0.0.1:$((PORT + 1))/nginx_status" | awk 'NR == 3 { print $3 }'; }
log "nginx $NGINX_PID, h2c on $TARGET, core 0; $USERS connections, one stream each, ${DURATION}s, $RUNS rounds"

# run PEER ROUND: one measured run; appends "peer round requests errors cpu_s served" to runs.tsv
run() {
    local peer=$1 round=$2 out="$TMP/$1.$2" r0 r1 requests errors user sys
    local cmd
    if [ "$peer" = h2load ]; then
        cmd=(h2load -t 1 -c "$USERS" -m 1 -D "$DURATION" "$TARGET")
    else
        cmd=("$HATCHERY" -f bench/h2.yaml --headless -u "$USERS" -r 1000 -t "${DURATION}s"
             --threads 1 --host "http://127.0.0.1:$PORT" --json --only-summary)
    fi
    r0=$(served)
    timeout -s TERM -k 10 $((DURATION + 60)) /usr/bin/time -f '%U %S' -o "$out.time" \
        taskset -c 1 "${cmd[@]}" >"$out.out" 2>"$out.err" || [ "$peer" = hatchery ] \
        || die "$peer exited: $(tail -3 "$out.err")"
    r1=$(served)
    read -r user sys < <(tail -1 "$out.time")
    if [ "$peer" = h2load ]; then
        # "requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout"
        requests=$(awk '/^requests:/ { print $8 }' "$out.out")
        errors=$(awk '/^requests:/ { print $10 + $12 + $14 }' "$out.out")
    else
        requests=$(jq '.stats[] | select(.name == "Aggregated") | .num_requests' "$out.out")
        errors=$(jq '.stats[] | select(.name == "Aggregated") | .num_failures' "$out.out")
    fi
    case "$requests" in ''|*[!0-9]*|0) die "$peer run $round: no requests counted ('$requests')" ;; esac
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$peer" "$round" "$requests" "$errors" \
        "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" $((r1 - r0 - 1)) >> "$TMP/runs.tsv"
    log "$peer #$round: $requests requests ($((r1 - r0 - 1)) served by nginx), $errors errors, user ${user}s sys ${sys}s"
}

: > "$TMP/runs.tsv"
for round in $(seq "$RUNS"); do
    run h2load "$round"
    sleep 1
    run hatchery "$round"
    sleep 1
done

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
per_cpu() { awk -v p="$1" '$1 == p { printf "%.0f\n", $3 / $5 }' "$TMP/runs.tsv" | median; }
col() { awk -v p="$1" -v c="$2" '$1 == p { print $c }' "$TMP/runs.tsv" | median; }
H=$(per_cpu h2load)
O=$(per_cpu hatchery)
echo "| tool | requests (median) | served by nginx | errors | generator CPU s | requests per CPU-second |"
echo "|---|---:|---:|---:|---:|---:|"
for p in h2load hatchery; do
    echo "| $p | $(col "$p" 3) | $(col "$p" 6) | $(col "$p" 4) | $(col "$p" 5) | $(per_cpu "$p") |"
done
echo
echo "hatchery / h2load, requests per generator CPU-second: $(awk -v a="$O" -v b="$H" 'BEGIN { printf "%.2fx", a / b }')"
