#!/usr/bin/env bash
# Hatchery's benchmark harness: hatchery against wrk (and oha, Locust, Goose), in ONE run, on
# loopback only.
#
#   bench/run.sh [-d SECONDS] [-u USERS] [-n RUNS] [--peers wrk,oha,locust,goose] [--mem-users N]
#                [--big-users N] [--no-memory] [--no-build]
#
# Environment equivalents: BENCH_DURATION (10), BENCH_USERS (50), BENCH_RUNS (3),
# BENCH_PEERS (wrk), BENCH_MEM_USERS (10000), BENCH_BIG_USERS (100000), BENCH_MEMORY (1),
# BENCH_BUILD (1), BENCH_TOOLS (/var/cache/hatchery/bench-tools: where oha, Locust and the
# Goose load test are installed or built, outside the clone, so later runs reuse them).
#
# What it does (docs/benchmarks.md explains why):
#   1. installs nginx, wrk, GNU time and jq from Debian if missing (needs root then); the peers
#      asked for: oha (cargo install), Locust (pip, in a venv), Goose (a generated cargo project
#      pinned to GOOSE_VERSION below, built once in release mode), all under BENCH_TOOLS;
#   2. builds `cargo build --release -p hatchery-cli`;
#   3. starts nginx from its own config in a temp dir (1 worker, access log off, keep-alive,
#      `return 200 "ok"`) on a free 127.0.0.1 port, pinned to core 0;
#   4. throughput: RUNS rounds, each round every peer then hatchery, each pinned to core 1 with
#      USERS keep-alive connections for SECONDS; generator CPU time (user, sys) from GNU time,
#      nginx CPU from /proc/<worker>/stat deltas, requests as each tool counts them and as
#      nginx counts them (stub_status); medians of the rounds;
#   5. memory: hatchery with users that make one request and then sit idle on their keep-alive
#      connection, at 1 and at MEM_USERS users; VmRSS sampled once spawning is done;
#      then BIG_USERS users against a second nginx port that closes every connection after its
#      response (users that connected once and hold no socket: 100,000 sockets do not fit under
#      this machine's open-file limit);
#   6. added latency: one connection, wrk --latency and hatchery, p50/p99 side by side;
#   7. prints a markdown report and writes it to bench/out/<timestamp>.md.
# Every wait is bounded; nginx and every process started here are stopped on exit.
set -euo pipefail

DURATION=${BENCH_DURATION:-10}
USERS=${BENCH_USERS:-50}
RUNS=${BENCH_RUNS:-3}
MEM_USERS=${BENCH_MEM_USERS:-10000}
BIG_USERS=${BENCH_BIG_USERS:-100000}
PEERS=${BENCH_PEERS:-wrk}
TOOLS=${BENCH_TOOLS:-/var/cache/hatchery/bench-tools}
MEMORY=${BENCH_MEMORY:-1}
BUILD=${BENCH_BUILD:-1}
GOOSE_VERSION=0.19.0   # pinned: the newest on crates.io (2026-11) and the one ANCHORS.md measured
MEM_SPAWN_RATE=5000
MEM_RUN_TIME=15        # seconds
MEM_SAMPLE_AT=9        # seconds after start: spawning (2 s at 5000/s) is long done, no user has
                       # made its second request yet (waits are 10-30 s)

while [ $# -gt 0 ]; do
    case "$1" in
        -d|--duration) DURATION=${2:?}; shift 2 ;;
        -u|--users) USERS=${2:?}; shift 2 ;;
        -n|--runs) RUNS=${2:?}; shift 2 ;;
        --mem-users) MEM_USERS=${2:?}; shift 2 ;;
        --big-users) BIG_USERS=${2:?}; shift 2 ;;
        --peers) PEERS=${2:?}; shift 2 ;;
        --no-memory) MEMORY=0; shift ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
positive_ints run.sh DURATION USERS RUNS MEM_USERS BIG_USERS

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
HATCHERY=${HATCHERY_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/hatchery}
log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- 1. tools
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
[ -x /usr/bin/time ] || missing+=(time)
command -v jq >/dev/null 2>&1 || missing+=(jq)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
command -v pgrep >/dev/null 2>&1 || missing+=(procps)
command -v ss >/dev/null 2>&1 || missing+=(iproute2)
install_missing "${missing[@]}"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
CLK_TCK=$(getconf CLK_TCK)
case ",$PEERS," in *,wrk,*) ;; *) PEERS="wrk,$PEERS" ;; esac   # wrk is the reference
has_peer() { case ",$PEERS," in *,"$1",*) return 0 ;; *) return 1 ;; esac; }
mkdir -p "$TOOLS"
OHA=$TOOLS/bin/oha
if has_peer oha && [ ! -x "$OHA" ]; then
    # oha's TLS backend builds with cmake; cargo install keeps its build outside the clone
    command -v cmake >/dev/null 2>&1 || apt-get install -y cmake >&2 || { apt-get update >&2; apt-get install -y cmake >&2; }
    log "cargo install oha --root $TOOLS (once; a few minutes)"
    cargo install --locked --root "$TOOLS" oha >&2 || die "could not install oha"
fi
LOCUST_VENV=$TOOLS/locust-venv
if has_peer locust && [ ! -x "$LOCUST_VENV/bin/locust" ]; then
    python3 -m venv "$LOCUST_VENV" 2>/dev/null || { apt-get install -y python3-venv >&2 && python3 -m venv "$LOCUST_VENV"; }
    log "pip install locust into $LOCUST_VENV (once)"
    "$LOCUST_VENV/bin/pip" install -q locust >&2 || die "could not install locust"
fi
# Goose is a library: a load test is a cargo project. One scenario, one transaction, GET /, no
# wait time, default features, metrics on (as Goose is normally run). Built once, with its own
# target dir under BENCH_TOOLS; rebuilt only when the pinned version changes.
GOOSE_DIR=$TOOLS/goose-bench
GOOSE=$GOOSE_DIR/target/release/goose-bench
if has_peer goose && { [ ! -x "$GOOSE" ] || ! grep -qx "goose = \"=$GOOSE_VERSION\"" "$GOOSE_DIR/Cargo.toml" 2>/dev/null; }; then
    mkdir -p "$GOOSE_DIR/src"
    cat > "$GOOSE_DIR/Cargo.toml" <<EOF
[package]
name = "goose-bench"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
goose = "=$GOOSE_VERSION"
tokio = { version = "1", features = ["macros", "rt-multi-thread"] }

[profile.release]
codegen-units = 1

[workspace]
EOF
    cat > "$GOOSE_DIR/src/main.rs" <<'EOF'
// Generated by hatchery's bench/run.sh: every user requests / back to back.
use goose::prelude::*;

async fn root(user: &mut GooseUser) -> TransactionResult {
    let _response = user.get("/").await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), GooseError> {
    GooseAttack::initialize()?
        .register_scenario(scenario!("Hammer").register_transaction(transaction!(root)))
        .execute()
        .await?;
    Ok(())
}
EOF
    log "building the Goose $GOOSE_VERSION load test in $GOOSE_DIR (once; a few minutes)"
    CARGO_TARGET_DIR=$GOOSE_DIR/target cargo build --release --manifest-path "$GOOSE_DIR/Cargo.toml" >&2 \
        || die "could not build the Goose load test"
fi

# ---------------------------------------------------------------- 2. build
# The revision the binary is built from (with --no-build, the one checked out now).
REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=
if git status --porcelain -- . ':!bench/out' 2>/dev/null | grep -q .; then DIRTY=" (+ uncommitted changes)"; fi
if [ "$BUILD" = 1 ]; then
    log "cargo build --release -p hatchery-cli"
    cargo build --release -p hatchery-cli >&2
fi
[ -x "$HATCHERY" ] || die "$HATCHERY not built"

# ---------------------------------------------------------------- cleanup
TMP=$(mktemp -d /tmp/hatchery-bench.XXXXXX)
NGINX_PID=
GEN_PIDS=()
cleanup() {
    local rc=$?
    set +e
    for p in "${GEN_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    nginx_stop
    wait 2>/dev/null
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- file descriptors
# 10,000 idle users need 10,000 sockets in hatchery and as many in nginx.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [ "$MEMORY" = 1 ] && [ "$NOFILE" -lt $((MEM_USERS + 200)) ]; then
    die "open-file limit is $NOFILE (hard $(ulimit -Hn)), $MEM_USERS idle users need $((MEM_USERS + 200)); lower --mem-users"
fi
WORKER_CONNECTIONS=20000
[ "$MEM_USERS" -lt 19000 ] || WORKER_CONNECTIONS=$((MEM_USERS + 1000))

# ---------------------------------------------------------------- 3. nginx
# /proc/<pid>/stat fields 14 and 15 (utime, stime) in clock ticks; the text after the last ')'
# starts at field 3.
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
start_nginx() {
    local port=$1
    NGINX_NOFILE=$NOFILE NGINX_CONNECTIONS=$WORKER_CONNECTIONS NGINX_KEEPALIVE=120s \
        nginx_conf "$TMP/nginx" "    server {
        listen 127.0.0.1:$port reuseport;
        location / { return 200 \"ok\"; }
        # total requests nginx handled, read before and after each run
        location = /nginx_status { stub_status; }
    }
    server {
        # the same answer, then the connection is closed (users that connected once)
        listen 127.0.0.1:$((port + 1));
        keepalive_timeout 0;
        location / { return 200 \"ok\"; }
    }"
    nginx_start "$NGINX" "$TMP/nginx" "$port" taskset -c 0
}

PORT=
for _ in $(seq 10); do
    p=$((20000 + RANDOM % 10000))      # below the ephemeral range, so no client socket has it
    port_open "$p" && continue
    port_open $((p + 1)) && continue
    if start_nginx "$p"; then PORT=$p; break; fi
done
[ -n "$PORT" ] || die "nginx did not start: $(tail -3 "$TMP/nginx/error.log" 2>/dev/null)"
NGINX_WORKER=
for _ in $(seq 50); do
    NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -1 || true)
    [ -n "$NGINX_WORKER" ] && break
    sleep 0.1
done
[ -n "$NGINX_WORKER" ] || die "no nginx worker process under $NGINX_PID"
TARGET=http://127.0.0.1:$PORT/
body=$(curl -fsS "$TARGET" 2>/dev/null || true)
[ "$body" = ok ] || die "nginx at $TARGET answered '$body', expected 'ok'"
log "nginx $NGINX_PID (worker $NGINX_WORKER) on $TARGET, core 0"

# ---------------------------------------------------------------- measuring one process
# timed NAME CMD...: runs CMD pinned to core 1 under GNU time, in the background, with a hard
# limit; sets GEN_PID (the generator's own pid) and TIMED_PID (what to wait for).
timed() {
    local name=$1 limit=$2; shift 2
    rm -f "$TMP/$name.pid"
    # shellcheck disable=SC2016  # $$ and $@ are the inner shell's
    timeout -s TERM -k 10 "$limit" \
        /usr/bin/time -f '%U %S %e' -o "$TMP/$name.time" \
        sh -c 'echo $$ > "$0"; exec taskset -c 1 "$@"' "$TMP/$name.pid" "$@" \
        >"$TMP/$name.out" 2>"$TMP/$name.err" &
    TIMED_PID=$!
    GEN_PIDS=("$TIMED_PID")
    GEN_PID=
    for _ in $(seq 100); do
        [ -s "$TMP/$name.pid" ] && { GEN_PID=$(cat "$TMP/$name.pid"); break; }
        sleep 0.02
    done
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# nginx's count of the requests it has handled (stub_status), this request included
nginx_requests() { curl -fsS --max-time 5 "http://127.0.0.1:$PORT/nginx_status" | awk 'NR == 3 { print $3 }'; }

# throughput_run PEER ROUND: one measured run; appends a line to $TMP/runs.tsv:
# peer round requests errors user_s sys_s wall_s rps_wall nginx_util rss_mid_kib nginx_requests
throughput_run() {
    local peer=$1 round=$2 name="$1.$2" n0 n1 t0 t1 r0 r1 rss=0 rc=0
    local cmd
    if [ "$peer" = wrk ]; then
        cmd=(wrk -t1 "-c$USERS" "-d${DURATION}s" "$TARGET")
    elif [ "$peer" = oha ]; then
        cmd=("$OHA" -z "${DURATION}s" -c "$USERS" --no-tui --output-format json "$TARGET")
    elif [ "$peer" = locust ]; then
        cat > "$TMP/locustfile.py" <<'PY'
from locust import FastHttpUser, constant, task
class Hammer(FastHttpUser):
    wait_time = constant(0)
    @task
    def root(self):
        self.client.get("/")
PY
        cmd=("$LOCUST_VENV/bin/locust" -f "$TMP/locustfile.py" --headless -u "$USERS" -r "$USERS"
             -t "${DURATION}s" -H "http://127.0.0.1:$PORT" --json --only-summary --loglevel WARNING)
    elif [ "$peer" = goose ]; then
        # --no-reset-metrics: Goose otherwise drops what it counted while users were launching,
        # and the CPU time covers the whole process; no telnet Controller (WebSocket is off by default)
        cmd=("$GOOSE" --host "http://127.0.0.1:$PORT" -u "$USERS" -r "$USERS" -t "${DURATION}s"
             --no-reset-metrics --no-telnet --report-file "$TMP/$name.json")
    else
        local plan=bench/plan.yaml
        [ "$peer" = script ] && plan=bench/script.yaml
        cmd=("$HATCHERY" -f "$plan" --headless -u "$USERS" -r 1000 -t "${DURATION}s"
             --threads 1 --host "http://127.0.0.1:$PORT" --json --only-summary)
    fi
    r0=$(nginx_requests); n0=$(cpu_ticks "$NGINX_WORKER"); t0=$(date +%s.%N)
    timed "$name" $((DURATION + 60)) "${cmd[@]}"
    sleep "$(awk -v d="$DURATION" 'BEGIN { print d / 2 }')"
    [ -n "$GEN_PID" ] && rss=$(rss_kib "$GEN_PID")
    wait "$TIMED_PID" || rc=$?
    n1=$(cpu_ticks "$NGINX_WORKER"); t1=$(date +%s.%N); r1=$(nginx_requests)
    # hatchery exits 1 when a request failed: that is counted below, not fatal here
    if [ "$rc" -ne 0 ] && { [ "$peer" != hatchery ] && [ "$peer" != script ] || [ "$rc" -ne 1 ]; }; then
        die "$peer run $round exited $rc: $(tail -5 "$TMP/$name.err")"
    fi
    [ -s "$TMP/$name.time" ] || die "$peer run $round: no GNU time output"
    local requests errors rps user sys wall
    read -r user sys wall < <(tail -1 "$TMP/$name.time")
    if [ "$peer" = wrk ]; then
        requests=$(awk '/ requests in / { print $1 }' "$TMP/$name.out")
        local secs
        secs=$(awk '/ requests in / { sub(/s,$/, "", $4); print $4 }' "$TMP/$name.out")
        errors=$(awk '/Non-2xx or 3xx responses:/ { n += $NF }
                      /Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 }
                      END { print n + 0 }' "$TMP/$name.out")
        rps=$(awk -v r="$requests" -v s="$secs" 'BEGIN { printf "%.0f", r / s }')
    elif [ "$peer" = oha ]; then
        # every answer (any status) and every transport error is a request sent
        requests=$(jq '([.statusCodeDistribution[]] | add // 0) + ([.errorDistribution[]] | add // 0)' "$TMP/$name.out")
        errors=$(jq '([.statusCodeDistribution | to_entries[] | select(.key != "200") | .value] | add // 0) + ([.errorDistribution[]] | add // 0)' "$TMP/$name.out")
        rps=$(jq '.summary.requestsPerSec | floor' "$TMP/$name.out")
        [ "$errors" = 0 ] || log "oha #$round errors: $(jq -c '.errorDistribution' "$TMP/$name.out")"
    elif [ "$peer" = goose ]; then
        # Goose's final metrics, from its JSON report: every request row's counter and failures
        requests=$(jq '[.raw_metrics.requests[] | .raw_data.counter] | add // 0' "$TMP/$name.json")
        errors=$(jq '[.raw_metrics.requests[] | .fail_count] | add // 0' "$TMP/$name.json")
        rps=$(awk -v r="$requests" -v w="$wall" 'BEGIN { printf "%.0f", r / w }')
    elif [ "$peer" = locust ]; then
        requests=$(jq '[.[] | .num_requests] | add // 0' "$TMP/$name.out")
        errors=$(jq '[.[] | .num_failures] | add // 0' "$TMP/$name.out")
        rps=$(awk -v r="$requests" -v d="$DURATION" 'BEGIN { printf "%.0f", r / d }')
    else
        requests=$(jq '.stats[] | select(.name == "Aggregated") | .num_requests' "$TMP/$name.out")
        errors=$(jq '.stats[] | select(.name == "Aggregated") | .num_failures' "$TMP/$name.out")
        rps=$(jq '.stats[] | select(.name == "Aggregated") | .total_rps | floor' "$TMP/$name.out")
    fi
    case "$requests" in ''|*[!0-9]*|0) die "$peer run $round: no requests counted ('$requests')" ;; esac
    local served=$((r1 - r0 - 1))     # minus the second stub_status request itself
    local util
    util=$(awk -v a="$n0" -v b="$n1" -v hz="$CLK_TCK" -v t0="$t0" -v t1="$t1" \
        'BEGIN { printf "%.3f", (b - a) / hz / (t1 - t0) }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$peer" "$round" "$requests" "$errors" \
        "$user" "$sys" "$wall" "$rps" "$util" "$rss" "$served" >> "$TMP/runs.tsv"
    log "$peer #$round: $requests requests ($served served by nginx), $errors errors, user ${user}s sys ${sys}s, ${rps}/s wall, nginx $(awk -v u="$util" 'BEGIN { printf "%.0f%%", u * 100 }')"
}

# ---------------------------------------------------------------- 4. throughput
: > "$TMP/runs.tsv"
IFS=, read -r -a ALL_PEERS <<< "$PEERS"
ALL_PEERS+=(hatchery script)
for round in $(seq "$RUNS"); do
    for peer in "${ALL_PEERS[@]}"; do
        throughput_run "$peer" "$round"
        sleep 1
    done
done

# ---------------------------------------------------------------- added latency
# One connection, so nothing queues: what the generator adds on top of the loopback round trip
# and nginx is the difference to wrk's numbers (wrk's own cost is in both).
: > "$TMP/latency.tsv"
timeout -k 5 $((DURATION + 30)) taskset -c 1 wrk -t1 -c1 "-d${DURATION}s" --latency "$TARGET" > "$TMP/lat.wrk.out"
to_us() { awk '{ v = $1; if (v ~ /us$/) { sub(/us$/, "", v); print v } else if (v ~ /ms$/) { sub(/ms$/, "", v); print v * 1000 } else if (v ~ /s$/) { sub(/s$/, "", v); print v * 1e6 } }'; }
printf 'wrk\t%s\t%s\n' "$(awk '$1 == "50%" { print $2 }' "$TMP/lat.wrk.out" | to_us)" \
    "$(awk '$1 == "99%" { print $2 }' "$TMP/lat.wrk.out" | to_us)" >> "$TMP/latency.tsv"
timeout -k 5 $((DURATION + 30)) taskset -c 1 "$HATCHERY" -f bench/plan.yaml --headless -u 1 -r 1 \
    -t "${DURATION}s" --threads 1 --host "http://127.0.0.1:$PORT" --json --only-summary > "$TMP/lat.hatchery.out" || true
printf 'hatchery\t%s\t%s\n' \
    "$(jq '.stats[] | select(.name == "Aggregated") | .median_response_time * 1000' "$TMP/lat.hatchery.out")" \
    "$(jq '.stats[] | select(.name == "Aggregated") | .["response_time_percentile_0.99"] * 1000' "$TMP/lat.hatchery.out")" >> "$TMP/latency.tsv"
log "added latency (p50, p99 in us): $(tr '\t\n' ' ;' < "$TMP/latency.tsv")"

# ---------------------------------------------------------------- 5. memory
# mem_run USERS: appends "users rss_kib fds established failures requests" to $TMP/mem.tsv
# mem_run USERS [PORT RATE RUNTIME SAMPLE_AT PLAN]
mem_run() {
    local u=$1 port=${2:-$PORT} rate=${3:-$MEM_SPAWN_RATE} runtime=${4:-$MEM_RUN_TIME}
    local at=${5:-$MEM_SAMPLE_AT} plan=${6:-bench/idle.yaml} rss=0 fds=0 est=0 rc=0
    local name="mem.$1.${2:-$PORT}.$(basename "$plan" .yaml)"
    timed "$name" $((runtime + 60)) "$HATCHERY" -f "$plan" --headless -u "$u" \
        -r "$rate" -t "${runtime}s" --threads 1 --host "http://127.0.0.1:$port" \
        --json --only-summary
    sleep "$at"
    if [ -n "$GEN_PID" ] && kill -0 "$GEN_PID" 2>/dev/null; then
        rss=$(rss_kib "$GEN_PID")
        fds=$(find "/proc/$GEN_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
        est=$(ss -Htn state established "( dport = :$port )" 2>/dev/null | wc -l)
    fi
    wait "$TIMED_PID" || rc=$?
    [ "$rc" -le 1 ] || die "memory run with $u users exited $rc: $(tail -5 "$TMP/$name.err")"
    local fails reqs
    fails=$(jq '.stats[] | select(.name == "Aggregated") | .num_failures' "$TMP/$name.out")
    reqs=$(jq '.stats[] | select(.name == "Aggregated") | .num_requests' "$TMP/$name.out")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$u" "$rss" "$fds" "$est" "$fails" "$reqs" "$port" >> "$TMP/mem.tsv"
    log "memory, $u users: VmRSS ${rss} KiB, $fds fds, $est established to nginx, $reqs requests, $fails failures"
}
: > "$TMP/mem.tsv"
if [ "$MEMORY" = 1 ]; then
    mem_run 1
    sleep 1
    mem_run "$MEM_USERS"
    # 10,000/s for BIG_USERS users; sampled 3 s after the last one is due, before any second
    # request of the last ones (waits are 10-30 s)
    BIG_RATE=10000
    BIG_AT=$(( (BIG_USERS + BIG_RATE - 1) / BIG_RATE + 3 ))
    sleep 1
    mem_run 1 $((PORT + 1)) "$BIG_RATE" $((BIG_AT + 3)) "$BIG_AT"
    sleep 1
    mem_run "$BIG_USERS" $((PORT + 1)) "$BIG_RATE" $((BIG_AT + 3)) "$BIG_AT"
    # scripted users (bench/idle-script.yaml), as the first two rows: rows 5 and 6
    sleep 1
    mem_run 1 "$PORT" "$MEM_SPAWN_RATE" "$MEM_RUN_TIME" "$MEM_SAMPLE_AT" bench/idle-script.yaml
    sleep 1
    mem_run "$MEM_USERS" "$PORT" "$MEM_SPAWN_RATE" "$MEM_RUN_TIME" "$MEM_SAMPLE_AT" bench/idle-script.yaml
fi

# ---------------------------------------------------------------- 6. report
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# col PEER AWK-EXPR: the expression over each run of PEER ($3 requests, $4 errors, $5 user,
# $6 sys, $7 wall, $8 rps, $9 nginx util, $10 rss), then the median
col() { awk -F'\t' -v p="$1" '$1 == p { print '"$2"' }' "$TMP/runs.tsv" | median; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { printf f, v }'; }

declare -A M
# shellcheck disable=SC2016  # awk expressions
for peer in "${ALL_PEERS[@]}"; do
    M[$peer.rpc]=$(col "$peer" '$3 / ($5 + $6)')
    M[$peer.us_user]=$(col "$peer" '$5 * 1e6 / $3')
    M[$peer.us_sys]=$(col "$peer" '$6 * 1e6 / $3')
    M[$peer.us_tot]=$(col "$peer" '($5 + $6) * 1e6 / $3')
    M[$peer.kernel]=$(col "$peer" '$6 / ($5 + $6)')
    M[$peer.rps]=$(col "$peer" '$8')
    M[$peer.gen_util]=$(col "$peer" '($5 + $6) / $7')
    M[$peer.nginx]=$(col "$peer" '$9')
    M[$peer.rss]=$(col "$peer" '$10 / 1024')
    M[$peer.errors]=$(awk -F'\t' -v p="$peer" '$1 == p { n += $4 } END { print n + 0 }' "$TMP/runs.tsv")
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2fx", a / b }'; }
# per-round ratios (each hatchery run against the wrk run just before it)
PAIR_RATIOS=$(awk -F'\t' '{ v[$1, $2] = $3 / ($5 + $6) } END { for (r = 1; ("wrk", r) in v; r++) if (("hatchery", r) in v) printf "%.2f ", v["hatchery", r] / v["wrk", r] }' "$TMP/runs.tsv")
PAIR_MEDIAN=$(for r in $PAIR_RATIOS; do echo "$r"; done | median)
SCRIPT_RATIOS=$(awk -F'\t' '{ v[$1, $2] = $3 / ($5 + $6) } END { for (r = 1; ("wrk", r) in v; r++) if (("script", r) in v) printf "%.2f ", v["script", r] / v["wrk", r] }' "$TMP/runs.tsv")
SCRIPT_MEDIAN=$(for r in $SCRIPT_RATIOS; do echo "$r"; done | median)

STAMP=$(date +%Y%m%d-%H%M%S)
mkdir -p bench/out
OUT=bench/out/$STAMP.md
{
    echo "# Hatchery benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r)"
    echo "- hatchery $REV$DIRTY; $(wrk -v 2>&1 | head -1 | awk '{ print $1, $2 }'); $("$NGINX" -v 2>&1 | sed 's/.*: //')"
    echo "- target: nginx, 1 worker pinned to core 0, \`return 200 \"ok\"\`, keep-alive, access log off, 127.0.0.1:$PORT"
    echo "- generators pinned to core 1, $USERS keep-alive connections/users, ${DURATION} s per run, $RUNS runs each, in this order each round: ${ALL_PEERS[*]}"
    echo "  - \`wrk -t1 -c$USERS -d${DURATION}s $TARGET\`"
    has_peer oha && echo "  - $("$OHA" --version 2>/dev/null | head -1): \`oha -z ${DURATION}s -c $USERS --no-tui --output-format json $TARGET\`"
    has_peer locust && echo "  - Locust $("$LOCUST_VENV/bin/locust" --version 2>/dev/null | awk '{ print $2 }'): \`locust --headless -u $USERS -r $USERS -t ${DURATION}s --json --only-summary\`, one \`FastHttpUser\` with \`wait_time = constant(0)\` and one task \`GET /\`"
    has_peer goose && echo "  - Goose $(awk -F'"' '$0 == "name = \"goose\"" { getline; print $2; exit }' "$GOOSE_DIR/Cargo.lock" 2>/dev/null) (release build, default features, metrics on): \`goose-bench --host http://127.0.0.1:$PORT -u $USERS -r $USERS -t ${DURATION}s --no-reset-metrics --no-telnet --report-file ...\`, one scenario, one transaction \`GET /\`, no wait time"
    echo "  - \`hatchery -f bench/plan.yaml --headless -u $USERS -r 1000 -t ${DURATION}s --threads 1 --host http://127.0.0.1:$PORT --json --only-summary\`"
    echo "  - script: the same with \`-f bench/script.yaml\` (each task a \`call:\` of a Luau function doing \`user.http:get(\"/\")\`)"
    echo "- CPU time: GNU time (user, sys) of the generator process; nginx CPU: /proc/<worker>/stat delta over the run"
    echo "- requests: as each tool counts them (wrk's summary, oha's status and error counts, Locust's and Goose's own final metrics, hatchery's Aggregated row); \"served by nginx\" below is nginx's stub_status count over the same run, as a check"
    echo
    echo "## Throughput (medians of $RUNS)"
    echo
    hdr="| metric |"; sep="|---|"
    for peer in "${ALL_PEERS[@]}"; do hdr="$hdr $peer |"; sep="$sep---:|"; done
    echo "$hdr hatchery / wrk |"; echo "$sep---:|"
    row() {   # row LABEL KEY FORMAT [ratio]
        local line="| $1 |"
        for peer in "${ALL_PEERS[@]}"; do line="$line $(fmt "${M[$peer.$2]}" "$3") |"; done
        if [ "${4:-}" = ratio ]; then line="$line $(ratio "${M[hatchery.$2]}" "${M[wrk.$2]}") |"; else line="$line |"; fi
        echo "$line"
    }
    row "**requests per generator CPU-second**" rpc %.0f ratio
    row "CPU per request, user (us)" us_user %.2f ratio
    row "CPU per request, kernel (us)" us_sys %.2f ratio
    row "CPU per request, total (us)" us_tot %.2f ratio
    row "kernel share of generator CPU" kernel %.2f
    row "requests/s (wall)" rps %.0f ratio
    row "generator CPU utilization (core 1)" gen_util %.2f
    row "nginx worker CPU utilization (core 0)" nginx %.2f
    row "generator VmRSS mid-run (MiB)" rss %.1f
    line="| errors / failures (all runs) |"
    for peer in "${ALL_PEERS[@]}"; do line="$line ${M[$peer.errors]} |"; done
    echo "$line |"
    echo
    for peer in "${ALL_PEERS[@]}"; do
        [ "$peer" = hatchery ] || [ "$peer" = script ] || echo "- hatchery / $peer, requests per generator CPU-second: **$(ratio "${M[hatchery.rpc]}" "${M[$peer.rpc]}")**"
    done
    echo
    echo "- script / wrk, requests per generator CPU-second: **$(ratio "${M[script.rpc]}" "${M[wrk.rpc]}")**; script / hatchery (plain YAML users): **$(ratio "${M[script.rpc]}" "${M[hatchery.rpc]}")**"
    echo
    echo "Per-round ratios of requests per CPU-second (hatchery / the wrk run just before): ${PAIR_RATIOS}(median $PAIR_MEDIAN); script / that wrk run: ${SCRIPT_RATIOS}(median $SCRIPT_MEDIAN)."
    awk -v a="${M[wrk.nginx]}" -v b="${M[hatchery.nginx]}" 'BEGIN { if (a > 0.9 || b > 0.9) print "\n**Warning:** nginx used more than 90% of its core: the target may have limited the wall rate (requests per generator CPU-second stay meaningful)." }'
    awk -v a="${M[wrk.gen_util]}" -v b="${M[hatchery.gen_util]}" 'BEGIN { if (a < 0.9 || b < 0.9) print "\n**Warning:** a generator used less than 90% of core 1: something else competed for the cores or the target was the limit; compare with care." }'
    echo
    echo "### Every run"
    echo
    echo "| peer | round | requests | served by nginx | errors | user s | sys s | wall s | req/s wall | req per CPU-s | nginx CPU |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f | %.2f |\n", $1, $2, $3, $11, $4, $5, $6, $7, $8, $3 / ($5 + $6), $9 }' "$TMP/runs.tsv"
    echo
    echo "## Added latency (one connection, ${DURATION} s each)"
    echo
    echo "| | p50 (us) | p99 (us) |"
    echo "|---|---:|---:|"
    awk -F'\t' '{ printf "| %s | %.0f | %.0f |\n", $1, $2, $3 } $1 == "wrk" { a = $2; b = $3 } $1 == "hatchery" { c = $2; d = $3 }
        END { printf "| **hatchery - wrk** | **%+.0f** | **%+.0f** |\n", c - a, d - b }' "$TMP/latency.tsv"
    if [ "$MEMORY" = 1 ]; then
        echo
        echo "## Memory per idle user"
        echo
        echo "Users make one request, then wait \`between: [10s, 30s]\` holding their keep-alive connection (bench/idle.yaml);"
        echo "\`-r $MEM_SPAWN_RATE -t ${MEM_RUN_TIME}s --threads 1\`, VmRSS sampled ${MEM_SAMPLE_AT} s after start."
        echo
        echo "The last two rows: against the port that closes each connection after its response, \`-r 10000\`, sampled ${BIG_AT} s after start."
        echo
        echo "| users | target | VmRSS (KiB) | open fds | established to nginx | requests | failures |"
        echo "|---:|---|---:|---:|---:|---:|---:|"
        awk -F'\t' -v p="$PORT" '{ printf "| %s | %s%s | %s | %s | %s | %s | %s |\n", $1, ($7 == p ? "keep-alive" : "closes"), (NR > 4 ? ", scripted (bench/idle-script.yaml)" : ""), $2, $3, $4, $6, $5 }' "$TMP/mem.tsv"
        echo
        awk -F'\t' -v n="$MEM_USERS" -v b="$BIG_USERS" 'NR == 1 { r1 = $2 } NR == 2 { rn = $2 } NR == 3 { s1 = $2 } NR == 4 { sn = $2; req = $6 }
            END { if (n > 1 && rn > 0) printf "**RSS per idle user holding its connection: (RSS_%d - RSS_1) / %d = %.1f KiB**\n\n", n, n - 1, (rn - r1) / (n - 1);
                  if (b > 1 && sn > 0) printf "**RSS per idle user that connected once: (RSS_%d - RSS_1) / %d = %.1f KiB** (%d requests by the end: %s)\n", b, b - 1, (sn - s1) / (b - 1), req, (req >= b ? "every user started and made its first request" : "spawning did NOT keep up") }' "$TMP/mem.tsv"
        awk -F'\t' -v n="$MEM_USERS" 'NR == 5 { r1 = $2 } NR == 6 { rn = $2 }
            END { if (n > 1 && rn > 0) printf "\n**RSS per idle scripted user holding its connection: (RSS_%d - RSS_1) / %d = %.1f KiB**\n", n, n - 1, (rn - r1) / (n - 1) }' "$TMP/mem.tsv"
    fi
} > "$OUT"
cat "$OUT"
log "written to $OUT"
