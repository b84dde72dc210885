//! The run: waits for the expected workers, ramps users at the spawn rate (or along a load
//! shape), re-dispatches when workers come and go, stops at the deadline or on request, and
//! merges the workers' stats deltas into the run's totals.
//!
//! The coordinator owns the timing of every user start: it sends each worker its full
//! assignment whenever a user is due, so the aggregate ramp follows the spawn rate exactly
//! whatever the number of workers. Workers reach it as [`FleetEvent`]s, in-process
//! ([`crate::local`]) or over gRPC ([`crate::server`]); the web layer through [`Command`]s and
//! the [`Status`] watch.

mod fleet;
mod history;
mod state;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use hatchery_core::apportion::Claim;
use hatchery_core::limits::LimitError;
use hatchery_core::numbers::Numbers;
use hatchery_core::plan::Shape;
use hatchery_core::protocol::{FromWorker, ToWorker};
use hatchery_core::stats::{Stats, Window};
use hatchery_core::timestamp::unix_now;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep_until, Instant, Interval, MissedTickBehavior};

pub use fleet::{WorkerId, WorkerView};
pub use history::Point;
#[cfg(test)]
use state::MIN_STEP_INTERVAL;
use state::{Run, FINAL_REPORT_MARGIN};

/// How to run: users and rate, or a shape; when to start and stop; how to watch workers.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Base URL the workers send relative paths to (`--host`; `None`: the plan's).
    pub host: Option<String>,
    pub users: u32,
    /// The most users a test may ask for (`--max-users`); `/swarm` refuses more.
    pub max_users: u32,
    /// Users started (or stopped) per second.
    pub spawn_rate: f64,
    pub run_time: Option<Duration>,
    pub stop_timeout: Duration,
    /// When set, replaces `users` and `spawn_rate` and ends the run after its last stage.
    pub shape: Option<Shape>,
    /// One per user class, in plan order.
    pub claims: Vec<Claim>,
    pub class_names: Vec<String>,
    /// Zero the statistics once every user is spawned (Locust's `--reset-stats`).
    pub reset_stats: bool,
    /// The run starts the moment this many workers are connected.
    pub expect_workers: usize,
    /// Give up (and end with [`StopReason::GateTimeout`]) when the workers take longer.
    pub expect_workers_max_wait: Option<Duration>,
    /// Heartbeat intervals (1 s) a worker may miss before it is taken as lost; `None` never.
    pub heartbeat_liveness: Option<u32>,
    /// End the run when no worker is left (standalone); otherwise wait for workers to return.
    pub end_without_workers: bool,
    /// Start a test from `users`, `spawn_rate` and `run_time` as soon as the expected workers
    /// are connected (`--headless`, `--autostart`); otherwise wait for a swarm command.
    pub autostart: bool,
    /// After a test ends, return this long after (`--headless`: at once; `--autoquit N`);
    /// `None` keeps serving until shut down.
    pub quit_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for the expected workers.
    Ready,
    Spawning,
    Running,
    Stopping,
    Stopped,
}

impl State {
    /// Locust's state names, as the API reports them.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ready => "ready",
            State::Spawning => "spawning",
            State::Running => "running",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
        }
    }
}

/// What moves a run from one state to another; [`State::after`] is the whole machine
/// (docs/protocol.md draws it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A test starts (the expected workers are here, or a swarm command came).
    Start,
    /// Users are to start, stop or move again: a new target, a stage, a worker came or went.
    Replan,
    /// Every user of the target runs.
    Spawned,
    /// The test must end: its users are told to stop.
    Stop,
    /// Its users stopped (or were lost with their workers), or the run ends.
    Stopped,
}

impl State {
    /// The state after `t`; a transition that does not apply leaves the state as it is.
    pub fn after(self, t: Transition) -> State {
        match (self, t) {
            (State::Ready | State::Stopped, Transition::Start) => State::Spawning,
            (State::Running, Transition::Replan) => State::Spawning,
            (State::Spawning, Transition::Spawned) => State::Running,
            (State::Spawning | State::Running, Transition::Stop) => State::Stopping,
            (_, Transition::Stopped) => State::Stopped,
            (state, _) => state,
        }
    }
}

/// Why the run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `--run-time` elapsed.
    TimeLimit,
    /// The load shape's last stage ended.
    ShapeEnded,
    /// Ctrl-C, SIGTERM or a stop request.
    Interrupted,
    /// Every worker went away (standalone: the in-process worker).
    WorkerLost,
    /// The expected workers did not connect within `expect_workers_max_wait`.
    GateTimeout,
    /// Stopped from the web UI or API (`/stop`).
    Requested,
}

/// What reaches the run from its workers.
#[derive(Debug)]
pub enum FleetEvent {
    /// A worker session is ready for assignments (a reconnect replaces the old session).
    Joined {
        id: WorkerId,
        /// Tells this session from an earlier one of the same worker.
        session: u64,
        tx: mpsc::Sender<ToWorker>,
        /// Users the worker already runs, per class (empty for a fresh worker): a worker that
        /// comes back, or finds a restarted master, keeps them as its assignment.
        running: Vec<u32>,
        /// The numbers of those users, per class, if the worker said.
        numbers: Option<Vec<Numbers>>,
    },
    /// A message from a worker; reports are already de-duplicated by sequence number.
    Message { id: WorkerId, msg: FromWorker },
    /// A session ended; ignored when the worker has a newer session already.
    Left {
        id: WorkerId,
        session: u64,
        reason: String,
    },
}

/// A test to start, or the new target of a running one (`POST /swarm`).
#[derive(Debug, Clone, PartialEq)]
pub struct Swarm {
    /// Checked against [`RunConfig::max_users`] by the run.
    pub users: u64,
    pub spawn_rate: f64,
    /// Only used when a test starts.
    pub run_time: Option<Duration>,
    /// Another base URL for this and later tests; only when no test runs.
    pub host: Option<String>,
}

/// What the web layer may ask of the run.
#[derive(Debug)]
pub enum Command {
    /// The current numbers, for `/stats/requests`.
    Snapshot(oneshot::Sender<Snapshot>),
    /// The per-second series of the run, for charts and the report.
    History(oneshot::Sender<Vec<Point>>),
    /// Starts a test, or changes the users and rate of the running one; the reply says which,
    /// or why not.
    Swarm(Swarm, oneshot::Sender<Result<String, SwarmError>>),
    /// Stops the running test (the master keeps serving).
    Stop,
    ResetStats,
    /// Ends the run loop (after stopping a running test).
    Quit,
}

/// Why a swarm command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SwarmError {
    /// Users, spawn rate or run time out of bounds: the request is wrong.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// The host is not a URL a worker can use (`core::validate`): the request is wrong.
    #[error("host {host:?} {problem}")]
    Host {
        host: String,
        problem: hatchery_core::validate::HostProblem,
    },
    /// No worker to run users yet: try again later.
    #[error("no worker is connected yet")]
    NoWorkers,
    /// The previous test is still stopping: try again later.
    #[error("the test is stopping; try again in a moment")]
    Stopping,
}

/// What the loop does after a command.
#[derive(Debug)]
enum Action {
    None,
    Start(Swarm),
    Stop(StopReason),
    Quit,
}

/// A copy of the run's numbers at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub state: State,
    pub host: Option<String>,
    pub stats: Stats,
    pub window: Window,
    pub user_count: u32,
    pub workers: Vec<WorkerView>,
    pub elapsed: Duration,
}

/// The run's state in brief, published on every change (`/readyz`, `/healthz`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub state: State,
    pub workers: usize,
    pub expected: usize,
    /// The base URL tests send relative paths to (`None`: the plan's own).
    pub host: Option<String>,
}

impl Status {
    /// Whether the expected workers are connected.
    pub fn ready(&self) -> bool {
        self.workers >= self.expected
    }
}

/// The run's inputs.
#[derive(Debug)]
pub struct Inbox {
    pub events: mpsc::Receiver<FleetEvent>,
    pub commands: mpsc::Receiver<Command>,
    pub status: watch::Sender<Status>,
}

/// What an observer sees of the run.
#[derive(Debug)]
pub struct View<'a> {
    pub state: State,
    pub stats: &'a Stats,
    pub window: &'a Window,
    /// Users running per class, as the workers last reported.
    pub users: &'a [u32],
    pub class_names: &'a [String],
    pub elapsed: Duration,
    pub now_unix_s: u64,
}

impl View<'_> {
    pub fn user_count(&self) -> u32 {
        self.users.iter().sum()
    }
}

/// What happens during a run that someone may want to print or write.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Every user of the current target runs: count per class name.
    Spawned(BTreeMap<String, u32>),
    /// A shape stage began (0-based).
    Stage {
        index: usize,
        users: u32,
    },
    /// Stats were zeroed after spawning (`--reset-stats`).
    StatsReset,
    WorkerJoined {
        id: WorkerId,
        workers: usize,
    },
    WorkerLeft {
        id: WorkerId,
        reason: String,
        workers: usize,
    },
    /// A worker's CPU is above 90%: its response times are suspect.
    WorkerBusy {
        id: WorkerId,
        cpu_percent: f32,
    },
    Stopping(StopReason),
}

/// Watches a run: `tick` once a second with fresh numbers, `event` as things happen.
pub trait Observer: Send {
    fn tick(&mut self, view: &View<'_>);
    fn event(&mut self, event: &Event, view: &View<'_>);
}

impl Outcome {
    /// The final numbers as a snapshot (state stopped, no worker), for reports.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            state: State::Stopped,
            host: self.host.clone(),
            stats: self.stats.clone(),
            window: self.window.clone(),
            user_count: 0,
            workers: Vec::new(),
            elapsed: self.elapsed,
        }
    }
}

/// The result of a finished run.
#[derive(Debug)]
pub struct Outcome {
    pub stats: Stats,
    pub window: Window,
    /// One point a second of the whole run (charts, the HTML report).
    pub history: Vec<Point>,
    pub host: Option<String>,
    pub reason: StopReason,
    /// From the start of spawning (zero when the run never started).
    pub elapsed: Duration,
    /// Whether every worker confirmed that its users ended and its last report arrived.
    pub complete: bool,
}

/// Serves the run until it is over and returns the numbers of the last test. In headless mode
/// that is one test, started when the expected workers are connected and over at its deadline;
/// with a UI, tests start and stop on commands until `quit_after` or `shutdown`. `shutdown`
/// resolving stops a running test (its users get the stop timeout) and ends the loop.
pub async fn run(
    config: RunConfig,
    mut inbox: Inbox,
    observer: &mut dyn Observer,
    shutdown: impl Future<Output = ()>,
) -> Outcome {
    let now = Instant::now();
    let mut run = Run::new(config, observer, inbox.status.clone(), now);
    run.publish();
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    let config = run.config();
    let mut idle = Idle {
        autostart: config.autostart,
        gate_deadline: config
            .expect_workers_max_wait
            .filter(|_| config.autostart)
            .map(|d| now + d),
        quit_at: None,
    };
    let mut last: Option<(StopReason, bool, Duration)> = None;
    loop {
        let swarm = match idle
            .wait(&mut run, &mut inbox, &mut tick, &mut shutdown)
            .await
        {
            Ok(swarm) => swarm,
            Err(reason) => {
                let (reason, complete, elapsed) = last.unwrap_or((reason, true, Duration::ZERO));
                return run.finish(reason, complete, elapsed);
            }
        };
        let reason = drive(&mut run, swarm, &mut inbox, &mut tick, &mut shutdown).await;
        let complete = if reason == StopReason::WorkerLost {
            false
        } else {
            run.transition(Transition::Stop);
            run.emit(Event::Stopping(reason));
            stop(&mut run, &mut inbox).await
        };
        let elapsed = run.elapsed();
        run.transition(Transition::Stopped);
        run.record_point();
        last = Some((reason, complete, elapsed));
        if matches!(reason, StopReason::Interrupted | StopReason::WorkerLost) {
            return run.finish(reason, complete, elapsed);
        }
        idle.quit_at = run.config().quit_after.map(|d| Instant::now() + d);
    }
}

/// Between tests: waiting for workers, a swarm, the quit timer or the shutdown.
struct Idle {
    /// A test is to start by itself once the expected workers are here (only the first).
    autostart: bool,
    gate_deadline: Option<Instant>,
    quit_at: Option<Instant>,
}

impl Idle {
    /// The next test to run, or why the loop ends.
    async fn wait(
        &mut self,
        run: &mut Run<'_>,
        inbox: &mut Inbox,
        tick: &mut Interval,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<Swarm, StopReason> {
        loop {
            let config = run.config();
            if self.autostart && run.workers() >= config.expect_workers {
                self.autostart = false;
                return Ok(Swarm {
                    users: u64::from(config.users),
                    spawn_rate: config.spawn_rate,
                    run_time: config.run_time,
                    host: None,
                });
            }
            let gate = self.gate_deadline.filter(|_| self.autostart);
            tokio::select! {
                ev = inbox.events.recv() => match ev {
                    Some(ev) => {
                        if let Some(reason) = run.on_event(ev) {
                            return Err(reason);
                        }
                    }
                    None => return Err(StopReason::WorkerLost),
                },
                Some(cmd) = inbox.commands.recv() => match run.on_command(cmd) {
                    Action::Start(swarm) => return Ok(swarm),
                    Action::Quit => return Err(StopReason::Interrupted),
                    Action::Stop(_) | Action::None => {}
                },
                _ = tick.tick() => {
                    if let Some(reason) = run.tick() {
                        return Err(reason);
                    }
                }
                _ = sleep_until(gate.unwrap_or_else(Instant::now)), if gate.is_some() => {
                    return Err(StopReason::GateTimeout);
                }
                _ = sleep_until(self.quit_at.unwrap_or_else(Instant::now)), if self.quit_at.is_some() => {
                    return Err(StopReason::Interrupted);
                }
                _ = shutdown.as_mut() => return Err(StopReason::Interrupted),
            }
        }
    }
}

/// One test, from its first user to the moment it must stop.
async fn drive(
    run: &mut Run<'_>,
    swarm: Swarm,
    inbox: &mut Inbox,
    tick: &mut Interval,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> StopReason {
    let now = Instant::now();
    run.begin_test(now);
    let stages: Vec<(Duration, u32, f64)> = match &run.config().shape {
        Some(shape) => shape
            .stages
            .iter()
            .map(|s| (s.duration, s.users, s.spawn_rate))
            .collect(),
        // The run checked the users against --max-users, a u32.
        None => vec![(
            Duration::MAX,
            u32::try_from(swarm.users).unwrap_or(u32::MAX),
            swarm.spawn_rate,
        )],
    };
    let deadline = swarm.run_time.and_then(|t| now.checked_add(t));
    let mut stage = 0usize;
    let mut stage_end = now.checked_add(stages[0].0);
    if run.config().shape.is_some() {
        run.emit(Event::Stage {
            index: 0,
            users: stages[0].1,
        });
    }
    run.retarget(stages[0].1, stages[0].2);
    loop {
        let next_spawn = run.next_spawn();
        let stop = tokio::select! {
            _ = sleep_until(next_spawn.unwrap_or(now)), if next_spawn.is_some() => {
                run.spawn_due();
                None
            }
            ev = inbox.events.recv() => match ev {
                Some(ev) => run.on_event(ev),
                None => Some(StopReason::WorkerLost),
            },
            Some(cmd) = inbox.commands.recv() => match run.on_command(cmd) {
                Action::Stop(reason) => Some(reason),
                Action::Quit => Some(StopReason::Interrupted),
                Action::Start(_) | Action::None => None,
            },
            _ = tick.tick() => {
                run.record_point();
                run.tick()
            }
            _ = sleep_until(deadline.unwrap_or(now)), if deadline.is_some() => {
                Some(StopReason::TimeLimit)
            }
            _ = sleep_until(stage_end.unwrap_or(now)), if stage_end.is_some() => {
                stage += 1;
                match stages.get(stage) {
                    None => Some(StopReason::ShapeEnded),
                    Some(&(duration, users, rate)) => {
                        stage_end = Instant::now().checked_add(duration);
                        run.emit(Event::Stage { index: stage, users });
                        run.retarget(users, rate);
                        None
                    }
                }
            }
            _ = shutdown.as_mut() => Some(StopReason::Interrupted),
        };
        if let Some(reason) = stop {
            return reason;
        }
    }
}

/// Tells every worker to stop and merges reports until each confirms (bounded).
async fn stop(run: &mut Run<'_>, inbox: &mut Inbox) -> bool {
    let timeout = run.config().stop_timeout;
    run.stop_workers(timeout);
    let give_up = Instant::now() + timeout + FINAL_REPORT_MARGIN;
    let mut complete = true;
    while !run.all_stopped() {
        tokio::select! {
            ev = inbox.events.recv() => match ev {
                // A worker lost now takes its last report with it.
                Some(ev) => complete &= !run.on_event_while_stopping(ev),
                None => return false,
            },
            Some(cmd) = inbox.commands.recv() => { run.on_command(cmd); }
            _ = sleep_until(give_up) => return false,
        }
    }
    run.end_test();
    complete
}
