//! Per-(method, name) statistics. To be written.

use crate::histogram::Histogram;
use crate::Method;

/// Locust's percentile columns.
pub const PERCENTILES: [f64; 11] = [
    0.5, 0.66, 0.75, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0,
];

/// One finished request.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    pub response_time_us: u64,
    pub content_length: u64,
    /// Unix second in which the request finished.
    pub at_unix_s: u64,
    /// `Some(message)` when the request failed.
    pub error: Option<&'a str>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entry {
    pub num_requests: u64,
    pub num_failures: u64,
    pub histogram: Histogram,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    total: Entry,
}

impl Stats {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&mut self, _method: Method, _name: &str, s: Sample<'_>) {
        self.total.num_requests += 1;
        self.total.num_failures += u64::from(s.error.is_some());
        self.total.histogram.record(s.response_time_us);
    }

    pub fn record_exception(&mut self, _message: &str, _node: &str) {}

    pub fn merge(&mut self, other: &Stats) {
        self.total.num_requests += other.total.num_requests;
        self.total.num_failures += other.total.num_failures;
        self.total.histogram.merge(&other.total.histogram);
    }

    /// Moves the recorded data out, leaving `self` empty (a worker's per-interval delta).
    pub fn take(&mut self) -> Stats {
        std::mem::take(self)
    }

    /// The Aggregated entry.
    pub fn total(&self) -> &Entry {
        &self.total
    }
}
