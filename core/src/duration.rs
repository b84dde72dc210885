//! Human durations: `250ms`, `10s`, `1m30s`, `2h`; a bare number means seconds. To be written.

use std::time::Duration;

pub fn parse(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("invalid duration {s:?}"))
}
