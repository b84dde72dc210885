#!/usr/bin/env bash
# Memory per idle user with a real keep-alive socket each, at 100,000 users, and whether spawning
# them at 10,000/s keeps up. Distributed on one machine: one master and `--processes N` worker
# processes, because a process may hold at most `ulimit -Hn` sockets (20,000 here, and raising it
# needs CAP_SYS_RESOURCE); the target is nginx with N workers on 20 loopback ports (Linux's
# connect() scans the ports already used towards one address:port, so 25,000 connections to one
# port cost far more kernel time than 5,000 to each of 20).
#
#   bench/idle-users.sh [USERS=100000] [PROCESSES=6] [BASELINE=6000]
#
# Each user makes one request, then waits 10-30 s on its open connection. RSS is summed over the
# worker processes 8 s after the master reports every user running, at BASELINE users and at
# USERS; per user = (RSS at USERS - RSS at BASELINE) / (USERS - BASELINE). Loopback only; every
# process started here is stopped on exit. Needs nginx, curl, jq and a release build.
set -euo pipefail
users=${1:-100000}; procs=${2:-6}; baseline=${3:-6000}
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
bin=${HATCHERY_BIN:-$repo/target/release/hatchery}
[ -x "$bin" ] || { echo "build first: cargo build --release -p hatchery-cli" >&2; exit 2; }
work=$(mktemp -d)
ports=$(seq -s " " 18801 18820)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
grpc=$(port); web=$(port)
master="" workers=""
# Stops this run's master and workers (the worker processes by their command line too).
stop() {
  local p
  for p in $master $workers; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  pkill -f -- "--worker --master-host 127.0.0.1 --master-port $grpc" 2>/dev/null || true
  master="" workers=""
  return 0
}
cleanup() {
  stop
  if [ -f "$work/nginx.pid" ]; then kill "$(cat "$work/nginx.pid")" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

servers=$(
  echo "  server {"
  for p in $ports; do echo "    listen 127.0.0.1:$p reuseport;"; done
  echo '    location / { return 200 "ok"; } location = /nginx_status { stub_status; } }'
)
NGINX_WORKERS=$procs NGINX_NOFILE=20000 NGINX_CONNECTIONS=19000 NGINX_ERROR_LEVEL=crit \
  nginx_conf "$work" "$servers"
nginx_start "$(command -v nginx || echo /usr/sbin/nginx)" "$work" "${ports%% *}" ||
  { echo "nginx did not start: $(tail -3 "$work/error.log" 2>/dev/null)" >&2; exit 1; }
{
  echo "users:"
  for p in $ports; do
    echo "  - {name: P$p, wait: {between: [10s, 30s]}, tasks: [{get: \"http://127.0.0.1:$p/\", name: p$p}]}"
  done
} > "$work/plan.yaml"

# One run: prints "RSS_KIB RAMP_SECONDS OPEN_CONNECTIONS".
run() {
  local n=$1 start="" done_at="" end pids rss=0 r
  "$bin" -f "$work/plan.yaml" --master --headless -u "$n" -r 10000 -t 120s -s 1s \
    --expect-workers "$procs" --heartbeat-liveness 10 --master-bind-host 127.0.0.1 \
    --master-bind-port "$grpc" --web-host 127.0.0.1 --web-port "$web" > "$work/master.log" 2>&1 &
  master=$!
  "$bin" --worker --master-host 127.0.0.1 --master-port "$grpc" --processes "$procs" \
    --heartbeat-liveness 10 > "$work/workers.log" 2>&1 &
  workers=$!
  end=$((SECONDS + 100))
  while [ $SECONDS -lt $end ]; do
    r=$(curl -s "http://127.0.0.1:$web/stats/requests" | jq -r '.user_count // 0' 2>/dev/null || echo 0)
    [ -z "$start" ] && [ "${r:-0}" -gt 0 ] && start=$(date +%s.%N)
    if [ "${r:-0}" -ge "$n" ]; then done_at=$(date +%s.%N); break; fi
    sleep 0.2
  done
  [ -n "$done_at" ] || { echo "not all $n users running within 100 s" >&2; tail -5 "$work/master.log" >&2; exit 1; }
  sleep 8
  pids=$(pgrep -f -- "--worker --master-host 127.0.0.1 --master-port $grpc")
  for p in $pids; do rss=$((rss + $(awk '/VmRSS/ {print $2}' "/proc/$p/status"))); done
  local open
  open=$(curl -s "http://127.0.0.1:${ports%% *}/nginx_status" | awk '/Active/ {print $3 - 1}')
  stop
  echo "$rss $(echo "$done_at - $start" | bc) $open"
}

read -r base_rss _ base_open < <(run "$baseline")
read -r rss ramp open < <(run "$users")
per=$(echo "scale=2; ($rss - $base_rss) / ($users - $baseline)" | bc)
echo "| users | worker processes | RSS of the workers (KiB) | connections open at nginx | all running after |"
echo "|---:|---:|---:|---:|---:|"
echo "| $baseline | $procs | $base_rss | $base_open | |"
echo "| $users | $procs | $rss | $open | ${ramp} s (at 10,000/s: $(echo "scale=1; $users / 10000" | bc) s) |"
echo
echo "**$per KiB per idle user**, each holding its keep-alive connection."
