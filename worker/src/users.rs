//! The user supervisor and the worker's control loop: reconciles its users to the latest
//! assignment, reports stats deltas at a fixed interval, and stops users within the stop timeout.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hatchery_core::numbers::Numbers;
use hatchery_core::protocol::{Assignment, FromWorker, Report, ToWorker};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::MissedTickBehavior;

use crate::prepare::Prepared;
use crate::user::User;
use crate::Shared;

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The users of one worker, by class.
struct Users {
    shared: Arc<Shared>,
    /// Per class, the running users by their fleet-wide number.
    running: Vec<BTreeMap<u32, Running>>,
    /// Per class, the numbers of `running`, as the master last handed them out.
    numbers: Vec<Numbers>,
    /// Users told to stop, given until their stop timeout to finish.
    stopping: JoinSet<()>,
}

impl Users {
    fn new(shared: Arc<Shared>) -> Users {
        let classes = shared.prepared.classes.len();
        Users {
            shared,
            running: (0..classes).map(|_| BTreeMap::new()).collect(),
            numbers: vec![Numbers::new(); classes],
            stopping: JoinSet::new(),
        }
    }

    fn counts(&self) -> Vec<u32> {
        self.running.iter().map(|r| r.len() as u32).collect()
    }

    /// Runs one user per number of the assignment: stops the users whose number is gone and
    /// starts the new ones. The work is in proportion to the change: sets of ranges are compared,
    /// not the users.
    fn reconcile(&mut self, a: &Assignment) {
        self.shared.place.set(a.place);
        for class in 0..self.running.len() {
            let want = a.numbers.get(class).cloned().unwrap_or_default();
            let mut gone = self.numbers[class].clone();
            gone.remove(&want);
            let mut new = want.clone();
            new.remove(&self.numbers[class]);
            for n in gone.iter() {
                if let Some(user) = self.running[class].remove(&n) {
                    self.stop(user, a.stop_timeout);
                }
            }
            for n in new.iter() {
                self.start(class, n);
            }
            self.numbers[class] = want;
        }
    }

    fn start(&mut self, class: usize, number: u32) {
        let (stop, stopped) = watch::channel(false);
        let user = User::new(self.shared.clone(), class, u64::from(number));
        let task = tokio::spawn(user.run(stopped));
        self.running[class].insert(number, Running { stop, task });
    }

    fn stop(&mut self, user: Running, timeout: Duration) {
        let Running { stop, mut task } = user;
        if timeout.is_zero() {
            task.abort();
            // Waited for like any stopping user: the abort has dropped the user (and counted
            // its request in flight as abandoned) once this ends, before a final report.
            self.stopping.spawn(async move {
                let _ = task.await;
            });
            return;
        }
        let _ = stop.send(true);
        self.stopping.spawn(async move {
            if tokio::time::timeout(timeout, &mut task).await.is_err() {
                task.abort();
                let _ = task.await;
            }
        });
    }

    /// Points relative paths at another host; only between tests, when no user runs.
    fn set_host(&mut self, host: &str) {
        if self.running.iter().any(|r| !r.is_empty()) {
            tracing::warn!("ignored a host change while users run");
            return;
        }
        let plan = self.shared.prepared.plan.clone();
        match Prepared::new(plan, Some(host)) {
            Ok(prepared) => {
                if let Some(scripts) = &self.shared.scripts {
                    scripts.host_changed();
                }
                self.shared = Arc::new(Shared {
                    prepared,
                    recorder: self.shared.recorder.clone(),
                    connector: self.shared.connector.clone(),
                    default_timeout: self.shared.default_timeout,
                    place: self.shared.place.clone(),
                    scripts: self.shared.scripts.clone(),
                });
            }
            Err(e) => {
                let message = format!("cannot send requests to {host}: {e}");
                tracing::error!("{message}");
                self.shared.recorder.exception(&message);
            }
        }
    }

    /// Stops every user and waits until each has ended (at most `timeout`).
    async fn stop_all(&mut self, timeout: Duration) {
        for class in 0..self.running.len() {
            for (_, user) in std::mem::take(&mut self.running[class]) {
                self.stop(user, timeout);
            }
            self.numbers[class] = Numbers::new();
        }
        while self.stopping.join_next().await.is_some() {}
    }
}

/// Runs the worker until the master's side of the channel closes. Every user is stopped then.
pub(crate) async fn run(
    shared: Arc<Shared>,
    report_interval: Duration,
    mut from_master: mpsc::Receiver<ToWorker>,
    to_master: mpsc::Sender<FromWorker>,
) {
    let mut users = Users::new(shared);
    let mut seq = 0u64;
    let mut tick = tokio::time::interval(report_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let report = |seq: &mut u64, users: &Users| {
        *seq += 1;
        FromWorker::Report(Box::new(Report {
            seq: *seq,
            users: users.counts(),
            stats: users.shared.recorder.take(),
        }))
    };
    loop {
        tokio::select! {
            msg = from_master.recv() => match msg {
                Some(ToWorker::Assign(a)) => users.reconcile(&a),
                Some(ToWorker::Stop { timeout }) => {
                    users.stop_all(timeout).await;
                    if to_master.send(report(&mut seq, &users)).await.is_err()
                        || to_master.send(FromWorker::Stopped).await.is_err()
                    {
                        break;
                    }
                }
                Some(ToWorker::Quit) => break,
                Some(ToWorker::SetHost(host)) => users.set_host(&host),
                Some(ToWorker::ResetStats) => {
                    drop(users.shared.recorder.take());
                    if to_master.send(FromWorker::StatsReset).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            // Finished stops free their slots; nothing else to do with them.
            Some(_) = users.stopping.join_next(), if !users.stopping.is_empty() => {}
            _ = tick.tick() => {
                if to_master.send(report(&mut seq, &users)).await.is_err() {
                    break;
                }
            }
        }
    }
    users.stop_all(Duration::ZERO).await;
}
