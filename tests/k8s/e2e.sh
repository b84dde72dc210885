#!/usr/bin/env bash
# A LoadTest end to end on the local Kubernetes of ../shared/k8s, pods and all: the operator,
# installed from deploy/operator.yaml (its own pod, its ServiceAccount and least-privilege
# RBAC), turns deploy/examples' LoadTest into a master and workers running the hatchery image
# against a demo target in the cluster. Asserts, from the API: WaitingForWorkers -> Running -> Succeeded, workers "2/2", the
# master pod's readiness gate True only once the workers are connected, requests > 0 and no
# failure, the UI through `kubectl port-forward`, the scale-down after the TTL, a gate timeout
# ending in Failed, and every child gone with the LoadTest.
#
#   tests/k8s/e2e.sh [TARGET_DIR]       (default target; needs root, kubectl, curl, jq)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
shared=${HATCHERY_SHARED:-$repo/../shared}
target=${1:-${CARGO_TARGET_DIR:-$repo/target}}
bin="$target/debug"
log() { printf '[k8s-e2e %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
fail() { log "FAIL: $*"; dump; exit 1; }
# Everything of one run lives in its own namespace, so a cluster restarted on old state starts
# clean; kubectl takes the last -n, so `k -n hatchery-system ...` still works.
export ns="e2e-$(date +%s)"
k() { kubectl -n "$ns" "$@" 2> >(grep -v 'version difference' >&2); }
kc() { kubectl "$@" 2> >(grep -v 'version difference' >&2); }

command -v jq >/dev/null || { apt-get install -y -qq jq >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }; }
[ -x "$bin/hatchery" ] && [ -x "$bin/hatchery-operator" ] || { echo "build first: cargo build -p hatchery-cli -p hatchery-operator" >&2; exit 2; }

work=$(mktemp -d)
forward_pid=""
dump() {
  k get lt,pods,deploy,sts,svc -o wide || true
  k get events --sort-by=.lastTimestamp | tail -20 || true
  k -n hatchery-system logs deploy/hatchery-operator --tail=30 || true
}
cleanup() {
  [ -n "$forward_pid" ] && kill "$forward_pid" 2>/dev/null || true
  bash "$here/cluster.sh" stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# Waits (bounded) until `$@` succeeds.
until_ok() {
  local what=$1 limit=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || fail "not within ${limit}s: $what"
    sleep 1
  done
}

export KUBECONFIG=$(bash "$here/cluster.sh" start)
log "cluster up"
# A tag per run: a cluster restarted on old state must not keep running an older binary.
tag="$ns"
bash "$here/image.sh" "$bin/hatchery" "localhost/hatchery:$tag" "$work/image.tar" >/dev/null
bash "$here/image.sh" "$bin/hatchery-operator" "localhost/hatchery-operator:$tag" "$work/operator.tar" >/dev/null
bash "$shared/k8s/load-image.sh" "$work/image.tar" "$work/operator.tar" >/dev/null
log "images loaded"

kc apply -f "$repo/deploy/crd.yaml" >/dev/null
kubectl create namespace "$ns" >/dev/null 2>&1
until_ok "the CRD is established" 30 k wait --for=condition=established crd/loadtests.hatchery.io --timeout=1s
k apply -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: demo-target}
spec:
  replicas: 1
  selector: {matchLabels: {app: demo-target}}
  template:
    metadata: {labels: {app: demo-target}}
    spec:
      terminationGracePeriodSeconds: 2
      enableServiceLinks: false
      containers:
        - {name: demo, image: "localhost/hatchery:$tag", imagePullPolicy: Never,
           args: [demo-target, --bind, 0.0.0.0, --port, "8080"], ports: [{containerPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: demo-target}
spec:
  selector: {app: demo-target}
  ports: [{port: 8080, targetPort: 8080, protocol: TCP}]
YAML
sed -e "s|image: hatchery-operator:0.1.0|image: localhost/hatchery-operator:$tag|" \
    "$repo/deploy/operator.yaml" | kc apply -f - >/dev/null
until_ok "the operator is available" 120 k -n hatchery-system wait --for=condition=available deploy/hatchery-operator --timeout=1s
log "operator running in the cluster as its ServiceAccount"

sed -e "s|image: hatchery:0.1.0|image: localhost/hatchery:$tag|" -e 's|runTime: 2m|runTime: 15s|' \
    -e 's|ttlSecondsAfterFinished: 600|ttlSecondsAfterFinished: 20|' \
    "$repo/deploy/examples/loadtest.yaml" > "$work/lt.yaml"
k apply -f "$work/lt.yaml" >/dev/null
log "LoadTest applied"

phase() { k get lt quickstart -o jsonpath='{.status.phase}'; }
gate() { k get pods -l hatchery.io/loadtest=quickstart,hatchery.io/role=master \
  -o jsonpath='{.items[0].status.conditions[?(@.type=="hatchery.io/workers-connected")].status}'; }
seen=""; end=$((SECONDS + 180))
while :; do
  p=$(phase || true); g=$(gate || true)
  connected=$(k get lt quickstart -o jsonpath='{.status.workersConnected}' || true)
  case "$seen" in *"$p"*) ;; *) seen="$seen $p"; log "phase $p (workers ${connected:-?}, gate ${g:-unset})";; esac
  if [ "$g" = "True" ] && [ "${connected:-0}" -lt 2 ]; then fail "the gate opened with ${connected:-0} workers"; fi
  if [ "$p" = "Running" ] && [ -z "$forward_pid" ]; then
    k port-forward svc/quickstart-ui 18089:8089 >/dev/null 2>&1 & forward_pid=$!
  fi
  [ "$p" = "Succeeded" ] && break
  [ "$p" = "Failed" ] && fail "the LoadTest failed: $(k get lt quickstart -o jsonpath='{.status.verdict}')"
  [ $SECONDS -lt $end ] || fail "not Succeeded within 180 s (seen:$seen)"
  sleep 1
done
case "$seen" in *WaitingForWorkers*Running*Succeeded*|*Pending*Running*Succeeded*) ;; *) fail "phases seen:$seen";; esac
status=$(k get lt quickstart -o json | jq -c .status)
[ "$(jq -r .workers <<<"$status")" = "2/2" ] || fail "workers: $status"
[ "$(jq -r '.failRatio // 0' <<<"$status")" = "0" ] || fail "failures: $status"
[ "$(gate)" = "True" ] || fail "the gate is not True"
k get events --field-selector involvedObject.name=quickstart 2>/dev/null | grep -q Succeeded || fail "no Succeeded event"
log "Succeeded: $status"
until_ok "the UI answers through port-forward" 30 curl -sf http://127.0.0.1:18089/stats/requests
requests=$(curl -sf http://127.0.0.1:18089/stats/requests | jq '.stats[] | select(.name=="Aggregated") | .num_requests')
[ "${requests:-0}" -gt 0 ] || fail "no request in the master's final stats"
log "the master still serves its final stats through svc/quickstart-ui: $requests requests"
kill "$forward_pid" 2>/dev/null || true; forward_pid=""

# A finished test never runs again: an edit is refused with an event, the master is untouched.
before=$(k get deploy quickstart-master -o jsonpath='{.metadata.generation}')
k patch lt quickstart --type merge -p '{"spec":{"users":5}}' >/dev/null
until_ok "the edit is refused with an event" 30 bash -c 'kubectl -n "$ns" get events --field-selector involvedObject.name=quickstart,reason=SpecChangeIgnored 2>/dev/null | grep -q SpecChangeIgnored'
[ "$(k get deploy quickstart-master -o jsonpath='{.metadata.generation}')" = "$before" ] || fail "an edit changed the finished test's master"
[ "$(phase)" = "Succeeded" ] || fail "an edit changed the finished test's phase"
log "an edit after the end is refused; no rerun"

until_ok "scaled to zero after the TTL" 90 bash -c '[ "$(kubectl -n "$ns" get deploy quickstart-master -o jsonpath={.spec.replicas} 2>/dev/null)" = 0 ]'
[ "$(phase)" = "Succeeded" ] || fail "the status changed after the scale-down"
log "scaled down after ttlSecondsAfterFinished, status kept"

# A test whose workers cannot reach the master: Failed on the gate timeout, with the reason.
sed -e 's|name: quickstart|name: nogate|' -e 's|expectWorkersMaxWait: 2m|expectWorkersMaxWait: 10s|' \
    -e 's|^  worker:|  worker:\n    extraArgs: ["--master-port", "1"]|' "$work/lt.yaml" > "$work/nogate.yaml"
k apply -f "$work/nogate.yaml" >/dev/null
until_ok "the gate timeout fails the test" 120 bash -c '[ "$(kubectl -n "$ns" get lt nogate -o jsonpath={.status.phase} 2>/dev/null)" = Failed ]'
log "gate timeout: $(k get lt nogate -o jsonpath='{.status.verdict}')"
until_ok "a Warning event says why" 30 bash -c 'kubectl -n "$ns" get events --field-selector involvedObject.name=nogate,type=Warning 2>/dev/null | grep -q Failed'

k delete lt quickstart nogate --wait=true --timeout=90s >/dev/null
until_ok "every child garbage-collected" 90 bash -c '! kubectl -n "$ns" get deploy,sts,svc,cm --no-headers 2>/dev/null | grep -qE "quickstart|nogate"'
log "ALL OK: children gone with their LoadTests"
kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
