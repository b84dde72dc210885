//! Messages between the run coordinator (the master) and a worker.
//!
//! The worker is told a full target (users per class) and reconciles its users to it at once, so
//! the master alone owns the ramp's timing and a lost or repeated message is repaired by the next
//! one. Stats travel as sequence-numbered deltas.

use std::time::Duration;

use crate::numbers::Numbers;
use crate::stats::Stats;

/// The users a worker must run, per class (indexed like `Plan::users`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub users: Vec<u32>,
    /// Per class, the fleet-wide numbers of those users (`users[c]` numbers each): the worker
    /// runs one user per number, stops the users whose number is gone, starts the new ones.
    pub numbers: Vec<Numbers>,
    /// How long a stopped user may take to finish its current task and `on_stop`.
    pub stop_timeout: Duration,
    /// This worker's place in the fleet (`{{ worker.index }}`, `{{ worker.count }}`).
    pub place: Place,
}

/// A worker's place in the fleet: index `0 .. count`, kept while the worker stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub index: u32,
    pub count: u32,
}

impl Default for Place {
    /// A worker on its own.
    fn default() -> Self {
        Place { index: 0, count: 1 }
    }
}

impl Assignment {
    pub fn total(&self) -> u32 {
        self.users.iter().sum()
    }
}

/// Master -> worker.
#[derive(Debug, Clone)]
pub enum ToWorker {
    /// Boxed: an assignment is 64 bytes and the others at most 24, and every slot of a
    /// session's queue (a block of 32 per channel) is as large as the largest variant.
    Assign(Box<Assignment>),
    /// Stop every user (each may finish its task within `timeout`), send the final report, then
    /// [`FromWorker::Stopped`].
    Stop { timeout: Duration },
    /// Drop what was recorded and not yet reported.
    ResetStats,
    /// The run is over: stop every user at once and exit.
    Quit,
    /// Between tests: relative paths go to this base URL from now on.
    SetHost(String),
}

/// Worker -> master.
#[derive(Debug, Clone)]
pub enum FromWorker {
    /// Stats recorded since the previous report.
    Report(Box<Report>),
    /// Every user has ended and the last report was sent.
    Stopped,
    /// Answers [`ToWorker::ResetStats`]: reports after this one start from zero.
    StatsReset,
    Heartbeat(Heartbeat),
}

/// A worker's vital signs, every heartbeat interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    /// Users running, per class.
    pub users: Vec<u32>,
    /// Process CPU use since the previous heartbeat, in percent of one core.
    pub cpu_percent: f32,
    pub memory_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Report {
    /// 1, 2, 3, ... per worker session; lets the master count each delta exactly once.
    pub seq: u64,
    /// Users running when the report was cut, per class.
    pub users: Vec<u32>,
    pub stats: Stats,
}
