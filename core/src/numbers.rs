//! User numbers: which users of a run a worker runs, as a set of numbers kept as ranges.
//!
//! The master numbers the users of a run across the whole fleet (`{{ user.id }}`, and the feeder
//! row a user gets), so no two live users share a number whatever worker runs them. It hands
//! the numbers out with each assignment; a worker runs exactly one user per number. A set is a
//! sorted list of disjoint, non-adjacent half-open ranges, so the users of a ramp (handed out
//! lowest first, in blocks) take a few ranges, not one entry each.

use std::ops::Range;

/// A set of user numbers, as sorted, disjoint, non-adjacent ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Numbers {
    ranges: Vec<Range<u32>>,
}

/// Ranges that do not make a set: unsorted, overlapping, adjacent or empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("number ranges must be non-empty, sorted and apart: {0:?} after {1:?}")]
pub struct BadRanges(pub Range<u32>, pub Option<Range<u32>>);

impl Numbers {
    pub fn new() -> Numbers {
        Numbers::default()
    }

    /// The set of `ranges`, which must be non-empty, sorted and neither overlap nor touch (the
    /// one way to write each set, so a peer's ranges are checked, not repaired).
    pub fn from_ranges(ranges: Vec<Range<u32>>) -> Result<Numbers, BadRanges> {
        let mut previous: Option<&Range<u32>> = None;
        for r in &ranges {
            if r.is_empty() || previous.is_some_and(|p| p.end >= r.start) {
                return Err(BadRanges(r.clone(), previous.cloned()));
            }
            previous = Some(r);
        }
        Ok(Numbers { ranges })
    }

    pub fn ranges(&self) -> &[Range<u32>] {
        &self.ranges
    }

    /// How many numbers the set holds.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|r| u64::from(r.end - r.start)).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn contains(&self, n: u32) -> bool {
        let i = self.ranges.partition_point(|r| r.end <= n);
        self.ranges.get(i).is_some_and(|r| r.start <= n)
    }

    /// The numbers, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.ranges.iter().flat_map(|r| r.clone())
    }

    /// Adds every number of `other`.
    pub fn extend(&mut self, other: &Numbers) {
        for r in &other.ranges {
            self.insert(r.clone());
        }
    }

    /// Adds `range` (merging with the ranges it overlaps or touches).
    pub fn insert(&mut self, range: Range<u32>) {
        if range.is_empty() {
            return;
        }
        // The ranges from `first` to `last` (exclusive) overlap or touch `range`.
        let first = self.ranges.partition_point(|r| r.end < range.start);
        let last = self.ranges.partition_point(|r| r.start <= range.end);
        let mut merged = range;
        if first < last {
            merged.start = merged.start.min(self.ranges[first].start);
            merged.end = merged.end.max(self.ranges[last - 1].end);
        }
        self.ranges.splice(first..last, [merged]);
    }

    /// Removes every number of `other`.
    pub fn remove(&mut self, other: &Numbers) {
        for r in &other.ranges {
            self.remove_range(r.clone());
        }
    }

    fn remove_range(&mut self, range: Range<u32>) {
        let first = self.ranges.partition_point(|r| r.end <= range.start);
        let last = self.ranges.partition_point(|r| r.start < range.end);
        if first >= last {
            return;
        }
        let head = self.ranges[first].start..range.start;
        let tail = range.end..self.ranges[last - 1].end;
        let kept = [head, tail].into_iter().filter(|r| !r.is_empty());
        self.ranges.splice(first..last, kept);
    }

    /// Removes the `k` highest numbers (all of them if there are fewer) and returns them.
    pub fn pop_highest(&mut self, mut k: u64) -> Numbers {
        let mut popped = Vec::new();
        while k > 0 {
            let Some(last) = self.ranges.last_mut() else {
                break;
            };
            let len = u64::from(last.end - last.start);
            if len <= k {
                k -= len;
                popped.push(last.clone());
                self.ranges.pop();
            } else {
                // k < len <= u32::MAX
                let split = last.end - k as u32;
                popped.push(split..last.end);
                last.end = split;
                k = 0;
            }
        }
        popped.reverse();
        Numbers { ranges: popped }
    }

    /// Removes the `k` lowest numbers (all of them if there are fewer) and returns them.
    pub fn pop_lowest(&mut self, mut k: u64) -> Numbers {
        let mut popped = Vec::new();
        let mut whole = 0;
        for r in &mut self.ranges {
            if k == 0 {
                break;
            }
            let len = u64::from(r.end - r.start);
            if len <= k {
                k -= len;
                popped.push(r.clone());
                whole += 1;
            } else {
                // k < len <= u32::MAX
                let split = r.start + k as u32;
                popped.push(r.start..split);
                r.start = split;
                k = 0;
            }
        }
        self.ranges.drain(..whole);
        Numbers { ranges: popped }
    }

    /// The `k` lowest numbers not in this set (at most as many as there are below `u32::MAX`),
    /// now added to it: the way a pool of taken numbers hands out free ones.
    pub fn take_lowest_free(&mut self, k: u64) -> Numbers {
        let mut free = Numbers::new();
        let mut want = k;
        let mut next = 0u32;
        let mut i = 0;
        while want > 0 {
            let gap_end = self.ranges.get(i).map_or(u32::MAX, |r| r.start);
            let gap = u64::from(gap_end - next);
            if gap > 0 {
                let n = gap.min(want) as u32;
                free.ranges.push(next..next + n);
                want -= u64::from(n);
            }
            match self.ranges.get(i) {
                Some(r) => next = r.end,
                None => break,
            }
            i += 1;
        }
        self.extend(&free);
        free
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // sets of one range, on purpose
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn set(numbers: &Numbers) -> BTreeSet<u32> {
        numbers.iter().collect()
    }

    fn of(items: &BTreeSet<u32>) -> Numbers {
        let mut n = Numbers::new();
        for &i in items {
            n.insert(i..i + 1);
        }
        n
    }

    fn canonical(n: &Numbers) -> bool {
        Numbers::from_ranges(n.ranges.clone()).is_ok()
    }

    #[test]
    fn a_peers_ranges_must_be_the_one_way_to_write_the_set() {
        assert!(Numbers::from_ranges(vec![0..2, 3..4]).is_ok());
        assert!(Numbers::from_ranges(vec![0..2, 2..4]).is_err(), "touching");
        assert!(Numbers::from_ranges(vec![3..4, 0..2]).is_err(), "unsorted");
        assert!(
            Numbers::from_ranges(vec![0..3, 1..4]).is_err(),
            "overlapping"
        );
        assert!(Numbers::from_ranges(vec![1..1]).is_err(), "empty");
    }

    #[test]
    fn a_ramp_handed_out_in_blocks_takes_one_range_per_block() {
        let mut taken = Numbers::new();
        let a = taken.take_lowest_free(1000);
        let b = taken.take_lowest_free(1000);
        assert_eq!(a.ranges(), [0..1000]);
        assert_eq!(b.ranges(), [1000..2000]);
        assert_eq!(taken.ranges(), [0..2000]);
    }

    #[test]
    fn freed_numbers_are_handed_out_again_lowest_first() {
        let mut taken = Numbers::from_ranges(vec![0..10]).unwrap();
        taken.remove(&Numbers::from_ranges(vec![2..4, 7..8]).unwrap());
        let again = taken.take_lowest_free(4);
        assert_eq!(again.ranges(), [2..4, 7..8, 10..11]);
        assert_eq!(taken.ranges(), [0..11]);
    }

    proptest! {
        #[test]
        fn operations_agree_with_a_plain_set(
            a in proptest::collection::btree_set(0u32..200, 0..60),
            b in proptest::collection::btree_set(0u32..200, 0..60),
            k in 0u64..80,
        ) {
            let (na, nb) = (of(&a), of(&b));
            prop_assert!(canonical(&na));
            prop_assert_eq!(na.len(), a.len() as u64);
            for i in 0..210 {
                prop_assert_eq!(na.contains(i), a.contains(&i));
            }

            let mut union = na.clone();
            union.extend(&nb);
            prop_assert!(canonical(&union));
            prop_assert_eq!(set(&union), a.union(&b).copied().collect::<BTreeSet<_>>());

            let mut diff = na.clone();
            diff.remove(&nb);
            prop_assert!(canonical(&diff));
            prop_assert_eq!(set(&diff), a.difference(&b).copied().collect::<BTreeSet<_>>());

            let mut rest = na.clone();
            let popped = rest.pop_highest(k);
            prop_assert!(canonical(&rest) && canonical(&popped));
            let expect: BTreeSet<u32> = a.iter().rev().take(k as usize).copied().collect();
            prop_assert_eq!(set(&popped), expect.clone());
            prop_assert_eq!(set(&rest), a.difference(&expect).copied().collect::<BTreeSet<_>>());

            let mut rest = na.clone();
            let popped = rest.pop_lowest(k);
            prop_assert!(canonical(&rest) && canonical(&popped));
            let expect: BTreeSet<u32> = a.iter().take(k as usize).copied().collect();
            prop_assert_eq!(set(&popped), expect.clone());
            prop_assert_eq!(set(&rest), a.difference(&expect).copied().collect::<BTreeSet<_>>());

            let mut taken = na.clone();
            let free = taken.take_lowest_free(k);
            prop_assert!(canonical(&taken) && canonical(&free));
            let expect: BTreeSet<u32> = (0..).filter(|i| !a.contains(i)).take(k as usize).collect();
            prop_assert_eq!(set(&free), expect.clone());
            prop_assert_eq!(set(&taken), a.union(&expect).copied().collect::<BTreeSet<_>>());
        }
    }
}
