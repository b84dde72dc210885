//! The user supervisor and the worker's control loop: reconciles its users to the latest
//! assignment, reports stats deltas at a fixed interval, and stops users within the stop timeout.

use std::sync::Arc;
use std::time::Duration;

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
    running: Vec<Vec<Running>>,
    /// Users told to stop, given until their stop timeout to finish.
    stopping: JoinSet<()>,
    next_id: u64,
}

impl Users {
    fn new(shared: Arc<Shared>) -> Users {
        let classes = shared.prepared.classes.len();
        Users {
            shared,
            running: (0..classes).map(|_| Vec::new()).collect(),
            stopping: JoinSet::new(),
            next_id: 0,
        }
    }

    fn counts(&self) -> Vec<u32> {
        self.running.iter().map(|r| r.len() as u32).collect()
    }

    fn reconcile(&mut self, a: &Assignment) {
        for class in 0..self.running.len() {
            let want = a.users.get(class).copied().unwrap_or(0) as usize;
            while self.running[class].len() < want {
                self.start(class);
            }
            while self.running[class].len() > want {
                // Newest first, so the longest-lived users (and their sessions) stay.
                if let Some(user) = self.running[class].pop() {
                    self.stop(user, a.stop_timeout);
                }
            }
        }
    }

    fn start(&mut self, class: usize) {
        let (stop, stopped) = watch::channel(false);
        let user = User::new(self.shared.clone(), class, self.next_id);
        self.next_id += 1;
        let task = tokio::spawn(user.run(stopped));
        self.running[class].push(Running { stop, task });
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
                self.shared = Arc::new(Shared {
                    prepared,
                    recorder: self.shared.recorder.clone(),
                    connector: self.shared.connector.clone(),
                    default_timeout: self.shared.default_timeout,
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
            for user in std::mem::take(&mut self.running[class]) {
                self.stop(user, timeout);
            }
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
