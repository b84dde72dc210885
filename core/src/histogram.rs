//! Mergeable, bounded response-time histogram. To be written (HDR-style log-linear buckets,
//! values in microseconds, relative error <= 1/1024).

/// Response-time histogram in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    count: u64,
    min: u64,
    max: u64,
}

impl Histogram {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&mut self, value_us: u64) {
        self.record_n(value_us, 1);
    }

    pub fn record_n(&mut self, value_us: u64, n: u64) {
        if n == 0 {
            return;
        }
        self.min = if self.count == 0 { value_us } else { self.min.min(value_us) };
        self.max = self.max.max(value_us);
        self.count += n;
    }

    pub fn merge(&mut self, other: &Histogram) {
        if other.count == 0 {
            return;
        }
        self.record_n(other.min, 0);
        self.min = if self.count == 0 { other.min } else { self.min.min(other.min) };
        self.max = self.max.max(other.max);
        self.count += other.count;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Exact smallest recorded value (0 when empty).
    pub fn min(&self) -> u64 {
        self.min
    }

    /// Exact largest recorded value (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` in 0..=1, never below min nor above max (0 when empty).
    pub fn quantile(&self, _q: f64) -> u64 {
        self.max
    }

    /// Several quantiles (ascending `qs`) in one pass.
    pub fn quantiles(&self, qs: &[f64]) -> Vec<u64> {
        qs.iter().map(|&q| self.quantile(q)).collect()
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }
}
