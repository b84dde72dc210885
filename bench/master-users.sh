#!/usr/bin/env bash
# The master's memory against the number of users asked for: one master and WORKERS simulated
# workers (master/examples/fleet.rs, all in one process), with 10^3 .. 10^7 users requested, each
# ramped over about 4 s and run for 12 s. Prints a Markdown table of the master's peak RSS
# (sampled every second) and the users the fleet was assigned at the peak. Loopback only; the
# master stops by itself (--headless -t), the fleet with it.
#
#   bench/master-users.sh [WORKERS=1000]     (RATE=N: every run at N users/s instead of users/4)
#
# Needs release builds: cargo build --release -p hatchery-cli --bin hatchery && cargo build --release -p hatchery-master --example fleet
set -euo pipefail
workers=${1:-1000}
repo=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
bin=${HATCHERY_BIN:-$target/release/hatchery}
fleet=${FLEET_BIN:-$target/release/examples/fleet}
for b in "$bin" "$fleet"; do
  [ -x "$b" ] || { echo "build first: cargo build --release -p hatchery-cli --bin hatchery and -p hatchery-master --example fleet ($b)" >&2; exit 2; }
done
master=""
trap '[ -n "$master" ] && kill "$master" 2>/dev/null; true' EXIT
log=$(mktemp)

# The master binds port 0 and says which port it got ("workers connect to ADDR"); the fleet
# dials it only then, so no run can start before the master listens (the races of a bind-release
# port picker and of a fleet started first).
workers_port() {
  local deadline=$((SECONDS + 30))
  while [ $SECONDS -lt $deadline ]; do
    port=$(grep -oE 'workers connect to [0-9.]+:[0-9]+' "$log" | head -1 | grep -oE '[0-9]+$' || true)
    if [ -n "$port" ]; then echo "$port"; return 0; fi
    kill -0 "$master" 2>/dev/null || break
    sleep 0.1
  done
  echo "the master announced no port:" >&2; cat "$log" >&2; return 1
}

echo "| users requested | master peak RSS (MB) | users assigned at the peak |"
echo "|---:|---:|---:|"
for users in 1000 10000 100000 1000000 10000000; do
  rate=${RATE:-$(( users / 4 > 0 ? users / 4 : 1 ))}
  : >"$log"
  "$bin" -f "$repo/bench/plan.yaml" --master --headless --master-bind-host 127.0.0.1 \
    --master-bind-port 0 --web-host 127.0.0.1 --web-port 0 \
    --expect-workers "$workers" --expect-workers-max-wait 60s \
    -u "$users" -r "$rate" -t 12s --only-summary >/dev/null 2>"$log" &
  master=$!
  grpc=$(workers_port)
  out=$("$fleet" --master "http://127.0.0.1:$grpc" --workers "$workers" --endpoints 10 \
    --samples 10 --master-pid "$master" --limit 90)
  wait "$master" || true
  master=""
  rss=$(jq -r .master_peak_rss_mb <<<"$out")
  seen=$(jq -r .peak_users_assigned <<<"$out")
  echo "| $users | $rss | $seen |"
done
