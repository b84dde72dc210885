//! The reconciler: applies a LoadTest's children, reads its master and pods, opens the
//! readiness gate, keeps the status true, and scales a finished test down after its TTL.
//!
//! `reconcile` routes (an old finalizer to drop, a deletion to leave to the garbage collector),
//! the work is in `apply`, and `error_policy` decides the retry (per-LoadTest backoff). Every
//! decision is made by the pure functions of [`crate::resources`] and [`crate::status`]; this
//! module only does the I/O, as quietly as it can (docs/operator.md, "A quiet controller").

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{predicates, watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use tracing::Instrument;

use crate::crd::{LoadTest, LoadTestStatus, Phase};
use crate::edits::{self, Applied};
use crate::resources::{self, Blueprint, Role, GATE_CONDITION};
use crate::status::{self, Observation, PodProblem, WorkerPods};
use crate::telemetry::Metrics;

pub use crate::resources::MANAGER;
/// The finalizer earlier versions added, which only emitted an event (owner references already
/// collect the children) and made a deletion hang while the operator was down: removed when seen.
const OLD_FINALIZER: &str = "hatchery.io/cleanup";
/// How often a test that is starting is looked at (the gate, the phase as pods come up).
const POLL: Duration = Duration::from_secs(2);
/// How often a running test is looked at: one read of the master and at most one status
/// write each time, so about 24 API requests a minute.
const POLL_RUNNING: Duration = Duration::from_secs(5);
/// The first retry after a failed reconcile; each failure in a row doubles it, up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the LoadTest has no namespace")]
    NoNamespace,
    #[error("cannot read random bytes for the worker token: {0}")]
    Random(#[source] std::io::Error),
    #[error("the master: {0}")]
    Master(String),
    #[error("cannot make the TLS certificate: {0}")]
    Certificate(String),
    #[error("web auth: {0}")]
    WebAuth(String),
}

impl Error {
    /// The label of `hatchery_operator_reconcile_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(e)) => match e.code {
                403 => "forbidden",
                404 => "not_found",
                409 => "conflict",
                422 => "invalid",
                429 => "throttled",
                500..=599 => "server",
                _ => "api",
            },
            Error::Kube(_) => "transport",
            Error::NoNamespace => "no_namespace",
            Error::Random(_) => "random",
            Error::Master(_) => "master",
            Error::Certificate(_) => "certificate",
            Error::WebAuth(_) => "web_auth",
        }
    }
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

/// Creates `secret` unless it exists: a token, certificate or password, once made, never
/// changes under its workers and users (so a 409 is success, and nothing is read back here).
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
    /// The operator's pods (the managed-by label), kept by one watch: no LIST per reconcile.
    pods: Store<Pod>,
    /// The LoadTests the controller watches (to forget those that are gone).
    loadtests: Store<LoadTest>,
    /// Per LoadTest (namespace/name/uid), a hash of the children last applied: they are
    /// applied (and the token Secret created) again only when what they should be changed.
    applied: Mutex<HashMap<String, Hashes>>,
    /// Per LoadTest, failed reconciles in a row: the next retry waits twice as long.
    failures: Mutex<HashMap<String, u32>>,
    /// Per web-auth Secret (`ns/name`), the `Basic ...` value its master takes.
    credentials: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

impl Context {
    /// A context whose caches are empty (what the mock tests use).
    pub fn new(client: Client, metrics: Arc<Metrics>) -> Context {
        Context::with_caches(client, metrics, reflector::store().0, reflector::store().0)
    }

    fn with_caches(
        client: Client,
        metrics: Arc<Metrics>,
        pods: Store<Pod>,
        loadtests: Store<LoadTest>,
    ) -> Context {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            pods,
            loadtests,
            applied: Mutex::default(),
            failures: Mutex::default(),
            credentials: Mutex::default(),
        }
    }

    /// The cached pods of one role of a LoadTest, by its blueprint's selector.
    fn pods_of(&self, ns: &str, bp: &Blueprint<'_>, role: Role) -> Vec<Arc<Pod>> {
        let selector = bp.selector(role);
        self.pods
            .state()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
            .filter(|p| {
                let labels = p.metadata.labels.as_ref();
                selector
                    .iter()
                    .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
            })
            .collect()
    }
}

/// The key of a LoadTest in the context's maps: a LoadTest made anew under the same name is
/// another one.
fn key(lt: &LoadTest) -> String {
    format!(
        "{}/{}/{}",
        lt.namespace().unwrap_or_default(),
        lt.name_any(),
        lt.uid().unwrap_or_default()
    )
}

/// Runs the controller until SIGTERM or Ctrl-C: over the whole cluster when `namespaces` is
/// empty, else one controller per namespace (so a namespaced Role is all it needs).
pub async fn run(client: Client, namespaces: &[String], metrics: Arc<Metrics>) {
    if namespaces.is_empty() {
        watch(
            Api::all(client.clone()),
            Api::all(client.clone()),
            client,
            metrics,
        )
        .await;
    } else {
        let each = namespaces.iter().map(|ns| {
            watch(
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
                client.clone(),
                metrics.clone(),
            )
        });
        futures_util::future::join_all(each).await;
    }
}

/// One controller: LoadTests trigger a reconcile when their spec changes (generation), not on
/// the status writes the operator makes itself; the operator's pods are kept in a cache by one
/// watch. A live test is looked at on a timer (the master's numbers come from its API, which
/// no watch sees), a finished one at its TTL.
async fn watch(loadtests: Api<LoadTest>, pods: Api<Pod>, client: Client, metrics: Arc<Metrics>) {
    use futures_util::StreamExt;
    let (pod_cache, pod_writer) = reflector::store();
    // A master pod's IP, when it first has one, is what its workers are made with (see
    // `apply_children`): it reconciles the LoadTest at once rather than at the next poll.
    let (addressed, addressed_rx) = tokio::sync::mpsc::channel::<ObjectRef<LoadTest>>(64);
    let pod_watch = watcher(
        pods,
        watcher::Config::default().labels(&resources::managed_selector()),
    )
    .default_backoff()
    .reflect(pod_writer)
    .touched_objects()
    .predicate_filter(master_address_hash, Default::default())
    .for_each(move |pod| {
        if let Some(lt) = pod.ok().as_ref().and_then(addressed_master_of) {
            tracing::info!(loadtest = %lt.name, "the master pod has its address");
            // Full only if reconciles lag far behind: the poll then finds the address.
            let _ = addressed.try_send(lt);
        }
        async {}
    });
    let addressed = futures_util::stream::unfold(addressed_rx, |mut rx| async move {
        rx.recv().await.map(|lt| (lt, rx))
    });
    let (lt_cache, lt_writer) = reflector::store();
    let specs = watcher(loadtests, watcher::Config::default())
        .default_backoff()
        .reflect(lt_writer)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let ctx = Arc::new(Context::with_caches(
        client,
        metrics.clone(),
        pod_cache.clone(),
        lt_cache.clone(),
    ));
    let controller = async move {
        // Reconciles read pods from the cache: start once it holds the pods that exist.
        if pod_cache.wait_until_ready().await.is_err() {
            return;
        }
        metrics.set_ready();
        Controller::for_stream(specs, lt_cache)
            .reconcile_on(addressed)
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
    };
    // The pod watch lives as long as the controller, which ends on SIGTERM.
    tokio::select! {
        () = controller => {}
        () = pod_watch => {}
    }
}

/// What of a pod decides whether it triggers a reconcile: a master pod's IP (every other pod
/// passes the filter once, and [`addressed_master_of`] drops it).
fn master_address_hash(pod: &Pod) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    pod_address(pod).hash(&mut h);
    Some(h.finish())
}

/// The LoadTest whose master `pod` is, when the pod has its IP.
fn addressed_master_of(pod: &Pod) -> Option<ObjectRef<LoadTest>> {
    let labels = pod.metadata.labels.as_ref()?;
    if labels.get(resources::LABEL_ROLE).map(String::as_str) != Some(Role::Master.as_str()) {
        return None;
    }
    pod_address(pod)?;
    let lt = labels.get(resources::LABEL_LOADTEST)?;
    Some(ObjectRef::new(lt).within(pod.metadata.namespace.as_deref()?))
}

async fn reconcile_timed(lt: Arc<LoadTest>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let span = tracing::info_span!(
        "reconcile",
        namespace = %lt.namespace().unwrap_or_default(),
        name = %lt.name_any()
    );
    let id = key(&lt);
    let result = reconcile(lt, ctx.clone()).instrument(span).await;
    ctx.metrics.reconciled(started.elapsed(), result.is_ok());
    if result.is_ok() {
        ctx.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
    result
}

/// One reconcile of one LoadTest (the controller calls it; tests too).
pub async fn reconcile(lt: Arc<LoadTest>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = lt.namespace().ok_or(Error::NoNamespace)?;
    if lt.finalizers().iter().any(|f| f == OLD_FINALIZER) {
        return drop_old_finalizer(&lt, &ctx, &ns).await;
    }
    if lt.metadata.deletion_timestamp.is_some() {
        // Owner references: the garbage collector removes the children.
        ctx.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key(&lt));
        return Ok(Action::await_change());
    }
    apply(&lt, &ctx, &ns).await
}

/// Removes [`OLD_FINALIZER`] (the rest of the list kept; the resource version makes the patch
/// fail rather than overwrite a list changed meanwhile). A metadata change leaves the
/// generation alone, so the next look is requeued, once the cache has the update.
async fn drop_old_finalizer(lt: &LoadTest, ctx: &Context, ns: &str) -> Result<Action, Error> {
    let rest: Vec<&String> = lt
        .finalizers()
        .iter()
        .filter(|f| *f != OLD_FINALIZER)
        .collect();
    let patch = json!({"metadata": {
        "finalizers": rest,
        "resourceVersion": lt.resource_version(),
    }});
    let api: Api<LoadTest> = Api::namespaced(ctx.client.clone(), ns);
    api.patch(
        &lt.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(Action::requeue(Duration::from_secs(1)))
}

/// Retries a failed reconcile after [`FIRST_BACKOFF`], doubled for each failure in a row of
/// the same LoadTest up to [`MAX_BACKOFF`]: an error that does not go away (a forbidden
/// request, a rejected object) is not retried every few seconds.
fn error_policy(lt: Arc<LoadTest>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed(error.kind());
    let n = {
        let mut failures = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key(&lt)).or_default();
        *n = n.saturating_add(1);
        *n
    };
    let wait = backoff(n);
    tracing::warn!(
        namespace = %lt.namespace().unwrap_or_default(),
        name = %lt.name_any(),
        "{error}; retrying in {} s (failure {n} in a row)",
        wait.as_secs()
    );
    Action::requeue(wait)
}

/// The wait before retry `n` (1-based) of a failing reconcile.
fn backoff(n: u32) -> Duration {
    let doublings = n.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

async fn apply(lt: &LoadTest, ctx: &Context, ns: &str) -> Result<Action, Error> {
    let prev = lt.status.as_ref();
    let generation = lt.metadata.generation;
    let seen = prev.and_then(|s| s.observed_generation) == generation;
    // A test runs once: after it started, an edited spec never restarts it (a new master
    // would); while it runs, users, spawnRate and workers apply live (see `live_edit`). Only
    // an invalid spec, which never started, is taken again when edited.
    let finished = prev.is_some_and(|s| s.phase.is_finished() && !status::is_spec_failure(s));
    let started = prev.is_some_and(|s| s.start_time.is_some());
    if !seen && finished {
        let note = "the test has finished: spec changes are not applied; create a new LoadTest to run again";
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
        Err(e) if started => {
            // A running test is not failed by an invalid edit: the edit is refused.
            let note = format!("the edit is not applied: {e}");
            event(ctx, lt, EventType::Warning, "SpecChangeRefused", note).await;
            return Ok(Action::requeue(POLL_RUNNING));
        }
        Err(e) => {
            let next = status::invalid_spec(prev, &e, generation, now());
            publish(ctx, lt, prev, &next).await?;
            return Ok(Action::await_change());
        }
    };
    let masters = ctx.pods_of(ns, &bp, Role::Master);
    let workers: Vec<Pod> = ctx
        .pods_of(ns, &bp, Role::Worker)
        .iter()
        .map(|p| Pod::clone(p))
        .collect();
    let master_pod = masters
        .iter()
        .map(|p| p.as_ref())
        .find(|p| p.metadata.deletion_timestamp.is_none());
    let bp = bp.with_master_address(master_pod.and_then(pod_address));
    if started {
        // Children are only applied before the start.
        ctx.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key(lt));
    } else {
        apply_children(lt, ctx, ns, &bp).await?;
    }
    if started && !seen {
        live_edit(lt, ctx, ns, &bp, master_pod).await?;
    }
    // Without its credentials (a web-auth Secret missing or malformed) the master is still
    // looked at: it answers 401, and the status comes from the pods, whose own Secret error
    // (CreateContainerConfigError) then says what is wrong.
    let access = match master::access(ctx, ns, &bp).await {
        Ok(access) => access,
        Err(e) => {
            tracing::warn!(loadtest = %lt.name_any(), "cannot read the master's web credentials: {e}");
            ctx.metrics.failed(e.kind());
            master::Access::without_credentials(&bp)
        }
    };
    let report = match master_pod {
        Some(pod) => master::report(ctx, &access, ns, pod, bp.expect_workers()).await,
        None => None,
    };
    if let (Some(pod), true) = (master_pod, status::gate_open(report.as_ref())) {
        open_gate(&Api::namespaced(ctx.client.clone(), ns), pod).await?;
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
    let mut next = status::derive(prev, &obs);
    next.worker_selector = Some(bp.selector_query(Role::Worker));
    // The result is stored as the test finishes, while its master still serves it.
    if let (true, None, Some(pod)) = (next.phase.is_finished(), &next.result, master_pod) {
        next.result = master::store_result(ctx, &access, lt, ns, &bp, pod).await;
    }
    publish(ctx, lt, prev, &next).await?;
    if next.phase.is_finished() {
        return after_finish(lt, ctx, ns).await;
    }
    Ok(Action::requeue(if next.phase == Phase::Running {
        POLL_RUNNING
    } else {
        POLL
    }))
}

/// Applies an edit of a running test: `users` and `spawnRate` through the master's `/swarm`
/// (Locust's retarget: the run, its timer and statistics go on), `workers` by scaling the
/// StatefulSet (the master rebalances users as workers join or leave); any other changed
/// field is refused with a Warning event naming it. What was applied is recorded back on the
/// master Deployment's annotation (metadata only: no rollout).
async fn live_edit(
    lt: &LoadTest,
    ctx: &Context,
    ns: &str,
    bp: &Blueprint<'_>,
    master_pod: Option<&Pod>,
) -> Result<(), Error> {
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    let name = resources::master_name(&lt.name_any());
    let Some(master) = deployments.get_opt(&name).await? else {
        return Ok(());
    };
    let Some(was) = master
        .annotations()
        .get(edits::ANNOTATION)
        .and_then(|a| Applied::from_json(a))
    else {
        let note = "the test was started by an operator that did not record its spec: edits are not applied; create a new LoadTest";
        event(
            ctx,
            lt,
            EventType::Warning,
            "SpecChangeRefused",
            note.into(),
        )
        .await;
        return Ok(());
    };
    let edit = edits::diff(&was, &Applied::of(&lt.spec));
    if !edit.refused.is_empty() {
        let note = format!(
            "{} cannot change while the test runs (a new master would run it again): not applied; users, spawnRate and workers can change, or create a new LoadTest",
            edit.refused.join(", ")
        );
        event(ctx, lt, EventType::Warning, "SpecChangeRefused", note).await;
    }
    let mut applied = was.clone();
    if let Some((users, rate)) = edit.retarget {
        let pod = master_pod.ok_or_else(|| Error::Master("no master pod to retarget".into()))?;
        let access = master::access(ctx, ns, bp).await?;
        match master::swarm(ctx, &access, ns, pod, users, rate).await {
            Ok(said) => {
                let note = format!("users {users} at {rate}/s through the master's /swarm: {said}");
                event(ctx, lt, EventType::Normal, "Retargeted", note).await;
                (applied.users, applied.spawn_rate) = (Some(users), Some(rate));
            }
            // The master said no (a count above its --max-users, say): retrying would not
            // change its mind. Unreachable or failing, it is retried with backoff.
            Err(e @ (Error::Master(_) | Error::Kube(kube::Error::Api(_))))
                if !matches!(e.kind(), "server" | "throttled") =>
            {
                let note = format!("users {users} at {rate}/s not applied: {e}");
                event(ctx, lt, EventType::Warning, "SpecChangeRefused", note).await;
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(workers) = edit.workers {
        // The count alone: the pod template (the master's address it was made with) stays,
        // so the running workers are not rolled.
        let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), ns);
        let scale = json!({"spec": {"replicas": i32::try_from(workers).unwrap_or(i32::MAX)}});
        let params = PatchParams {
            field_manager: Some(resources::MANAGER.to_string()),
            ..PatchParams::default()
        };
        sets.patch(&bp.workers_name(), &params, &Patch::Merge(&scale))
            .await?;
        let note = format!("workers {} -> {workers}", was.workers);
        event(ctx, lt, EventType::Normal, "Scaled", note).await;
        applied.workers = workers;
    }
    if applied != was {
        let patch = json!({"metadata": {"annotations": {edits::ANNOTATION: applied.to_json()}}});
        deployments
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(())
}

/// Applies the children and creates the token Secret, unless what they should be is what was
/// last applied for this LoadTest (before, every look at a starting test re-applied six
/// objects and POSTed the Secret again for a 409). The workers are compared apart: they come
/// in a later reconcile, once the master pod has its IP, which then applies them alone.
async fn apply_children(
    lt: &LoadTest,
    ctx: &Context,
    ns: &str,
    bp: &Blueprint<'_>,
) -> Result<(), Error> {
    let mut children = bp.children();
    // What the test runs with, for the edits made while it runs (crate::edits).
    children
        .master
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(
            edits::ANNOTATION.to_string(),
            Applied::of(&lt.spec).to_json(),
        );
    let masters_side = hash_of(&(
        &children.plan,
        &children.master,
        &children.master_service,
        &children.ui_service,
        &children.workers_service,
    ));
    let workers = bp
        .knows_master_address()
        .then(|| hash_of(&children.workers));
    let wanted = Hashes {
        masters_side,
        workers,
    };
    let id = key(lt);
    let last = ctx
        .applied
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
        .copied();
    if last.map(|l| l.masters_side) != Some(wanted.masters_side) {
        apply_masters_side(ctx, ns, bp, &children).await?;
    }
    // The workers are made once the master pod has its IP, which they dial (the pod watch
    // reconciles as it appears): made with the master, they waited up to 4 s more for the
    // cluster to route the master's Service (docs/operator.md "Start latency").
    if wanted.workers.is_some() && last.and_then(|l| l.workers) != wanted.workers {
        ssa::<StatefulSet>(ctx, ns, &children.workers).await?;
        tracing::info!(loadtest = %lt.name_any(), "workers applied, with the master pod's address");
    }
    // Forget the LoadTests that are gone (deleted before they started): the map holds what
    // is live, not every LoadTest this operator ever saw.
    let live: std::collections::HashSet<String> =
        ctx.loadtests.state().iter().map(|lt| key(lt)).collect();
    let mut applied = ctx.applied.lock().unwrap_or_else(|e| e.into_inner());
    applied.retain(|k, _| live.contains(k));
    applied.insert(id, wanted);
    Ok(())
}

/// What was last applied for a LoadTest, by hash: the master's side, and the workers once made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hashes {
    masters_side: u64,
    workers: Option<u64>,
}

fn hash_of(value: &impl Serialize) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(value)
        .unwrap_or_default()
        .hash(&mut h);
    h.finish()
}

/// The Secrets (created once), the plan, the Services and the master.
async fn apply_masters_side(
    ctx: &Context,
    ns: &str,
    bp: &Blueprint<'_>,
    children: &resources::Children,
) -> Result<(), Error> {
    if let Some(secret) = bp.token_secret(&random_token()?) {
        create_once(ctx, ns, &secret).await?;
    }
    if bp.makes_tls_secret() {
        let issued = hatchery_core::certs::issue(&bp.tls_hosts())
            .map_err(|e| Error::Certificate(e.to_string()))?;
        if let Some(secret) = bp.tls_secret(&issued) {
            create_once(ctx, ns, &secret).await?;
        }
    }
    if let Some(secret) = bp.web_auth_secret(&random_token()?) {
        create_once(ctx, ns, &secret).await?;
    }
    if let Some(cm) = &children.plan {
        ssa::<ConfigMap>(ctx, ns, cm).await?;
    }
    ssa::<Service>(ctx, ns, &children.master_service).await?;
    ssa::<Service>(ctx, ns, &children.ui_service).await?;
    ssa::<Service>(ctx, ns, &children.workers_service).await?;
    ssa::<Deployment>(ctx, ns, &children.master).await?;
    Ok(())
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
        match sets.patch(&workers, &params, &Patch::Merge(&scale)).await {
            // Never made: the master pod never had an address.
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            done => {
                done?;
            }
        }
        let note =
            format!("ttlSecondsAfterFinished ({ttl} s) passed: master and workers scaled to zero");
        event(ctx, lt, EventType::Normal, "ScaledDown", note).await;
    }
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

/// A pod's IP, once it has one.
fn pod_address(pod: &Pod) -> Option<std::net::IpAddr> {
    pod.status.as_ref()?.pod_ip.as_deref()?.parse().ok()
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

mod master;
#[cfg(test)]
mod mock_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_of_a_failing_test_double_up_to_five_minutes() {
        let waits: Vec<u64> = [1, 2, 3, 4, 8, 9, 100, u32::MAX]
            .into_iter()
            .map(|n| backoff(n).as_secs())
            .collect();
        assert_eq!(waits, [2, 4, 8, 16, 256, 300, 300, 300]);
    }

    #[test]
    fn errors_are_counted_by_kind() {
        let api = |code: u16| {
            Error::Kube(kube::Error::Api(Box::new(kube::core::Status {
                code,
                ..Default::default()
            })))
        };
        let kinds: Vec<&str> = [403, 409, 422, 503, 418]
            .map(api)
            .iter()
            .map(Error::kind)
            .collect();
        assert_eq!(kinds, ["forbidden", "conflict", "invalid", "server", "api"]);
        assert_eq!(Error::NoNamespace.kind(), "no_namespace");
    }
}
