#!/usr/bin/env bash
# Hatchery's soak: one master and two worker processes, headless, against a local nginx for a
# long time, sampling each process's resident memory, then checking that the totals are exact.
#
#   bench/soak.sh [-d SECONDS] [-u USERS] [-i SECONDS] [--binary PATH] [--build]
#
# Environment equivalents: SOAK_DURATION (1800), SOAK_USERS (20), SOAK_INTERVAL (10),
# SOAK_BINARY (target/release/hatchery), SOAK_BUILD (0).
#
# What it does (docs/benchmarks.md, "Soak", explains why):
#   1. starts nginx from its own config in a temp dir on a free 127.0.0.1 port, logging one
#      line per request it answered (the target's count);
#   2. starts `hatchery --master --headless -u USERS -r 5 -t DURATION --expect-workers 2 --csv`
#      and two `hatchery --worker` processes, all on loopback (bench/soak.yaml: users wait
#      50-150 ms between requests, so 20 users make about 200 requests/s: modest on purpose,
#      the point is time, not load);
#   3. every INTERVAL seconds reads VmRSS of the master and of each worker from /proc;
#   4. at the end: the master's CSV "Aggregated" request count must equal nginx's log lines
#      (exit 1 if not); prints, per process, RSS at the first sample after the warm-up (the
#      ramp plus one minute, at most a fifth of the run), at the end, the maximum, and the
#      least-squares slope after the warm-up, as markdown, and writes it to
#      bench/out/soak-<timestamp>.md with the samples.
# Every wait is bounded; every process started here is stopped on exit.
set -euo pipefail

DURATION=${SOAK_DURATION:-1800}
USERS=${SOAK_USERS:-20}
INTERVAL=${SOAK_INTERVAL:-10}
BUILD=${SOAK_BUILD:-0}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HATCHERY=${SOAK_BINARY:-$ROOT/target/release/hatchery}
SPAWN_RATE=5

while [ $# -gt 0 ]; do
    case "$1" in
        -d|--duration) DURATION=${2:?}; shift 2 ;;
        -u|--users) USERS=${2:?}; shift 2 ;;
        -i|--interval) INTERVAL=${2:?}; shift 2 ;;
        --binary) HATCHERY=${2:?}; shift 2 ;;
        --build) BUILD=1; shift ;;
        -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "soak.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
positive_ints soak.sh DURATION USERS INTERVAL

cd "$ROOT"
log() { printf '[soak %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || die "nginx is missing (apt-get install nginx-light, or nginx)"
if [ "$BUILD" = 1 ]; then
    log "cargo build --release -p hatchery-cli"
    cargo build --release -p hatchery-cli >&2
    HATCHERY=$ROOT/target/release/hatchery
fi
[ -x "$HATCHERY" ] || die "$HATCHERY not built (pass --build, or --binary PATH)"
REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git status --porcelain -- . ':!bench/out' 2>/dev/null | grep -q . && echo " (+ uncommitted changes)" || true)

TMP=$(mktemp -d /tmp/hatchery-soak.XXXXXX)
PIDS=()
NGINX_PID=
cleanup() {
    local rc=$?
    set +e
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    [ -n "$NGINX_PID" ] && kill -TERM "$NGINX_PID" 2>/dev/null
    for _ in $(seq 100); do
        local alive=0
        for p in "${PIDS[@]}" $NGINX_PID; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for p in "${PIDS[@]}" $NGINX_PID; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 10000))      # below the ephemeral range
        port_open "$p" || { echo "$p"; return; }
    done
    die "no free port"
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# ---------------------------------------------------------------- 1. nginx, counting
PORT=$(free_port)
# shellcheck disable=SC2016 # nginx's variables, for nginx to expand
NGINX_ACCESS_FORMAT='$request_method $uri $status' nginx_conf "$TMP/nginx" "    server {
        listen 127.0.0.1:$PORT;
        location / { return 200 \"ok\"; }
    }"
nginx_start "$NGINX" "$TMP/nginx" "$PORT" ||
    die "nginx did not start: $(tail -3 "$TMP/nginx/error.log" 2>/dev/null)"
log "nginx $NGINX_PID on 127.0.0.1:$PORT"

# ---------------------------------------------------------------- 2. master and workers
GRPC=$(free_port)
WEB=$(free_port)
"$HATCHERY" -f bench/soak.yaml --master --headless -u "$USERS" -r "$SPAWN_RATE" -t "${DURATION}s" \
    -s 10s --expect-workers 2 --expect-workers-max-wait 60s --csv "$TMP/soak" \
    --master-bind-host 127.0.0.1 --master-bind-port "$GRPC" --web-host 127.0.0.1 \
    --web-port "$WEB" -H "http://127.0.0.1:$PORT" >"$TMP/master.out" 2>"$TMP/master.err" &
MASTER=$!
PIDS+=("$MASTER")
"$HATCHERY" --worker --master-host 127.0.0.1 --master-port "$GRPC" >"$TMP/w1.out" 2>"$TMP/w1.err" &
W1=$!
"$HATCHERY" --worker --master-host 127.0.0.1 --master-port "$GRPC" >"$TMP/w2.out" 2>"$TMP/w2.err" &
W2=$!
PIDS+=("$W1" "$W2")
log "master $MASTER (gRPC $GRPC, web $WEB), workers $W1 $W2; ${DURATION} s, $USERS users, samples every ${INTERVAL} s"

# ---------------------------------------------------------------- 3. sampling
# samples.tsv: seconds since start, master KiB, worker 1 KiB, worker 2 KiB
START=$(date +%s)
: > "$TMP/samples.tsv"
LIMIT=$((DURATION + 120))
while kill -0 "$MASTER" 2>/dev/null; do
    now=$(date +%s)
    [ $((now - START)) -le "$LIMIT" ] || die "the master did not finish within ${LIMIT} s"
    m=$(rss_kib "$MASTER"); a=$(rss_kib "$W1"); b=$(rss_kib "$W2")
    # a process that has already exited (the run's end) reads as empty: stop sampling then
    if [ -n "$m" ] && [ -n "$a" ] && [ -n "$b" ] && [ "$m" != 0 ]; then
        printf '%s\t%s\t%s\t%s\n' $((now - START)) "$m" "$a" "$b" >> "$TMP/samples.tsv"
    fi
    # wake at the next multiple of INTERVAL from the start (no drift), or when the master exits
    next=$((START + ($(date +%s) - START) / INTERVAL * INTERVAL + INTERVAL))
    while [ "$(date +%s)" -lt "$next" ] && kill -0 "$MASTER" 2>/dev/null; do sleep 0.2; done
done
rc=0
wait "$MASTER" || rc=$?
for w in "$W1" "$W2"; do
    for _ in $(seq 300); do kill -0 "$w" 2>/dev/null || break; sleep 0.1; done
done
wrc1=0; wrc2=0
wait "$W1" || wrc1=$?
wait "$W2" || wrc2=$?
PIDS=()
ELAPSED=$(( $(date +%s) - START ))
log "master exited $rc after ${ELAPSED} s; workers $wrc1 $wrc2"
[ "$rc" -le 1 ] || die "master exited $rc: $(tail -5 "$TMP/master.err")"

# ---------------------------------------------------------------- 4. totals and report
# nginx writes its log line when the response is done; stop it so every line is flushed
kill -TERM "$NGINX_PID"; wait "$NGINX_PID" 2>/dev/null || true; NGINX_PID=
TARGET_COUNT=$(wc -l < "$TMP/nginx/access.log")
CSV=$TMP/soak_stats.csv
[ -s "$CSV" ] || die "no $CSV"
# columns: Type,Name,Request Count,Failure Count,...
CSV_COUNT=$(awk -F, '$2 == "Aggregated" { print $3 }' "$CSV")
CSV_FAIL=$(awk -F, '$2 == "Aggregated" { print $4 }' "$CSV")
EXACT=no
[ "$CSV_COUNT" = "$TARGET_COUNT" ] && EXACT=yes
WARMUP=$(( USERS / SPAWN_RATE + 60 ))
[ "$WARMUP" -le $((DURATION / 5)) ] || WARMUP=$((DURATION / 5))      # short runs

# stats COLUMN: start (first sample after the warm-up), end, max (KiB), slope after the warm-up
# and slope over the second half of the run (KiB/hour), samples after the warm-up
stats() {
    awk -F'\t' -v c="$1" -v w="$WARMUP" -v h=$((DURATION / 2)) '
        $1 >= w { n++; x = $1 / 3600; y = $c; sx += x; sy += y; sxx += x * x; sxy += x * y
                  if (n == 1) first = y; last = y }
        $1 >= h { m++; x = $1 / 3600; y = $c; tx += x; ty += y; txx += x * x; txy += x * y }
        { if ($c > max) max = $c }
        function slope(k, a, b, aa, ab) { d = k * aa - a * a; return (k > 1 && d != 0) ? (k * ab - a * b) / d : 0 }
        END { printf "%d\t%d\t%d\t%.0f\t%.0f\t%d\n", first, last, max, slope(n, sx, sy, sxx, sxy),
                     slope(m, tx, ty, txx, txy), n }' "$TMP/samples.tsv"
}
STAMP=$(date +%Y%m%d-%H%M%S)
mkdir -p bench/out
OUT=bench/out/soak-$STAMP.md
cp "$TMP/samples.tsv" "bench/out/soak-$STAMP.tsv"
{
    echo "# Hatchery soak, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r)"
    echo "- hatchery $REV$DIRTY ($HATCHERY); $("$NGINX" -v 2>&1 | sed 's/.*: //')"
    echo "- 1 master + 2 worker processes, \`-u $USERS -r $SPAWN_RATE -t ${DURATION}s\`, bench/soak.yaml, nginx on 127.0.0.1"
    echo "- exit codes: master $rc, workers $wrc1 $wrc2; wall ${ELAPSED} s"
    echo "- VmRSS from /proc every ${INTERVAL} s; start = first sample after the warm-up (${WARMUP} s); slopes = least squares over the samples after the warm-up, and over the second half of the run"
    echo
    echo "| process | RSS start (KiB) | RSS end (KiB) | RSS max (KiB) | slope after warm-up (KiB/hour) | slope, second half (KiB/hour) | samples |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for p in "master:2" "worker 1:3" "worker 2:4"; do
        IFS=$'\t' read -r first last max slope half n < <(stats "${p##*:}")
        echo "| ${p%%:*} | $first | $last | $max | $slope | $half | $n |"
    done
    echo
    echo "| total | requests |"
    echo "|---|---:|"
    echo "| nginx answered (access log lines) | $TARGET_COUNT |"
    echo "| master CSV, Aggregated | $CSV_COUNT (failures $CSV_FAIL) |"
    echo "| exact | **$EXACT** |"
} > "$OUT"
cat "$OUT"
log "written to $OUT (samples in bench/out/soak-$STAMP.tsv)"
[ "$EXACT" = yes ] || die "totals differ: target $TARGET_COUNT, CSV $CSV_COUNT"
