//! Hatchery's run coordinator.
//!
//! - [`run`]: the run state machine: waits for the expected workers, ramps users at the spawn
//!   rate (or along a load shape), re-dispatches when workers come and go, stops at the
//!   deadline, merges the workers' stats deltas and lets a reporter watch.
//! - [`api`]: the HTTP API on the web port (health, readiness, Locust's JSON stats).
//! - [`local`]: an in-process worker joined to the run (standalone mode).
//! - [`server`]: the gRPC coordinator service: one session per worker on port 5557.
//! - [`tls`]: the master's certificate on both ports, and the connections it accepts.
//! - [`gate`]: the bound on each port's connections and their handshake deadline.
//! - [`report`]: what the run's numbers look like outside: the console table, Locust's CSV
//!   files, JSON, and threshold verdicts.

pub mod api;
pub mod gate;
pub mod local;
pub mod report;
pub mod run;
pub mod server;
pub mod tls;
