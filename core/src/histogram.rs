//! Mergeable, bounded response-time histogram in microseconds.
//!
//! Log-linear (HDR-style) buckets: values below 2048 us are counted exactly; above, each power of
//! two is split into 1024 equal buckets, so any reported value is within 1/1024 of a recorded one.
//! Counts are stored densely over the observed index window only, so a test against a fast
//! server keeps a few KiB per entry, and values are capped (see [`MAX_VALUE_US`]) so the window
//! itself is bounded. Count, min, max and sum are exact.

use std::fmt;

/// Values above this (2^36 us, about 19 hours) are recorded as this; it bounds the bucket index.
pub const MAX_VALUE_US: u64 = 1 << 36;

/// Sub-buckets per power of two; sets the precision (1/1024).
const SUB_BUCKETS: u32 = 1024;
/// Most buckets a merge leaves in the sparse form (each merge rebuilds the list).
const MAX_SPARSE_MERGED: usize = 256;
/// Below this every value has its own bucket.
const LINEAR_LIMIT: u64 = 2 * SUB_BUCKETS as u64;
/// Index of [`MAX_VALUE_US`], the largest index in use.
const MAX_INDEX: u32 = index_of(MAX_VALUE_US);

/// The bucket holding `v` (`v <= MAX_VALUE_US`).
#[inline]
const fn index_of(v: u64) -> u32 {
    if v < LINEAR_LIMIT {
        v as u32
    } else {
        let e = (63 - v.leading_zeros()) - 10;
        e * SUB_BUCKETS + (v >> e) as u32
    }
}

/// Width of bucket `idx` as a power of two.
#[inline]
const fn exponent_of(idx: u32) -> u32 {
    if idx < LINEAR_LIMIT as u32 {
        0
    } else {
        idx / SUB_BUCKETS - 1
    }
}

/// Smallest value that lands in bucket `idx`.
#[inline]
const fn lowest_of(idx: u32) -> u64 {
    let e = exponent_of(idx);
    ((idx - e * SUB_BUCKETS) as u64) << e
}

/// Largest value that lands in bucket `idx`.
#[inline]
const fn highest_of(idx: u32) -> u64 {
    lowest_of(idx) + (1u64 << exponent_of(idx)) - 1
}

/// The 1-based rank of the value at quantile `q` among `count` values (`ceil(q * count)`, at
/// least 1). The small epsilon keeps `0.07 * 100` (7.000000000000001 in floating point) at 7.
pub fn rank(q: f64, count: u64) -> u64 {
    let exact = q.clamp(0.0, 1.0) * count as f64;
    ((exact - 1e-9).ceil() as u64).clamp(1, count.max(1))
}

/// A histogram's parts do not describe a histogram (wire data that is corrupt or from a peer with
/// another bucket layout).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidParts {
    #[error("bucket index {0} is out of range")]
    IndexOutOfRange(u32),
    #[error("bucket indexes are not strictly increasing")]
    Unordered,
    #[error("min {min} and max {max} do not match the first and last buckets")]
    Bounds { min: u64, max: u64 },
    #[error("the counts overflow")]
    Overflow,
}

/// Response-time histogram in microseconds.
#[derive(Clone)]
pub struct Histogram {
    /// Counts for bucket indexes `lo .. lo + counts.len()`.
    counts: Vec<u64>,
    lo: u32,
    /// Or, for a histogram rebuilt from the wire whose few buckets lie far apart (a delta from a
    /// worker), the non-empty buckets by increasing index; `counts` is empty then. A master
    /// merges such deltas, and a dense window over 2 s of 1 ms-wide buckets costs 90 KiB to
    /// allocate, zero and scan for 100 values. Recording into it makes it dense.
    sparse: Vec<(u32, u64)>,
    count: u64,
    /// `u64::MAX` while empty, so `record` needs no branch for the first value.
    min: u64,
    max: u64,
    sum: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: Vec::new(),
            lo: 0,
            sparse: Vec::new(),
            count: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }
}

impl Histogram {
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    pub fn record(&mut self, value_us: u64) {
        self.record_n(value_us, 1);
    }

    #[inline]
    pub fn record_n(&mut self, value_us: u64, n: u64) {
        if n == 0 {
            return;
        }
        let v = value_us.min(MAX_VALUE_US);
        let idx = index_of(v);
        match self.counts.get_mut(idx.wrapping_sub(self.lo) as usize) {
            Some(c) => *c += n,
            None => self.grow_and_add(idx, n),
        }
        self.count += n;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum = self.sum.saturating_add(v.saturating_mul(n));
    }

    /// Widens the window to include `idx`, with slack on the side that grew so a slowly drifting
    /// latency does not reallocate on every new bucket.
    #[cold]
    fn grow_and_add(&mut self, idx: u32, n: u64) {
        if !self.sparse.is_empty() {
            self.densify();
            if let Some(c) = self.counts.get_mut(idx.wrapping_sub(self.lo) as usize) {
                *c += n;
                return;
            }
        }
        if self.counts.is_empty() {
            self.lo = idx;
            self.counts.push(n);
            return;
        }
        let hi = self.lo + self.counts.len() as u32; // exclusive
        let slack = (self.counts.len() as u32 / 2).max(16);
        let (new_lo, new_hi) = if idx < self.lo {
            (idx.saturating_sub(slack), hi)
        } else {
            (self.lo, (idx + 1 + slack).min(MAX_INDEX + 1))
        };
        let mut counts = vec![0u64; (new_hi - new_lo) as usize];
        let start = (self.lo - new_lo) as usize;
        counts[start..start + self.counts.len()].copy_from_slice(&self.counts);
        counts[(idx - new_lo) as usize] += n;
        self.counts = counts;
        self.lo = new_lo;
    }

    /// Turns the sparse form into the dense window over its buckets.
    fn densify(&mut self) {
        let sparse = std::mem::take(&mut self.sparse);
        let (Some(&(first, _)), Some(&(last, _))) = (sparse.first(), sparse.last()) else {
            return;
        };
        let mut counts = vec![0u64; (last - first + 1) as usize];
        for (idx, n) in sparse {
            counts[(idx - first) as usize] = n;
        }
        self.counts = counts;
        self.lo = first;
    }

    pub fn merge(&mut self, other: &Histogram) {
        if self.count == 0 && self.counts.is_empty() && self.sparse.is_empty() {
            // Into an empty one (a new row on the master): a copy keeps the cheaper form.
            self.clone_from(other);
            return;
        }
        if self.counts.is_empty() {
            self.merge_sparse(other);
        } else {
            for (idx, n) in other.buckets() {
                match self.counts.get_mut(idx.wrapping_sub(self.lo) as usize) {
                    Some(c) => *c = c.saturating_add(n),
                    None => self.grow_and_add(idx, n),
                }
            }
        }
        // Saturating: a merged histogram may come from a peer.
        self.count = self.count.saturating_add(other.count);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum = self.sum.saturating_add(other.sum);
    }

    /// Merges into the sparse form, which it keeps while it is the smaller one and short: a sum
    /// of a few deltas (the Aggregated row of a report decoded on the master) then costs its few
    /// buckets, not a window of mostly zeros, and a row that many reports feed turns dense
    /// before a merge would cost more than adding into the window.
    fn merge_sparse(&mut self, other: &Histogram) {
        let mut merged = Vec::with_capacity(self.sparse.len() + other.buckets().count());
        let mut mine = std::mem::take(&mut self.sparse).into_iter().peekable();
        let mut theirs = other.buckets().peekable();
        loop {
            let next = match (mine.peek().copied(), theirs.peek().copied()) {
                (Some((a, x)), Some((b, y))) if a == b => {
                    mine.next();
                    theirs.next();
                    (a, x.saturating_add(y))
                }
                (Some(a), Some(b)) if b.0 < a.0 => {
                    theirs.next();
                    b
                }
                (Some(a), _) => {
                    mine.next();
                    a
                }
                (None, Some(b)) => {
                    theirs.next();
                    b
                }
                (None, None) => break,
            };
            merged.push(next);
        }
        self.sparse = merged;
        if let (Some(&(first, _)), Some(&(last, _))) = (self.sparse.first(), self.sparse.last()) {
            let len = self.sparse.len();
            if len > MAX_SPARSE_MERGED || len * 4 >= (last - first + 1) as usize {
                self.densify();
            }
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Exact smallest recorded value (0 when empty).
    pub fn min(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.min
        }
    }

    /// Exact largest recorded value (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Exact sum of the recorded values (saturating).
    pub fn sum(&self) -> u64 {
        self.sum
    }

    /// Exact mean in microseconds (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The value at quantile `q` in 0..=1: the highest value equivalent to the `ceil(q * count)`-th
    /// smallest, never below min nor above max (0 when empty). `q = 0` is min and `q = 1` is max.
    pub fn quantile(&self, q: f64) -> u64 {
        self.quantiles(&[q])[0]
    }

    /// Several quantiles in one pass over the buckets (in the order given).
    pub fn quantiles(&self, qs: &[f64]) -> Vec<u64> {
        let mut out = vec![0u64; qs.len()];
        if self.count == 0 {
            return out;
        }
        let mut wanted: Vec<(u64, usize)> = qs
            .iter()
            .enumerate()
            .map(|(i, &q)| (if q <= 0.0 { 0 } else { rank(q, self.count) }, i))
            .collect();
        wanted.sort_unstable();
        let mut next = wanted.iter().peekable();
        while let Some(&&(0, i)) = next.peek() {
            out[i] = self.min;
            next.next();
        }
        let mut seen = 0u64;
        for (idx, n) in self.buckets() {
            seen += n;
            while let Some(&&(r, i)) = next.peek() {
                if r > seen {
                    break;
                }
                out[i] = highest_of(idx).clamp(self.min, self.max);
                next.next();
            }
        }
        out
    }

    /// Non-empty buckets as (index, count), by increasing index: with min, max and sum, all a
    /// peer needs to rebuild the histogram ([`Histogram::from_parts`]).
    pub fn buckets(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        let lo = self.lo;
        // At most one of the two forms holds anything.
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &n)| n != 0)
            .map(move |(i, &n)| (lo + i as u32, n))
            .chain(self.sparse.iter().copied().filter(|&(_, n)| n != 0))
    }

    /// Rebuilds a histogram from [`Histogram::buckets`], min, max and sum, checking that they
    /// agree (the count is the buckets' total).
    pub fn from_parts(
        buckets: &[(u32, u64)],
        min: u64,
        max: u64,
        sum: u64,
    ) -> Result<Histogram, InvalidParts> {
        let (Some(&(first, _)), Some(&(last, _))) = (buckets.first(), buckets.last()) else {
            return Ok(Histogram::new());
        };
        if last > MAX_INDEX {
            return Err(InvalidParts::IndexOutOfRange(last));
        }
        if buckets.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(InvalidParts::Unordered);
        }
        if min > max || max > MAX_VALUE_US || index_of(min) != first || index_of(max) != last {
            return Err(InvalidParts::Bounds { min, max });
        }
        let mut count = 0u64;
        for &(_, n) in buckets {
            count = count.checked_add(n).ok_or(InvalidParts::Overflow)?;
        }
        let width = (last - first + 1) as usize;
        // Sparse when the window would be mostly zeros (a (u32, u64) pair is two words).
        if buckets.len() * 4 < width {
            return Ok(Histogram {
                sparse: buckets.to_vec(),
                count,
                min,
                max,
                sum,
                ..Histogram::default()
            });
        }
        let mut counts = vec![0u64; width];
        for &(idx, n) in buckets {
            counts[(idx - first) as usize] = n;
        }
        Ok(Histogram {
            counts,
            lo: first,
            sparse: Vec::new(),
            count,
            min,
            max,
            sum,
        })
    }

    /// How many values are at most `value_us` (cumulative count, as a Prometheus bucket). A
    /// bucket straddling the bound counts when its highest value is within it, so the answer is
    /// exact for values recorded below 2048 us and within the bucket width (1/1024) above.
    pub fn count_at_most(&self, value_us: u64) -> u64 {
        self.buckets()
            .take_while(|&(idx, _)| highest_of(idx) <= value_us)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

/// Equal when they hold the same values, whatever the spare room in their windows.
impl PartialEq for Histogram {
    fn eq(&self, other: &Self) -> bool {
        self.count == other.count
            && self.min() == other.min()
            && self.max == other.max
            && self.sum == other.sum
            && self.buckets().eq(other.buckets())
    }
}

impl Eq for Histogram {}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("min", &self.min())
            .field("max", &self.max)
            .field("sum", &self.sum)
            .field("buckets", &self.buckets().count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn of(values: &[u64]) -> Histogram {
        let mut h = Histogram::new();
        values.iter().for_each(|&v| h.record(v));
        h
    }

    /// Response times spread over many magnitudes, as real ones are.
    fn value() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..3000,
            0u64..200_000,
            0u64..5_000_000_000,
            Just(u64::MAX)
        ]
    }

    #[test]
    fn buckets_are_contiguous_and_each_value_lies_within_its_bucket() {
        for idx in 1..=MAX_INDEX {
            assert_eq!(lowest_of(idx), highest_of(idx - 1) + 1, "index {idx}");
        }
        for v in [0, 1, 2047, 2048, 2049, 4095, 4096, 1_000_000, MAX_VALUE_US] {
            let idx = index_of(v);
            assert!(lowest_of(idx) <= v && v <= highest_of(idx), "value {v}");
        }
    }

    #[test]
    fn count_at_most_is_cumulative_and_reaches_the_count() {
        let h = of(&[5, 10, 10, 900, 5000, 80_000]);
        assert_eq!(h.count_at_most(4), 0);
        assert_eq!(h.count_at_most(10), 3);
        assert_eq!(h.count_at_most(1000), 4);
        assert_eq!(h.count_at_most(u64::MAX), 6);
    }

    #[test]
    fn an_empty_histogram_reports_zeros() {
        let h = Histogram::new();
        assert_eq!((h.count(), h.min(), h.max(), h.sum()), (0, 0, 0, 0));
        assert_eq!(h.quantile(0.5), 0);
        assert_eq!(h.mean(), 0.0);
        assert!(h.is_empty());
    }

    #[test]
    fn quantile_zero_is_min_and_one_is_max_exactly() {
        let h = of(&[1_234_567, 2_345_678, 9_999_999]);
        assert_eq!(h.quantile(0.0), 1_234_567);
        assert_eq!(h.quantile(1.0), 9_999_999);
        assert_eq!(h.mean(), (1_234_567.0 + 2_345_678.0 + 9_999_999.0) / 3.0);
    }

    #[test]
    fn values_above_the_cap_are_recorded_as_the_cap() {
        let h = of(&[u64::MAX]);
        assert_eq!(h.max(), MAX_VALUE_US);
        assert_eq!(h.buckets().collect::<Vec<_>>(), vec![(MAX_INDEX, 1)]);
    }

    #[test]
    fn sparse_deltas_merge_record_and_compare_like_dense_ones() {
        let values = [1_000, 150_000, 900_000, 1_999_000, 5];
        let dense = of(&values);
        let buckets: Vec<_> = dense.buckets().collect();
        let sparse =
            Histogram::from_parts(&buckets, dense.min(), dense.max(), dense.sum()).unwrap();
        assert!(!sparse.sparse.is_empty() && sparse.counts.is_empty());
        assert_eq!(sparse, dense);
        assert_eq!(
            sparse.quantiles(&[0.5, 0.99]),
            dense.quantiles(&[0.5, 0.99])
        );
        let mut total = of(&[20_000]);
        total.merge(&sparse);
        let mut expected = of(&[20_000]);
        expected.merge(&dense);
        assert_eq!(total, expected);
        let mut fresh = Histogram::new();
        fresh.merge(&sparse);
        fresh.merge(&sparse);
        let mut recorded = sparse.clone();
        recorded.record(7);
        assert_eq!(recorded, of(&[1_000, 150_000, 900_000, 1_999_000, 5, 7]));
        let mut twice = dense.clone();
        twice.merge(&dense);
        assert_eq!(fresh, twice);
    }

    #[test]
    fn recording_far_below_the_window_keeps_earlier_counts() {
        let h = of(&[1_000_000, 5, 1_000_000, 70_000]);
        assert_eq!(h.quantiles(&[0.25, 0.5, 1.0]), vec![5, 70_015, 1_000_000]);
    }

    #[test]
    fn from_parts_rejects_bounds_that_contradict_the_buckets() {
        assert_eq!(
            Histogram::from_parts(&[(5, 1)], 6, 6, 6),
            Err(InvalidParts::Bounds { min: 6, max: 6 })
        );
        assert_eq!(
            Histogram::from_parts(&[(5, 1), (5, 1)], 5, 5, 10),
            Err(InvalidParts::Unordered)
        );
        assert_eq!(
            Histogram::from_parts(&[(MAX_INDEX + 1, 1)], 5, 5, 5),
            Err(InvalidParts::IndexOutOfRange(MAX_INDEX + 1))
        );
    }

    /// A histogram as a peer sends it (sparse when its buckets lie far apart).
    fn wire(values: &[u64]) -> Histogram {
        let h = of(values);
        let buckets: Vec<_> = h.buckets().collect();
        Histogram::from_parts(&buckets, h.min(), h.max(), h.sum()).unwrap()
    }

    #[test]
    fn a_sum_of_far_apart_deltas_keeps_the_sparse_form_until_the_dense_one_is_smaller() {
        // The master's Aggregated row of one report: ten rows of a few values each, 1 ms to
        // 2 s apart. Densified, the window would hold about 12,000 buckets (96 KB).
        let mut total = Histogram::new();
        for row in 0..10u64 {
            total.merge(&wire(&[1_000 + row * 7_000, 200_000 + row * 180_000]));
        }
        assert!(total.counts.is_empty(), "densified after {total:?}");
        assert_eq!(total.sparse.len(), 20);
        let values: Vec<u64> = (0..10u64)
            .flat_map(|row| [1_000 + row * 7_000, 200_000 + row * 180_000])
            .collect();
        assert_eq!(total, of(&values));
        // Filled in, the window is the cheaper form again.
        for v in (0..4000).map(|i| 1_000 + i * 50) {
            total.merge(&wire(&[v]));
        }
        assert!(total.sparse.is_empty() && !total.counts.is_empty());
        // And so is a long list, however wide its window: each merge would rebuild it.
        let mut long = Histogram::new();
        for i in 0..=MAX_SPARSE_MERGED as u64 {
            long.merge(&wire(&[1_000_000 + i * 100_000]));
        }
        assert!(long.sparse.is_empty() && !long.counts.is_empty());
    }

    proptest! {
        #[test]
        fn merging_wire_forms_equals_recording_everything_into_one(
            parts in prop::collection::vec(prop::collection::vec(value(), 0..40), 1..8),
        ) {
            let mut merged = Histogram::new();
            for p in &parts {
                merged.merge(&wire(p));
            }
            let all: Vec<u64> = parts.concat();
            prop_assert_eq!(&merged, &of(&all));
            prop_assert_eq!(merged.quantiles(&[0.5, 0.99]), of(&all).quantiles(&[0.5, 0.99]));
        }

        #[test]
        fn merge_equals_recording_everything_into_one(
            a in prop::collection::vec(value(), 0..200),
            b in prop::collection::vec(value(), 0..200),
        ) {
            let mut merged = of(&a);
            merged.merge(&of(&b));
            let all: Vec<u64> = a.iter().chain(&b).copied().collect();
            prop_assert_eq!(merged, of(&all));
        }

        #[test]
        fn merge_is_associative_and_commutative(
            a in prop::collection::vec(value(), 0..100),
            b in prop::collection::vec(value(), 0..100),
            c in prop::collection::vec(value(), 0..100),
        ) {
            let (ha, hb, hc) = (of(&a), of(&b), of(&c));
            let mut ab_c = ha.clone();
            ab_c.merge(&hb);
            ab_c.merge(&hc);
            let mut bc = hb.clone();
            bc.merge(&hc);
            let mut a_bc = ha.clone();
            a_bc.merge(&bc);
            prop_assert_eq!(&ab_c, &a_bc);
            let mut ba = hb.clone();
            ba.merge(&ha);
            let mut ab = ha;
            ab.merge(&hb);
            prop_assert_eq!(ab, ba);
        }

        #[test]
        fn quantiles_are_within_one_part_in_1024_of_the_exact_ones(
            values in prop::collection::vec(value(), 1..400),
            qs in prop::collection::vec(0.0f64..=1.0, 1..12),
        ) {
            let h = of(&values);
            let mut sorted: Vec<u64> = values.iter().map(|&v| v.min(MAX_VALUE_US)).collect();
            sorted.sort_unstable();
            let got = h.quantiles(&qs);
            for (&q, &got) in qs.iter().zip(&got) {
                let exact = if q == 0.0 { sorted[0] } else { sorted[rank(q, h.count()) as usize - 1] };
                let tolerance = exact as f64 / 1024.0 + 1.0;
                prop_assert!((got as f64 - exact as f64).abs() <= tolerance, "q {q}: {got} vs {exact}");
                prop_assert!(got >= h.min() && got <= h.max());
                prop_assert_eq!(got, h.quantile(q));
            }
        }

        #[test]
        fn parts_rebuild_the_same_histogram(values in prop::collection::vec(value(), 0..200)) {
            let h = of(&values);
            let buckets: Vec<_> = h.buckets().collect();
            prop_assert_eq!(Histogram::from_parts(&buckets, h.min(), h.max(), h.sum()), Ok(h));
        }
    }
}
