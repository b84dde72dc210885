//! One row of the stats: everything measured for a (method, name), or for all requests
//! (Aggregated).

use std::collections::BTreeMap;

use crate::histogram::Histogram;

use super::Sample;

/// Seconds of per-second counts kept: the 10 that "current" rates average, plus room for late
/// worker reports.
pub const RECENT_SECONDS: usize = 20;

/// Requests and failures that finished in one Unix second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Second {
    pub at_unix_s: u64,
    pub requests: u64,
    pub failures: u64,
}

/// How often one error happened, and when first and last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorStat {
    pub occurrences: u64,
    pub first_seen_s: u64,
    pub last_seen_s: u64,
}

impl ErrorStat {
    pub(crate) fn merge(&mut self, other: &ErrorStat) {
        self.occurrences += other.occurrences;
        self.first_seen_s = self.first_seen_s.min(other.first_seen_s);
        self.last_seen_s = self.last_seen_s.max(other.last_seen_s);
    }
}

/// Statistics of one (method, name), or of every request (Aggregated).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entry {
    pub num_requests: u64,
    pub num_failures: u64,
    /// Response times of every request, failed ones included (as Locust counts them).
    pub histogram: Histogram,
    /// Response times measured from the intended send time, of the requests that had one
    /// (paced users'); `None` until one does, so rows of unpaced users carry nothing more. It
    /// may hold fewer values than `histogram` when paced and unpaced users share a row.
    pub corrected: Option<Box<Histogram>>,
    pub total_content_length: u64,
    pub first_request_s: Option<u64>,
    pub last_request_s: Option<u64>,
    recent: Recent,
    /// By message; empty on the Aggregated entry (errors belong to a request).
    errors: BTreeMap<Box<str>, ErrorStat>,
}

impl Entry {
    #[inline]
    pub(super) fn record(&mut self, s: &Sample<'_>) {
        let failed = u64::from(s.error.is_some());
        self.num_requests += 1;
        self.num_failures += failed;
        self.histogram.record(s.response_time_us);
        if let Some(us) = s.corrected_response_time_us {
            self.corrected.get_or_insert_default().record(us);
        }
        self.total_content_length += s.content_length;
        self.first_request_s = Some(
            self.first_request_s
                .map_or(s.at_unix_s, |f| f.min(s.at_unix_s)),
        );
        self.last_request_s = Some(
            self.last_request_s
                .map_or(s.at_unix_s, |l| l.max(s.at_unix_s)),
        );
        self.add_second(Second {
            at_unix_s: s.at_unix_s,
            requests: 1,
            failures: failed,
        });
    }

    /// Adds counts for one second; seconds older than the window kept are dropped.
    #[inline]
    pub fn add_second(&mut self, s: Second) {
        self.recent.add(s);
    }

    /// The per-second counts kept (the last [`RECENT_SECONDS`] seconds seen), in no order.
    pub fn recent_seconds(&self) -> impl Iterator<Item = Second> + '_ {
        self.recent
            .0
            .iter()
            .copied()
            .filter(|s| s.requests != 0 || s.failures != 0)
    }

    fn second(&self, at_unix_s: u64) -> Second {
        match self.recent.0.get(Recent::slot(at_unix_s)) {
            Some(&s) if s.at_unix_s == at_unix_s => s,
            _ => Second::default(),
        }
    }

    /// Errors of this entry by message, sorted by message.
    pub fn errors(&self) -> impl Iterator<Item = (&str, &ErrorStat)> {
        self.errors.iter().map(|(m, e)| (&**m, e))
    }

    /// Adds occurrences of an error (a peer's report). [`super::Stats`] bounds how many distinct
    /// messages it keeps; an entry built by hand is trusted.
    pub fn add_error(&mut self, message: &str, stat: ErrorStat) {
        match self.errors.get_mut(message) {
            Some(e) => e.merge(&stat),
            None => {
                self.errors.insert(message.into(), stat);
            }
        }
    }

    pub(super) fn has_error(&self, message: &str) -> bool {
        self.errors.contains_key(message)
    }

    /// Adds another entry: numbers and errors (every error message; [`super::Stats`] merges
    /// under its bound instead).
    pub fn merge(&mut self, other: &Entry) {
        self.merge_counts(other);
        for (message, stat) in other.errors() {
            self.add_error(message, *stat);
        }
    }

    /// Merges everything but the errors, which [`super::Stats`] merges under its bound.
    pub(super) fn merge_counts(&mut self, other: &Entry) {
        // Saturating: the numbers may come from a peer, and a bad one must not wrap or panic.
        self.num_requests = self.num_requests.saturating_add(other.num_requests);
        self.num_failures = self.num_failures.saturating_add(other.num_failures);
        self.histogram.merge(&other.histogram);
        if let Some(theirs) = &other.corrected {
            self.corrected.get_or_insert_default().merge(theirs);
        }
        self.total_content_length = self
            .total_content_length
            .saturating_add(other.total_content_length);
        self.first_request_s = min_some(self.first_request_s, other.first_request_s);
        self.last_request_s = self.last_request_s.max(other.last_request_s);
        for s in other.recent_seconds() {
            self.add_second(s);
        }
    }

    /// Zeroes the numbers (Locust's reset keeps the rows).
    pub(super) fn reset(&mut self) {
        *self = Entry::default();
    }

    /// Mean response time in milliseconds (0 without requests).
    pub fn avg_response_time_ms(&self) -> f64 {
        if self.num_requests == 0 {
            return 0.0;
        }
        // One division (not a mean then a /1000) so 3712 us over 1 request prints as 3.712.
        self.histogram.sum() as f64 / (self.histogram.count() as f64 * 1000.0)
    }

    pub fn min_response_time_ms(&self) -> f64 {
        us_to_ms(self.histogram.min())
    }

    pub fn max_response_time_ms(&self) -> f64 {
        us_to_ms(self.histogram.max())
    }

    pub fn median_response_time_ms(&self) -> f64 {
        self.percentile_ms(0.5)
    }

    /// Response time at quantile `q` (0..=1) in milliseconds, within 0.1%.
    pub fn percentile_ms(&self, q: f64) -> f64 {
        us_to_ms(self.histogram.quantile(q))
    }

    /// Response time from the intended send time at quantile `q`, in milliseconds; `None` when
    /// no request of this row had an intended send time.
    pub fn corrected_percentile_ms(&self, q: f64) -> Option<f64> {
        self.corrected
            .as_deref()
            .filter(|h| !h.is_empty())
            .map(|h| us_to_ms(h.quantile(q)))
    }

    pub fn avg_content_length(&self) -> f64 {
        if self.num_requests == 0 {
            0.0
        } else {
            self.total_content_length as f64 / self.num_requests as f64
        }
    }

    /// Requests per second over the recent past (Locust's `current_rps`): the mean over the 10
    /// complete seconds before `now - 1`, or over fewer if the entry is younger. `now - 1` is
    /// left out because workers' reports for it may still be on their way.
    pub fn current_rps(&self, now_unix_s: u64) -> f64 {
        self.recent_mean(now_unix_s, |s| s.requests)
    }

    /// Failures per second over the same seconds as [`Entry::current_rps`].
    pub fn current_fail_per_sec(&self, now_unix_s: u64) -> f64 {
        self.recent_mean(now_unix_s, |s| s.failures)
    }

    fn recent_mean(&self, now_unix_s: u64, field: impl Fn(Second) -> u64) -> f64 {
        let Some(first) = self.first_request_s else {
            return 0.0;
        };
        let Some(last) = now_unix_s.checked_sub(2) else {
            return 0.0;
        };
        let start = now_unix_s.saturating_sub(11).max(first);
        if start > last {
            return 0.0;
        }
        let total: u64 = (start..=last).map(|at| field(self.second(at))).sum();
        total as f64 / (last - start + 1) as f64
    }

    /// Requests per second over a run of `run_seconds`.
    pub fn total_rps(&self, run_seconds: f64) -> f64 {
        per_second(self.num_requests, run_seconds)
    }

    pub fn total_fail_per_sec(&self, run_seconds: f64) -> f64 {
        per_second(self.num_failures, run_seconds)
    }

    /// Failures / requests, 0 without requests.
    pub fn fail_ratio(&self) -> f64 {
        if self.num_requests == 0 {
            0.0
        } else {
            self.num_failures as f64 / self.num_requests as f64
        }
    }
}

/// Per-second counts: slot `at % RECENT_SECONDS` holds the latest second that maps to it.
/// Keeping the latest (not the last written) makes merging order-independent, so deltas from
/// several workers add up per second whatever order they arrive in. Allocated on first use, so
/// an empty entry (and a `Stats`, which holds one) stays small and cheap to create.
#[derive(Debug, Clone, Default)]
struct Recent(Vec<Second>);

impl Recent {
    fn slot(at_unix_s: u64) -> usize {
        (at_unix_s % RECENT_SECONDS as u64) as usize
    }

    #[inline]
    fn add(&mut self, s: Second) {
        if self.0.is_empty() {
            self.0 = vec![Second::default(); RECENT_SECONDS];
        }
        let slot = &mut self.0[Self::slot(s.at_unix_s)];
        if slot.at_unix_s == s.at_unix_s {
            slot.requests += s.requests;
            slot.failures += s.failures;
        } else if slot.at_unix_s < s.at_unix_s {
            *slot = s;
        }
    }
}

/// Not yet allocated equals all zeros.
impl PartialEq for Recent {
    fn eq(&self, other: &Self) -> bool {
        let slot = |r: &Recent, i: usize| r.0.get(i).copied().unwrap_or_default();
        (0..RECENT_SECONDS).all(|i| slot(self, i) == slot(other, i))
    }
}

fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn per_second(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

fn min_some(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(at_unix_s: u64, failed: bool) -> Sample<'static> {
        Sample {
            corrected_response_time_us: None,
            response_time_us: 1000,
            content_length: 10,
            at_unix_s,
            error: failed.then_some("boom"),
        }
    }

    #[test]
    fn current_rps_averages_the_ten_complete_seconds_before_the_last_one() {
        let mut e = Entry::default();
        for t in 100..=130 {
            // t requests in second t, one failure each second.
            for i in 0..t {
                e.record(&at(t, i == 0));
            }
        }
        // now = 130: seconds 119..=128.
        assert_eq!(e.current_rps(130), (119..=128).sum::<u64>() as f64 / 10.0);
        assert_eq!(e.current_fail_per_sec(130), 1.0);
    }

    #[test]
    fn current_rps_of_a_young_entry_averages_only_the_seconds_it_has_lived() {
        let mut e = Entry::default();
        for t in [200, 200, 201, 202, 202, 202] {
            e.record(&at(t, false));
        }
        assert_eq!(e.current_rps(201), 0.0, "no complete second yet");
        assert_eq!(e.current_rps(202), 2.0);
        assert_eq!(e.current_rps(204), 6.0 / 3.0);
        assert_eq!(e.current_rps(1_000), 0.0, "long idle");
    }

    #[test]
    fn per_second_counts_add_up_whatever_order_seconds_arrive_in() {
        let mut forward = Entry::default();
        let mut backward = Entry::default();
        let seconds: Vec<u64> = (0..50).map(|i| 1000 + i % 37).collect();
        for &t in &seconds {
            forward.record(&at(t, false));
        }
        for &t in seconds.iter().rev() {
            backward.record(&at(t, false));
        }
        assert_eq!(forward, backward);
    }

    #[test]
    fn milliseconds_keep_microsecond_precision() {
        let mut e = Entry::default();
        e.record(&Sample {
            corrected_response_time_us: None,
            response_time_us: 3712,
            content_length: 13,
            at_unix_s: 1,
            error: None,
        });
        assert_eq!(e.avg_response_time_ms(), 3.712);
        assert_eq!(
            (e.min_response_time_ms(), e.max_response_time_ms()),
            (3.712, 3.712)
        );
        assert_eq!(e.median_response_time_ms(), 3.712);
        assert_eq!(e.avg_content_length(), 13.0);
        assert_eq!(e.total_rps(0.5), 2.0);
    }
}
