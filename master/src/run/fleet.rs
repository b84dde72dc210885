//! The workers taking part in a run, what each was told to run, and what each says it runs.

use std::collections::BTreeMap;

use hatchery_core::dispatch::{self, Assignment, Schedule};
use hatchery_core::protocol::{self, ToWorker};
use tokio::sync::mpsc;

/// A worker's name, stable across its reconnects.
pub type WorkerId = String;

/// What the fleet knows of one worker, for views and the API.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerView {
    pub id: WorkerId,
    pub state: &'static str,
    pub users: u32,
    pub cpu_percent: f32,
    pub memory_bytes: u64,
}

#[derive(Debug)]
pub(super) struct Member {
    tx: mpsc::Sender<ToWorker>,
    session: u64,
    /// What the dispatch wants this worker to run.
    pub assigned: Vec<u32>,
    /// What it was last told to run (the gate holds starts back until stops are confirmed).
    sent: Vec<u32>,
    pub reported: Vec<u32>,
    /// Heartbeat intervals since the worker was last heard from.
    pub missed: u32,
    pub stopped: bool,
    /// An assignment could not be queued (the session was full): send it again next tick.
    unsent: bool,
    pub cpu_percent: f32,
    pub memory_bytes: u64,
    pub warned_cpu: bool,
}

#[derive(Debug)]
pub(super) struct Fleet {
    classes: usize,
    pub members: BTreeMap<WorkerId, Member>,
}

impl Fleet {
    pub fn new(classes: usize) -> Fleet {
        Fleet {
            classes,
            members: BTreeMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Adds a worker. A worker that reconnects before its old session was noticed keeps its
    /// assignment (sent again on the new session), so its users are neither doubled nor lost.
    /// A new member starts from the users it already runs (`running`, per class), if any.
    pub fn join(
        &mut self,
        id: WorkerId,
        session: u64,
        tx: mpsc::Sender<ToWorker>,
        running: Vec<u32>,
    ) {
        if let Some(m) = self.members.get_mut(&id) {
            m.tx = tx;
            m.session = session;
            m.missed = 0;
            m.unsent = true;
            return;
        }
        let running = if running.len() == self.classes {
            running
        } else {
            vec![0; self.classes]
        };
        let member = Member {
            tx,
            session,
            assigned: running.clone(),
            sent: running.clone(),
            reported: running,
            missed: 0,
            stopped: false,
            unsent: false,
            cpu_percent: 0.0,
            memory_bytes: 0,
            warned_cpu: false,
        };
        self.members.insert(id, member);
    }

    /// The current session of a worker.
    pub fn session(&self, id: &str) -> Option<u64> {
        self.members.get(id).map(|m| m.session)
    }

    pub fn leave(&mut self, id: &str) -> bool {
        self.members.remove(id).is_some()
    }

    /// Current assignment in member order (sorted by id) and the ids in that order.
    pub fn assignment(&self) -> (Vec<WorkerId>, Assignment) {
        self.members
            .iter()
            .map(|(id, m)| (id.clone(), m.assigned.clone()))
            .unzip()
    }

    /// Takes `rows` (in the order of `ids`) as what the workers should run; a worker that left
    /// meanwhile is skipped.
    pub fn assign(&mut self, ids: &[WorkerId], rows: Assignment) {
        for (id, row) in ids.iter().zip(rows) {
            if let Some(m) = self.members.get_mut(id) {
                m.assigned = row;
            }
        }
    }

    /// Sends every changed assignment, as far as the gate lets it: the users the workers may
    /// be running never exceed `limit` per class, so a user moving between workers stops before
    /// it starts again. A full session queue keeps it pending for the next call. Returns whether
    /// a start is held back (a report will let it through).
    pub fn send_assignments(&mut self, stop_timeout: std::time::Duration, limit: &[u32]) -> bool {
        let rows = |f: fn(&Member) -> &Vec<u32>| -> Assignment {
            self.members.values().map(|m| f(m).clone()).collect()
        };
        let allowed = dispatch::gate(
            &rows(|m| &m.sent),
            &rows(|m| &m.reported),
            &rows(|m| &m.assigned),
            limit,
        );
        let mut held = false;
        for (m, row) in self.members.values_mut().zip(allowed) {
            held |= row != m.assigned;
            if row != m.sent {
                m.sent = row;
                m.unsent = true;
            }
            if m.unsent {
                let a = protocol::Assignment {
                    users: m.sent.clone(),
                    stop_timeout,
                };
                m.unsent = m.tx.try_send(ToWorker::Assign(a)).is_err();
            }
        }
        held
    }

    /// Every worker is to confirm that its users stopped.
    pub fn expect_stopped(&mut self) {
        self.members.values_mut().for_each(|m| m.stopped = false);
    }

    /// Marks a worker as holding no user of this test (it joined while the test stopped).
    pub fn mark_stopped(&mut self, id: &str) {
        if let Some(m) = self.members.get_mut(id) {
            m.stopped = true;
        }
    }

    /// After a test: every worker runs nothing.
    pub fn clear_users(&mut self) {
        for m in self.members.values_mut() {
            for row in [&mut m.assigned, &mut m.sent, &mut m.reported] {
                row.iter_mut().for_each(|n| *n = 0);
            }
        }
    }

    /// Sends a message to every worker; returns the ids whose session is gone.
    pub fn broadcast(&mut self, msg: &ToWorker) -> Vec<WorkerId> {
        let mut gone = Vec::new();
        for (id, m) in &self.members {
            if let Err(mpsc::error::TrySendError::Closed(_)) = m.tx.try_send(msg.clone()) {
                gone.push(id.clone());
            }
        }
        gone
    }

    pub fn reported_per_class(&self) -> Vec<u32> {
        let mut out = vec![0; self.classes];
        for m in self.members.values() {
            for (o, r) in out.iter_mut().zip(&m.reported) {
                *o += r;
            }
        }
        out
    }

    pub fn all_stopped(&self) -> bool {
        self.members.values().all(|m| m.stopped)
    }

    /// Counts a heartbeat interval for everyone; returns the ids past `liveness` misses.
    pub fn miss_heartbeats(&mut self, liveness: u32) -> Vec<WorkerId> {
        self.members
            .iter_mut()
            .filter_map(|(id, m)| {
                m.missed += 1;
                (m.missed > liveness).then(|| id.clone())
            })
            .collect()
    }

    pub fn views(&self, state: &'static str) -> Vec<WorkerView> {
        self.members
            .iter()
            .map(|(id, m)| WorkerView {
                id: id.clone(),
                state: if m.stopped { "stopped" } else { state },
                users: m.reported.iter().sum(),
                cpu_percent: m.cpu_percent,
                memory_bytes: m.memory_bytes,
            })
            .collect()
    }
}

/// The assignment that spreads `per_class` over the fleet, and the way to it from the current one.
pub(super) fn rebalance(fleet: &Fleet, per_class: &[u32]) -> (Vec<WorkerId>, Schedule) {
    let (ids, current) = fleet.assignment();
    let target = dispatch::rebalance(&current, per_class);
    (ids, Schedule::new(current, target))
}
