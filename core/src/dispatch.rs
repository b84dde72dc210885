//! Dispatch: which worker runs which users.
//!
//! [`dispatch`] is the ideal assignment for a set of workers: every class spread as evenly as
//! possible (each worker within one user of every other, per class and in total) and the global
//! per-class counts exact. [`changes`] is the way from the current assignment to a new one, one
//! user at a time, so the coordinator can apply it at the spawn rate: growing or shrinking
//! classes interleave by share (so the traffic mix stays in proportion during a ramp), and users
//! that must change worker (one joined or left) move as one stop and one start. At rest, the
//! assignment is always [`dispatch`]'s; on the way, a worker may briefly be a few users ahead.

use crate::apportion::ramp;

/// Users per class on each worker: `assignment[worker][class]`.
pub type Assignment = Vec<Vec<u32>>;

/// One step from one assignment toward another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Start {
        worker: usize,
        class: usize,
    },
    Stop {
        worker: usize,
        class: usize,
    },
    /// A stop on `from` and a start on `to`, applied together so the total stays put.
    Move {
        from: usize,
        to: usize,
        class: usize,
    },
}

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
        let base = n / workers as u32;
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

fn class_totals(a: &[Vec<u32>], classes: usize) -> Vec<u32> {
    (0..classes).map(|c| a.iter().map(|w| w[c]).sum()).collect()
}

/// The changes that turn `current` into `target` (same workers, same classes), in the order to
/// apply them: class totals move first, interleaved by share; moves between workers last.
pub fn changes(current: &[Vec<u32>], target: &[Vec<u32>]) -> Vec<Change> {
    assert_eq!(current.len(), target.len(), "one row per worker");
    let classes = target.first().map_or(0, Vec::len);
    let mut now: Assignment = current.to_vec();
    let mut out = Vec::new();
    for step in ramp(
        &class_totals(current, classes),
        &class_totals(target, classes),
    ) {
        let c = step.class;
        let total = |w: &Vec<u32>| w.iter().sum::<u32>();
        let pick = if step.start {
            // The worker that still needs this class and has the fewest users now.
            (0..now.len())
                .filter(|&w| now[w][c] < target[w][c])
                .min_by_key(|&w| (total(&now[w]), w))
        } else {
            (0..now.len())
                .filter(|&w| now[w][c] > target[w][c])
                .max_by_key(|&w| (total(&now[w]), usize::MAX - w))
        };
        let Some(w) = pick else { continue };
        if step.start {
            now[w][c] += 1;
            out.push(Change::Start {
                worker: w,
                class: c,
            });
        } else {
            now[w][c] -= 1;
            out.push(Change::Stop {
                worker: w,
                class: c,
            });
        }
    }
    for c in 0..classes {
        loop {
            let from = (0..now.len()).find(|&w| now[w][c] > target[w][c]);
            let to = (0..now.len()).find(|&w| now[w][c] < target[w][c]);
            let (Some(from), Some(to)) = (from, to) else {
                break;
            };
            now[from][c] -= 1;
            now[to][c] += 1;
            out.push(Change::Move { from, to, class: c });
        }
    }
    out
}

/// Applies one change.
pub fn apply(a: &mut [Vec<u32>], change: Change) {
    match change {
        Change::Start { worker, class } => a[worker][class] += 1,
        Change::Stop { worker, class } => a[worker][class] = a[worker][class].saturating_sub(1),
        Change::Move { from, to, class } => {
            a[from][class] = a[from][class].saturating_sub(1);
            a[to][class] += 1;
        }
    }
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
    fn a_lost_workers_users_move_to_the_others() {
        let before = dispatch(3, &[6, 3]);
        let survivors: Vec<Vec<u32>> = before[..2].to_vec();
        let target = dispatch(2, &[6, 3]);
        let steps = changes(&survivors, &target);
        assert_eq!(
            steps.len(),
            3,
            "only the lost worker's three users start again"
        );
        assert!(steps.iter().all(|s| matches!(s, Change::Start { .. })));
    }

    #[test]
    fn a_joining_worker_gets_its_share_by_moves() {
        let before = dispatch(2, &[4, 2]);
        let mut current = before.clone();
        current.push(vec![0, 0]);
        let target = dispatch(3, &[4, 2]);
        let steps = changes(&current, &target);
        assert!(
            steps
                .iter()
                .all(|s| matches!(s, Change::Move { to: 2, .. })),
            "{steps:?}"
        );
        let mut a = current;
        for s in steps {
            apply(&mut a, s);
        }
        assert_eq!(a, target);
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
        fn changes_reach_the_target_in_the_fewest_steps(
            workers in 1usize..8,
            from in proptest::collection::vec(0u32..60, 3),
            to in proptest::collection::vec(0u32..60, 3),
            joined in 0usize..3,
        ) {
            // From an ideal spread over fewer workers (some just joined) to one over all.
            let mut current = dispatch(workers, &from);
            current.extend((0..joined).map(|_| vec![0; 3]));
            let target = dispatch(workers + joined, &to);
            let steps = changes(&current, &target);
            let mut a = current.clone();
            for s in &steps {
                apply(&mut a, *s);
            }
            prop_assert_eq!(&a, &target);
            let moved: u32 = current
                .iter()
                .zip(&target)
                .flat_map(|(c, t)| c.iter().zip(t).map(|(x, y)| x.abs_diff(*y)))
                .sum();
            let cost: u32 = steps.iter().map(|s| if matches!(s, Change::Move { .. }) { 2 } else { 1 }).sum();
            prop_assert_eq!(cost, moved, "no user is started or stopped needlessly");
        }

        #[test]
        fn a_ramp_from_zero_keeps_the_class_mix_in_proportion_at_every_step(
            workers in 1usize..10,
            per_class in proptest::collection::vec(0u32..100, 1..5),
        ) {
            let mut a = vec![vec![0u32; per_class.len()]; workers];
            let target = dispatch(workers, &per_class);
            let steps = changes(&a.clone(), &target);
            let n = steps.len() as f64;
            for (k, s) in steps.into_iter().enumerate() {
                apply(&mut a, s);
                for (c, &want) in per_class.iter().enumerate() {
                    let have: u32 = a.iter().map(|w| w[c]).sum();
                    let due = f64::from(want) * (k + 1) as f64 / n;
                    prop_assert!((f64::from(have) - due).abs() <= 1.0, "class {} at step {}", c, k);
                }
            }
            prop_assert_eq!(a, target);
        }
    }
}
