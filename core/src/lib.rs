//! Hatchery's shared model: what a load test is and what it measured.
//!
//! - [`plan`]: the plan (YAML) parsed and validated into a typed [`Plan`], every problem reported
//!   at once with its line and column ([`Diagnostics`]).
//! - [`template`]: `{{ ... }}` templates, compiled once when the plan loads and rendered per
//!   request; the ids they resolve names to and the feeder tables they read.
//! - `suggest`: "did you mean ...?" for plan and template messages.
//! - [`timestamp`]: the Unix time now and its RFC 3339 text.
//! - [`validate`]: one rule each for a host URL and header names and values: what a worker can
//!   use, checked by the plan, the master and the operator alike.
//! - [`jsonpath`]: the JSON path subset used by checks and captures.
//! - [`duration`]: human durations (`1m30s`, `250ms`) for plans and flags.
//! - [`histogram`]: the mergeable, bounded response-time histogram (0.1% precision).
//! - [`stats`]: per-(method, name) statistics, errors and exceptions; a mergeable value, so a
//!   worker's per-second delta and the master's total are the same type.
//! - [`apportion`]: exact largest-remainder apportionment of users to classes and the smooth order
//!   in which to start or stop them.
//! - [`dispatch`]: which worker runs which users, and the schedule (computed as it goes) between
//!   assignments.
//! - [`numbers`]: sets of fleet-wide user numbers, kept as ranges (`{{ user.id }}`, feeder rows).
//! - [`limits`]: bounds on users, spawn rate and run time, checked by every way into a run.
//! - [`secret`]: constant-time comparison of tokens and passwords.
//! - [`protocol`]: the messages between the run coordinator (master) and a worker.
//! - `wire` (cargo feature `wire`, on by default; the operator builds without it): the gRPC
//!   protocol and its checked conversions to and from [`protocol`] and [`stats`].

pub mod apportion;
#[cfg(feature = "certs")]
pub mod certs;
pub mod dispatch;
pub mod duration;
pub mod histogram;
pub mod jsonpath;
pub mod limits;
mod method;
pub mod numbers;
pub mod plan;
pub mod protocol;
pub mod secret;
pub mod stats;
mod suggest;
pub mod template;
pub mod timestamp;
pub mod validate;
#[cfg(feature = "wire")]
pub mod wire;

pub use method::Method;
pub use plan::{Diagnostic, Diagnostics, Plan};
