//! The run: ramps users at the spawn rate (or along a load shape), stops at the deadline or on
//! request, and merges the workers' stats deltas into the run's totals.
//!
//! The coordinator owns the timing of every user start: it sends the worker a full assignment
//! each time users are due, so the aggregate ramp follows the spawn rate exactly.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hatchery_core::apportion::{apportion, ramp, Claim, Step};
use hatchery_core::plan::Shape;
use hatchery_core::protocol::{Assignment, FromWorker, ToWorker};
use hatchery_core::stats::{Stats, Window};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant, MissedTickBehavior};

/// How to run: users and rate, or a shape; when to stop.
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Spawning,
    Running,
    Stopping,
    Stopped,
}

impl State {
    /// Locust's state names, as the API reports them.
    pub fn as_str(self) -> &'static str {
        match self {
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
    /// The worker went away.
    WorkerLost,
}

/// What an observer sees of the run.
#[derive(Debug)]
pub struct View<'a> {
    pub state: State,
    pub stats: &'a Stats,
    pub window: &'a Window,
    /// Users running per class, as the worker last reported.
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
    pub elapsed: Duration,
    /// Whether the worker confirmed that every user ended and its last report arrived.
    pub complete: bool,
}

/// Starts the ramp the moment it is created; `next_at` says when the next user is due.
#[derive(Debug)]
struct Ramp {
    steps: Vec<Step>,
    done: usize,
    started: Instant,
    rate: f64,
}

impl Ramp {
    fn new(current: &[u32], target: &[u32], rate: f64, now: Instant) -> Ramp {
        Ramp {
            steps: ramp(current, target),
            done: 0,
            started: now,
            rate,
        }
    }

    /// Steps due by `now`: the first at once, step *k* at `k / rate` seconds.
    fn due(&self, now: Instant) -> usize {
        let elapsed = now.saturating_duration_since(self.started).as_secs_f64();
        let due = (elapsed * self.rate).floor() as usize + 1;
        due.min(self.steps.len())
    }

    fn next_at(&self) -> Option<Instant> {
        (self.done < self.steps.len())
            .then(|| self.started + Duration::from_secs_f64(self.done as f64 / self.rate))
    }

    fn finished(&self) -> bool {
        self.done == self.steps.len()
    }
}

/// The coordinator's own state, separate from the loop that drives it.
struct Run<'o> {
    config: RunConfig,
    stats: Stats,
    window: Window,
    /// What the worker was told to run.
    assigned: Vec<u32>,
    /// What the worker last said it runs.
    reported: Vec<u32>,
    state: State,
    started: Instant,
    /// Reports between a reset request and its answer hold pre-reset data.
    awaiting_reset: bool,
    reset_done: bool,
    observer: &'o mut dyn Observer,
}

impl Run<'_> {
    fn tick(&mut self) {
        let view = View {
            state: self.state,
            stats: &self.stats,
            window: &self.window,
            users: &self.reported,
            class_names: &self.config.class_names,
            elapsed: self.started.elapsed(),
            now_unix_s: unix_now(),
        };
        self.observer.tick(&view);
    }

    fn emit(&mut self, event: Event) {
        let view = View {
            state: self.state,
            stats: &self.stats,
            window: &self.window,
            users: &self.reported,
            class_names: &self.config.class_names,
            elapsed: self.started.elapsed(),
            now_unix_s: unix_now(),
        };
        self.observer.event(&event, &view);
    }

    fn target(&self, users: u32) -> Vec<u32> {
        apportion(users, &self.config.claims)
    }

    fn on_message(&mut self, msg: FromWorker) {
        match msg {
            FromWorker::Report(report) => {
                self.reported = report.users;
                if !self.awaiting_reset {
                    self.window
                        .push(unix_now(), &report.stats.total().histogram);
                    self.stats.merge(&report.stats);
                }
            }
            FromWorker::StatsReset => {
                self.awaiting_reset = false;
                self.stats = Stats::new();
                self.window = Window::default();
                self.emit(Event::StatsReset);
            }
            FromWorker::Stopped => {}
        }
    }
}

/// Runs one test to its end and returns the final numbers. `shutdown` resolving stops the run
/// early (its users get the stop timeout). Returns when the worker has sent its last report, or
/// after the stop timeout plus a margin if it does not.
pub async fn run(
    config: RunConfig,
    to_worker: mpsc::Sender<ToWorker>,
    mut from_worker: mpsc::Receiver<FromWorker>,
    observer: &mut dyn Observer,
    shutdown: impl Future<Output = ()>,
) -> Outcome {
    let classes = config.claims.len();
    let now = Instant::now();
    let stages: Vec<(Duration, u32, f64)> = match &config.shape {
        Some(shape) => shape
            .stages
            .iter()
            .map(|s| (s.duration, s.users, s.spawn_rate))
            .collect(),
        None => vec![(Duration::MAX, config.users, config.spawn_rate)],
    };
    let mut run = Run {
        stats: Stats::new(),
        window: Window::default(),
        assigned: vec![0; classes],
        reported: vec![0; classes],
        state: State::Spawning,
        started: now,
        awaiting_reset: false,
        reset_done: false,
        observer,
        config,
    };
    let deadline = run.config.run_time.map(|t| now + t);
    let mut stage = 0usize;
    let mut stage_end = now.checked_add(stages[0].0);
    let first_target = run.target(stages[0].1);
    let mut ramp = Ramp::new(&run.assigned, &first_target, stages[0].2, now);
    if run.config.shape.is_some() {
        run.emit(Event::Stage {
            index: 0,
            users: stages[0].1,
        });
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    tokio::pin!(shutdown);
    let reason = loop {
        let next_spawn = ramp.next_at();
        tokio::select! {
            _ = sleep_until(next_spawn.unwrap_or(now)), if next_spawn.is_some() => {
                let due = ramp.due(Instant::now());
                for step in &ramp.steps[ramp.done..due] {
                    let n = &mut run.assigned[step.class];
                    *n = if step.start { *n + 1 } else { n.saturating_sub(1) };
                }
                ramp.done = due;
                let assignment = Assignment {
                    users: run.assigned.clone(),
                    stop_timeout: run.config.stop_timeout,
                };
                if to_worker.send(ToWorker::Assign(assignment)).await.is_err() {
                    break StopReason::WorkerLost;
                }
                if ramp.finished() {
                    run.state = State::Running;
                    let spawned = run
                        .config
                        .class_names
                        .iter()
                        .cloned()
                        .zip(run.assigned.iter().copied())
                        .collect();
                    run.emit(Event::Spawned(spawned));
                    if run.config.reset_stats && !run.reset_done {
                        run.reset_done = true;
                        run.awaiting_reset = true;
                        if to_worker.send(ToWorker::ResetStats).await.is_err() {
                            break StopReason::WorkerLost;
                        }
                    }
                }
            }
            msg = from_worker.recv() => match msg {
                Some(m) => run.on_message(m),
                None => break StopReason::WorkerLost,
            },
            _ = tick.tick() => {
                run.tick();
            }
            _ = sleep_until(deadline.unwrap_or(now)), if deadline.is_some() => {
                break StopReason::TimeLimit;
            }
            _ = sleep_until(stage_end.unwrap_or(now)), if stage_end.is_some() => {
                stage += 1;
                let Some(&(duration, users, rate)) = stages.get(stage) else {
                    break StopReason::ShapeEnded;
                };
                let now = Instant::now();
                stage_end = now.checked_add(duration);
                let target = run.target(users);
                ramp = Ramp::new(&run.assigned, &target, rate, now);
                run.state = State::Spawning;
                run.emit(Event::Stage { index: stage, users });
            }
            _ = &mut shutdown => break StopReason::Interrupted,
        }
    };
    run.state = State::Stopping;
    run.emit(Event::Stopping(reason));
    let complete = stop(&mut run, &to_worker, &mut from_worker, reason).await;
    run.state = State::Stopped;
    let elapsed = run.started.elapsed();
    Outcome {
        stats: run.stats,
        window: run.window,
        reason,
        elapsed,
        complete,
    }
}

/// Extra time past the stop timeout for the worker's last report to arrive.
const FINAL_REPORT_MARGIN: Duration = Duration::from_secs(5);

/// Tells the worker to stop and merges reports until it confirms (bounded).
async fn stop(
    run: &mut Run<'_>,
    to_worker: &mpsc::Sender<ToWorker>,
    from_worker: &mut mpsc::Receiver<FromWorker>,
    reason: StopReason,
) -> bool {
    if reason == StopReason::WorkerLost {
        return false;
    }
    let timeout = run.config.stop_timeout;
    if to_worker.send(ToWorker::Stop { timeout }).await.is_err() {
        return false;
    }
    let give_up = Instant::now() + timeout + FINAL_REPORT_MARGIN;
    loop {
        tokio::select! {
            msg = from_worker.recv() => match msg {
                Some(FromWorker::Stopped) => return true,
                Some(m) => run.on_message(m),
                None => return false,
            },
            _ = sleep_until(give_up) => return false,
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hatchery_core::protocol::Report;
    use hatchery_core::stats::Sample;
    use hatchery_core::Method;

    #[derive(Default)]
    struct Quiet {
        events: Vec<Event>,
    }

    impl Observer for Quiet {
        fn tick(&mut self, _: &View<'_>) {}
        fn event(&mut self, e: &Event, _: &View<'_>) {
            self.events.push(e.clone());
        }
    }

    fn config(users: u32, rate: f64, run_time: Duration) -> RunConfig {
        RunConfig {
            users,
            spawn_rate: rate,
            run_time: Some(run_time),
            stop_timeout: Duration::ZERO,
            shape: None,
            claims: vec![
                Claim {
                    weight: 3,
                    fixed: None,
                },
                Claim {
                    weight: 1,
                    fixed: None,
                },
            ],
            class_names: vec!["A".into(), "B".into()],
            reset_stats: false,
        }
    }

    fn stats_with(requests: u64) -> Stats {
        let mut s = Stats::new();
        for _ in 0..requests {
            s.record(
                Method::Get,
                "/a",
                Sample {
                    response_time_us: 1000,
                    content_length: 2,
                    at_unix_s: 1,
                    error: None,
                },
            );
        }
        s
    }

    /// A worker that records when each assignment arrived, reports `per_report` requests each
    /// time it is assigned, and answers a stop with a final report of `last` requests.
    async fn fake_worker(
        mut rx: mpsc::Receiver<ToWorker>,
        tx: mpsc::Sender<FromWorker>,
        per_report: u64,
        last: u64,
    ) -> Vec<(Duration, Vec<u32>)> {
        let t0 = Instant::now();
        let mut seen = Vec::new();
        let mut seq = 0;
        while let Some(msg) = rx.recv().await {
            seq += 1;
            match msg {
                ToWorker::Assign(a) => {
                    seen.push((t0.elapsed(), a.users.clone()));
                    let report = Report {
                        seq,
                        users: a.users,
                        stats: stats_with(per_report),
                    };
                    let _ = tx.send(FromWorker::Report(Box::new(report))).await;
                }
                ToWorker::Stop { .. } => {
                    let report = Report {
                        seq,
                        users: vec![0, 0],
                        stats: stats_with(last),
                    };
                    let _ = tx.send(FromWorker::Report(Box::new(report))).await;
                    let _ = tx.send(FromWorker::Stopped).await;
                }
                ToWorker::ResetStats => {
                    let _ = tx.send(FromWorker::StatsReset).await;
                }
            }
        }
        seen
    }

    #[tokio::test(start_paused = true)]
    async fn users_start_one_by_one_at_the_spawn_rate_in_weight_order() {
        let (to_worker, rx) = mpsc::channel(64);
        let (tx, from_worker) = mpsc::channel(64);
        let worker = tokio::spawn(fake_worker(rx, tx, 0, 0));
        let mut quiet = Quiet::default();
        let outcome = run(
            config(8, 4.0, Duration::from_secs(5)),
            to_worker,
            from_worker,
            &mut quiet,
            std::future::pending(),
        )
        .await;
        let seen = worker.await.unwrap();
        assert_eq!(outcome.reason, StopReason::TimeLimit);
        assert!(outcome.complete);
        assert_eq!(seen.len(), 8);
        for (k, (at, users)) in seen.iter().enumerate() {
            // User k is due k/4 s after the start; paused time makes this exact to the ms.
            let due = Duration::from_millis(250 * k as u64);
            assert!(
                at.abs_diff(due) < Duration::from_millis(2),
                "user {k} at {at:?}"
            );
            assert_eq!(users.iter().sum::<u32>(), k as u32 + 1);
        }
        assert_eq!(seen.last().unwrap().1, vec![6, 2]);
        assert!(quiet.events.contains(&Event::Spawned(
            [("A".to_string(), 6), ("B".to_string(), 2)]
                .into_iter()
                .collect()
        )));
    }

    #[tokio::test(start_paused = true)]
    async fn the_final_report_is_merged_before_the_run_returns() {
        let (to_worker, rx) = mpsc::channel(64);
        let (tx, from_worker) = mpsc::channel(64);
        tokio::spawn(fake_worker(rx, tx, 5, 7));
        let outcome = run(
            config(2, 100.0, Duration::from_secs(1)),
            to_worker,
            from_worker,
            &mut Quiet::default(),
            std::future::pending(),
        )
        .await;
        // Two assignments of 5 requests each, then the final 7.
        assert_eq!(outcome.stats.total().num_requests, 17);
    }

    #[tokio::test(start_paused = true)]
    async fn reset_stats_drops_everything_reported_before_the_reset_answer() {
        let (to_worker, rx) = mpsc::channel(64);
        let (tx, from_worker) = mpsc::channel(64);
        tokio::spawn(fake_worker(rx, tx, 5, 7));
        let mut cfg = config(2, 100.0, Duration::from_secs(1));
        cfg.reset_stats = true;
        let mut quiet = Quiet::default();
        let outcome = run(
            cfg,
            to_worker,
            from_worker,
            &mut quiet,
            std::future::pending(),
        )
        .await;
        assert_eq!(outcome.stats.total().num_requests, 7);
        assert!(quiet.events.contains(&Event::StatsReset));
    }

    #[tokio::test(start_paused = true)]
    async fn a_shutdown_signal_stops_the_run_early() {
        let (to_worker, rx) = mpsc::channel(64);
        let (tx, from_worker) = mpsc::channel(64);
        tokio::spawn(fake_worker(rx, tx, 0, 0));
        let started = Instant::now();
        let outcome = run(
            config(1, 1.0, Duration::from_secs(3600)),
            to_worker,
            from_worker,
            &mut Quiet::default(),
            tokio::time::sleep(Duration::from_secs(2)),
        )
        .await;
        assert_eq!(outcome.reason, StopReason::Interrupted);
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_vanished_worker_ends_the_run() {
        let (to_worker, rx) = mpsc::channel(64);
        let (tx, from_worker) = mpsc::channel(64);
        drop((rx, tx));
        let outcome = run(
            config(1, 1.0, Duration::from_secs(60)),
            to_worker,
            from_worker,
            &mut Quiet::default(),
            std::future::pending(),
        )
        .await;
        assert_eq!(outcome.reason, StopReason::WorkerLost);
        assert!(!outcome.complete);
    }
}
