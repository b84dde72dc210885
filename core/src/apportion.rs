//! Exact apportionment of users to classes, and the order in which to start or stop them.

/// A class's claim on users: a fixed count, or a weight among the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub weight: u32,
    pub fixed: Option<u32>,
}

/// Users per class for `total` users. Fixed counts are served first, in class order, as far as
/// `total` reaches (as in Locust); the rest is shared by weight with the largest-remainder method
/// (ties go to the earlier class), so the counts always add up to `total` (or to the sum of the
/// fixed counts, when every class is fixed and they ask for less).
pub fn apportion(total: u32, claims: &[Claim]) -> Vec<u32> {
    let mut out = vec![0u32; claims.len()];
    let mut left = total;
    for (i, c) in claims.iter().enumerate() {
        if let Some(f) = c.fixed {
            out[i] = f.min(left);
            left -= out[i];
        }
    }
    let weighted: Vec<usize> = (0..claims.len())
        .filter(|&i| claims[i].fixed.is_none() && claims[i].weight > 0)
        .collect();
    let weight_sum: u64 = weighted.iter().map(|&i| u64::from(claims[i].weight)).sum();
    if weight_sum == 0 || left == 0 {
        return out;
    }
    let mut remainders = Vec::with_capacity(weighted.len());
    let mut given = 0u64;
    for &i in &weighted {
        let exact = u64::from(left) * u64::from(claims[i].weight);
        let quota = exact / weight_sum;
        out[i] = quota as u32;
        given += quota;
        remainders.push((exact % weight_sum, i));
    }
    // Largest remainder first; equal remainders go to the earlier class.
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in remainders.iter().take((u64::from(left) - given) as usize) {
        out[i] += 1;
    }
    out
}

/// One user to start (`+1`) or stop (`-1`) in a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassChange {
    pub class: usize,
    pub start: bool,
}

/// The order in which to go from `current` to `target` users per class, one user at a time,
/// interleaved so that after every step each class has moved within one user of its exact
/// share of the change so far (Balinski and Young's quota method: among the classes still
/// under their upper quota, the next step goes to the one with the largest weight per step
/// taken plus one). Its length is the total absolute change.
///
/// The order is computed as it goes: the iterator holds a few numbers per class, never one per
/// user, so a ramp to ten million users costs no more memory than a ramp to ten.
pub fn ramp(current: &[u32], target: &[u32]) -> Interleave {
    assert_eq!(current.len(), target.len(), "one count per class");
    let deltas: Vec<i64> = current
        .iter()
        .zip(target)
        .map(|(&c, &t)| i64::from(t) - i64::from(c))
        .collect();
    let weight: Vec<u64> = deltas.iter().map(|d| d.unsigned_abs()).collect();
    Interleave {
        total: weight.iter().sum(),
        start: deltas.iter().map(|&d| d > 0).collect(),
        done: vec![0; weight.len()],
        weight,
        taken: 0,
    }
}

/// The quota method's order as an iterator; see [`ramp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interleave {
    /// Steps each class takes in all (its absolute change).
    weight: Vec<u64>,
    /// Whether the class grows (its steps are starts) or shrinks.
    start: Vec<bool>,
    /// Steps each class has taken so far.
    done: Vec<u64>,
    total: u64,
    taken: u64,
}

impl Interleave {
    /// Steps in all.
    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Steps taken so far.
    pub fn taken(&self) -> u64 {
        self.taken
    }

    /// Steps class `class` has taken so far.
    pub fn done(&self, class: usize) -> u64 {
        self.done.get(class).copied().unwrap_or(0)
    }

    /// Whether the steps of `class` start users (its count grows).
    pub fn starts(&self, class: usize) -> bool {
        self.start.get(class).copied().unwrap_or(false)
    }

    /// Takes every remaining step at once, in O(classes).
    pub fn finish(&mut self) {
        self.done.clone_from(&self.weight);
        self.taken = self.total;
    }

    /// The class of the next step.
    fn pick(&self) -> Option<usize> {
        let n = self.taken + 1;
        let mut best: Option<usize> = None;
        for i in 0..self.weight.len() {
            let (w, d) = (self.weight[i], self.done[i]);
            // Under its upper quota after this step: done < n * w / total.
            let eligible =
                d < w && u128::from(d) * u128::from(self.total) < u128::from(n) * u128::from(w);
            if !eligible {
                continue;
            }
            // Largest w / (done + 1); on a tie the class with fewer steps so far (it has waited
            // longest), then the earlier one.
            let better = best.is_none_or(|b| {
                let (wi, wb) = (u128::from(w), u128::from(self.weight[b]));
                let (di, db) = (u128::from(d + 1), u128::from(self.done[b] + 1));
                wi * db > wb * di || (wi * db == wb * di && d < self.done[b])
            });
            if better {
                best = Some(i);
            }
        }
        best
    }
}

impl Iterator for Interleave {
    type Item = ClassChange;

    fn next(&mut self) -> Option<ClassChange> {
        if self.taken >= self.total {
            return None;
        }
        // The quota method always has an eligible class while steps remain.
        let class = self.pick()?;
        self.done[class] += 1;
        self.taken += 1;
        Some(ClassChange {
            class,
            start: self.start[class],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn weights(ws: &[u32]) -> Vec<Claim> {
        ws.iter()
            .map(|&weight| Claim {
                weight,
                fixed: None,
            })
            .collect()
    }

    #[test]
    fn apportion_splits_three_to_one() {
        assert_eq!(apportion(4, &weights(&[3, 1])), vec![3, 1]);
        assert_eq!(apportion(100, &weights(&[3, 1])), vec![75, 25]);
    }

    #[test]
    fn apportion_gives_remainders_to_the_largest_fractions() {
        // 10 * 1/3 = 3.33 each: one extra, to the earliest class on a tie.
        assert_eq!(apportion(10, &weights(&[1, 1, 1])), vec![4, 3, 3]);
        // 5 * (5/8, 2/8, 1/8) = 3.125, 1.25, 0.625 -> 3, 1, 1.
        assert_eq!(apportion(5, &weights(&[5, 2, 1])), vec![3, 1, 1]);
    }

    #[test]
    fn apportion_serves_fixed_counts_first() {
        let claims = [
            Claim {
                weight: 1,
                fixed: Some(2),
            },
            Claim {
                weight: 1,
                fixed: None,
            },
        ];
        assert_eq!(apportion(10, &claims), vec![2, 8]);
        assert_eq!(apportion(1, &claims), vec![1, 0]);
    }

    #[test]
    fn ramp_interleaves_classes_by_share() {
        let steps: Vec<ClassChange> = ramp(&[0, 0], &[3, 1]).collect();
        let classes: Vec<usize> = steps.iter().map(|s| s.class).collect();
        assert_eq!(classes, vec![0, 0, 1, 0]);
        assert!(steps.iter().all(|s| s.start));
    }

    #[test]
    fn ramp_stays_within_one_of_each_share_where_smooth_round_robin_did_not() {
        // Found by the property test below when ramp was a smooth weighted round robin.
        let (cur, target) = ([177, 39, 132, 143, 34], [48, 38, 151, 60, 33]);
        let steps: Vec<ClassChange> = ramp(&cur, &target).collect();
        let total = steps.len() as f64;
        let mut moved = [0f64; 5];
        for (k, s) in steps.iter().enumerate() {
            moved[s.class] += 1.0;
            for i in 0..5 {
                let share = f64::from(cur[i].abs_diff(target[i])) * (k + 1) as f64 / total;
                assert!((moved[i] - share).abs() < 1.0, "class {i} at step {k}");
            }
        }
    }

    #[test]
    fn ramp_stops_users_when_the_target_shrinks() {
        let steps: Vec<ClassChange> = ramp(&[6, 2], &[3, 1]).collect();
        assert_eq!(steps.len(), 4);
        assert!(steps.iter().all(|s| !s.start));
        assert_eq!(steps.iter().filter(|s| s.class == 0).count(), 3);
    }

    #[test]
    fn a_ramp_to_billions_of_users_is_computed_as_it_goes() {
        // A ramp that held one step per user needed 16 bytes each: 128 GB here.
        let mut r = ramp(&[0, 0, 0], &[u32::MAX, u32::MAX / 2, 7]);
        assert_eq!(r.len(), u64::from(u32::MAX) + u64::from(u32::MAX / 2) + 7);
        assert_eq!(r.by_ref().take(3).filter(|s| s.class == 0).count(), 2);
        r.finish();
        assert_eq!(r.taken(), r.len());
        assert_eq!(r.done(0), u64::from(u32::MAX));
        assert_eq!(r.done(2), 7);
        assert_eq!(r.next(), None);
    }

    proptest! {
        #[test]
        fn apportion_conserves_the_total_and_honours_weights(
            total in 0u32..10_000,
            ws in proptest::collection::vec(1u32..50, 1..8),
        ) {
            let out = apportion(total, &weights(&ws));
            prop_assert_eq!(out.iter().sum::<u32>(), total);
            let wsum: u32 = ws.iter().sum();
            for (i, &n) in out.iter().enumerate() {
                let exact = f64::from(total) * f64::from(ws[i]) / f64::from(wsum);
                prop_assert!((f64::from(n) - exact).abs() < 1.0, "class {} got {} for {}", i, n, exact);
            }
        }

        #[test]
        fn ramp_reaches_the_target_and_every_prefix_stays_within_one_of_its_share(
            cur in proptest::collection::vec(0u32..200, 1..6),
            seed in proptest::collection::vec(0u32..200, 6),
        ) {
            let target: Vec<u32> = seed[..cur.len()].to_vec();
            let steps: Vec<ClassChange> = ramp(&cur, &target).collect();
            let mut now: Vec<i64> = cur.iter().map(|&c| i64::from(c)).collect();
            let total = steps.len() as f64;
            for (k, s) in steps.iter().enumerate() {
                now[s.class] += if s.start { 1 } else { -1 };
                for i in 0..cur.len() {
                    let d = i64::from(target[i]) - i64::from(cur[i]);
                    let expected = d as f64 * (k + 1) as f64 / total;
                    let moved = (now[i] - i64::from(cur[i])) as f64;
                    prop_assert!((moved - expected).abs() <= 1.0);
                }
            }
            let end: Vec<u32> = now.iter().map(|&n| n as u32).collect();
            prop_assert_eq!(end, target);
        }
    }
}
