//! Dispatch: which worker runs which users.
//!
//! [`dispatch`] is the ideal assignment for a set of workers: every class spread as evenly as
//! possible (each worker within one user of every other, per class and in total) and the global
//! per-class counts exact. [`rebalance`] is such an assignment too, chosen to keep as many of the
//! users the workers already run where they are (a lost worker's users start on the others, and
//! nobody else's are stopped). A [`Schedule`] is the way from the current assignment to a new one,
//! one user at a time, so the coordinator can apply it at the spawn rate: growing or shrinking
//! classes interleave by share (so the traffic mix stays in proportion during a ramp), and users
//! that must change worker (one joined) move last, as one stop and one start.
//!
//! A schedule is computed as it goes: it holds the two assignments and a few numbers per class,
//! so its memory is classes x workers whatever the number of users.

use std::cmp::Reverse;

use crate::apportion::{ramp, Interleave};

/// Users per class on each worker: `assignment[worker][class]`.
pub type Assignment = Vec<Vec<u32>>;

/// The ideal assignment of `per_class` users over `workers` workers.
///
/// Each class gives every worker the same base count; its remainder goes to consecutive workers,
/// continuing where the previous class's remainder stopped. So per class and in total, no worker
/// has more than one user more than any other.
pub fn dispatch(workers: usize, per_class: &[u32]) -> Assignment {
    let mut out = vec![vec![0u32; per_class.len()]; workers];
    if workers == 0 {
        return out;
    }
    let mut next = 0usize;
    for (class, &n) in per_class.iter().enumerate() {
        let base = (n as usize / workers) as u32;
        let extra = n as usize % workers;
        for row in out.iter_mut() {
            row[class] = base;
        }
        for k in 0..extra {
            out[(next + k) % workers][class] += 1;
        }
        next = (next + extra) % workers;
    }
    out
}

/// An assignment of `per_class` users over the workers of `current`, as even as [`dispatch`]'s
/// (within one user per class, and in total), keeping the users the workers run now in place
/// where it can: a lost worker's users start on the others and nobody else's stop.
///
/// Every worker gets each class's base count; the remainders ("extras") are placed like a 0-1
/// matrix with given row and column sums (Ryser's construction, which always completes), the
/// workers already running an extra user first. When that would still stop users a worker runs,
/// and placing each class's extras on its holders first (the others on the workers with the
/// fewest users) stops none, that wins: every class stays within one, the totals within one per
/// class.
pub fn rebalance(current: &[Vec<u32>], per_class: &[u32]) -> Assignment {
    let workers = current.len();
    if workers == 0 {
        return Vec::new();
    }
    let base: Vec<u32> = per_class
        .iter()
        .map(|&n| (n as usize / workers) as u32)
        .collect();
    let extras: Vec<usize> = per_class.iter().map(|&n| n as usize % workers).collect();
    let holds = |w: usize, c: usize| current[w].get(c).is_some_and(|&n| n > base[c]);
    let even = place_evenly(workers, &base, &extras, &holds);
    let kept = |a: &Assignment| -> u64 {
        a.iter()
            .zip(current)
            .flat_map(|(t, c)| t.iter().zip(c).map(|(&t, &c)| u64::from(t.min(c))))
            .sum()
    };
    if kept(&even) == current.iter().flatten().map(|&n| u64::from(n)).sum::<u64>() {
        return even;
    }
    // Only when that stops nobody and leaves no idle worker (one that joined) below an even
    // share: a worker that joined takes its share by moves.
    let in_place = place_in_place(workers, &base, &extras, &holds);
    let fair = per_class.iter().map(|&n| u64::from(n)).sum::<u64>() / workers as u64;
    let sum = |row: &[u32]| row.iter().map(|&n| u64::from(n)).sum::<u64>();
    let starved = current
        .iter()
        .zip(&in_place)
        .any(|(now, next)| sum(now) == 0 && sum(next) < fair);
    if !starved && kept(&in_place) == current.iter().map(|r| sum(r)).sum::<u64>() {
        in_place
    } else {
        even
    }
}

/// Extras placed so that totals stay within one (Ryser), holders first where that still
/// completes.
fn place_evenly(
    workers: usize,
    base: &[u32],
    extras: &[usize],
    holds: &dyn Fn(usize, usize) -> bool,
) -> Assignment {
    let classes = base.len();
    let mut out = vec![base.to_vec(); workers];
    let total_extras: usize = extras.iter().sum();
    let mut room = vec![total_extras / workers; workers];
    let mut order: Vec<usize> = (0..workers).collect();
    order.sort_by_key(|&w| (Reverse((0..classes).filter(|&c| holds(w, c)).count()), w));
    for &w in order.iter().take(total_extras % workers) {
        room[w] += 1;
    }
    let mut by_extras: Vec<usize> = (0..classes).collect();
    by_extras.sort_by_key(|&c| (Reverse(extras[c]), c));
    for (i, &c) in by_extras.iter().enumerate() {
        let rest: Vec<usize> = by_extras[i + 1..].iter().map(|&d| extras[d]).collect();
        let candidates: Vec<usize> = (0..workers).filter(|&w| room[w] > 0).collect();
        // The holders first, then workers not holding an extra of a class still to place, if
        // what is left can still be placed; otherwise Ryser's choice.
        let held_later = |w: usize| by_extras[i + 1..].iter().filter(|&&d| holds(w, d)).count();
        let mut pick = candidates.clone();
        pick.sort_by_key(|&w| (!holds(w, c), held_later(w), Reverse(room[w]), w));
        pick.truncate(extras[c]);
        let mut after = room.clone();
        pick.iter().for_each(|&w| after[w] -= 1);
        if !placeable(&rest, &after) {
            pick = candidates;
            pick.sort_by_key(|&w| (Reverse(room[w]), !holds(w, c), w));
            pick.truncate(extras[c]);
        }
        for &w in &pick {
            out[w][c] += 1;
            room[w] -= 1;
        }
    }
    out
}

/// Extras on their holders first, the rest on the workers with the fewest users so far.
fn place_in_place(
    workers: usize,
    base: &[u32],
    extras: &[usize],
    holds: &dyn Fn(usize, usize) -> bool,
) -> Assignment {
    let mut out = vec![base.to_vec(); workers];
    let mut totals = vec![0usize; workers];
    let mut by_extras: Vec<usize> = (0..base.len()).collect();
    by_extras.sort_by_key(|&c| (Reverse(extras[c]), c));
    for (i, &c) in by_extras.iter().enumerate() {
        // Counting the extras each worker holds of the classes still to place.
        let held_later = |w: usize| by_extras[i + 1..].iter().filter(|&&d| holds(w, d)).count();
        let mut pick: Vec<usize> = (0..workers).collect();
        pick.sort_by_key(|&w| (!holds(w, c), totals[w] + held_later(w), w));
        for &w in pick.iter().take(extras[c]) {
            out[w][c] += 1;
            totals[w] += 1;
        }
    }
    out
}

/// Whether rows of `ones` ones each (distinct columns per row) fit columns of capacity `room`
/// exactly (Gale and Ryser: the k largest rows never need more than the columns can give k
/// rows).
fn placeable(ones: &[usize], room: &[usize]) -> bool {
    let mut rows = ones.to_vec();
    rows.sort_unstable_by(|a, b| b.cmp(a));
    if rows.iter().sum::<usize>() != room.iter().sum::<usize>() {
        return false;
    }
    let mut need = 0;
    rows.iter().enumerate().all(|(k, &r)| {
        need += r;
        need <= room.iter().map(|&s| s.min(k + 1)).sum::<usize>()
    })
}

fn class_totals(a: &[Vec<u32>], classes: usize) -> Vec<u32> {
    (0..classes).map(|c| a.iter().map(|w| w[c]).sum()).collect()
}

/// The way from one assignment to another (same workers, same classes), one user per step:
/// first the class totals change, interleaved by share ([`crate::apportion::ramp`]); then users
/// that must change worker move, one stop and one start per step. Within a class, starts fill the
/// workers that need users evenly (water-filling), and stops drain those with too many the same
/// way.
#[derive(Debug, Clone)]
pub struct Schedule {
    from: Assignment,
    to: Assignment,
    classes: Interleave,
    /// Moves per class, after the class totals changed.
    moves: Vec<u64>,
    done: u64,
}

impl Schedule {
    pub fn new(from: Assignment, to: Assignment) -> Schedule {
        assert_eq!(from.len(), to.len(), "one row per worker");
        let classes = to.first().map_or(0, Vec::len);
        let interleave = ramp(&class_totals(&from, classes), &class_totals(&to, classes));
        let moves = (0..classes)
            .map(|c| {
                let gaps = |a: &Assignment, b: &Assignment| -> u64 {
                    a.iter()
                        .zip(b)
                        .map(|(x, y)| u64::from(y[c].saturating_sub(x[c])))
                        .sum()
                };
                gaps(&from, &to).min(gaps(&to, &from))
            })
            .collect();
        Schedule {
            from,
            to,
            classes: interleave,
            moves,
            done: 0,
        }
    }

    /// Steps in all.
    pub fn len(&self) -> u64 {
        self.classes.len() + self.moves.iter().sum::<u64>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Steps taken so far.
    pub fn done(&self) -> u64 {
        self.done
    }

    pub fn is_finished(&self) -> bool {
        self.done == self.len()
    }

    /// Where the schedule ends.
    pub fn target(&self) -> &Assignment {
        &self.to
    }

    /// Takes the steps up to `step` (at most [`Schedule::len`]); never goes back. The class
    /// totals cost a few operations per step and class; the moves and a jump to the end, none.
    pub fn advance_to(&mut self, step: u64) {
        let step = step.min(self.len());
        if step <= self.done {
            return;
        }
        if step >= self.classes.len() {
            self.classes.finish();
        } else {
            while self.classes.taken() < step && self.classes.next().is_some() {}
        }
        self.done = step;
    }

    /// The assignment after the steps taken.
    pub fn assignment(&self) -> Assignment {
        let mut out = self.from.clone();
        let mut moves_left = self.done.saturating_sub(self.classes.len());
        for (c, &moves) in self.moves.iter().enumerate() {
            let moved = moves_left.min(moves);
            moves_left -= moved;
            let ramped = self.classes.done(c);
            let (starts, stops) = if self.classes.starts(c) {
                (ramped + moved, moved)
            } else {
                (moved, ramped + moved)
            };
            let need = |a: &Assignment, b: &Assignment| -> Vec<u64> {
                a.iter()
                    .zip(b)
                    .map(|(x, y)| u64::from(y[c].saturating_sub(x[c])))
                    .collect()
            };
            let up = fill(starts, &need(&self.from, &self.to));
            let down = fill(stops, &need(&self.to, &self.from));
            for (w, row) in out.iter_mut().enumerate() {
                let n = u64::from(row[c]) + up[w] - down[w];
                row[c] = u32::try_from(n).unwrap_or(u32::MAX);
            }
        }
        out
    }
}

/// What to send the workers now on the way to `wanted`, so that the users that may be running
/// never exceed `limit` per class. A worker may be running more than it was last `sent` (a stop
/// not yet done) or fewer (a start not yet done), so it counts with the larger of what it
/// `reported` and what it was sent. Decreases go out at once; an increase waits for room, which
/// a confirmed stop makes (a user moving between workers is stopped before it starts again).
pub fn gate(
    sent: &[Vec<u32>],
    reported: &[Vec<u32>],
    wanted: &[Vec<u32>],
    limit: &[u32],
) -> Assignment {
    let mut out: Assignment = sent
        .iter()
        .zip(wanted)
        .map(|(s, w)| s.iter().zip(w).map(|(&s, &w)| s.min(w)).collect())
        .collect();
    let zero = Vec::new();
    for (c, &limit) in limit.iter().enumerate() {
        let exposure = |out: &Assignment, w: usize| -> u64 {
            let r = reported
                .get(w)
                .unwrap_or(&zero)
                .get(c)
                .copied()
                .unwrap_or(0);
            u64::from(r.max(out[w][c]))
        };
        let mut room =
            u64::from(limit).saturating_sub((0..out.len()).map(|w| exposure(&out, w)).sum());
        for w in 0..out.len() {
            let want = wanted[w][c];
            if want <= out[w][c] {
                continue;
            }
            // Up to what the worker may run anyway costs nothing; beyond it, room.
            let free = exposure(&out, w);
            let grant = u64::from(want).min(free + room);
            room -= grant.saturating_sub(free);
            out[w][c] = out[w][c].max(u32::try_from(grant).unwrap_or(u32::MAX));
        }
    }
    out
}

/// `amount` units spread over slots that take at most `gaps[i]` each, as evenly as possible
/// (water-filling: every slot up to a level, the rest one each in slot order). Monotone: one
/// more unit adds one to exactly one slot.
fn fill(amount: u64, gaps: &[u64]) -> Vec<u64> {
    let at = |level: u64| -> u64 { gaps.iter().map(|&g| g.min(level)).sum() };
    let (mut lo, mut hi) = (0u64, gaps.iter().copied().max().unwrap_or(0));
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if at(mid) <= amount {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let mut left = amount.saturating_sub(at(lo));
    gaps.iter()
        .map(|&g| {
            let extra = u64::from(g > lo && left > 0);
            left -= extra;
            g.min(lo) + extra
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apportion::{apportion, Claim};
    use proptest::prelude::*;

    fn spread_within_one(a: &[Vec<u32>]) -> bool {
        let classes = a.first().map_or(0, Vec::len);
        let totals: Vec<u32> = a.iter().map(|w| w.iter().sum()).collect();
        let within = |v: &[u32]| v.iter().max().unwrap_or(&0) - v.iter().min().unwrap_or(&0) <= 1;
        within(&totals) && (0..classes).all(|c| within(&a.iter().map(|w| w[c]).collect::<Vec<_>>()))
    }

    /// Users started or stopped to go from `a` to `b`.
    fn distance(a: &[Vec<u32>], b: &[Vec<u32>]) -> u64 {
        a.iter()
            .zip(b)
            .flat_map(|(x, y)| x.iter().zip(y).map(|(m, n)| u64::from(m.abs_diff(*n))))
            .sum()
    }

    /// Every assignment a schedule passes through, after each step.
    fn walk(mut s: Schedule) -> Vec<Assignment> {
        (1..=s.len())
            .map(|k| {
                s.advance_to(k);
                s.assignment()
            })
            .collect()
    }

    #[test]
    fn four_users_weighted_three_to_one_over_three_workers() {
        let per_class = apportion(
            4,
            &[
                Claim {
                    weight: 3,
                    fixed: None,
                },
                Claim {
                    weight: 1,
                    fixed: None,
                },
            ],
        );
        assert_eq!(per_class, vec![3, 1]);
        let a = dispatch(3, &per_class);
        assert_eq!(a, vec![vec![1, 1], vec![1, 0], vec![1, 0]]);
    }

    #[test]
    fn fewer_users_than_classes_times_workers_still_match_the_weights_globally() {
        // The seed's caveat: 2 users of 3 equal classes over 4 workers.
        let per_class = vec![1, 1, 0];
        let a = dispatch(4, &per_class);
        assert_eq!(class_totals(&a, 3), per_class);
        assert!(spread_within_one(&a));
    }

    #[test]
    fn a_lost_workers_users_start_on_the_others_and_nobody_elses_stop() {
        // One user of each of two classes over three workers; the one with class 0 goes.
        let before = dispatch(3, &[1, 1]);
        assert_eq!(before, vec![vec![1, 0], vec![0, 1], vec![0, 0]]);
        let survivors: Vec<Vec<u32>> = before[1..].to_vec();
        let target = rebalance(&survivors, &[1, 1]);
        assert_eq!(
            target,
            vec![vec![0, 1], vec![1, 0]],
            "the class 1 user stays put"
        );
        let steps = walk(Schedule::new(survivors, target.clone()));
        assert_eq!(steps.len(), 1, "only the lost worker's user starts again");
        assert_eq!(steps[0], target);
    }

    #[test]
    fn a_joining_worker_gets_its_share_by_moves() {
        let before = dispatch(2, &[4, 2]);
        let mut current = before.clone();
        current.push(vec![0, 0]);
        let target = rebalance(&current, &[4, 2]);
        assert!(spread_within_one(&target));
        let schedule = Schedule::new(current.clone(), target.clone());
        assert_eq!(schedule.len(), 2, "two users move, one step each");
        let path = walk(schedule);
        assert_eq!(path.last(), Some(&target));
        for a in &path {
            assert_eq!(class_totals(a, 2), vec![4, 2], "a move keeps the totals");
        }
    }

    #[test]
    fn ten_million_users_over_a_thousand_workers_take_no_memory_per_user() {
        let per_class = [6_000_000, 3_000_000, 1_000_000];
        let from = vec![vec![0; 3]; 1000];
        let target = rebalance(&from, &per_class);
        let mut s = Schedule::new(from, target.clone());
        assert_eq!(s.len(), 10_000_000);
        s.advance_to(10);
        assert_eq!(class_totals(&s.assignment(), 3), vec![6, 3, 1]);
        s.advance_to(s.len());
        assert!(s.is_finished());
        assert_eq!(s.assignment(), target);
    }

    #[test]
    fn fill_spreads_evenly_and_grows_one_slot_at_a_time() {
        let gaps = [3, 1, 0, 2];
        let all: Vec<Vec<u64>> = (0..=6).map(|n| fill(n, &gaps)).collect();
        assert_eq!(all[0], vec![0, 0, 0, 0]);
        assert_eq!(all[2], vec![1, 1, 0, 0]);
        assert_eq!(all[3], vec![1, 1, 0, 1]);
        assert_eq!(all[5], vec![2, 1, 0, 2]);
        assert_eq!(all[6], vec![3, 1, 0, 2]);
        for pair in all.windows(2) {
            let grew: u64 = pair[0].iter().zip(&pair[1]).map(|(a, b)| b - a).sum();
            assert_eq!(grew, 1);
            assert!(pair[0].iter().zip(&pair[1]).all(|(a, b)| a <= b));
        }
    }

    proptest! {
        #[test]
        fn dispatch_is_exact_and_spread_within_one(
            workers in 1usize..20,
            per_class in proptest::collection::vec(0u32..300, 1..6),
        ) {
            let a = dispatch(workers, &per_class);
            prop_assert_eq!(a.len(), workers);
            prop_assert_eq!(class_totals(&a, per_class.len()), per_class);
            prop_assert!(spread_within_one(&a));
        }

        #[test]
        fn rebalance_is_exact_and_spread_within_one_from_anywhere(
            current in proptest::collection::vec(proptest::collection::vec(0u32..40, 3), 1..12),
            per_class in proptest::collection::vec(0u32..300, 3),
        ) {
            let a = rebalance(&current, &per_class);
            prop_assert_eq!(a.len(), current.len());
            prop_assert_eq!(class_totals(&a, 3), per_class.clone());
            for c in 0..3 {
                let col: Vec<u32> = a.iter().map(|w| w[c]).collect();
                prop_assert!(col.iter().max().unwrap_or(&0) - col.iter().min().unwrap_or(&0) <= 1);
            }
            let totals: Vec<u32> = a.iter().map(|w| w.iter().sum()).collect();
            let spread = totals.iter().max().unwrap_or(&0) - totals.iter().min().unwrap_or(&0);
            prop_assert!(spread <= 3, "totals within one per class");
            if !spread_within_one(&a) {
                // Only to keep every user in place.
                let kept: u32 = a.iter().zip(&current).flat_map(|(t, c)| t.iter().zip(c).map(|(t, c)| *t.min(c))).sum();
                prop_assert_eq!(kept, current.iter().flatten().sum::<u32>());
            }
        }

        #[test]
        fn a_schedule_reaches_the_target_in_the_fewest_steps(
            workers in 1usize..8,
            from in proptest::collection::vec(0u32..60, 3),
            to in proptest::collection::vec(0u32..60, 3),
            joined in 0usize..3,
        ) {
            // From an ideal spread over fewer workers (some just joined) to one over all.
            let mut current = dispatch(workers, &from);
            current.extend((0..joined).map(|_| vec![0; 3]));
            let target = rebalance(&current, &to);
            let s = Schedule::new(current.clone(), target.clone());
            let moves: u64 = s.moves.iter().sum();
            let ramp = s.classes.len();
            let path = walk(s);
            prop_assert_eq!(path.last().unwrap_or(&current), &target);
            prop_assert_eq!(ramp + 2 * moves, distance(&current, &target), "no user is started or stopped needlessly");
            let mut prev = current.clone();
            for a in &path {
                let changed = distance(&prev, a);
                prop_assert!(changed == 1 || changed == 2, "one user (or one move) a step");
                prev = a.clone();
            }
        }

        #[test]
        fn after_a_loss_the_survivors_keep_every_user_they_run(
            (workers, lost) in (2usize..10, 0usize..10),
            per_class in proptest::collection::vec(0u32..200, 1..5),
            history in proptest::collection::vec(0usize..10, 0..3),
        ) {
            // A balanced fleet that may itself be the result of earlier losses.
            let mut current = dispatch(workers + history.len(), &per_class);
            for h in &history {
                current.remove(h % current.len());
                current = rebalance(&current, &per_class);
            }
            let before = current.clone();
            current.remove(lost % current.len());
            let target = rebalance(&current, &per_class);
            for (now, next) in current.iter().zip(&target) {
                for (n, t) in now.iter().zip(next) {
                    prop_assert!(t >= n, "a survivor lost a user: {:?} -> {:?} (before {:?})", current, target, before);
                }
            }
        }

        #[test]
        fn the_gate_never_lets_running_users_exceed_the_limit_and_gets_there(
            (workers, joined, lost) in (1usize..6, 0usize..3, proptest::option::of(0usize..6)),
            (from, to) in (proptest::collection::vec(0u32..30, 2), proptest::collection::vec(0u32..30, 2)),
            order in proptest::collection::vec((0usize..9, any::<bool>()), 0..200),
        ) {
            // Workers run what they were last sent once they get to it (`apply`) and say so
            // later (`report`), in any order; the master sends what the gate lets through.
            let mut running = dispatch(workers, &from);
            running.extend((0..joined).map(|_| vec![0; 2]));
            if let Some(l) = lost {
                if running.len() > 1 {
                    running.remove(l % running.len());
                }
            }
            let n = running.len();
            let wanted = rebalance(&running, &to);
            let mut reported = running.clone();
            let mut sent = running.clone();
            let start: Vec<u32> = class_totals(&running, 2);
            let ceiling: Vec<u32> = start.iter().zip(&to).map(|(&a, &b)| a.max(b)).collect();
            let mut at_most_limit = start.iter().zip(&to).map(|(a, b)| a <= b).collect::<Vec<_>>();
            let step = |running: &mut Assignment, reported: &mut Assignment, sent: &mut Assignment, w: usize, apply: bool| {
                *sent = gate(sent, reported, &wanted, &to);
                if apply {
                    running[w].clone_from(&sent[w]);
                } else {
                    reported[w].clone_from(&running[w]);
                }
            };
            for &(w, apply) in &order {
                step(&mut running, &mut reported, &mut sent, w % n, apply);
                for c in 0..2 {
                    let total: u32 = running.iter().map(|r| r[c]).sum();
                    prop_assert!(total <= ceiling[c], "class {} ran {} users, above {}", c, total, ceiling[c]);
                    if at_most_limit[c] {
                        prop_assert!(total <= to[c], "class {} went back above its target", c);
                    }
                    at_most_limit[c] |= total <= to[c];
                }
            }
            // Then every worker applies and reports in turn, until nothing changes.
            for _ in 0..4 {
                for w in 0..n {
                    step(&mut running, &mut reported, &mut sent, w, true);
                    step(&mut running, &mut reported, &mut sent, w, false);
                }
            }
            prop_assert_eq!(&running, &wanted);
        }

        #[test]
        fn a_ramp_from_zero_keeps_the_class_mix_in_proportion_at_every_step(
            workers in 1usize..10,
            per_class in proptest::collection::vec(0u32..100, 1..5),
        ) {
            let zero = vec![vec![0u32; per_class.len()]; workers];
            let target = rebalance(&zero, &per_class);
            let s = Schedule::new(zero, target.clone());
            let n = s.len() as f64;
            let path = walk(s);
            for (k, a) in path.iter().enumerate() {
                for (c, &want) in per_class.iter().enumerate() {
                    let have: u32 = a.iter().map(|w| w[c]).sum();
                    let due = f64::from(want) * (k + 1) as f64 / n;
                    prop_assert!((f64::from(have) - due).abs() <= 1.0, "class {} at step {}", c, k);
                }
            }
            prop_assert_eq!(path.last().cloned().unwrap_or_default(), if n > 0.0 { target } else { Vec::new() });
        }
    }
}
