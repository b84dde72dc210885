//! The coordinator's state and what it does with each input, apart from the loop that feeds it.

use std::time::Duration;

use hatchery_core::apportion::apportion;
use hatchery_core::dispatch::Schedule;
use hatchery_core::limits;
use hatchery_core::protocol::{FromWorker, ToWorker};
use hatchery_core::stats::{Stats, Window};
use tokio::sync::watch;
use tokio::time::Instant;

use super::fleet::{rebalance, Fleet, WorkerId};
use super::history::{History, Point};
use super::{
    unix_now, Action, Command, Event, FleetEvent, Observer, Outcome, RunConfig, Snapshot, State,
    Status, StopReason, Swarm, SwarmError, Transition, View,
};

/// The shortest time between two applications of a ramp's steps. Above 100 users a second the
/// users due start in batches, at most one `Assign` per worker per interval: at 2.5 million
/// users a second, 1000 workers would otherwise be sent a million assignments a second, which
/// no session drains (their queues then hold the master's memory). Locust dispatches once a
/// second.
pub(super) const MIN_STEP_INTERVAL: Duration = Duration::from_millis(10);
/// A larger fleet waits longer between applications, so that the whole fleet is sent about
/// 10,000 `Assign`s a second at most (1,000 workers: every 100 ms), whatever the rate: the
/// master's memory then follows its workers, not the message traffic of a fast ramp.
const STEP_INTERVAL_PER_WORKER: Duration = Duration::from_micros(100);
const MAX_STEP_INTERVAL: Duration = Duration::from_millis(100);

/// The shortest time between two applications of a ramp's steps across `workers` workers.
pub(super) fn step_interval(workers: usize) -> Duration {
    STEP_INTERVAL_PER_WORKER
        .saturating_mul(u32::try_from(workers).unwrap_or(u32::MAX))
        .clamp(MIN_STEP_INTERVAL, MAX_STEP_INTERVAL)
}

/// A dispatch schedule applied at the spawn rate: the first step at once, step *k* at
/// `k / rate` seconds (or with the steps due within [`MIN_STEP_INTERVAL`] of the last ones).
#[derive(Debug)]
pub(super) struct Ramp {
    ids: Vec<WorkerId>,
    schedule: Schedule,
    started: Instant,
    rate: f64,
    /// When steps were last applied.
    applied: Option<Instant>,
}

impl Ramp {
    pub(super) fn idle(now: Instant) -> Ramp {
        Ramp {
            ids: Vec::new(),
            schedule: Schedule::new(Vec::new(), Vec::new()),
            started: now,
            rate: 1.0,
            applied: None,
        }
    }

    pub(super) fn due(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.started).as_secs_f64();
        // Saturates: a float past u64::MAX converts to u64::MAX.
        let due = ((elapsed * self.rate).floor() as u64).saturating_add(1);
        due.min(self.schedule.len())
    }

    pub(super) fn next_at(&self) -> Option<Instant> {
        let done = self.schedule.done();
        let due = (!self.schedule.is_finished())
            .then(|| self.started + Duration::from_secs_f64(done as f64 / self.rate))?;
        Some(match self.applied {
            Some(at) => due.max(at + step_interval(self.ids.len())),
            None => due,
        })
    }
}

/// Extra time past the stop timeout for the workers' last reports to arrive.
pub(super) const FINAL_REPORT_MARGIN: Duration = Duration::from_secs(5);
/// CPU use above which a worker's numbers are suspect.
const BUSY_CPU_PERCENT: f32 = 90.0;

pub(super) struct Run<'o> {
    config: RunConfig,
    stats: Stats,
    window: Window,
    fleet: Fleet,
    /// Changed by [`Run::transition`] only.
    state: State,
    started: Option<Instant>,
    /// Users per class the run aims at now (the stage's or the whole run's).
    target: Vec<u32>,
    rate: f64,
    ramp: Ramp,
    /// A start is held back until a stop is confirmed: the next report may let it through.
    held: bool,
    /// Workers whose answer to a stats reset has not arrived: their reports are pre-reset.
    awaiting_reset: Vec<WorkerId>,
    reset_done: bool,
    spawned_reported: bool,
    observer: &'o mut dyn Observer,
    /// One point a second while a test runs, for charts and the HTML report.
    history: History,
    host: Option<String>,
    status: watch::Sender<Status>,
}

impl<'o> Run<'o> {
    pub(super) fn new(
        config: RunConfig,
        observer: &'o mut dyn Observer,
        status: watch::Sender<Status>,
        now: Instant,
    ) -> Run<'o> {
        let classes = config.claims.len();
        Run {
            stats: Stats::new(),
            window: Window::default(),
            fleet: Fleet::new(classes),
            state: State::Ready,
            started: None,
            target: vec![0; classes],
            rate: config.spawn_rate,
            ramp: Ramp::idle(now),
            held: false,
            awaiting_reset: Vec::new(),
            reset_done: false,
            spawned_reported: false,
            observer,
            history: History::default(),
            host: config.host.clone(),
            status,
            config,
        }
    }

    /// The one place the run's state changes ([`State::after`]); observers see each change.
    pub(super) fn config(&self) -> &RunConfig {
        &self.config
    }

    /// Workers in the fleet now.
    pub(super) fn workers(&self) -> usize {
        self.fleet.len()
    }

    /// A test starts now: from zero statistics if one ran before, as in Locust.
    pub(super) fn begin_test(&mut self, now: Instant) {
        if self.started.is_some() {
            self.stats = Stats::new();
            self.window = Window::default();
        }
        self.started = Some(now);
        self.reset_done = false;
        self.transition(Transition::Start);
    }

    /// When the ramp's next user is due, if any is still to start.
    pub(super) fn next_spawn(&self) -> Option<Instant> {
        self.ramp.next_at()
    }

    /// Time since the current (or last) test started.
    pub(super) fn elapsed(&self) -> Duration {
        self.started.map_or(Duration::ZERO, |s| s.elapsed())
    }

    /// Tells every worker to stop its users within `timeout`; a worker whose session is gone
    /// is lost.
    pub(super) fn stop_workers(&mut self, timeout: Duration) {
        self.fleet.expect_stopped();
        for id in self.fleet.broadcast(&ToWorker::Stop { timeout }) {
            self.lose(&id, "session closed".to_string());
        }
    }

    /// Whether every worker confirmed that its users stopped.
    pub(super) fn all_stopped(&self) -> bool {
        self.fleet.all_stopped()
    }

    /// Handles an event while the workers stop: a worker joining now has no users of this test
    /// (nothing to wait for). Returns whether a worker was lost with its last report.
    pub(super) fn on_event_while_stopping(&mut self, event: FleetEvent) -> bool {
        match event {
            FleetEvent::Joined { ref id, .. } => {
                let id = id.clone();
                self.on_event(event);
                self.fleet.mark_stopped(&id);
                false
            }
            FleetEvent::Left {
                id,
                session,
                reason,
            } => {
                let current = self.fleet.session(&id) == Some(session);
                if current {
                    self.lose(&id, reason);
                }
                current
            }
            event => {
                self.on_event(event);
                false
            }
        }
    }

    /// After a test: stopped workers hold no users, the next test starts every one again.
    pub(super) fn end_test(&mut self) {
        self.fleet.clear_users();
    }

    /// The run is over: every worker quits, and the numbers of the last test are the outcome.
    pub(super) fn finish(
        mut self,
        reason: StopReason,
        complete: bool,
        elapsed: Duration,
    ) -> Outcome {
        self.transition(Transition::Stopped);
        let _ = self.fleet.broadcast(&ToWorker::Quit);
        Outcome {
            elapsed,
            history: self.history.points().to_vec(),
            host: self.host,
            stats: self.stats,
            window: self.window,
            reason,
            complete,
        }
    }

    pub(super) fn transition(&mut self, t: Transition) {
        let next = self.state.after(t);
        if next != self.state {
            self.state = next;
            self.publish();
        }
    }
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

    pub(super) fn emit(&mut self, event: Event) {
        self.with_view(|o, v| o.event(&event, v));
    }

    pub(super) fn publish(&mut self) {
        let status = Status {
            state: self.state,
            workers: self.fleet.len(),
            expected: self.config.expect_workers,
            host: self.host.clone(),
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
            host: self.host.clone(),
            stats: self.stats.clone(),
            window: self.window.clone(),
            user_count: self.fleet.reported_per_class().iter().sum(),
            workers: self.fleet.views(self.state.as_str()),
            elapsed: self.started.map_or(Duration::ZERO, |s| s.elapsed()),
        }
    }

    /// Aims at `users` (apportioned to classes) at `rate`, from wherever the fleet is now.
    pub(super) fn retarget(&mut self, users: u32, rate: f64) {
        self.target = apportion(users, &self.config.claims);
        self.rate = rate;
        self.spawned_reported = false;
        self.replan();
    }

    /// Recomputes the steps toward the target, e.g. after a worker joined or left.
    fn replan(&mut self) {
        let (ids, schedule) = rebalance(&self.fleet, &self.target);
        self.fleet.reserve(&ids, schedule.target());
        self.ramp = Ramp {
            ids,
            schedule,
            started: Instant::now(),
            rate: self.rate,
            applied: None,
        };
        if !self.ramp.schedule.is_empty() {
            self.transition(Transition::Replan);
        }
        self.publish();
        if self.ramp.schedule.is_empty() {
            // Already there (workers that kept their users): settle at once.
            self.spawn_due();
        }
    }

    /// Applies the steps due now and sends the changed assignments.
    pub(super) fn spawn_due(&mut self) {
        let now = Instant::now();
        let due = self.ramp.due(now);
        if due > self.ramp.schedule.done() {
            self.ramp.applied = Some(now);
            self.ramp.schedule.advance_to(due);
            self.fleet
                .assign(&self.ramp.ids, self.ramp.schedule.assignment());
        }
        self.send_assignments();
        if self.ramp.schedule.is_finished() && self.state == State::Spawning {
            self.transition(Transition::Spawned);
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
                    self.reset_stats();
                }
            }
        }
    }

    /// Sends what the gate lets through toward the target.
    fn send_assignments(&mut self) {
        self.held = self
            .fleet
            .send_assignments(self.config.stop_timeout, &self.target);
    }

    /// Handles one worker event; returns a reason to stop when the run cannot go on.
    pub(super) fn on_event(&mut self, event: FleetEvent) -> Option<StopReason> {
        match event {
            FleetEvent::Joined {
                id,
                session,
                tx,
                running,
                numbers,
            } => {
                self.fleet.join(id.clone(), session, tx, running, numbers);
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
        let users = match msg {
            FromWorker::Report(report) => {
                if !self.awaiting_reset.iter().any(|w| w == id) {
                    self.window
                        .push(unix_now(), &report.stats.total().histogram);
                    self.stats.merge(&report.stats);
                }
                Some(report.users)
            }
            FromWorker::Heartbeat(hb) => {
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
                Some(hb.users)
            }
            FromWorker::StatsReset => {
                self.awaiting_reset.retain(|w| w != id);
                if self.awaiting_reset.is_empty() {
                    self.emit(Event::StatsReset);
                }
                None
            }
            FromWorker::Stopped => {
                member.stopped = true;
                None
            }
        };
        if let Some(users) = users {
            self.fleet.reported(id, users);
        }
        // A confirmed stop may make room for a start held back.
        if self.held {
            self.send_assignments();
        }
    }

    /// Handles a command from the web layer; says what the loop must do.
    pub(super) fn on_command(&mut self, cmd: Command) -> Action {
        match cmd {
            Command::Snapshot(reply) => {
                let _ = reply.send(self.snapshot());
            }
            Command::History(reply) => {
                let _ = reply.send(self.history.points().to_vec());
            }
            Command::ResetStats => self.reset_stats(),
            Command::Stop => {
                if matches!(self.state, State::Spawning | State::Running) {
                    return Action::Stop(StopReason::Requested);
                }
            }
            Command::Quit => return Action::Quit,
            Command::Swarm(swarm, reply) => match self.swarm(&swarm) {
                Ok((message, start)) => {
                    let _ = reply.send(Ok(message));
                    if start {
                        return Action::Start(swarm);
                    }
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
        }
        Action::None
    }

    /// Checks a swarm command and retargets a running test; says whether a test is to start.
    fn swarm(&mut self, swarm: &Swarm) -> Result<(String, bool), SwarmError> {
        limits::check_users(swarm.users, self.config.max_users)?;
        limits::check_spawn_rate(swarm.spawn_rate)?;
        if let Some(t) = swarm.run_time {
            limits::check_run_time(t)?;
        }
        let users = u32::try_from(swarm.users).unwrap_or(u32::MAX);
        if self.fleet.len() == 0 {
            return Err(SwarmError::NoWorkers);
        }
        match self.state {
            State::Spawning | State::Running => {
                self.retarget(users, swarm.spawn_rate);
                Ok((format!("Swarming: {users} users"), false))
            }
            State::Stopping => Err(SwarmError::Stopping),
            State::Ready | State::Stopped => {
                self.set_host(swarm.host.as_deref())?;
                Ok((format!("Swarming started: {users} users"), true))
            }
        }
    }

    /// Points the workers at another host (between tests).
    fn set_host(&mut self, host: Option<&str>) -> Result<(), SwarmError> {
        let Some(host) = host.map(str::trim).filter(|h| !h.is_empty()) else {
            return Ok(());
        };
        if Some(host) == self.host.as_deref() {
            return Ok(());
        }
        if let Err(problem) = hatchery_core::validate::host_url(host) {
            return Err(SwarmError::Host {
                host: host.to_string(),
                problem,
            });
        }
        self.host = Some(host.to_string());
        self.fleet.broadcast(&ToWorker::SetHost(host.to_string()));
        self.publish();
        Ok(())
    }

    /// Zeroes the statistics; reports the workers cut before they saw the reset are dropped.
    fn reset_stats(&mut self) {
        self.stats = Stats::new();
        self.window = Window::default();
        self.awaiting_reset = self.fleet.members.keys().cloned().collect();
        for id in self.fleet.broadcast(&ToWorker::ResetStats) {
            self.awaiting_reset.retain(|w| w != &id);
        }
        if self.awaiting_reset.is_empty() {
            self.emit(Event::StatsReset);
        }
    }

    /// Appends this second's aggregate to the history.
    pub(super) fn record_point(&mut self) {
        let now = unix_now();
        let total = self.stats.total();
        let q = self.window.quantiles(now, &[0.5, 0.95]).unwrap_or_default();
        let ms = |i: usize| q.get(i).map_or(0.0, |&us| us as f64 / 1000.0);
        self.history.push(Point {
            time: now,
            user_count: self.fleet.reported_per_class().iter().sum(),
            current_rps: total.current_rps(now),
            current_fail_per_sec: total.current_fail_per_sec(now),
            p50_ms: ms(0),
            p95_ms: ms(1),
        });
    }

    /// Once a second: the observer's tick and the liveness count.
    pub(super) fn tick(&mut self) -> Option<StopReason> {
        self.with_view(|o, v| o.tick(v));
        let liveness = self.config.heartbeat_liveness?;
        for id in self.fleet.miss_heartbeats(liveness) {
            let reason = format!("missed {liveness} heartbeats");
            if let Some(stop) = self.lose(&id, reason) {
                return Some(stop);
            }
        }
        // A queue that was full last time may have room now.
        self.send_assignments();
        None
    }
}

#[cfg(test)]
mod step_tests {
    use super::*;

    #[test]
    fn the_step_interval_grows_with_the_fleet_from_10_to_100_ms() {
        let ms = |w| step_interval(w).as_millis();
        assert_eq!(
            [ms(0), ms(1), ms(100), ms(500), ms(1000), ms(100_000)],
            [10, 10, 10, 50, 100, 100]
        );
    }
}
