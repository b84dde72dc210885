//! This process's CPU and memory use, read from /proc (Linux); zero elsewhere.

use std::time::Instant;

/// Samples CPU time between calls.
#[derive(Debug)]
pub struct Usage {
    last_cpu_ticks: u64,
    last_at: Instant,
    ticks_per_second: f64,
}

impl Default for Usage {
    fn default() -> Self {
        Usage {
            last_cpu_ticks: cpu_ticks().unwrap_or(0),
            last_at: Instant::now(),
            // USER_HZ is 100 on every Linux architecture Rust targets.
            ticks_per_second: 100.0,
        }
    }
}

impl Usage {
    /// CPU used since the previous call, in percent of one core.
    pub fn cpu_percent(&mut self) -> f32 {
        let Some(now_ticks) = cpu_ticks() else {
            return 0.0;
        };
        let now = Instant::now();
        let secs = now.duration_since(self.last_at).as_secs_f64();
        let used = now_ticks.saturating_sub(self.last_cpu_ticks) as f64 / self.ticks_per_second;
        self.last_cpu_ticks = now_ticks;
        self.last_at = now;
        if secs <= 0.0 {
            0.0
        } else {
            (used / secs * 100.0) as f32
        }
    }
}

/// utime + stime of this process, in clock ticks.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident memory of this process in bytes.
pub fn rss_bytes() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_resident_memory_and_cpu_time() {
        if cfg!(target_os = "linux") {
            assert!(rss_bytes() > 0);
            assert!(cpu_ticks().is_some());
        }
    }

    #[test]
    fn cpu_percent_sees_work_done_since_the_last_sample() {
        if !cfg!(target_os = "linux") {
            return;
        }
        let mut u = Usage::default();
        let start = cpu_ticks().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        // Work until the kernel has counted at least one tick of it (bounded).
        let mut x = 0u64;
        while cpu_ticks().unwrap() == start && std::time::Instant::now() < deadline {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(u.cpu_percent() > 0.0);
    }
}
