#!/usr/bin/env bash
# A LoadTest end to end on the local Kubernetes of ../shared/k8s, pods and all, with the
# product: the images of deploy/build-images.sh (podman, deploy/Dockerfile), the operator
# installed from the Helm chart's render (charts/hatchery-operator through Helm's SDK: its own
# pod, ServiceAccount, least-privilege RBAC, probes), deploy/examples/demo-target.yaml and
# deploy/examples/loadtest.yaml. Asserts, from the API: the render and deploy/operator.yaml pass
# the API server's dry run; WaitingForWorkers -> Running -> Succeeded, workers "2/2", the master
# pod's readiness gate True only once the workers are connected, requests > 0 and no failure,
# the UI through `kubectl port-forward svc/quickstart-ui`, the operator's /metrics, the
# scale-down after the TTL, a gate timeout ending in Failed, and every child gone with the
# LoadTest.
#
#   tests/k8s/e2e.sh          (needs root, podman, kubectl, curl, jq; HATCHERY_IMAGE_PROFILE=dev
#                              builds the images from debug binaries, as CI does, to save a build)
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$repo/.ci/lib.sh"
shared=${HATCHERY_SHARED:-$repo/../shared}
profile=${HATCHERY_IMAGE_PROFILE:-release}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1)
python=${HATCHERY_HELM_PYTHON:-$HATCHERY_CACHE/helm-venv/bin/python}
log() { printf '[k8s-e2e %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
fail() { log "FAIL: $*"; dump; exit 1; }
# Everything of one run lives in its own namespace, so a cluster restarted on old state starts
# clean; kubectl takes the last -n, so `k -n hatchery-system ...` still works.
export ns="e2e-$(date +%s)"
# kubectl's stderr less its client/server skew warning (grep finding nothing to print is no error).
quiet_skew() { grep -v 'version difference' >&2 || true; }
k() { kubectl -n "$ns" "$@" 2> >(quiet_skew); }
kc() { kubectl "$@" 2> >(quiet_skew); }

command -v jq >/dev/null || { apt-get install -y -qq jq >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }; }
[ -x "$python" ] || { python3 -m venv "${python%/bin/python}" && "$python" -m pip install -q helm-python-sdk; }

work=$(mktemp -d)
forward_pid=""
dump() {
  k get lt,pods,deploy,sts,svc -o wide || true
  k get events --sort-by=.lastTimestamp | tail -20 || true
  k -n hatchery-system logs deploy/hatchery-operator --tail=30 || true
}
cleanup() {
  [ -n "$forward_pid" ] && kill "$forward_pid" 2>/dev/null || true
  # This run's images go, so the cluster's image store does not grow run after run.
  for image in hatchery hatchery-operator; do
    ctr -a /run/containerd/containerd.sock -n k8s.io images rm "localhost/$image:${tag:-none}" >/dev/null 2>&1 || true
  done
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

"$python" "$repo/deploy/render-chart.py" --check >&2 || fail "the chart does not lint, or deploy/operator.yaml is stale"
bash "$repo/deploy/build-images.sh" --profile "$profile" >&2
# A tag per run: a cluster restarted on old state must not keep running an older binary.
tag="$ns"
for image in hatchery hatchery-operator; do
  podman tag "localhost/$image:$version" "localhost/$image:$tag"
  podman save -q --format docker-archive -o "$work/$image.tar" "localhost/$image:$tag"
  podman untag "localhost/$image:$tag" "localhost/$image:$tag" >/dev/null   # only this name
done
log "images built with podman: $(for i in hatchery hatchery-operator; do printf '%s %s MiB  ' $i $(( $(stat -c %s "$work/$i.tar") / 1048576 )); done)"

kubeconfig=$(bash "$here/cluster.sh" start) || fail "the cluster did not start (logs in ${HATCHERY_K8S_STATE:-/tmp/hatchery-k8s}/logs)"
export KUBECONFIG=$kubeconfig
log "cluster up"
bash "$shared/k8s/load-image.sh" "$work/hatchery.tar" "$work/hatchery-operator.tar" >/dev/null
log "images loaded"

# The committed render and a namespaced variant go through the API server's validation.
kubectl create namespace hatchery-system >/dev/null 2>&1 || true
# An operator left by an earlier run on this cluster's state goes first (its selector may differ).
kc -n hatchery-system delete deploy hatchery-operator --ignore-not-found --wait=true >/dev/null
kc apply --dry-run=server -f "$repo/deploy/operator.yaml" >/dev/null || fail "deploy/operator.yaml fails the server's dry run"
"$python" "$repo/deploy/render-chart.py" --stdout --set 'watchNamespaces={default}' \
  | kc apply --dry-run=server -f - >/dev/null || fail "the namespaced render fails the server's dry run"
log "deploy/operator.yaml and a watchNamespaces render pass kubectl apply --dry-run=server"
# The operator from the chart, as `helm install` renders it, with this run's image.
"$python" "$repo/deploy/render-chart.py" --stdout --set image.repository=localhost/hatchery-operator \
  --set "image.tag=$tag" --set image.pullPolicy=Never > "$work/operator.yaml"
kc apply -f "$work/operator.yaml" >/dev/null
kubectl create namespace "$ns" >/dev/null 2>&1
until_ok "the CRD is established" 30 k wait --for=condition=established crd/loadtests.hatchery.io --timeout=1s
sed -e "s|image: hatchery:$version|image: localhost/hatchery:$tag|" -e 's|imagePullPolicy: IfNotPresent|imagePullPolicy: Never|' \
    "$repo/deploy/examples/demo-target.yaml" | k apply -f - >/dev/null
until_ok "the operator is available (its /readyz)" 120 k -n hatchery-system wait --for=condition=available deploy/hatchery-operator --timeout=1s
log "operator running in the cluster as its ServiceAccount, installed from the chart"
# The target first: a test that starts before its target answers counts refused connections.
until_ok "the demo target is available" 60 k wait --for=condition=available deploy/demo-target --timeout=1s

sed -e "s|image: hatchery:$version|image: localhost/hatchery:$tag|" -e 's|runTime: 2m|runTime: 15s|' \
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
# The workers joined with the operator's random token (the master refuses a worker without it).
[ -n "$(k get secret quickstart-token -o jsonpath='{.data.token}')" ] || fail "no token Secret"
k logs deploy/quickstart-master | grep -q 'no worker token' && fail "the master runs without a worker token"
log "master and workers share the generated token from Secret quickstart-token"
until_ok "the UI answers through port-forward" 30 curl -sf http://127.0.0.1:18089/stats/requests
requests=$(curl -sf http://127.0.0.1:18089/stats/requests | jq '.stats[] | select(.name=="Aggregated") | .num_requests')
[ "${requests:-0}" -gt 0 ] || fail "no request in the master's final stats"
log "the master still serves its final stats through svc/quickstart-ui: $requests requests"
# The chart's monitors (issue 15 item 8), off by default: what they select is what runs. No
# Prometheus here, so the test reads each monitor's selector, port and path from the render and
# asks the cluster: the selector finds the operator's metrics Service / this test's master pod,
# the named port is on it and serves hatchery_* families at the path (through the API server's
# proxy, as a scrape would reach the pod).
monitors=$("$python" "$repo/deploy/render-chart.py" --stdout --set monitoring.podMonitor.enabled=true \
  --set monitoring.serviceMonitor.enabled=true)
monitor_field() {  # KIND FIELD: matchLabels as k=v,k=v; or the first endpoint's port / path
  awk -v kind="$1" -v field="$2" '
    /^kind: / { on = ($2 == kind) }
    on && field == "selector" && /matchLabels:/ { m = 1; next }
    on && m && !/^      [^ ]/ { exit }
    on && m { gsub(/ /, ""); sub(/:/, "="); out = out sep $0; sep = "," }
    on && field != "selector" && $0 ~ "^ *-? *" field ": " { print $NF; exit }
    END { if (field == "selector") print out }' <<<"$monitors"
}
pm_sel=$(monitor_field PodMonitor selector); pm_port=$(monitor_field PodMonitor port); pm_path=$(monitor_field PodMonitor path)
[ -n "$pm_sel" ] && [ -n "$pm_port" ] && [ -n "$pm_path" ] || fail "no PodMonitor selector/port/path in the render"
pods=$(k get pods -l "$pm_sel" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
[ "$(wc -l <<<"$pods")" = 1 ] && [[ "$pods" == quickstart-master-* ]] || fail "the PodMonitor's selector $pm_sel finds: $pods"
# The named port as Prometheus resolves it, from the pod's spec (the pod proxy takes numbers).
pm_number=$(k get pod "$pods" -o jsonpath="{.spec.containers[*].ports[?(@.name==\"$pm_port\")].containerPort}")
[ -n "$pm_number" ] || fail "the master pod has no port named $pm_port"
# (Read whole, then searched: `grep -q` closing the pipe early fails kubectl under pipefail.)
scraped=$(kc get --raw "/api/v1/namespaces/$ns/pods/$pods:$pm_number/proxy$pm_path" || true)
grep -q '^hatchery_users ' <<<"$scraped" \
  || fail "the master pod serves no hatchery_users on port $pm_port ($pm_number) at $pm_path"
sm_sel=$(monitor_field ServiceMonitor selector); sm_port=$(monitor_field ServiceMonitor port); sm_path=$(monitor_field ServiceMonitor path)
svc=$(k -n hatchery-system get svc -l "$sm_sel" -o jsonpath="{.items[*].metadata.name}")
[ "$svc" = hatchery-operator-metrics ] || fail "the ServiceMonitor's selector $sm_sel finds: $svc"
scraped=$(kc get --raw "/api/v1/namespaces/hatchery-system/services/$svc:$sm_port/proxy$sm_path" || true)
grep -q '^hatchery_operator_reconciles_total' <<<"$scraped" \
  || fail "the operator's Service serves no hatchery_operator_* on port $sm_port at $sm_path"
log "the chart's PodMonitor ($pm_sel, port $pm_port) and ServiceMonitor ($sm_sel, port $sm_port) select what serves /metrics"
kill "$forward_pid" 2>/dev/null || true; forward_pid=""
target_count=$(k exec deploy/demo-target -- hatchery probe http://127.0.0.1:8080/_stats | jq .requests)
[ "${target_count:-0}" -ge "$requests" ] || fail "the target counted $target_count requests, the master $requests"
log "the target served $target_count requests"
# The result outlives the pods (issue 15 item 5): stored as the test finished, owned by it.
[ "$(k get lt quickstart -o jsonpath='{.status.result}')" = quickstart-result ] || fail "status.result does not name quickstart-result"
result_requests=$(k get cm quickstart-result -o jsonpath='{.data.summary\.json}' | jq '.stats[] | select(.name=="Aggregated") | .num_requests')
[ "$result_requests" = "$requests" ] || fail "the stored summary has $result_requests requests, the master $requests"
k get cm quickstart-result -o jsonpath='{.data.stats\.csv}' | grep -q ',Aggregated,' || fail "no Aggregated row in the stored stats.csv"
k get cm quickstart-result -o jsonpath='{.data.report\.html}' | grep -qi '<html' || fail "no HTML report stored"
[ "$(k get cm quickstart-result -o jsonpath='{.metadata.ownerReferences[0].name}')" = quickstart ] || fail "the result is not owned by its LoadTest"
log "the result is in ConfigMap quickstart-result: $(k get cm quickstart-result -o json | jq -r '.data | to_entries | map("\(.key) \(.value | length) B") | join(", ")')"

k -n hatchery-system port-forward svc/hatchery-operator-metrics 18080:8080 >/dev/null 2>&1 & forward_pid=$!
until_ok "the operator's /metrics answers" 30 curl -sf http://127.0.0.1:18080/metrics
metrics=$(curl -sf http://127.0.0.1:18080/metrics)
grep -qE '^hatchery_operator_phase_transitions_total\{phase="Succeeded"\} [1-9]' <<<"$metrics" || fail "no Succeeded transition in /metrics"
grep -qE '^hatchery_operator_reconciles_total\{result="ok"\} [1-9]' <<<"$metrics" || fail "no reconcile in /metrics"
log "the operator's /metrics counts the run"
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
[ "$(k get cm quickstart-result -o jsonpath='{.data.summary\.json}' | jq '.stats[] | select(.name=="Aggregated") | .num_requests')" = "$requests" ] \
  || fail "the stored result changed or went with the scale-down"
log "scaled down after ttlSecondsAfterFinished, status kept"

# A test whose workers never come (no node matches their nodeSelector): Failed on the gate
# timeout, with the reason.
sed -e 's|name: quickstart|name: nogate|' -e 's|expectWorkersMaxWait: 2m|expectWorkersMaxWait: 10s|' \
    -e 's|^  worker:|  worker:\n    nodeSelector: {hatchery.io/e2e: nowhere}|' "$work/lt.yaml" > "$work/nogate.yaml"
k apply -f "$work/nogate.yaml" >/dev/null
until_ok "the gate timeout fails the test" 120 bash -c '[ "$(kubectl -n "$ns" get lt nogate -o jsonpath={.status.phase} 2>/dev/null)" = Failed ]'
k get lt nogate -o jsonpath='{.status.verdict}' | grep -q 'workers connected within' \
  || fail "the gate timeout's verdict: $(k get lt nogate -o jsonpath='{.status.verdict}')"
log "gate timeout: $(k get lt nogate -o jsonpath='{.status.verdict}')"
until_ok "a Warning event says why" 30 bash -c 'kubectl -n "$ns" get events --field-selector involvedObject.name=nogate,type=Warning 2>/dev/null | grep -q Failed'

# A master that would lock the operator out of its API: refused at once, nothing created.
sed -e 's|name: quickstart|name: locked|' -e 's|^  master:|  master:\n    extraArgs: ["--web-auth", "admin:secret"]|' \
  "$work/lt.yaml" > "$work/locked.yaml"
k apply -f "$work/locked.yaml" >/dev/null
until_ok "a spec with --web-auth on the master fails as invalid" 60 bash -c '[ "$(kubectl -n "$ns" get lt locked -o jsonpath={.status.phase} 2>/dev/null)" = Failed ]'
k get lt locked -o jsonpath='{.status.conditions[?(@.type=="SpecValid")].message}' | grep -q -- '--web-auth' \
  || fail "the SpecValid condition does not name --web-auth"
[ -z "$(k get deploy,sts -l hatchery.io/loadtest=locked -o name)" ] || fail "an invalid LoadTest got children"
log "a master flag that would lock the operator out is refused: $(k get lt locked -o jsonpath='{.status.verdict}')"

# The verdict follows the plan's thresholds: ~10% failed requests under `fail_ratio max 0.5`
# Succeed; a `p95 max 1ms` against a 20 ms path Fails, naming the threshold in the verdict and
# in a Warning event. Both run at once.
# A LoadTest of this run's image against the demo target, printed:
#   lt_yaml NAME WORKERS USERS WAIT TASKS SPEC_LINES [THRESHOLD]
lt_yaml() {
  cat <<YAML
apiVersion: hatchery.io/v1alpha1
kind: LoadTest
metadata: {name: $1}
spec:
  image: localhost/hatchery:$tag
  imagePullPolicy: IfNotPresent
  workers: $2
  users: $3
  expectWorkersMaxWait: 2m
$6
  plan:
    inline: |
      host: http://demo-target:8080
      users:
        - name: U
          wait: {constant: $4}
          tasks: $5
${7:+      thresholds:
        - $7}
YAML
}
verdict_lt() { lt_yaml "$1" 1 4 10ms "$2" $'  spawnRate: 4\n  runTime: 6s' "$3"; }  # NAME TASKS THRESHOLD
verdict_lt tenpercent '[{weight: 9, get: /, name: ok}, {weight: 1, get: /status/500, name: fails}]' \
  '{metric: fail_ratio, max: 0.5}' > "$work/tenpercent.yaml"
verdict_lt slowp95 '[{get: "/slow?ms=20", name: slow}]' '{metric: p95, max: 1ms}' > "$work/slowp95.yaml"
# TLS and web auth in-cluster (issue 15 item 4), at the same time: the operator makes the
# certificate and the password, the workers trust the CA, the operator reads the master over
# HTTPS with the password (the gate opens, the test Succeeds).
lt_yaml secure 2 4 10ms '[{get: /}]' $'  spawnRate: 4\n  runTime: 6s\n  tls: {}\n  webAuth: {}' > "$work/secure.yaml"
# A scripted plan inline (issue 14): examples/scripted.yaml as shipped, against the demo target
# in the cluster; its two workers get the script from the master with the plan. Its own
# threshold, fail_ratio max 0, decides.
{ cat <<YAML
apiVersion: hatchery.io/v1alpha1
kind: LoadTest
metadata: {name: scripted}
spec:
  image: localhost/hatchery:$tag
  imagePullPolicy: IfNotPresent
  workers: 2
  users: 4
  spawnRate: 4
  runTime: 8s
  host: http://demo-target:8080
  expectWorkersMaxWait: 2m
  plan:
    inline: |
YAML
  sed 's/^/      /' "$repo/examples/scripted.yaml"; } > "$work/scripted.yaml"
k apply -f "$work/tenpercent.yaml" -f "$work/slowp95.yaml" -f "$work/secure.yaml" -f "$work/scripted.yaml" >/dev/null
until_ok "the threshold, TLS and scripted tests finish" 180 bash -c 'for lt in tenpercent slowp95 secure scripted; do
  case "$(kubectl -n "$ns" get lt $lt -o jsonpath={.status.phase} 2>/dev/null)" in Succeeded|Failed) ;; *) exit 1 ;; esac; done'
[ "$(k get lt tenpercent -o jsonpath='{.status.phase}')" = Succeeded ] \
  || fail "10% failures under fail_ratio max 0.5 did not succeed: $(k get lt tenpercent -o jsonpath='{.status.verdict}')"
fail_percent=$(k get lt tenpercent -o jsonpath='{.status.failPercent}')
awk -v p="$fail_percent" 'BEGIN { exit !(p > 2 && p < 30) }' || fail "tenpercent failed $fail_percent% of its requests, not about 10%"
log "fail_ratio max 0.5 with $fail_percent% failed: $(k get lt tenpercent -o jsonpath='{.status.phase}: {.status.verdict}')"
[ "$(k get lt slowp95 -o jsonpath='{.status.phase}')" = Failed ] || fail "p95 max 1ms against a 20 ms path did not fail"
k get lt slowp95 -o jsonpath='{.status.verdict}' | grep -q 'p95 <= 1 ms (measured' \
  || fail "the verdict does not name the p95 threshold: $(k get lt slowp95 -o jsonpath='{.status.verdict}')"
[ "$(k get lt slowp95 -o jsonpath='{.status.conditions[?(@.type=="Finished")].reason}')" = ThresholdFailed ] \
  || fail "the Finished condition's reason is not ThresholdFailed"
until_ok "a Warning event names the threshold" 30 bash -c 'kubectl -n "$ns" get events --field-selector involvedObject.name=slowp95,type=Warning -o jsonpath="{.items[*].message}" 2>/dev/null | grep -q "p95 <= 1 ms"'
kc get lt -n "$ns" slowp95 | grep -q 'failed: threshold p95' || fail "kubectl get does not show the verdict column"
log "p95 max 1ms: $(k get lt slowp95 -o jsonpath='{.status.phase}: {.status.verdict}')"
k delete lt tenpercent slowp95 --wait=false >/dev/null

[ "$(k get lt secure -o jsonpath='{.status.phase} {.status.workers}')" = "Succeeded 2/2" ] \
  || fail "the TLS + web auth test: $(k get lt secure -o json | jq -c .status)"
[ "$(k get secret secure-tls -o jsonpath='{.type}')" = kubernetes.io/tls ] || fail "no kubernetes.io/tls Secret secure-tls"
[ "$(k get secret secure-web-auth -o jsonpath='{.type}')" = kubernetes.io/basic-auth ] || fail "no basic-auth Secret secure-web-auth"
k get secret secure-tls -o jsonpath='{.data.ca\.crt}' | base64 -d > "$work/secure-ca.pem"
password=$(k get secret secure-web-auth -o jsonpath='{.data.password}' | base64 -d)
pod=$(k get pods -l hatchery.io/loadtest=secure,hatchery.io/role=master -o jsonpath='{.items[0].metadata.name}')
k logs "$pod" | grep -q 'no worker token' && fail "the secure master runs without a worker token"
# Through the API server's proxy: HTTPS only, and the API only with the password.
kc get --raw "/api/v1/namespaces/$ns/pods/https:$pod:8089/proxy/healthz" >/dev/null || fail "no HTTPS /healthz through the pod proxy"
kc get --raw "/api/v1/namespaces/$ns/pods/$pod:8089/proxy/healthz" >/dev/null 2>&1 && fail "the master answered plain HTTP"
kc get --raw "/api/v1/namespaces/$ns/pods/https:$pod:8089/proxy/stats/requests" >/dev/null 2>&1 \
  && fail "the master's API answered through the proxy without the password"
# As a user reaches it: a port-forward to the UI Service, the CA from the Secret, the password.
k port-forward svc/secure-ui 18092:8089 >/dev/null 2>&1 & forward_pid=$!
until_ok "the secure UI answers HTTPS with the LoadTest's CA" 30 curl -sf --cacert "$work/secure-ca.pem" https://localhost:18092/healthz
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$work/secure-ca.pem" https://localhost:18092/stats/requests)
[ "$code" = 401 ] || fail "the secure UI answered $code without the password"
secure_requests=$(curl -sf --cacert "$work/secure-ca.pem" -u "hatchery:$password" https://localhost:18092/stats/requests \
  | jq '.stats[] | select(.name=="Aggregated") | .num_requests')
[ "${secure_requests:-0}" -gt 0 ] || fail "no requests through the secure UI with the password"
kill "$forward_pid" 2>/dev/null || true; forward_pid=""
log "TLS + web auth: Succeeded with 2 workers over TLS, $secure_requests requests; HTTPS only, API with the Secret's password only"
k delete lt secure --wait=false >/dev/null

[ "$(k get lt scripted -o jsonpath='{.status.phase}')" = Succeeded ] \
  || fail "the scripted example did not succeed: $(k get lt scripted -o jsonpath='{.status.verdict}')"
scripted=$(k get cm scripted-result -o jsonpath='{.data.summary\.json}')
for entry in '/products/[id]' '/login' 'home'; do
  n=$(jq --arg n "$entry" '[.stats[] | select(.name==$n) | .num_requests] | add // 0' <<<"$scripted")
  [ "${n:-0}" -gt 0 ] || fail "the scripted run made no request named $entry: $(jq -c '[.stats[] | {name, num_requests}]' <<<"$scripted")"
done
log "scripted (examples/scripted.yaml inline, 2 workers): $(k get lt scripted -o jsonpath='{.status.phase}: {.status.verdict}'); $(jq -r '[.stats[] | select(.name!="Aggregated") | "\(.name) \(.num_requests)"] | join(", ")' <<<"$scripted")"
k delete lt scripted --wait=false >/dev/null

# A worker pod deleted mid-run (issue 16 item 8): its users move to the other three and back to
# its replacement, and the fleet never runs more than the 8 users asked for. Sampled from the
# master's /stats/requests about ten times a second, through a port-forward.
# Workers log each failed dial and each TCP connect to the master (debug), for the start-latency
# steps below.
lt_yaml podkill 4 8 50ms '[{get: /}]' $'  spawnRate: 100\n  runTime: 150s\n  worker:\n    env: [{name: HATCHERY_LOGLEVEL, value: "info,hatchery_worker::master_link=debug,hyper_util=debug"}]' > "$work/podkill.yaml"
# Start latency (issue 15 item 9): from `kubectl apply` of LoadTest $1 (4 workers, 8 users) to
# its master's "All users spawned" (its first requests went out before it), on this machine's
# clock for both; sets start_latency and logs where the seconds went: each step's time after
# the apply (the API's times are whole seconds, the logs' exact) and each worker's dials.
start_steps() {
  local lt=$1 file=$2
  local applied_at; applied_at=$(date +%s.%N)
  k apply -f "$file" >/dev/null
  until_ok "$lt's master spawned its users" 60 bash -c "kubectl -n \"\$ns\" logs deploy/$lt-master 2>/dev/null | grep -q 'All users spawned'"
  local spawned; spawned=$(k logs "deploy/$lt-master" | grep -m1 'All users spawned' | grep -oE '^[0-9T:.-]+Z' || true)
  [ -n "$spawned" ] || fail "the $lt master logged no 'All users spawned'"
  start_latency=$(awk -v a="$applied_at" -v b="$(date -d "$spawned" +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  since() { [ -n "$1" ] && awk -v a="$applied_at" -v b="$(date -d "$1" +%s.%N)" 'BEGIN { printf "%.1f", b - a }' || printf '?'; }
  # The kubelet reports a container's start a moment after it: wait until all four are told.
  until_ok "$lt's worker starts are reported" 30 bash -c "[ \"\$(kubectl -n \"\$ns\" get pods -l hatchery.io/loadtest=$lt,hatchery.io/role=worker -o json \
    | jq '[.items[].status.containerStatuses[0].state.running.startedAt // empty] | length')\" -ge 4 ]"
  local pods_json; pods_json=$(k get pods -l "hatchery.io/loadtest=$lt" -o json)
  local master_created master_started workers_started master_log listening last_worker workers_made
  master_created=$(jq -r '[.items[] | select(.metadata.labels["hatchery.io/role"]=="master") | .metadata.creationTimestamp][0] // empty' <<<"$pods_json")
  master_started=$(jq -r '[.items[] | select(.metadata.labels["hatchery.io/role"]=="master") | .status.containerStatuses[0].state.running.startedAt][0] // empty' <<<"$pods_json")
  workers_started=$(jq -r '[.items[] | select(.metadata.labels["hatchery.io/role"]=="worker") | .status.containerStatuses[0].state.running.startedAt] | max // empty' <<<"$pods_json")
  local operator_log master_addressed
  operator_log=$(k -n hatchery-system logs deploy/hatchery-operator | grep "loadtest=$lt\b" || true)
  master_addressed=$(grep -m1 'the master pod has its address' <<<"$operator_log" | grep -oE '^[0-9T:.-]+Z' || true)
  workers_made=$(grep -m1 'workers applied' <<<"$operator_log" | grep -oE '^[0-9T:.-]+Z' || true)
  master_log=$(k logs "deploy/$lt-master")
  listening=$(grep -m1 'workers connect to' <<<"$master_log" | grep -oE '^[0-9T:.-]+Z' || true)
  last_worker=$(grep 'worker connected' <<<"$master_log" | tail -1 | grep -oE '^[0-9T:.-]+Z' || true)
  log "$lt start: $start_latency s from kubectl apply to all 8 users spawned on 4 workers; master pod created $(since "$master_created"), its container started $(since "$master_started"), listening $(since "$listening"), its address seen by the operator $(since "$master_addressed"), workers' StatefulSet applied $(since "$workers_made"), last worker container started $(since "$workers_started"), 4th worker connected $(since "$last_worker")"
  local w wlog dials last why
  for w in 0 1 2 3; do  # each worker's dials before its session: when, and why they failed
    wlog=$(k logs "$lt-workers-$w" 2>/dev/null || true)
    at() { grep -m1 "$1" <<<"$wlog" | grep -oE '^[0-9T:.-]+Z' || true; }
    dials=$(grep 'no session with' <<<"$wlog" || true)
    last=$(tail -1 <<<"$dials" | grep -oE '^[0-9T:.-]+Z' || true)
    why=$([ -z "$dials" ] || sed -E 's/.*no session with [^:]+:[^:]+:[0-9]+: //' <<<"$dials" | sort | uniq -c | sort -rn | head -3 | tr -s ' ' | paste -sd';')
    log "  worker $w: started $(since "$(at 'connecting to the master')"), $(grep -c . <<<"$dials" || true) failed dials (last at $(since "$last"): ${why:-none}), TCP connected $(since "$(at 'connected to ')"), session $(since "$(at 'connected; plan')")"
  done
}
start_steps podkill "$work/podkill.yaml"
until_ok "podkill runs" 60 bash -c '[ "$(kubectl -n "$ns" get lt podkill -o jsonpath={.status.phase} 2>/dev/null)" = Running ]'
awk -v s="$start_latency" 'BEGIN { exit !(s < 15) }' || fail "the test took $start_latency s to start"

k port-forward svc/podkill-ui 18090:8089 >/dev/null 2>&1 & forward_pid=$!
users_now() { curl -sf --max-time 2 http://127.0.0.1:18090/stats/requests \
  | jq -r '"\(.user_count) \(.workers | length) \([.workers[].user_count] | sort | map(tostring) | join(","))"'; }
until_ok "8 users on 4 workers" 120 bash -c "curl -sf http://127.0.0.1:18090/stats/requests | jq -e '.user_count == 8 and (.workers | length) == 4' >/dev/null"
k delete pod podkill-workers-1 --wait=false >/dev/null
log "deleted pod podkill-workers-1 while 8 users ran on 4 workers"
most=0; samples=0; trail=""; end=$((SECONDS + 60)); back=""
while [ $SECONDS -lt $end ]; do
  read -r total workers counts <<<"$(users_now || echo "0 0 -")"
  samples=$((samples + 1))
  [ "$total" -gt "$most" ] && most=$total
  case "$trail" in *"$total/$workers[$counts]") ;; *) trail="$trail -> $total/$workers[$counts]";; esac
  # Back to 8 users on 4 workers after the replacement joined.
  if [ "$workers" = 4 ] && [ "$total" = 8 ] && [ "$counts" = "2,2,2,2" ] && [ -n "$back" ]; then break; fi
  [ "$workers" = 3 ] && back=yes
  sleep 0.1
done
log "podkill: $samples samples, users/workers[per worker]:$trail"
[ "$most" -le 8 ] || fail "the fleet ran $most users, more than the 8 asked for ($trail)"
[ -n "$back" ] || fail "the master never saw the worker leave ($trail)"
[ "$counts" = "2,2,2,2" ] || fail "not back to 2 users on each of 4 workers within 60 s ($trail)"
log "a deleted worker pod: never more than 8 users, back to 2 on each of 4 workers"

# Live edits (issue 15 item 2): users through the master's /swarm, workers by `kubectl scale`
# (the CRD's scale subresource), and a field that cannot change refused with an event naming it.
# The run goes on: the same master pod, no restart.
master_pod=$(k get pods -l hatchery.io/loadtest=podkill,hatchery.io/role=master -o jsonpath='{.items[0].metadata.name}')
k patch lt podkill --type merge -p '{"spec":{"users":12}}' >/dev/null
until_ok "the master runs the 12 users the edit asked for" 60 bash -c "curl -sf http://127.0.0.1:18090/stats/requests | jq -e '.user_count == 12' >/dev/null"
k scale lt/podkill --replicas 5 >/dev/null || fail "kubectl scale lt/podkill"
until_ok "the fifth worker joins and takes users" 120 bash -c "curl -sf http://127.0.0.1:18090/stats/requests | jq -e '(.workers | length) == 5 and .user_count == 12 and ([.workers[].user_count] | min) >= 2' >/dev/null"
[ "$(k get sts podkill-workers -o jsonpath={.spec.replicas})" = 5 ] || fail "the StatefulSet was not scaled to 5"
[ "$(k get lt podkill -o jsonpath={.spec.workers})" = 5 ] || fail "kubectl scale did not set spec.workers"
k patch lt podkill --type merge -p '{"spec":{"runTime":"10m"}}' >/dev/null
until_ok "an edit of runTime is refused naming it" 30 bash -c 'kubectl -n "$ns" get events --field-selector involvedObject.name=podkill,reason=SpecChangeRefused -o jsonpath="{.items[*].message}" 2>/dev/null | grep -q spec.runTime'
[ "$(k get pods -l hatchery.io/loadtest=podkill,hatchery.io/role=master -o jsonpath='{.items[0].metadata.name}')" = "$master_pod" ] || fail "an edit replaced the master pod"
[ "$(k get pods "$master_pod" -o jsonpath='{.status.containerStatuses[0].restartCount}')" = 0 ] || fail "the master restarted"
[ "$(k get lt podkill -o jsonpath={.status.phase})" = Running ] || fail "the edits changed the phase"
log "live edits: users 8 -> 12 through /swarm, kubectl scale to 5 workers (users rebalanced: $(curl -sf http://127.0.0.1:18090/stats/requests | jq -c '[.workers[].user_count]')), runTime refused; same master pod"
kill "$forward_pid" 2>/dev/null || true; forward_pid=""
k delete lt podkill --wait=false >/dev/null

# Five more starts one after the other, each of the same 4 workers and 8 users, with no pod
# stopping meanwhile (each test runs 3 s and stays, serving its result, until all five are
# deleted): the goal, under 4 s every time, is held here. (podkill's start above came right
# after three finished tests were deleted, their pods stopping: reported, bounded at 15 s.)
# podkill's pods go first: a kubelet stopping six pods reported start1's master IP 3.5 s after
# it listened (5.8 s in all, in a cold CI run).
until_ok "podkill's pods are gone" 120 bash -c '[ -z "$(kubectl -n "$ns" get pods -l hatchery.io/loadtest=podkill -o name 2>/dev/null)" ]'
starts=""
for i in 1 2 3 4 5; do
  lt_yaml "start$i" 4 8 50ms '[{get: /}]' $'  spawnRate: 100\n  runTime: 3s\n  worker:\n    env: [{name: HATCHERY_LOGLEVEL, value: "info,hatchery_worker::master_link=debug,hyper_util=debug"}]' > "$work/start$i.yaml"
  start_steps "start$i" "$work/start$i.yaml"
  starts="$starts $start_latency"
done
k delete lt start1 start2 start3 start4 start5 --wait=false >/dev/null
slowest=$(tr ' ' '\n' <<<"$starts" | sort -n | tail -1)
log "start latency of five starts in a row (s):$starts; the slowest $slowest"
awk -v s="$slowest" 'BEGIN { exit !(s < 4) }' || fail "a test took $slowest s to start (goal: under 4 s)"

# A quiet controller (issue 15 item 6): while one 2-worker test runs, the operator sends fewer
# than 40 requests a minute to the API server, counted by its own client
# (hatchery_operator_api_requests_total in its /metrics) over 30 s. The test is driven from the
# UI (headless: false), so its status must follow the master: 0 users after /stop.
lt_yaml quiet 2 4 100ms '[{get: /}]' $'  spawnRate: 100\n  headless: false' > "$work/quiet.yaml"
k apply -f "$work/quiet.yaml" >/dev/null
until_ok "quiet's fleet is connected" 180 bash -c '[ "$(kubectl -n "$ns" get lt quiet -o jsonpath={.status.workers} 2>/dev/null)" = 2/2 ]'
k port-forward svc/quiet-ui 18091:8089 >/dev/null 2>&1 & forward_pid=$!
until_ok "quiet's UI answers" 30 curl -sf http://127.0.0.1:18091/stats/requests
curl -sf -X POST -d 'user_count=4&spawn_rate=100' http://127.0.0.1:18091/swarm >/dev/null || fail "POST /swarm to quiet"
until_ok "quiet's status shows 4 users" 60 bash -c '[ "$(kubectl -n "$ns" get lt quiet -o jsonpath={.status.users} 2>/dev/null)" = 4 ]'
k -n hatchery-system port-forward svc/hatchery-operator-metrics 18080:8080 >/dev/null 2>&1 & metrics_pid=$!
until_ok "the operator's /metrics answers" 30 curl -sf http://127.0.0.1:18080/metrics
api_requests() { curl -sf http://127.0.0.1:18080/metrics | grep '^hatchery_operator_api_requests_total' | LC_ALL=C sort; }
before=$(api_requests)
sleep 30 # the window measured, not a wait for something
after=$(api_requests)
per_minute=$(LC_ALL=C join <(awk '{print $1, $2}' <<<"$before") <(awk '{print $1, $2}' <<<"$after") -a 2 -e 0 -o 0,1.2,2.2 \
  | awk '{d = $3 - $2; s += d; if (d > 0) printf "%s %d; ", $1, d * 2 > "/dev/stderr"} END {print s * 2}' 2> "$work/quiet-breakdown")
log "operator requests per minute while quiet ran: $per_minute ($(sed -E 's/hatchery_operator_api_requests_total//g' "$work/quiet-breakdown"))"
[ "$per_minute" -lt 40 ] || fail "the operator sent $per_minute API requests a minute while one test ran (goal < 40)"
kill "$metrics_pid" 2>/dev/null || true
curl -sf http://127.0.0.1:18091/stop >/dev/null || fail "GET /stop to quiet"
until_ok "quiet's status follows the master to 0 users" 30 bash -c '[ "$(kubectl -n "$ns" get lt quiet -o jsonpath={.status.users} 2>/dev/null)" = 0 ]'
[ "$(k get lt quiet -o jsonpath={.status.phase})" = Running ] || fail "a stopped UI test left Running"
kill "$forward_pid" 2>/dev/null || true; forward_pid=""
k delete lt quiet --wait=false >/dev/null
log "quiet: < 40 requests a minute; after /stop the status shows 0 users, phase Running"

# Leader election (issue 15 item 7): two replicas from the chart, one holds the Lease and
# reconciles, the other follows; the leader's pod deleted, the follower takes over (the leader
# releases the Lease as it stops) and runs a test through.
"$python" "$repo/deploy/render-chart.py" --stdout --set image.repository=localhost/hatchery-operator \
  --set "image.tag=$tag" --set image.pullPolicy=Never --set replicaCount=2 > "$work/two.yaml"
kc apply -f "$work/two.yaml" >/dev/null
until_ok "two operator replicas are ready" 120 bash -c '[ "$(kubectl -n hatchery-system get deploy hatchery-operator -o jsonpath={.status.readyReplicas})" = 2 ]'
holder() { k -n hatchery-system get lease hatchery-operator -o jsonpath='{.spec.holderIdentity}' 2>/dev/null; }
until_ok "one replica holds the Lease" 60 bash -c '[ -n "$(kubectl -n hatchery-system get lease hatchery-operator -o jsonpath={.spec.holderIdentity} 2>/dev/null)" ]'
leader=$(holder)
pods=$(k -n hatchery-system get pods -l app.kubernetes.io/name=hatchery-operator -o jsonpath='{.items[*].metadata.name}')
follower=$(tr ' ' '\n' <<<"$pods" | grep -v "^$leader$" | head -1)
[ -n "$follower" ] || fail "no second operator pod beside $leader ($pods)"
until_ok "the other replica follows" 60 bash -c "kubectl -n hatchery-system logs $follower 2>/dev/null | grep -q 'following: the Lease hatchery-operator is held by $leader'"
k -n hatchery-system delete pod "$leader" --wait=false >/dev/null
until_ok "a new holder took the Lease" 60 bash -c "h=\$(kubectl -n hatchery-system get lease hatchery-operator -o jsonpath={.spec.holderIdentity} 2>/dev/null); [ -n \"\$h\" ] && [ \"\$h\" != $leader ]"
verdict_lt afterleader '[{get: /}]' '{metric: fail_ratio, max: 0.5}' > "$work/afterleader.yaml"
k apply -f "$work/afterleader.yaml" >/dev/null
until_ok "the new leader runs a test to Succeeded" 180 bash -c '[ "$(kubectl -n "$ns" get lt afterleader -o jsonpath={.status.phase} 2>/dev/null)" = Succeeded ]'
log "leader election: $leader led, $follower followed; $leader deleted, $(holder) took the Lease and ran a test to Succeeded"
k delete lt afterleader --wait=false >/dev/null
kc apply -f "$work/operator.yaml" >/dev/null   # back to one replica for the cases below

# One LoadTest whose worker affinity the schema keeps but that does not decode must fail alone
# (issue 15 item 3): a restarted operator, which lists it with every other LoadTest, still runs
# a valid test to the end, and says what is wrong in the bad one's SpecValid condition.
verdict_lt badaffinity '[{get: /}]' '{metric: fail_ratio, max: 0.5}' \
  | sed -e 's|^  workers: 1|  workers: 1\n  worker:\n    affinity:\n      nodeAffinity:\n        requiredDuringSchedulingIgnoredDuringExecution: not-an-object|' \
  > "$work/badaffinity.yaml"
grep -q 'not-an-object' "$work/badaffinity.yaml" || fail "the bad affinity did not make it into the manifest"
k apply -f "$work/badaffinity.yaml" >/dev/null
kc -n hatchery-system rollout restart deploy/hatchery-operator >/dev/null
until_ok "the restarted operator rolled out" 120 kc -n hatchery-system rollout status deploy/hatchery-operator --timeout=1s
verdict_lt afterbad '[{get: /}]' '{metric: fail_ratio, max: 0.5}' > "$work/afterbad.yaml"
k apply -f "$work/afterbad.yaml" >/dev/null
until_ok "a valid LoadTest beside the bad one runs to Succeeded" 180 bash -c '[ "$(kubectl -n "$ns" get lt afterbad -o jsonpath={.status.phase} 2>/dev/null)" = Succeeded ]'
until_ok "the bad one fails alone" 60 bash -c '[ "$(kubectl -n "$ns" get lt badaffinity -o jsonpath={.status.phase} 2>/dev/null)" = Failed ]'
bad_reason=$(k get lt badaffinity -o jsonpath='{.status.conditions[?(@.type=="SpecValid")].message}')
grep -q 'spec.worker.affinity' <<<"$bad_reason" || fail "SpecValid does not name spec.worker.affinity: $bad_reason"
[ -z "$(k get deploy,sts -l hatchery.io/loadtest=badaffinity -o name)" ] || fail "the bad LoadTest got children"
long=$(k -n hatchery-system logs deploy/hatchery-operator | awk 'length > 4096' | wc -l)
[ "$long" = 0 ] || fail "the operator logged $long lines over 4 KB (a whole LoadTestList?)"
log "a malformed affinity fails its own LoadTest ($bad_reason); a restarted operator ran another to Succeeded"
k delete lt badaffinity afterbad --wait=false >/dev/null

# The chart with watchNamespaces: nothing cluster-wide, a Role in this namespace only, and an
# operator that watches just this namespace. It runs a test through.
kc delete clusterrolebinding,clusterrole hatchery-operator >/dev/null
"$python" "$repo/deploy/render-chart.py" --stdout --set image.repository=localhost/hatchery-operator \
  --set "image.tag=$tag" --set image.pullPolicy=Never --set "watchNamespaces={$ns}" > "$work/scoped.yaml"
! grep -q '^kind: Cluster' "$work/scoped.yaml" || fail "the namespaced render has cluster-wide RBAC"
kc apply -f "$work/scoped.yaml" >/dev/null
until_ok "the namespaced operator rolled out" 120 kc -n hatchery-system rollout status deploy/hatchery-operator --timeout=1s
sed -e 's|name: quickstart|name: scoped|' -e 's|runTime: 15s|runTime: 5s|' "$work/lt.yaml" > "$work/scoped-lt.yaml"
k apply -f "$work/scoped-lt.yaml" >/dev/null
until_ok "the namespaced operator runs a test to Succeeded" 120 bash -c '[ "$(kubectl -n "$ns" get lt scoped -o jsonpath={.status.phase} 2>/dev/null)" = Succeeded ]'
log "watchNamespaces: with a Role in the namespace only, a LoadTest ran to Succeeded"

k delete lt quickstart nogate scoped locked --wait=true --timeout=90s >/dev/null
until_ok "every child garbage-collected" 90 bash -c '! kubectl -n "$ns" get deploy,sts,svc,cm,secret --no-headers 2>/dev/null | grep -qE "quickstart|nogate|scoped|podkill"'
log "ALL OK: children gone with their LoadTests"
kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
