//! The reconciler: applies a LoadTest's children, watches its master and pods, opens the
//! readiness gate, keeps the status true, and scales a finished test down after its TTL.
//!
//! As in controller-rs: `reconcile` only routes (finalizer), the work is in `apply` and
//! `cleanup`, and `error_policy` decides the retry. Every decision is made by the pure
//! functions of [`crate::resources`] and [`crate::status`]; this module only does the I/O.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{finalizer, Event as Finalize};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::crd::{LoadTest, LoadTestStatus, Phase};
use crate::resources::{self, Blueprint, Role, GATE_CONDITION, WEB_PORT};
use crate::status::{
    self, MasterReport, MasterState, Observation, PodProblem, ThresholdResult, WorkerPods,
};
use crate::telemetry::Metrics;

pub use crate::resources::MANAGER;
const FINALIZER: &str = "hatchery.io/cleanup";
/// How often a live test is looked at.
const POLL: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("the LoadTest has no namespace")]
    NoNamespace,
    #[error("cannot read random bytes for the worker token: {0}")]
    Random(#[source] std::io::Error),
}

/// 32 random bytes from the kernel, hex-encoded: a worker token.
fn random_token() -> Result<String, Error> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(Error::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Creates `secret` unless it exists: a token, once made, never changes under its workers.
/// (Create only: the operator needs no right to read Secrets.)
async fn create_once(ctx: &Context, ns: &str, secret: &Secret) -> Result<(), Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    match api.create(&PostParams::default(), secret).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

impl Context {
    pub fn new(client: Client, metrics: Arc<Metrics>) -> Context {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
        }
    }
}

/// Runs the controller until SIGTERM or Ctrl-C: over the whole cluster when `namespaces` is
/// empty, else one controller per namespace (so a namespaced Role is all it needs).
pub async fn run(client: Client, namespaces: &[String], metrics: Arc<Metrics>) {
    let ctx = Arc::new(Context::new(client.clone(), metrics));
    if namespaces.is_empty() {
        watch(
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client),
            ctx,
        )
        .await;
    } else {
        let each = namespaces.iter().map(|ns| {
            watch(
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
                ctx.clone(),
            )
        });
        futures_util::future::join_all(each).await;
    }
}

async fn watch(
    loadtests: Api<LoadTest>,
    deployments: Api<Deployment>,
    sets: Api<StatefulSet>,
    ctx: Arc<Context>,
) {
    use futures_util::StreamExt;
    let owned = watcher::Config::default().labels(&resources::managed_selector());
    ctx.metrics.set_ready();
    Controller::new(loadtests, watcher::Config::default())
        .owns(deployments, owned.clone())
        .owns(sets, owned)
        .shutdown_on_signal()
        .run(reconcile_timed, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok(_) => {}
                // A LoadTest deleted while queued: nothing left to do.
                Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
                    tracing::debug!("{obj} is gone");
                }
                Err(e) => tracing::warn!("reconcile failed: {e}"),
            }
        })
        .await;
}

async fn reconcile_timed(lt: Arc<LoadTest>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let metrics = ctx.metrics.clone();
    let result = reconcile(lt, ctx).await;
    metrics.reconciled(started.elapsed(), result.is_ok());
    result
}

/// One reconcile of one LoadTest (the controller calls it; tests too).
pub async fn reconcile(lt: Arc<LoadTest>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = lt.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<LoadTest> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, lt, |event| async {
        match event {
            Finalize::Apply(lt) => apply(&lt, &ctx, &ns).await,
            Finalize::Cleanup(lt) => cleanup(&lt, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

fn error_policy(_lt: Arc<LoadTest>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!("{error}; retrying in 5 s");
    Action::requeue(Duration::from_secs(5))
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

async fn apply(lt: &LoadTest, ctx: &Context, ns: &str) -> Result<Action, Error> {
    let prev = lt.status.as_ref();
    let generation = lt.metadata.generation;
    let seen = prev.and_then(|s| s.observed_generation) == generation;
    // A test runs once: after it started, an edited spec never restarts it (a new master
    // would). Only an invalid spec, which never started, is taken again when edited.
    let finished = prev.is_some_and(|s| s.phase.is_finished() && !status::is_spec_failure(s));
    let started = prev.is_some_and(|s| s.start_time.is_some());
    if !seen && (finished || started) {
        let note = "the test has started: spec changes are not applied; create a new LoadTest to run again";
        event(
            ctx,
            lt,
            EventType::Warning,
            "SpecChangeIgnored",
            note.into(),
        )
        .await;
    }
    if finished {
        if !seen {
            let mut next = prev.cloned().unwrap_or_default();
            next.observed_generation = generation;
            publish(ctx, lt, prev, &next).await?;
        }
        return after_finish(lt, ctx, ns).await;
    }
    let bp = match Blueprint::new(lt) {
        Ok(bp) => bp,
        Err(e) => {
            let next = status::invalid_spec(prev, &e, generation, now());
            publish(ctx, lt, prev, &next).await?;
            return Ok(Action::await_change());
        }
    };
    if !started {
        if let Some(secret) = bp.token_secret(&random_token()?) {
            create_once(ctx, ns, &secret).await?;
        }
        let children = bp.children();
        if let Some(cm) = &children.plan {
            ssa::<ConfigMap>(ctx, ns, cm).await?;
        }
        ssa::<Service>(ctx, ns, &children.master_service).await?;
        ssa::<Service>(ctx, ns, &children.ui_service).await?;
        ssa::<Service>(ctx, ns, &children.workers_service).await?;
        ssa::<Deployment>(ctx, ns, &children.master).await?;
        ssa::<StatefulSet>(ctx, ns, &children.workers).await?;
    }

    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let masters = pods.list(&role_pods(&bp, Role::Master)).await?.items;
    let workers = pods.list(&role_pods(&bp, Role::Worker)).await?.items;
    let master_pod = masters
        .iter()
        .find(|p| p.metadata.deletion_timestamp.is_none());
    let report = match master_pod {
        Some(pod) => master_report(ctx, ns, pod, bp.expect_workers()).await,
        None => None,
    };
    if let (Some(pod), true) = (master_pod, status::gate_open(report.as_ref())) {
        open_gate(&pods, pod).await?;
    }
    let obs = Observation {
        generation,
        headless: lt.spec.headless,
        workers: lt.spec.workers,
        expected_workers: bp.expect_workers(),
        gate_timeout: bp.expect_workers_max_wait(),
        master: report,
        master_pod: master_pod.and_then(PodProblem::of),
        worker_pods: WorkerPods::of(&workers),
        now: now(),
    };
    let next = status::derive(prev, &obs);
    publish(ctx, lt, prev, &next).await?;
    if next.phase.is_finished() {
        return after_finish(lt, ctx, ns).await;
    }
    Ok(Action::requeue(POLL))
}

/// A finished test keeps its master serving the final numbers until the TTL, then master and
/// workers scale to zero; the LoadTest and its status stay.
async fn after_finish(lt: &LoadTest, ctx: &Context, ns: &str) -> Result<Action, Error> {
    let Some(ttl) = lt.spec.ttl_seconds_after_finished else {
        return Ok(Action::await_change());
    };
    let done = lt
        .status
        .as_ref()
        .and_then(|s| s.completion_time.as_ref())
        .map(|t| t.0);
    let Some(done) = done else {
        return Ok(Action::requeue(POLL));
    };
    let age = k8s_openapi::jiff::Timestamp::now().duration_since(done);
    let left = Duration::from_secs(u64::from(ttl)).saturating_sub(age.unsigned_abs());
    if !left.is_zero() {
        return Ok(Action::requeue(left));
    }
    let name = lt.name_any();
    let scale = json!({"spec": {"replicas": 0}});
    let params = PatchParams::default();
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), ns);
    let master = resources::master_name(&name);
    let workers = resources::workers_name(&name);
    let scaled = deployments
        .get_opt(&master)
        .await?
        .is_some_and(|d| d.spec.and_then(|s| s.replicas) == Some(0));
    if !scaled {
        deployments
            .patch(&master, &params, &Patch::Merge(&scale))
            .await?;
        sets.patch(&workers, &params, &Patch::Merge(&scale)).await?;
        let note =
            format!("ttlSecondsAfterFinished ({ttl} s) passed: master and workers scaled to zero");
        event(ctx, lt, EventType::Normal, "ScaledDown", note).await;
    }
    Ok(Action::await_change())
}

async fn cleanup(lt: &LoadTest, ctx: &Context) -> Result<Action, Error> {
    // The children carry owner references: the garbage collector removes them.
    event(
        ctx,
        lt,
        EventType::Normal,
        "Deleted",
        "children are garbage-collected".into(),
    )
    .await;
    Ok(Action::await_change())
}

/// Server-side apply with the operator's field manager.
async fn ssa<K>(ctx: &Context, ns: &str, obj: &K) -> Result<(), Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let name = obj.meta().name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await?;
    Ok(())
}

fn role_pods(bp: &Blueprint<'_>, role: Role) -> ListParams {
    ListParams::default().labels(&bp.selector_query(role))
}

/// The master's `/stats/requests`, through the API server's pod proxy (it works whether the
/// operator runs in the cluster or not, and whether the pod is Ready or not).
async fn master_report(ctx: &Context, ns: &str, pod: &Pod, expected: u32) -> Option<MasterReport> {
    let name = pod.metadata.name.as_deref()?;
    let path = format!("/api/v1/namespaces/{ns}/pods/{name}:{WEB_PORT}/proxy/stats/requests");
    let req = http::Request::get(path).body(Vec::new()).ok()?;
    let text = ctx.client.request_text(req).await.ok()?;
    let doc: Value = serde_json::from_str(&text).ok()?;
    parse_report(&doc, expected)
}

/// Reads Locust's `/stats/requests` shape (plus `worker_count`).
pub fn parse_report(doc: &Value, expected: u32) -> Option<MasterReport> {
    let state: MasterState = doc["state"].as_str()?.parse().ok()?;
    let workers = doc["worker_count"].as_u64().unwrap_or(0) as u32;
    let aggregated = doc["stats"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == "Aggregated"));
    let p95_ms = aggregated
        .filter(|r| r["num_requests"].as_u64().unwrap_or(0) > 0)
        .and_then(|r| r["response_time_percentile_0.95"].as_f64());
    Some(MasterReport {
        ready: workers >= expected,
        state,
        workers,
        expected_workers: expected,
        users: doc["user_count"].as_u64().unwrap_or(0) as u32,
        current_rps: doc["current_rps"].as_f64().unwrap_or(0.0),
        total_rps: doc["total_rps"].as_f64().unwrap_or(0.0),
        fail_ratio: doc["fail_ratio"].as_f64().unwrap_or(0.0),
        p95_ms,
        thresholds: doc["thresholds"]
            .as_array()
            .map(|list| list.iter().filter_map(threshold).collect())
            .unwrap_or_default(),
    })
}

fn threshold(t: &Value) -> Option<ThresholdResult> {
    Some(ThresholdResult {
        description: t["description"].as_str()?.to_owned(),
        measured: t["measured"].as_str().map(str::to_owned),
        passed: t["passed"].as_bool()?,
    })
}

/// Sets the master pod's readiness gate condition (once: a True gate is never set back).
async fn open_gate(pods: &Api<Pod>, pod: &Pod) -> Result<(), Error> {
    let open = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == GATE_CONDITION && c.status == "True")
        });
    if open {
        return Ok(());
    }
    let name = pod.metadata.name.clone().unwrap_or_default();
    let patch = json!({"status": {"conditions": [{
        "type": GATE_CONDITION,
        "status": "True",
        "reason": "WorkersConnected",
        "message": "the expected workers are connected to the master",
        "lastTransitionTime": now(),
    }]}});
    pods.patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await?;
    Ok(())
}

/// Writes the status when it changed, with an event on each phase change.
async fn publish(
    ctx: &Context,
    lt: &LoadTest,
    prev: Option<&LoadTestStatus>,
    next: &LoadTestStatus,
) -> Result<(), Error> {
    if prev == Some(next) {
        return Ok(());
    }
    let api: Api<LoadTest> =
        Api::namespaced(ctx.client.clone(), &lt.namespace().unwrap_or_default());
    let patch = json!({ "status": next });
    api.patch_status(
        &lt.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    let before = prev.map(|s| s.phase);
    if before != Some(next.phase) {
        ctx.metrics.entered(next.phase);
        // One reason per phase: the event recorder folds events of the same reason together.
        let reason = format!("{:?}", next.phase);
        let kind = match next.phase {
            Phase::Failed => EventType::Warning,
            _ => EventType::Normal,
        };
        let note = match &next.verdict {
            Some(v) if next.phase.is_finished() => format!("{:?}: {v}", next.phase),
            _ => format!("{:?}", next.phase),
        };
        event(ctx, lt, kind, &reason, note).await;
    }
    Ok(())
}

async fn event(ctx: &Context, lt: &LoadTest, type_: EventType, reason: &str, note: String) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &lt.object_ref(&())).await {
        tracing::debug!("cannot publish an event: {e}");
    }
}

#[cfg(test)]
mod mock_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_masters_stats_become_a_report() {
        let doc = json!({
            "state": "running", "worker_count": 3, "user_count": 12,
            "current_rps": 40.5, "total_rps": 38.0, "fail_ratio": 0.01,
            "stats": [
                {"name": "/a", "num_requests": 10, "response_time_percentile_0.95": 9.0},
                {"name": "Aggregated", "num_requests": 10, "response_time_percentile_0.95": 12.5}
            ]
        });
        let r = parse_report(&doc, 4).unwrap();
        assert_eq!(r.state, MasterState::Running);
        assert!(!r.ready, "3 of 4 workers");
        assert_eq!((r.workers, r.users), (3, 12));
        assert_eq!(r.p95_ms, Some(12.5));
        assert!(parse_report(&json!({"state": "weird"}), 1).is_none());
    }

    #[test]
    fn the_masters_threshold_results_are_read() {
        let doc = json!({"state": "stopped", "worker_count": 1, "thresholds": [
            {"metric": "p95", "name": null, "limit": {"min": null, "max": 1.0}, "value": 3.2,
             "measured": "3.20 ms", "passed": false, "description": "p95 <= 1 ms"},
            {"metric": "rps", "name": "/a", "limit": {"min": 1.0, "max": null}, "value": null,
             "measured": null, "passed": false, "description": "rps of /a >= 1/s (no request named /a ran)"},
            {"passed": true}
        ]});
        let r = parse_report(&doc, 1).unwrap();
        assert_eq!(
            r.thresholds,
            vec![
                ThresholdResult {
                    description: "p95 <= 1 ms".into(),
                    measured: Some("3.20 ms".into()),
                    passed: false
                },
                ThresholdResult {
                    description: "rps of /a >= 1/s (no request named /a ran)".into(),
                    measured: None,
                    passed: false
                },
            ],
            "an entry without a description is skipped"
        );
        assert!(parse_report(&json!({"state": "ready"}), 1)
            .unwrap()
            .thresholds
            .is_empty());
    }

    #[test]
    fn no_request_yet_means_no_p95() {
        let doc = json!({"state": "ready", "worker_count": 1, "stats": [{"name": "Aggregated", "num_requests": 0, "response_time_percentile_0.95": 0.0}]});
        assert_eq!(parse_report(&doc, 1).unwrap().p95_ms, None);
    }
}
