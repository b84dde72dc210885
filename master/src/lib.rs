//! Hatchery's run coordinator.
//!
//! - [`run`]: the run state machine: ramps users at the spawn rate (or along a load shape),
//!   stops at the deadline, merges the workers' stats deltas and lets a reporter watch.
//! - [`report`]: what the run's numbers look like outside: the console table, Locust's CSV
//!   files, JSON, and threshold verdicts.

pub mod report;
pub mod run;
