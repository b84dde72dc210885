//! Bounds on what may be asked of a run, one rule for every way in: flags and the config file,
//! the web API's `/swarm`, a plan's load shape and the operator's `LoadTest` spec. The master's
//! memory then grows with what runs, never with a number someone typed.

use std::time::Duration;

/// The most users a run may ask for unless `--max-users` says otherwise.
pub const DEFAULT_MAX_USERS: u32 = 10_000_000;

/// The highest spawn rate, users per second: ten million a second is "all at once" for any
/// fleet; beyond it a rate is a typo (`1e308`).
pub const MAX_SPAWN_RATE: f64 = 10_000_000.0;

/// The longest run time: a year (an `Instant` a century away is not representable everywhere).
pub const MAX_RUN_TIME: Duration = Duration::from_secs(366 * 24 * 3600);

/// A value outside its bounds.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitError {
    #[error("{users} users is more than the limit of {max} (raise it with --max-users)")]
    TooManyUsers { users: u64, max: u32 },
    #[error("the spawn rate must be a number above 0 and at most {MAX_SPAWN_RATE} users per second, got {0}")]
    SpawnRate(f64),
    #[error("the run time must be at most 366 days, got {}", crate::duration::format(*.0))]
    RunTime(Duration),
}

/// `users` must not exceed `max`.
pub fn check_users(users: u64, max: u32) -> Result<(), LimitError> {
    if users > u64::from(max) {
        return Err(LimitError::TooManyUsers { users, max });
    }
    Ok(())
}

/// A spawn rate is finite, above 0 and at most [`MAX_SPAWN_RATE`].
pub fn check_spawn_rate(rate: f64) -> Result<(), LimitError> {
    if !(rate.is_finite() && rate > 0.0 && rate <= MAX_SPAWN_RATE) {
        return Err(LimitError::SpawnRate(rate));
    }
    Ok(())
}

/// A run time is at most [`MAX_RUN_TIME`].
pub fn check_run_time(run_time: Duration) -> Result<(), LimitError> {
    if run_time > MAX_RUN_TIME {
        return Err(LimitError::RunTime(run_time));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_up_to_the_limit_pass_and_one_more_does_not() {
        assert_eq!(check_users(10, 10), Ok(()));
        assert_eq!(
            check_users(11, 10),
            Err(LimitError::TooManyUsers { users: 11, max: 10 })
        );
        let message = check_users(1_000_000_000, DEFAULT_MAX_USERS)
            .unwrap_err()
            .to_string();
        assert!(message.contains("--max-users"), "{message}");
    }

    #[test]
    fn a_rate_is_finite_positive_and_not_astronomical() {
        assert_eq!(check_spawn_rate(0.5), Ok(()));
        assert_eq!(check_spawn_rate(MAX_SPAWN_RATE), Ok(()));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e308] {
            assert!(check_spawn_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_run_time_past_a_year_is_refused() {
        assert_eq!(check_run_time(Duration::from_secs(3600)), Ok(()));
        assert!(check_run_time(Duration::from_secs(u64::MAX)).is_err());
    }
}
