#!/usr/bin/env bash
# The latency one CPU-heavy scripted user adds to the other users of its worker (issue 14), in
# ONE run, on loopback only.
#
#   bench/heavy.sh [-d SECONDS] [-u USERS] [--threads N] [--loops N]
#
# Environment equivalents: BENCH_DURATION (10), BENCH_USERS (10 per class), BENCH_THREADS (1),
# BENCH_LOOPS (8000000: about 0.5 s here), HATCHERY_BIN (default $CARGO_TARGET_DIR/release/hatchery).
#
# Three hatchery runs against one nginx (bench/lib.sh's, pinned to core 0), the generator pinned
# to core 1 with --threads N (one Luau VM per thread, docs/scripting.md):
#   base   bench/heavy.yaml: USERS paced YAML users (/plain) and USERS paced scripted users
#          (/scripted), one request each every 20 ms;
#   under  the same plus one user whose call runs a loop of LOOPS iterations without awaiting
#          (under script_timeout: its time is the "heavy loop" row, from `metric`), then one
#          request, then 100 ms of wait;
#   over   the same plus one user whose call sends a request and then loops until
#          script_timeout (1 s) interrupts it, again and again.
# For /plain and /scripted it reports p50/p99/max of the response time and of the response time
# from the intended send time (paced users: how late their task started, plus the response).
# The latter is the latency a heavy user adds to the others. Every run is bounded by `timeout`;
# nginx and every process started here are stopped on exit. Needs nginx, jq, taskset.
set -euo pipefail

DURATION=${BENCH_DURATION:-10}
USERS=${BENCH_USERS:-10}
THREADS=${BENCH_THREADS:-1}
LOOPS=${BENCH_LOOPS:-8000000}
while [ $# -gt 0 ]; do
    case "$1" in
        -d|--duration) DURATION=${2:?}; shift 2 ;;
        -u|--users) USERS=${2:?}; shift 2 ;;
        --threads) THREADS=${2:?}; shift 2 ;;
        --loops) LOOPS=${2:?}; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "heavy.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
positive_ints heavy.sh DURATION USERS THREADS LOOPS

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
HATCHERY=${HATCHERY_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/hatchery}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
log() { printf '[heavy %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
[ -x "$HATCHERY" ] || die "no $HATCHERY: cargo build --release -p hatchery-cli"
for tool in jq taskset timeout; do command -v "$tool" >/dev/null || die "$tool is missing"; done

TMP=$(mktemp -d /tmp/hatchery-heavy.XXXXXX)
NGINX_PID=  # nginx_start sets it, nginx_stop reads it
trap 'nginx_stop; rm -rf "$TMP"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PORT=
for _ in $(seq 10); do
    p=$((20000 + RANDOM % 10000))
    port_open "$p" && continue
    nginx_conf "$TMP/nginx" "    server {
        listen 127.0.0.1:$p;
        location / { return 200 \"ok\"; }
    }"
    if nginx_start "$NGINX" "$TMP/nginx" "$p" taskset -c 0; then PORT=$p; break; fi
done
[ -n "$PORT" ] || die "nginx did not start: $(tail -3 "$TMP/nginx/error.log" 2>/dev/null)"
log "nginx on 127.0.0.1:$PORT"

cp bench/heavy.yaml "$TMP/base.yaml"
{
    cat bench/heavy.yaml
    cat <<YAML
  - name: Heavy
    fixed_count: 1
    wait: {constant: 100ms}
    script: |
      function heavy(user)
        local started = os.clock()
        local x = 0
        for i = 1, $LOOPS do x = (x * 31 + i) % 1000003 end
        metric("heavy loop", (os.clock() - started) * 1000)
        user.http:get("/heavy")
      end
    tasks: [{call: heavy}]
YAML
} > "$TMP/under.yaml"
{
    cat bench/heavy.yaml
    cat <<'YAML'
  - name: Spinner
    fixed_count: 1
    script_timeout: 1s
    wait: {constant: 100ms}
    script: |
      function spin(user)
        user.http:get("/spin")
        while true do end
      end
    tasks: [{call: spin}]
YAML
} > "$TMP/over.yaml"

# run NAME USERS: one hatchery run of $TMP/NAME.yaml, its --json summary in $TMP/NAME.json
run() {
    local name=$1 users=$2 rc=0
    log "$name: $users users, ${DURATION} s, --threads $THREADS"
    timeout -s TERM -k 10 $((DURATION + 60)) taskset -c 1 "$HATCHERY" -f "$TMP/$name.yaml" \
        --headless -u "$users" -r 1000 -t "${DURATION}s" --threads "$THREADS" \
        --host "http://127.0.0.1:$PORT" --json --only-summary \
        > "$TMP/$name.json" 2> "$TMP/$name.err" || rc=$?
    # 1: a request or a call failed (the spinner's calls do, by design)
    [ "$rc" -le 1 ] || die "$name exited $rc: $(tail -5 "$TMP/$name.err")"
    jq -e '.stats' "$TMP/$name.json" > /dev/null || die "$name: no JSON summary"
}
run base $((2 * USERS))
run under $((2 * USERS + 1))
run over $((2 * USERS + 1))

# row NAME ENTRY: a markdown table row of entry ENTRY of run NAME
row() {
    jq -r --arg run "$1" --arg n "$2" '.stats[] | select(.name == $n) |
        "| \($run) | \($n) | \(.num_requests) | \(.median_response_time) | \(.["response_time_percentile_0.99"]) | \(.max_response_time) | \(.corrected.median_response_time // "-") | \(.corrected["response_time_percentile_0.99"] // "-") | \(.corrected.max_response_time // "-") |"' \
        "$TMP/$1.json"
}
STAMP=$(date +%Y%m%d-%H%M%S)
mkdir -p bench/out
OUT=bench/out/heavy-$STAMP.md
{
    echo "# Latency one CPU-heavy scripted user adds to the others, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- $HATCHERY (checkout at $(git rev-parse --short HEAD 2>/dev/null || echo unknown)), \`--threads $THREADS\`, pinned to core 1; nginx pinned to core 0; ${DURATION} s per run; load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- others: $USERS YAML users (/plain) and $USERS scripted users (/scripted), each paced at one request per 20 ms"
    echo "- under: one more user looping $LOOPS iterations per call without awaiting; over: one more user looping until script_timeout (1 s)"
    echo
    echo "| run | entry | requests | p50 (ms) | p99 (ms) | max (ms) | from intended send: p50 | p99 | max |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    for r in base under over; do
        row "$r" /plain
        row "$r" /scripted
    done
    echo
    jq -r '.stats[] | select(.name == "heavy loop") |
        "- heavy loop (under): \(.num_requests) calls, median \(.median_response_time) ms, max \(.max_response_time) ms"' "$TMP/under.json"
    jq -r '.stats[] | select(.name == "call heavy") |
        "- call heavy (under): \(.num_failures) calls over script_timeout (the loop is too long for \"under\": lower --loops)"' "$TMP/under.json"
    jq -r '.stats[] | select(.name == "call spin") |
        "- call spin (over): \(.num_requests) calls, \(.num_failures) interrupted by script_timeout"' "$TMP/over.json"
} > "$OUT"
cat "$OUT"
log "written to $OUT"
