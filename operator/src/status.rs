//! Pure status derivation: what the operator observed in, the LoadTest's next status out.
//!
//! The reconciler gathers an [`Observation`] (the master's API, a summary of the pods, the
//! time) and calls [`derive`]; it patches the master pod's readiness-gate condition with
//! [`gate_open`]. No clock and no I/O here: `now` is an input, so every transition is a plain
//! unit test.
//!
//! ```text
//! Pending ──master answers──> WaitingForWorkers ──run starts──> Running ──> Stopping ──> Succeeded
//!    │                               │                             │                     Failed
//!    └── gate timeout, stuck pod ────┴── master pod stuck/OOMKilled ┴──> Failed
//! ```
//! Succeeded and Failed are final, except a Failed caused by an invalid spec, which starts over
//! once the spec is edited.

use std::str::FromStr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{LoadTestStatus, Phase};
use crate::resources;

/// Condition: the spec could be turned into objects (False: see the message).
pub const SPEC_VALID: &str = "SpecValid";
/// Condition: the expected workers are connected to the master.
pub const WORKERS_CONNECTED: &str = "WorkersConnected";
/// Condition: something is wrong that has not failed the test (yet): a pod that cannot be
/// scheduled, a worker that was OOMKilled, a master that stopped answering mid-run.
pub const DEGRADED: &str = "Degraded";
/// Condition: the test reached Succeeded or Failed; the reason says which and why.
pub const FINISHED: &str = "Finished";

/// Waiting reasons that do not clear up on their own.
const STUCK_REASONS: [&str; 7] = [
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// The master's run state, as `/readyz` and `/stats/requests` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterState {
    /// Waiting for the expected workers (or, without `--autostart`, for the UI).
    Ready,
    Spawning,
    Running,
    Stopping,
    /// A run ended; the master keeps serving.
    Stopped,
}

impl FromStr for MasterState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ready" => Ok(MasterState::Ready),
            "spawning" => Ok(MasterState::Spawning),
            "running" => Ok(MasterState::Running),
            "stopping" => Ok(MasterState::Stopping),
            "stopped" => Ok(MasterState::Stopped),
            other => Err(format!("unknown master state {other:?}")),
        }
    }
}

/// What the master's HTTP API said: `/readyz` (ready, state, workers) and `/stats/requests`
/// (users, rates, fail ratio, the Aggregated row's p95).
#[derive(Debug, Clone, PartialEq)]
pub struct MasterReport {
    pub ready: bool,
    pub state: MasterState,
    pub workers: u32,
    pub expected_workers: u32,
    pub users: u32,
    /// Requests per second over the last seconds.
    pub current_rps: f64,
    /// Requests per second over the whole run.
    pub total_rps: f64,
    pub fail_ratio: f64,
    /// Milliseconds; `None` before the first response.
    pub p95_ms: Option<f64>,
    /// The plan's thresholds as the master judged them on its statistics so far; empty when
    /// the plan has none (then any failed request fails the run, as the CLI's exit code).
    pub thresholds: Vec<ThresholdResult>,
}

/// One threshold's result in the master's `/stats/requests` (`thresholds`).
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdResult {
    /// The rule as a person reads it, e.g. `p95 <= 500 ms`.
    pub description: String,
    /// The measured value with its unit, e.g. `3.20 ms`; `None` while nothing in its scope ran.
    pub measured: Option<String>,
    pub passed: bool,
}

impl std::fmt::Display for ThresholdResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.measured {
            Some(m) => write!(f, "{} (measured {m})", self.description),
            None => f.write_str(&self.description),
        }
    }
}

/// Something wrong with a pod, with the Kubernetes reason (`ImagePullBackOff`, `OOMKilled`,
/// `Unschedulable`, `Evicted`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodProblem {
    pub pod: String,
    pub reason: String,
    pub message: String,
    /// It will not clear up on its own.
    pub stuck: bool,
}

impl PodProblem {
    /// The most telling problem of `pod`, if any.
    pub fn of(pod: &Pod) -> Option<PodProblem> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let status = pod.status.as_ref()?;
        let problem = |reason: &str, message: Option<&String>, stuck: bool| PodProblem {
            pod: name.clone(),
            reason: reason.to_string(),
            message: message.cloned().unwrap_or_default(),
            stuck,
        };
        if status.phase.as_deref() == Some("Failed") {
            let reason = status.reason.as_deref().unwrap_or("Failed");
            return Some(problem(reason, status.message.as_ref(), true));
        }
        for c in status.container_statuses.iter().flatten() {
            if let Some(found) = container_problem(c) {
                let (reason, message, stuck) = found;
                return Some(problem(reason, message, stuck));
            }
        }
        let unschedulable = status.conditions.iter().flatten().find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        })?;
        Some(problem(
            "Unschedulable",
            unschedulable.message.as_ref(),
            false,
        ))
    }
}

/// A config error the kubelet retries and that clears up: its Secret or ConfigMap cache had
/// not caught up with an object created a moment before the pod ("failed to sync secret
/// cache"). A missing Secret or ConfigMap ("not found") does not.
fn transient(reason: &str, message: Option<&str>) -> bool {
    reason == "CreateContainerConfigError" && message.is_some_and(|m| m.contains("failed to sync"))
}

fn container_problem(c: &ContainerStatus) -> Option<(&str, Option<&String>, bool)> {
    if let Some(waiting) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) {
        if let Some(reason) = waiting.reason.as_deref() {
            if STUCK_REASONS.contains(&reason) {
                let stuck = !transient(reason, waiting.message.as_deref());
                return Some((reason, waiting.message.as_ref(), stuck));
            }
        }
    }
    let terminated = [c.state.as_ref(), c.last_state.as_ref()]
        .into_iter()
        .flatten()
        .filter_map(|s| s.terminated.as_ref())
        .find(|t| t.reason.as_deref() == Some("OOMKilled"))?;
    Some(("OOMKilled", terminated.message.as_ref(), false))
}

/// The worker pods at a glance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerPods {
    /// Worker pods that will not start on their own.
    pub stuck: u32,
    /// The first stuck pod's problem, else the first problem found.
    pub problem: Option<PodProblem>,
}

impl WorkerPods {
    pub fn of(pods: &[Pod]) -> WorkerPods {
        let mut problems: Vec<PodProblem> = pods.iter().filter_map(PodProblem::of).collect();
        // A stuck pod explains more than one that is merely slow.
        problems.sort_by_key(|p| !p.stuck);
        WorkerPods {
            stuck: u32::try_from(problems.iter().filter(|p| p.stuck).count()).unwrap_or(u32::MAX),
            problem: problems.into_iter().next(),
        }
    }
}

/// Everything [`derive`] needs, gathered by the reconciler.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The LoadTest's `metadata.generation`.
    pub generation: Option<i64>,
    /// `spec.headless`: without it, tests are started from the UI and never finish by themselves.
    pub headless: bool,
    /// `spec.workers`.
    pub workers: u32,
    /// `spec.expectWorkers`, defaulted (until the master reports its own).
    pub expected_workers: u32,
    /// How long the workers may take to connect, from the first status on.
    pub gate_timeout: Option<Duration>,
    /// `None`: the master did not answer.
    pub master: Option<MasterReport>,
    pub master_pod: Option<PodProblem>,
    pub worker_pods: WorkerPods,
    pub now: Time,
}

/// True once the expected workers have connected to this master process: the master pod's
/// `hatchery.io/workers-connected` condition. It stays true once a run started, so a worker
/// lost mid-run does not take the UI away. (An idle master of a `headless: false` test that
/// loses a worker closes it again until the worker is back; a reconciler that never sets a
/// True gate back to False avoids that.)
pub fn gate_open(master: Option<&MasterReport>) -> bool {
    master.is_some_and(|m| m.ready || m.state != MasterState::Ready)
}

/// The status after `observation`, given the `previous` one.
pub fn derive(previous: Option<&LoadTestStatus>, obs: &Observation) -> LoadTestStatus {
    let prev = previous.cloned().unwrap_or_default();
    if prev.phase.is_finished() && !restarts_after_edit(&prev, obs.generation) {
        return LoadTestStatus {
            observed_generation: obs.generation,
            ..prev
        };
    }
    let mut next = if prev.phase.is_finished() {
        fresh(prev)
    } else {
        prev.clone()
    };
    next.observed_generation = obs.generation;
    set_condition(
        &mut next,
        obs.generation,
        &obs.now,
        SPEC_VALID,
        true,
        "Valid",
        "the spec is valid",
    );
    if obs.master.as_ref().is_some_and(|m| {
        matches!(
            m.state,
            MasterState::Spawning | MasterState::Running | MasterState::Stopping
        )
    }) {
        next.start_time.get_or_insert_with(|| obs.now.clone());
    }
    record_numbers(&mut next, obs);
    record_workers(&mut next, obs);
    record_degraded(&mut next, obs);
    match step(&next, obs) {
        Step::To(phase) => next.phase = phase,
        Step::Pass(message) => finish(&mut next, obs, Phase::Succeeded, "Passed", message),
        Step::Fail { reason, message } => finish(&mut next, obs, Phase::Failed, &reason, message),
    }
    next
}

/// The status of a LoadTest whose spec [`resources::Blueprint::new`] refused: Failed, with
/// the reason and the whole message (a plan's diagnostics) in the `SpecValid` condition.
pub fn invalid_spec(
    previous: Option<&LoadTestStatus>,
    error: &resources::Error,
    generation: Option<i64>,
    now: Time,
) -> LoadTestStatus {
    let mut next = previous.cloned().unwrap_or_default();
    if next.phase.is_finished() && !is_spec_failure(&next) {
        return next;
    }
    next.observed_generation = generation;
    let message = error.to_string();
    let reason = error.reason();
    set_condition(
        &mut next, generation, &now, SPEC_VALID, false, reason, &message,
    );
    set_condition(
        &mut next, generation, &now, FINISHED, true, reason, &message,
    );
    next.phase = Phase::Failed;
    next.verdict = Some(format!("failed: invalid spec: {}", headline(&message)));
    next.completion_time.get_or_insert(now);
    next
}

enum Step {
    To(Phase),
    Pass(String),
    Fail { reason: String, message: String },
}

fn fail(reason: &str, message: String) -> Step {
    Step::Fail {
        reason: reason.to_string(),
        message,
    }
}

/// Where the test goes next, from what was observed.
fn step(next: &LoadTestStatus, obs: &Observation) -> Step {
    if let Some(p) = &obs.master_pod {
        // A restarted master starts the run again from nothing: its numbers would lie.
        if p.stuck || p.reason == "OOMKilled" {
            return fail(
                &p.reason,
                format!("master pod {} {}: {}", p.pod, p.reason, p.message),
            );
        }
    }
    let started = next.start_time.is_some();
    let expected = next.workers_expected.unwrap_or(obs.expected_workers);
    let startable = obs.workers.saturating_sub(obs.worker_pods.stuck);
    if !started && startable < expected {
        if let Some(p) = &obs.worker_pods.problem {
            let message = format!(
                "{} of {} worker pods cannot start ({} {}: {}), {} needed",
                obs.worker_pods.stuck, obs.workers, p.pod, p.reason, p.message, expected
            );
            return fail(&p.reason, message);
        }
    }
    let Some(master) = &obs.master else {
        return if started {
            Step::To(next.phase)
        } else {
            gate_timeout(next, obs).unwrap_or(Step::To(Phase::Pending))
        };
    };
    match master.state {
        MasterState::Ready if !obs.headless && gate_open(Some(master)) => Step::To(Phase::Running),
        MasterState::Ready => gate_timeout(next, obs).unwrap_or(Step::To(Phase::WaitingForWorkers)),
        MasterState::Spawning | MasterState::Running => Step::To(Phase::Running),
        MasterState::Stopping => Step::To(Phase::Stopping),
        MasterState::Stopped if !obs.headless => Step::To(Phase::Running),
        MasterState::Stopped => verdict(master),
    }
}

/// Failed when the workers have not all connected within the gate timeout, counted from
/// when `WorkersConnected` last became False.
fn gate_timeout(next: &LoadTestStatus, obs: &Observation) -> Option<Step> {
    let limit = obs.gate_timeout?;
    let since = find_condition(next, WORKERS_CONNECTED).filter(|c| c.status == "False")?;
    let waited = obs.now.0.duration_since(since.last_transition_time.0);
    if waited.as_secs_f64() < limit.as_secs_f64() {
        return None;
    }
    Some(fail(
        "GateTimeout",
        format!(
            "only {} of {} workers connected within {}",
            next.workers_connected.unwrap_or(0),
            next.workers_expected.unwrap_or(obs.expected_workers),
            hatchery_core::duration::format(limit)
        ),
    ))
}

/// The verdict on a finished run: the plan's thresholds when it has them (every failing one
/// named), else the CLI's exit code rule (any failed request fails the run).
fn verdict(master: &MasterReport) -> Step {
    let thresholds = &master.thresholds;
    if !thresholds.is_empty() {
        let failed: Vec<String> = thresholds
            .iter()
            .filter(|t| !t.passed)
            .map(ToString::to_string)
            .collect();
        return match failed.len() {
            0 if thresholds.len() == 1 => Step::Pass("passed: the threshold held".into()),
            0 => Step::Pass(format!("passed: all {} thresholds held", thresholds.len())),
            1 => fail("ThresholdFailed", format!("threshold {}", failed[0])),
            n => fail(
                "ThresholdFailed",
                format!("{n} thresholds: {}", failed.join("; ")),
            ),
        };
    }
    if master.fail_ratio > 0.0 {
        let percent = round_to(master.fail_ratio * 100.0, 2);
        return fail("RequestsFailed", format!("{percent}% of requests failed"));
    }
    Step::Pass("passed".into())
}

fn finish(
    next: &mut LoadTestStatus,
    obs: &Observation,
    phase: Phase,
    reason: &str,
    message: String,
) {
    next.phase = phase;
    next.verdict = Some(if phase == Phase::Succeeded {
        message.clone()
    } else {
        format!("failed: {message}")
    });
    if let Some(m) = obs
        .master
        .as_ref()
        .filter(|m| m.state == MasterState::Stopped)
    {
        // Once stopped, the current rate is 0: the run's average says more.
        next.rps = Some(round_to(m.total_rps, 1));
        next.start_time.get_or_insert_with(|| obs.now.clone());
    }
    next.completion_time = Some(obs.now.clone());
    set_condition(
        next,
        obs.generation,
        &obs.now,
        FINISHED,
        true,
        reason,
        &message,
    );
}

fn record_numbers(next: &mut LoadTestStatus, obs: &Observation) {
    let Some(m) = &obs.master else { return };
    // After a headless run the master reports 0 users: keep the last count seen while it ran,
    // as the run's result. A test driven from the UI follows the master (0 after a stop).
    let ended = obs.headless && matches!(m.state, MasterState::Stopping | MasterState::Stopped);
    if !ended || next.users.is_none() {
        next.users = Some(m.users);
    }
    next.rps = Some(round_to(m.current_rps, 1));
    next.fail_ratio = Some(round_to(m.fail_ratio, 4));
    next.fail_percent = Some(round_to(m.fail_ratio * 100.0, 2));
    next.p95 = m.p95_ms.map(|p| round_to(p, 1)).or(next.p95);
}

fn record_workers(next: &mut LoadTestStatus, obs: &Observation) {
    let connected = obs
        .master
        .as_ref()
        .map(|m| m.workers)
        .or(next.workers_connected)
        .unwrap_or(0);
    let expected = obs
        .master
        .as_ref()
        .map_or(obs.expected_workers, |m| m.expected_workers);
    next.workers_connected = Some(connected);
    next.workers_expected = Some(expected);
    next.workers = Some(format!("{connected}/{expected}"));
    let open = gate_open(obs.master.as_ref());
    let (reason, message) = if open {
        (
            "Connected",
            format!("{connected} of {expected} workers connected"),
        )
    } else if obs.master.is_none() {
        (
            "MasterNotReachable",
            "the master does not answer yet".to_string(),
        )
    } else {
        (
            "Waiting",
            format!("{connected} of {expected} workers connected"),
        )
    };
    // Once the run started, the gate stays open whatever the master says.
    if open || next.start_time.is_none() {
        set_condition(
            next,
            obs.generation,
            &obs.now,
            WORKERS_CONNECTED,
            open,
            reason,
            &message,
        );
    }
}

fn record_degraded(next: &mut LoadTestStatus, obs: &Observation) {
    let master_lost = obs.master.is_none() && next.start_time.is_some();
    let problem = obs.master_pod.as_ref().or(obs.worker_pods.problem.as_ref());
    let (on, reason, message) = match problem {
        Some(p) => (
            true,
            p.reason.clone(),
            format!("pod {} {}: {}", p.pod, p.reason, p.message),
        ),
        None if master_lost => (
            true,
            "MasterNotReachable".to_string(),
            "the master stopped answering during the run".to_string(),
        ),
        None => (
            false,
            "AsExpected".to_string(),
            "no problem seen".to_string(),
        ),
    };
    set_condition(
        next,
        obs.generation,
        &obs.now,
        DEGRADED,
        on,
        &reason,
        &message,
    );
}

/// A Failed caused by the spec starts over once the spec was edited (a new generation).
fn restarts_after_edit(prev: &LoadTestStatus, generation: Option<i64>) -> bool {
    is_spec_failure(prev) && prev.observed_generation != generation
}

/// Whether the test failed because its spec was invalid (an edit may then start it over).
pub fn is_spec_failure(status: &LoadTestStatus) -> bool {
    status.phase == Phase::Failed
        && find_condition(status, SPEC_VALID).is_some_and(|c| c.status == "False")
}

/// A status for a new attempt: only the conditions carry over (for their transition times).
fn fresh(prev: LoadTestStatus) -> LoadTestStatus {
    let conditions = prev
        .conditions
        .into_iter()
        .filter(|c| c.type_ != FINISHED)
        .collect();
    LoadTestStatus {
        conditions,
        ..LoadTestStatus::default()
    }
}

fn find_condition<'s>(status: &'s LoadTestStatus, type_: &str) -> Option<&'s Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// Sets a condition; its transition time moves only when its status changes.
fn set_condition(
    status: &mut LoadTestStatus,
    generation: Option<i64>,
    now: &Time,
    type_: &str,
    on: bool,
    reason: &str,
    message: &str,
) {
    let value = if on { "True" } else { "False" };
    // The project's 1.20 API server turns "" into null in custom resources and then rejects
    // the required `message`: never send an empty one.
    let message = if message.is_empty() { reason } else { message };
    let existing = status.conditions.iter().position(|c| c.type_ == type_);
    let since = existing
        .map(|i| &status.conditions[i])
        .filter(|c| c.status == value)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    let condition = Condition {
        type_: type_.to_string(),
        status: value.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: generation,
        last_transition_time: since,
    };
    match existing {
        Some(i) => status.conditions[i] = condition,
        None => status.conditions.push(condition),
    }
}

fn round_to(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

/// The first two lines on one: a plan error's title and its first diagnostic.
fn headline(message: &str) -> String {
    message.lines().take(2).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;
