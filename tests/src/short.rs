//! The short standalone run the HTTP behaviour suites make (sessions, compression, hardening,
//! HTTP/2): the plan written to `dir/plan.yaml`, one second headless, the last task let finish
//! (`--stop-timeout 5s`), the CSVs at `dir/run_*.csv`.

use std::path::{Path, PathBuf};

use crate::{Builder, Finished, Standalone, TempDir};

/// The run, as a [`Builder`] a suite may add flags to before `.command().run()`.
pub fn one_second(dir: &TempDir, plan: &str, host: &str, users: u32) -> Builder<Standalone> {
    let plan = dir.write("plan.yaml", plan);
    Standalone::headless(&plan)
        .users(users)
        .spawn_rate(100.0)
        .run_time("1s")
        .stop_timeout("5s")
        .host(host)
        .csv(&dir.path().join("run"))
}

/// The run's `_stats.csv`.
pub fn stats(dir: &TempDir) -> PathBuf {
    dir.path().join("run_stats.csv")
}

/// The run's `_failures.csv` (empty when it wrote none).
pub fn failures(dir: &TempDir) -> String {
    std::fs::read_to_string(dir.path().join("run_failures.csv")).unwrap_or_default()
}

/// `hatchery -f PLAN --check`, run to its end.
pub async fn check(plan: &Path) -> Finished {
    crate::hatchery(&["-f", plan.to_str().expect("a UTF-8 path"), "--check"])
        .run()
        .await
}
