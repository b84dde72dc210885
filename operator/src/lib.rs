//! Hatchery's Kubernetes operator: a `LoadTest` custom resource becomes a gated, observed,
//! distributed load test.
//!
//! - [`crd`]: the `LoadTest` resource (`hatchery.io/v1alpha1`, `lt`), its spec and status, and
//!   the CRD that `crdgen` writes to `deploy/crd.yaml`.
//! - [`resources`]: pure builders from a LoadTest to its children: plan ConfigMap, master
//!   Deployment (with the `hatchery.io/workers-connected` readiness gate), the master, UI and
//!   workers Services, and the workers' StatefulSet. Invalid specs are a typed [`resources::Error`].
//! - [`status`]: pure status derivation from what the master's API and the pods say, and the
//!   gate decision.
//!
//! - [`controller`]: the reconciler that glues them together: server-side apply of the
//!   children, the master's numbers through the API server's pod proxy, the gate, the status,
//!   events, and the scale-down after `ttlSecondsAfterFinished`.
//! - [`edits`]: what an edit of a running test changes live (users, spawn rate, workers) and
//!   what it cannot.
//! - [`leader`]: leader election on a Lease, so several replicas run one at a time.
//! - [`result`]: a finished test's statistics packed into its `<name>-result` ConfigMap.
//! - [`telemetry`]: the operator's `/healthz`, `/readyz` and `/metrics`.

pub mod controller;
pub mod crd;
pub mod edits;
pub mod leader;
pub mod resources;
pub mod result;
pub mod status;
pub mod telemetry;

pub use crd::{LoadTest, LoadTestSpec, LoadTestStatus, Phase};
pub use resources::{Blueprint, Children, Error};
