//! The run's time series: one point a second while a test runs, for the charts and the report.

use serde::Serialize;

/// The aggregate at one second.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// Unix seconds.
    pub time: u64,
    pub user_count: u32,
    pub current_rps: f64,
    pub current_fail_per_sec: f64,
    /// Current (last 10 s) median and 95th percentile, in ms.
    #[serde(rename = "response_time_percentile_0.5")]
    pub p50_ms: f64,
    #[serde(rename = "response_time_percentile_0.95")]
    pub p95_ms: f64,
}

/// Points kept; past it every other point goes, so a long run keeps its whole shape at a
/// coarser step and memory stays bounded.
const MAX_POINTS: usize = 20_000;

#[derive(Debug, Clone, Default)]
pub struct History {
    points: Vec<Point>,
}

impl History {
    pub fn push(&mut self, p: Point) {
        if self.points.len() >= MAX_POINTS {
            let mut keep = false;
            self.points.retain(|_| {
                keep = !keep;
                keep
            });
        }
        self.points.push(p);
    }

    pub fn points(&self) -> &[Point] {
        &self.points
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(time: u64) -> Point {
        Point {
            time,
            user_count: 1,
            current_rps: 1.0,
            current_fail_per_sec: 0.0,
            p50_ms: 1.0,
            p95_ms: 2.0,
        }
    }

    #[test]
    fn a_long_history_thins_out_instead_of_growing() {
        let mut h = History::default();
        for t in 0..(MAX_POINTS as u64 * 3) {
            h.push(point(t));
        }
        assert!(h.points().len() <= MAX_POINTS);
        assert_eq!(h.points().first().unwrap().time, 0);
        assert_eq!(h.points().last().unwrap().time, MAX_POINTS as u64 * 3 - 1);
    }

    #[test]
    fn points_serialize_with_locusts_percentile_keys() {
        let v = serde_json::to_value(point(7)).unwrap();
        assert_eq!(v["response_time_percentile_0.95"], 2.0);
        assert_eq!(v["time"], 7);
    }
}
