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
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hatchery_core::apportion::{apportion, Claim};
use hatchery_core::dispatch::Change;
use hatchery_core::plan::Shape;
use hatchery_core::protocol::{FromWorker, ToWorker};
use hatchery_core::stats::{Stats, Window};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep_until, Instant, MissedTickBehavior};

use fleet::{rebalance, Fleet};
pub use fleet::{WorkerId, WorkerView};

/// How to run: users and rate, or a shape; when to start and stop; how to watch workers.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub users: u32,
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

/// What the web layer may ask of the run.
#[derive(Debug)]
pub enum Command {
    /// The current numbers, for `/stats/requests`.
    Snapshot(oneshot::Sender<Snapshot>),
    Stop,
}

/// A copy of the run's numbers at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub state: State,
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

/// The result of a finished run.
#[derive(Debug)]
pub struct Outcome {
    pub stats: Stats,
    pub window: Window,
    pub reason: StopReason,
    /// From the start of spawning (zero when the run never started).
    pub elapsed: Duration,
    /// Whether every worker confirmed that its users ended and its last report arrived.
    pub complete: bool,
}

/// Dispatch steps applied at the spawn rate: the first at once, step *k* at `k / rate` seconds.
#[derive(Debug)]
struct Ramp {
    ids: Vec<WorkerId>,
    steps: Vec<Change>,
    done: usize,
    started: Instant,
    rate: f64,
}

impl Ramp {
    fn idle(now: Instant) -> Ramp {
        Ramp {
            ids: Vec::new(),
            steps: Vec::new(),
            done: 0,
            started: now,
            rate: 1.0,
        }
    }

    fn due(&self, now: Instant) -> usize {
        let elapsed = now.saturating_duration_since(self.started).as_secs_f64();
        let due = (elapsed * self.rate).floor() as usize + 1;
        due.min(self.steps.len())
    }

    fn next_at(&self) -> Option<Instant> {
        (self.done < self.steps.len())
            .then(|| self.started + Duration::from_secs_f64(self.done as f64 / self.rate))
    }
}

/// Extra time past the stop timeout for the workers' last reports to arrive.
const FINAL_REPORT_MARGIN: Duration = Duration::from_secs(5);
/// CPU use above which a worker's numbers are suspect.
const BUSY_CPU_PERCENT: f32 = 90.0;

struct Run<'o> {
    config: RunConfig,
    stats: Stats,
    window: Window,
    fleet: Fleet,
    state: State,
    started: Option<Instant>,
    /// Users per class the run aims at now (the stage's or the whole run's).
    target: Vec<u32>,
    rate: f64,
    ramp: Ramp,
    /// Workers whose answer to a stats reset has not arrived: their reports are pre-reset.
    awaiting_reset: Vec<WorkerId>,
    reset_done: bool,
    spawned_reported: bool,
    observer: &'o mut dyn Observer,
    status: watch::Sender<Status>,
}

impl Run<'_> {
    fn with_view<R>(&mut self, f: impl FnOnce(&mut dyn Observer, &View<'_>) -> R) -> R {
        let users = self.fleet.reported_per_class();
        let view = View {
            state: self.state,
            stats: &self.stats,
            window: &self.window,
            users: &users,
            class_names: &self.config.class_names,
            elapsed: self.started.map_or(Duration::ZERO, |s| s.elapsed()),
            now_unix_s: unix_now(),
        };
        f(self.observer, &view)
    }

    fn emit(&mut self, event: Event) {
        self.with_view(|o, v| o.event(&event, v));
    }

    fn publish(&mut self) {
        let status = Status {
            state: self.state,
            workers: self.fleet.len(),
            expected: self.config.expect_workers,
        };
        self.status.send_if_modified(|s| {
            let changed = *s != status;
            *s = status;
            changed
        });
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            state: self.state,
            stats: self.stats.clone(),
            window: self.window.clone(),
            user_count: self.fleet.reported_per_class().iter().sum(),
            workers: self.fleet.views(self.state.as_str()),
            elapsed: self.started.map_or(Duration::ZERO, |s| s.elapsed()),
        }
    }

    /// Aims at `users` (apportioned to classes) at `rate`, from wherever the fleet is now.
    fn retarget(&mut self, users: u32, rate: f64) {
        self.target = apportion(users, &self.config.claims);
        self.rate = rate;
        self.spawned_reported = false;
        self.replan();
    }

    /// Recomputes the steps toward the target, e.g. after a worker joined or left.
    fn replan(&mut self) {
        let (ids, steps) = rebalance(&self.fleet, &self.target);
        self.ramp = Ramp {
            ids,
            steps,
            done: 0,
            started: Instant::now(),
            rate: self.rate,
        };
        if self.state == State::Running && !self.ramp.steps.is_empty() {
            self.state = State::Spawning;
        }
        self.publish();
        if self.ramp.steps.is_empty() {
            // Already there (workers that kept their users): settle at once.
            self.spawn_due();
        }
    }

    /// Applies the steps due now and sends the changed assignments.
    fn spawn_due(&mut self) {
        let due = self.ramp.due(Instant::now());
        for k in self.ramp.done..due {
            self.fleet.apply(&self.ramp.ids, self.ramp.steps[k]);
        }
        self.ramp.done = due;
        self.fleet.send_assignments(self.config.stop_timeout);
        if self.ramp.done == self.ramp.steps.len() && self.state == State::Spawning {
            self.state = State::Running;
            self.publish();
            if !self.spawned_reported {
                self.spawned_reported = true;
                let spawned = self
                    .config
                    .class_names
                    .iter()
                    .cloned()
                    .zip(self.target.iter().copied())
                    .collect();
                self.emit(Event::Spawned(spawned));
                if self.config.reset_stats && !self.reset_done {
                    self.reset_done = true;
                    self.stats = Stats::new();
                    self.window = Window::default();
                    self.awaiting_reset = self.fleet.members.keys().cloned().collect();
                    for id in self.fleet.broadcast(&ToWorker::ResetStats) {
                        self.awaiting_reset.retain(|w| w != &id);
                    }
                }
            }
        }
    }

    /// Handles one worker event; returns a reason to stop when the run cannot go on.
    fn on_event(&mut self, event: FleetEvent) -> Option<StopReason> {
        match event {
            FleetEvent::Joined {
                id,
                session,
                tx,
                running,
            } => {
                self.fleet.join(id.clone(), session, tx, running);
                let workers = self.fleet.len();
                self.emit(Event::WorkerJoined { id, workers });
                if self.started.is_some() && self.state != State::Stopping {
                    self.replan();
                }
                self.publish();
            }
            FleetEvent::Left {
                id,
                session,
                reason,
            } => {
                if self.fleet.session(&id) == Some(session) {
                    return self.lose(&id, reason);
                }
            }
            FleetEvent::Message { id, msg } => self.on_message(&id, msg),
        }
        None
    }

    fn lose(&mut self, id: &str, reason: String) -> Option<StopReason> {
        if !self.fleet.leave(id) {
            return None;
        }
        self.awaiting_reset.retain(|w| w != id);
        let workers = self.fleet.len();
        self.emit(Event::WorkerLeft {
            id: id.to_string(),
            reason,
            workers,
        });
        self.publish();
        if workers == 0 && self.config.end_without_workers {
            return Some(StopReason::WorkerLost);
        }
        if self.started.is_some() && self.state != State::Stopping {
            self.replan();
        }
        None
    }

    fn on_message(&mut self, id: &str, msg: FromWorker) {
        let Some(member) = self.fleet.members.get_mut(id) else {
            return;
        };
        member.missed = 0;
        match msg {
            FromWorker::Report(report) => {
                member.reported = report.users;
                if !self.awaiting_reset.iter().any(|w| w == id) {
                    self.window
                        .push(unix_now(), &report.stats.total().histogram);
                    self.stats.merge(&report.stats);
                }
            }
            FromWorker::Heartbeat(hb) => {
                member.reported = hb.users;
                member.cpu_percent = hb.cpu_percent;
                member.memory_bytes = hb.memory_bytes;
                let busy = hb.cpu_percent > BUSY_CPU_PERCENT && !member.warned_cpu;
                if busy {
                    member.warned_cpu = true;
                    self.emit(Event::WorkerBusy {
                        id: id.to_string(),
                        cpu_percent: hb.cpu_percent,
                    });
                }
            }
            FromWorker::StatsReset => {
                self.awaiting_reset.retain(|w| w != id);
                if self.awaiting_reset.is_empty() {
                    self.emit(Event::StatsReset);
                }
            }
            FromWorker::Stopped => member.stopped = true,
        }
    }

    fn on_command(&mut self, cmd: Command) -> Option<StopReason> {
        match cmd {
            Command::Snapshot(reply) => {
                let _ = reply.send(self.snapshot());
                None
            }
            Command::Stop => Some(StopReason::Interrupted),
        }
    }

    /// Once a second: the observer's tick and the liveness count.
    fn tick(&mut self) -> Option<StopReason> {
        self.with_view(|o, v| o.tick(v));
        let liveness = self.config.heartbeat_liveness?;
        for id in self.fleet.miss_heartbeats(liveness) {
            let reason = format!("missed {liveness} heartbeats");
            if let Some(stop) = self.lose(&id, reason) {
                return Some(stop);
            }
        }
        // A queue that was full last time may have room now.
        self.fleet.send_assignments(self.config.stop_timeout);
        None
    }
}

/// Runs one test to its end and returns the final numbers. `shutdown` resolving stops the run
/// early (its users get the stop timeout). Returns when every worker has sent its last report,
/// or after the stop timeout plus a margin if one does not.
pub async fn run(
    config: RunConfig,
    mut inbox: Inbox,
    observer: &mut dyn Observer,
    shutdown: impl Future<Output = ()>,
) -> Outcome {
    let classes = config.claims.len();
    let now = Instant::now();
    let mut run = Run {
        stats: Stats::new(),
        window: Window::default(),
        fleet: Fleet::new(classes),
        state: State::Ready,
        started: None,
        target: vec![0; classes],
        rate: config.spawn_rate,
        ramp: Ramp::idle(now),
        awaiting_reset: Vec::new(),
        reset_done: false,
        spawned_reported: false,
        observer,
        status: inbox.status.clone(),
        config,
    };
    run.publish();
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    let reason = match gate(&mut run, &mut inbox, &mut tick, &mut shutdown).await {
        Some(reason) => reason,
        None => drive(&mut run, &mut inbox, &mut tick, &mut shutdown).await,
    };
    let complete = if reason == StopReason::WorkerLost {
        false
    } else if run.started.is_some() {
        run.state = State::Stopping;
        run.publish();
        run.emit(Event::Stopping(reason));
        stop(&mut run, &mut inbox).await
    } else {
        true
    };
    run.state = State::Stopped;
    run.publish();
    let _ = run.fleet.broadcast(&ToWorker::Quit);
    Outcome {
        elapsed: run.started.map_or(Duration::ZERO, |s| s.elapsed()),
        stats: run.stats,
        window: run.window,
        reason,
        complete,
    }
}

/// Waits for the expected workers; `None` when the run may start.
async fn gate(
    run: &mut Run<'_>,
    inbox: &mut Inbox,
    tick: &mut tokio::time::Interval,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Option<StopReason> {
    let give_up = run
        .config
        .expect_workers_max_wait
        .map(|d| Instant::now() + d);
    while run.fleet.len() < run.config.expect_workers {
        tokio::select! {
            ev = inbox.events.recv() => match ev {
                Some(ev) => { run.on_event(ev); }
                None => return Some(StopReason::WorkerLost),
            },
            Some(cmd) = inbox.commands.recv() => {
                if let Some(r) = run.on_command(cmd) { return Some(r); }
            }
            _ = tick.tick() => { run.with_view(|o, v| o.tick(v)); }
            _ = sleep_until(give_up.unwrap_or_else(Instant::now)), if give_up.is_some() => {
                return Some(StopReason::GateTimeout);
            }
            _ = shutdown.as_mut() => return Some(StopReason::Interrupted),
        }
    }
    None
}

/// From the first user to the moment the run must stop.
async fn drive(
    run: &mut Run<'_>,
    inbox: &mut Inbox,
    tick: &mut tokio::time::Interval,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> StopReason {
    let now = Instant::now();
    run.started = Some(now);
    run.state = State::Spawning;
    let stages: Vec<(Duration, u32, f64)> = match &run.config.shape {
        Some(shape) => shape
            .stages
            .iter()
            .map(|s| (s.duration, s.users, s.spawn_rate))
            .collect(),
        None => vec![(Duration::MAX, run.config.users, run.config.spawn_rate)],
    };
    let deadline = run.config.run_time.map(|t| now + t);
    let mut stage = 0usize;
    let mut stage_end = now.checked_add(stages[0].0);
    if run.config.shape.is_some() {
        run.emit(Event::Stage {
            index: 0,
            users: stages[0].1,
        });
    }
    run.retarget(stages[0].1, stages[0].2);
    loop {
        let next_spawn = run.ramp.next_at();
        let stop = tokio::select! {
            _ = sleep_until(next_spawn.unwrap_or(now)), if next_spawn.is_some() => {
                run.spawn_due();
                None
            }
            ev = inbox.events.recv() => match ev {
                Some(ev) => run.on_event(ev),
                None => Some(StopReason::WorkerLost),
            },
            Some(cmd) = inbox.commands.recv() => run.on_command(cmd),
            _ = tick.tick() => run.tick(),
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
    let timeout = run.config.stop_timeout;
    for id in run.fleet.broadcast(&ToWorker::Stop { timeout }) {
        run.lose(&id, "session closed".to_string());
    }
    let give_up = Instant::now() + timeout + FINAL_REPORT_MARGIN;
    let mut complete = true;
    while !run.fleet.all_stopped() {
        tokio::select! {
            ev = inbox.events.recv() => match ev {
                // A worker joining now has no users of this run.
                Some(FleetEvent::Joined { .. }) => {}
                // Its last report is lost with it.
                Some(FleetEvent::Left { id, session, reason }) => {
                    if run.fleet.session(&id) == Some(session) {
                        complete = false;
                        run.lose(&id, reason);
                    }
                }
                Some(ev) => { run.on_event(ev); }
                None => return false,
            },
            Some(cmd) = inbox.commands.recv() => { run.on_command(cmd); }
            _ = sleep_until(give_up) => return false,
        }
    }
    complete
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
