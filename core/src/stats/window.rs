//! Response times of the last few seconds, for "current" percentiles (Locust's
//! `current_response_time_percentiles`): the history CSV, charts and the live API show how the
//! run is doing now, not since it began.

use std::collections::VecDeque;

use crate::histogram::Histogram;

/// Seconds the window spans.
pub const WINDOW_SECONDS: u64 = 10;

/// The Aggregated response times of each of the last [`WINDOW_SECONDS`] seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    /// By increasing second; at most one per second.
    seconds: VecDeque<(u64, Histogram)>,
}

impl Window {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds response times that arrived in second `at_unix_s`; several pushes for one second (one
    /// per worker report) add up. Seconds older than the window are dropped.
    pub fn push(&mut self, at_unix_s: u64, delta: &Histogram) {
        if delta.is_empty() {
            return;
        }
        let newest = self
            .seconds
            .back()
            .map_or(at_unix_s, |b| b.0.max(at_unix_s));
        if at_unix_s + WINDOW_SECONDS <= newest {
            return;
        }
        let pos = self.seconds.partition_point(|(s, _)| *s < at_unix_s);
        match self.seconds.get_mut(pos) {
            Some((s, h)) if *s == at_unix_s => h.merge(delta),
            _ => self.seconds.insert(pos, (at_unix_s, delta.clone())),
        }
        while self
            .seconds
            .front()
            .is_some_and(|(s, _)| s + WINDOW_SECONDS <= newest)
        {
            self.seconds.pop_front();
        }
    }

    /// Response times of the [`WINDOW_SECONDS`] seconds up to and including `now_unix_s`.
    pub fn histogram(&self, now_unix_s: u64) -> Histogram {
        let mut out = Histogram::new();
        for (_, h) in self
            .seconds
            .iter()
            .filter(|(s, _)| *s <= now_unix_s && s + WINDOW_SECONDS > now_unix_s)
        {
            out.merge(h);
        }
        out
    }

    /// Percentiles (in microseconds) of the window ending at `now_unix_s`, `None` when nothing
    /// finished in it.
    pub fn quantiles(&self, now_unix_s: u64, qs: &[f64]) -> Option<Vec<u64>> {
        let h = self.histogram(now_unix_s);
        (!h.is_empty()).then(|| h.quantiles(qs))
    }

    pub fn clear(&mut self) {
        self.seconds.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(values: &[u64]) -> Histogram {
        let mut h = Histogram::new();
        values.iter().for_each(|&v| h.record(v));
        h
    }

    #[test]
    fn the_window_covers_the_last_ten_seconds_only() {
        let mut w = Window::new();
        for s in 100..=120 {
            w.push(s, &of(&[s]));
        }
        let h = w.histogram(120);
        assert_eq!((h.count(), h.min(), h.max()), (10, 111, 120));
        assert_eq!(w.quantiles(120, &[0.5]), Some(vec![115]));
        assert_eq!(w.quantiles(200, &[0.5]), None);
    }

    #[test]
    fn pushes_for_one_second_add_up_even_when_late() {
        let mut w = Window::new();
        w.push(10, &of(&[1]));
        w.push(12, &of(&[3]));
        w.push(11, &of(&[2]));
        w.push(10, &of(&[4]));
        w.push(1, &of(&[99]));
        assert_eq!(w.histogram(12), of(&[1, 2, 3, 4]));
    }
}
