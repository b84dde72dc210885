//! The workers taking part in a run, what each was told to run, and what each says it runs.

use std::collections::BTreeMap;

use hatchery_core::dispatch::{self, Assignment, Schedule};
use hatchery_core::numbers::Numbers;
use hatchery_core::protocol::{self, Place, ToWorker};
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
    /// Per class, the fleet-wide numbers of the users it was told to run (`sent[c]` each).
    numbers: Vec<Numbers>,
    /// Per class, numbers taken from it whose users may still run: free again once it reports
    /// no more users of the class than it was told.
    releasing: Vec<Numbers>,
    /// Per class, numbers set aside for the users it is still to start on the way to `target`:
    /// a ramp's users take one block per worker instead of every worker's numbers
    /// interleaving (one range each), so an `Assign` stays a few ranges long.
    reserved: Vec<Numbers>,
    /// Per class, the users it is to run once the current schedule is done.
    target: Vec<u32>,
    /// Its place in the fleet, kept while it stays; and the fleet size it was last told.
    index: u32,
    told_count: u32,
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
    /// Every user number some worker holds (told to run, or still stopping): the rest are free,
    /// handed out lowest first.
    taken: Numbers,
}

impl Fleet {
    pub fn new(classes: usize) -> Fleet {
        Fleet {
            classes,
            members: BTreeMap::new(),
            taken: Numbers::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Adds a worker. A worker that reconnects before its old session was noticed keeps its
    /// assignment (sent again on the new session), so its users are neither doubled nor lost.
    /// A new member starts from the users it already runs (`running`, per class, with their
    /// `numbers` if it said), if any: it keeps the numbers no other worker holds, and is told
    /// new ones for the rest.
    pub fn join(
        &mut self,
        id: WorkerId,
        session: u64,
        tx: mpsc::Sender<ToWorker>,
        running: Vec<u32>,
        numbers: Option<Vec<Numbers>>,
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
        let said = numbers.filter(|n| n.len() == self.classes);
        let mut renumbered = false;
        let numbers = (0..self.classes)
            .map(|c| {
                let mut mine = said.as_ref().map(|n| n[c].clone()).unwrap_or_default();
                mine.remove(&self.taken);
                self.taken.extend(&mine);
                let missing = u64::from(running[c]).saturating_sub(mine.len());
                if missing > 0 {
                    renumbered = true;
                    mine.extend(&self.taken.take_lowest_free(missing));
                }
                renumbered |= said.as_ref().is_some_and(|n| n[c] != mine);
                mine
            })
            .collect();
        let index = (0..)
            .find(|i| self.members.values().all(|m| m.index != *i))
            .unwrap_or_default();
        let member = Member {
            tx,
            session,
            assigned: running.clone(),
            sent: running.clone(),
            numbers,
            releasing: vec![Numbers::new(); self.classes],
            reserved: vec![Numbers::new(); self.classes],
            target: running.clone(),
            index,
            told_count: 0,
            reported: running,
            missed: 0,
            stopped: false,
            unsent: renumbered,
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

    /// Removes a worker; the numbers of its users are free again.
    pub fn leave(&mut self, id: &str) -> bool {
        let Some(m) = self.members.remove(id) else {
            return false;
        };
        for set in m.numbers.iter().chain(&m.releasing).chain(&m.reserved) {
            self.taken.remove(set);
        }
        true
    }

    /// Sets aside numbers for where the schedule leads (`target`, in the order of `ids`): first
    /// every worker gives back what it holds beyond its new target, then each, in turn, gets the
    /// lowest free numbers for the users it is to start. A ramp from nothing then ends with the
    /// users numbered 0 .. N-1, each worker holding one block.
    pub fn reserve(&mut self, ids: &[WorkerId], target: &Assignment) {
        for (id, row) in ids.iter().zip(target) {
            if let Some(m) = self.members.get_mut(id) {
                m.target.clone_from(row);
                for c in 0..self.classes {
                    trim(m, c, &mut self.taken);
                }
            }
        }
        for id in ids {
            if let Some(m) = self.members.get_mut(id) {
                for c in 0..self.classes {
                    let have = m.numbers[c].len() + m.reserved[c].len();
                    let short = u64::from(m.target[c]).saturating_sub(have);
                    if short > 0 {
                        let more = self.taken.take_lowest_free(short);
                        m.reserved[c].extend(&more);
                    }
                }
            }
        }
    }

    /// Takes what a worker says it runs now; numbers of users it stopped are free again.
    pub fn reported(&mut self, id: &str, users: Vec<u32>) {
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        m.reported = users;
        for (c, releasing) in m.releasing.iter_mut().enumerate() {
            let stopped = m.reported.get(c).copied().unwrap_or(0) <= m.sent[c];
            if stopped && !releasing.is_empty() {
                self.taken.remove(releasing);
                *releasing = Numbers::new();
            }
        }
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
        // Indices stay while their workers do, so after a loss one may be past the fleet's
        // size: the count is then the number of places, so `index < count` always holds.
        let highest = self.members.values().map(|m| m.index + 1).max();
        let count = highest.unwrap_or(0).max(self.members.len() as u32);
        for (m, row) in self.members.values_mut().zip(allowed) {
            held |= row != m.assigned;
            if row != m.sent {
                renumber(m, &row, &mut self.taken);
                m.sent = row;
                m.unsent = true;
            }
            // Only users read the place: a worker without any learns it with its first.
            if m.told_count != count && m.sent.iter().any(|&n| n > 0) {
                m.unsent = true;
            }
            if m.unsent {
                m.told_count = count;
                let a = protocol::Assignment {
                    users: m.sent.clone(),
                    numbers: m.numbers.clone(),
                    stop_timeout,
                    place: Place {
                        index: m.index,
                        count,
                    },
                };
                m.unsent = m.tx.try_send(ToWorker::Assign(Box::new(a))).is_err();
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

    /// After a test: every worker runs nothing, and the next test numbers its users from 0.
    pub fn clear_users(&mut self) {
        for m in self.members.values_mut() {
            for row in [&mut m.assigned, &mut m.sent, &mut m.reported] {
                row.iter_mut().for_each(|n| *n = 0);
            }
            for set in m
                .numbers
                .iter_mut()
                .chain(&mut m.releasing)
                .chain(&mut m.reserved)
            {
                *set = Numbers::new();
            }
            m.target.iter_mut().for_each(|n| *n = 0);
        }
        self.taken = Numbers::new();
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

/// Gives `m` the numbers for `row`. A worker to start users takes the lowest of its reserved
/// numbers and the free ones (a number freed by a user that moved is lower than a block set
/// aside before it stopped, and taking it keeps the numbers dense); one to stop users gives up
/// its highest numbers (its newest users, in a ramp), set aside until it reports their users
/// stopped.
fn renumber(m: &mut Member, row: &[u32], taken: &mut Numbers) {
    for (c, &want) in row.iter().enumerate() {
        let have = m.numbers[c].len();
        let want = u64::from(want);
        if want > have {
            let k = want - have;
            let mut candidates = m.reserved[c].clone();
            candidates.extend(&taken.clone().take_lowest_free(k));
            let chosen = candidates.pop_lowest(k);
            let mut unreserved = chosen.clone();
            unreserved.remove(&m.reserved[c]);
            taken.extend(&unreserved);
            m.reserved[c].remove(&chosen);
            m.numbers[c].extend(&chosen);
            trim(m, c, taken);
        } else if want < have {
            let gone = m.numbers[c].pop_highest(have - want);
            m.releasing[c].extend(&gone);
        }
    }
}

/// Gives back the numbers `m` has reserved beyond what it still is to start in class `c`.
fn trim(m: &mut Member, c: usize, taken: &mut Numbers) {
    let room = u64::from(m.target[c]).saturating_sub(m.numbers[c].len());
    let extra = m.reserved[c].len().saturating_sub(room);
    if extra > 0 {
        taken.remove(&m.reserved[c].pop_highest(extra));
    }
}

/// The assignment that spreads `per_class` over the fleet, and the way to it from the current one.
pub(super) fn rebalance(fleet: &Fleet, per_class: &[u32]) -> (Vec<WorkerId>, Schedule) {
    let (ids, current) = fleet.assignment();
    let target = dispatch::rebalance(&current, per_class);
    (ids, Schedule::new(current, target))
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // sets of one range, on purpose
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    const CLASSES: usize = 2;

    /// Every number is held once (told to run or still stopping), each worker holds as many
    /// numbers per class as it was told users, and the pool knows exactly those numbers.
    fn check(fleet: &Fleet) -> Result<(), TestCaseError> {
        let mut all = Numbers::new();
        let mut count = 0;
        for m in fleet.members.values() {
            for c in 0..CLASSES {
                prop_assert_eq!(m.numbers[c].len(), u64::from(m.sent[c]));
                for set in [&m.numbers[c], &m.releasing[c], &m.reserved[c]] {
                    all.extend(set);
                    count += set.len();
                }
            }
        }
        prop_assert_eq!(all.len(), count, "a number is held twice");
        prop_assert_eq!(&all, &fleet.taken);
        Ok(())
    }

    #[derive(Debug, Clone)]
    enum Op {
        Join,
        Leave(usize),
        Target(u32, u32),
        /// A worker reports what it was told (its stops are done).
        Settle(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::Join),
            (0usize..8).prop_map(Op::Leave),
            (0u32..40, 0u32..40).prop_map(|(a, b)| Op::Target(a, b)),
            (0usize..8).prop_map(Op::Settle),
        ]
    }

    proptest! {
        #[test]
        fn no_two_users_of_a_run_ever_hold_the_same_number(ops in prop::collection::vec(op(), 1..60)) {
            let mut fleet = Fleet::new(CLASSES);
            let mut receivers = Vec::new();
            let mut next = 0;
            let mut target = vec![0, 0];
            for op in ops {
                match op {
                    Op::Join => {
                        let (tx, rx) = mpsc::channel(1024);
                        receivers.push(rx);
                        fleet.join(format!("w{next:02}"), 1, tx, vec![], None);
                        next += 1;
                    }
                    Op::Leave(i) => {
                        if let Some(id) = fleet.members.keys().nth(i).cloned() {
                            fleet.leave(&id);
                        }
                    }
                    Op::Target(a, b) => target = vec![a, b],
                    Op::Settle(i) => {
                        if let Some((id, m)) = fleet.members.iter().nth(i) {
                            let (id, sent) = (id.clone(), m.sent.clone());
                            fleet.reported(&id, sent);
                        }
                    }
                }
                if fleet.len() > 0 {
                    let (ids, schedule) = rebalance(&fleet, &target);
                    fleet.reserve(&ids, schedule.target());
                    fleet.assign(&ids, schedule.target().clone());
                }
                let limit = target.clone();
                fleet.send_assignments(Duration::ZERO, &limit);
                check(&fleet)?;
                // What a worker is told is what the fleet holds for it.
                for rx in &mut receivers {
                    while let Ok(ToWorker::Assign(a)) = rx.try_recv() {
                        prop_assert!(a.place.index < a.place.count);
                        for (c, set) in a.numbers.iter().enumerate() {
                            prop_assert_eq!(set.len(), u64::from(a.users[c]));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_lost_workers_numbers_go_to_the_users_that_replace_its_users() {
        let mut fleet = Fleet::new(1);
        let mut rxs = Vec::new();
        for id in ["a", "b", "c"] {
            let (tx, rx) = mpsc::channel(16);
            rxs.push(rx);
            fleet.join(id.into(), 1, tx, vec![], None);
        }
        let told = |rx: &mut mpsc::Receiver<ToWorker>| {
            let mut last = None;
            while let Ok(ToWorker::Assign(a)) = rx.try_recv() {
                last = Some(a);
            }
            last
        };
        let (ids, schedule) = rebalance(&fleet, &[6]);
        fleet.reserve(&ids, schedule.target());
        fleet.assign(&ids, schedule.target().clone());
        fleet.send_assignments(Duration::ZERO, &[6]);
        let b = told(&mut rxs[1]).expect("b was told");
        assert_eq!(b.place, Place { index: 1, count: 3 });
        let lost = b.numbers[0].clone();
        assert_eq!(lost.len(), 2);

        fleet.leave("b");
        let (ids, schedule) = rebalance(&fleet, &[6]);
        fleet.reserve(&ids, schedule.target());
        fleet.assign(&ids, schedule.target().clone());
        fleet.send_assignments(Duration::ZERO, &[6]);
        let (a, c) = (told(&mut rxs[0]).unwrap(), told(&mut rxs[2]).unwrap());
        let mut all = a.numbers[0].clone();
        all.extend(&c.numbers[0]);
        assert_eq!(all, Numbers::from_ranges(vec![0..6]).unwrap());
        // c keeps its place; the fleet has 2 workers but places 0 and 2.
        assert_eq!(c.place, Place { index: 2, count: 3 });

        // A new worker takes the free place.
        let (tx, mut rx) = mpsc::channel(16);
        fleet.join("d".into(), 1, tx, vec![], None);
        let (ids, schedule) = rebalance(&fleet, &[6]);
        fleet.reserve(&ids, schedule.target());
        fleet.assign(&ids, schedule.target().clone());
        fleet.send_assignments(Duration::ZERO, &[6]);
        // Its users start once the others' stops are confirmed.
        for id in ["a", "c"] {
            let sent = fleet.members[id].sent.clone();
            fleet.reported(id, sent);
        }
        fleet.send_assignments(Duration::ZERO, &[6]);
        let d = told(&mut rx).expect("d was told");
        assert_eq!(d.place, Place { index: 1, count: 3 });
        assert_eq!(d.numbers[0].len(), 2);
    }

    #[test]
    fn a_ramp_gives_each_worker_one_block_and_ends_with_the_users_numbered_from_0() {
        let mut fleet = Fleet::new(2);
        let mut rxs = Vec::new();
        for id in ["a", "b", "c"] {
            let (tx, rx) = mpsc::channel(256);
            rxs.push(rx);
            fleet.join(id.into(), 1, tx, vec![], None);
        }
        let target = [700, 300];
        let (ids, mut schedule) = rebalance(&fleet, &target);
        fleet.reserve(&ids, schedule.target());
        // One user at a time, as a slow ramp goes: each step reaches one worker.
        let mut done = 0;
        while !schedule.is_finished() {
            done += 1;
            schedule.advance_to(done);
            fleet.assign(&ids, schedule.assignment());
            fleet.send_assignments(Duration::ZERO, &target);
            for m in fleet.members.values() {
                for set in &m.numbers {
                    assert!(set.ranges().len() <= 1, "{set:?}");
                }
            }
        }
        assert_eq!(done, 1000);
        assert_eq!(fleet.taken, Numbers::from_ranges(vec![0..1000]).unwrap());
        for m in fleet.members.values() {
            assert!(m.reserved.iter().all(Numbers::is_empty));
        }
        // The last message each worker got is a handful of ranges, not one per user.
        for rx in &mut rxs {
            let mut last = None;
            while let Ok(ToWorker::Assign(a)) = rx.try_recv() {
                last = Some(a);
            }
            let last = last.expect("told");
            assert!(last.numbers.iter().all(|n| n.ranges().len() == 1));
        }
    }

    #[test]
    fn a_number_is_not_handed_out_again_until_its_user_stopped() {
        let mut fleet = Fleet::new(2);
        let (tx, _rx) = mpsc::channel(16);
        fleet.join("a".into(), 1, tx, vec![], None);
        let (tx, _rx2) = mpsc::channel(16);
        fleet.join("b".into(), 1, tx, vec![], None);
        // a runs 2 users of class 0; then they are to become class 1 users.
        fleet.assign(&["a".into(), "b".into()], vec![vec![2, 0], vec![0, 0]]);
        fleet.send_assignments(Duration::ZERO, &[2, 0]);
        fleet.reported("a", vec![2, 0]);
        fleet.assign(&["a".into(), "b".into()], vec![vec![0, 0], vec![0, 2]]);
        fleet.send_assignments(Duration::ZERO, &[0, 2]);
        // b's class-1 users start at once (another class), but not with a's stopping numbers.
        let b = &fleet.members["b"];
        assert_eq!(b.numbers[1], Numbers::from_ranges(vec![2..4]).unwrap());
        fleet.reported("a", vec![0, 0]);
        assert_eq!(fleet.taken, Numbers::from_ranges(vec![2..4]).unwrap());
    }
}
