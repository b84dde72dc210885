//! Hatchery's worker: runs simulated users and reports what they measured.
//!
//! - [`master_link`]: the link to the master: dial it, take the plan, keep reports until acked.
//! - `body`: form and multipart bodies, encoded as python-requests encodes them.
//! - [`coding`]: content codings of responses (gzip, deflate), decoded within a bound.
//! - [`dial`]: the connection to the master, plain or TLS (`--tls-ca`).
//! - [`prepare`]: the plan made ready to run (origins, static paths, headers and bodies).
//! - [`http`]: a user's keep-alive connections (plain or rustls), one per origin.
//! - [`h1`]: the HTTP/1.1 exchange on one connection: write the encoded request, decode the
//!   response in place with a pure decoder (public for the fuzz target).
//! - [`http2`]: the HTTP/2 exchange (`http2: true`): one stream at a time per user, the
//!   connection driven in the user's task, the request built as for HTTP/1.1; hand-written,
//!   with frames, HPACK and the connection's state as pure code (public for the fuzz target).
//! - `script`: scripted users: a class's Luau script compiled once, one sandboxed VM per
//!   runtime thread, a coroutine per call whose requests go out through the user.
//! - `jar`: a user's cookie jar (RFC 6265 rules from cookie_store), bounded.
//! - [`sendable`]: what may go on a request line or into a header, checked after rendering.
//! - `session`: one request sent as a `requests.Session` sends it: cookies, redirects.
//! - `redirect`: the rules of following a redirect (method, location, credentials).
//! - `user`: one simulated user's loop: weighted tasks, checks, captures, waits.
//! - `recorder`: per-thread stats shards that users record into.
//! - [`usage`]: this process's CPU and memory, for heartbeats.
//! - `users`: the user supervisor (the control loop): reconcile users to the assignment,
//!   report deltas, stop.
//!
//! The worker speaks [`hatchery_core::protocol`] over a pair of channels; the master, in this
//! process (standalone) or over the network, sits at the other end.

mod body;
pub mod coding;
pub mod dial;
pub mod h1;
pub mod http;
pub mod http2;
mod jar;
pub mod master_link;
pub mod prepare;
mod recorder;
mod redirect;
mod script;
pub mod sendable;
mod session;
pub mod usage;
mod user;
mod users;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hatchery_core::protocol::{FromWorker, Place, ToWorker};
use hatchery_core::Plan;
use tokio::sync::mpsc;

use crate::prepare::Prepared;
use crate::recorder::Recorder;

pub(crate) const USER_AGENT: &str = concat!("hatchery/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The plan cannot run as configured (no host for a relative path, a bad URL).
    #[error("{0}")]
    Config(String),
    /// A class's script does not compile, fails as it loads, or lacks a function a `call:`
    /// names: every problem, at its place in the plan or the script file.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Script(Vec<hatchery_core::plan::Diagnostics>),
}

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Names this worker in exceptions and on the master.
    pub node: String,
    /// Overrides the plan's host (`--host`).
    pub host: Option<String>,
    /// Timeout of requests that set none.
    pub default_timeout: Duration,
    pub report_interval: Duration,
    /// Stats shards; one per runtime thread avoids lock contention.
    pub shards: usize,
    /// Certificates trusted besides the public web roots.
    pub ca_certs: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node: "local".to_string(),
            host: None,
            default_timeout: Duration::from_secs(60),
            report_interval: Duration::from_secs(1),
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            ca_certs: Vec::new(),
        }
    }
}

/// What every user of a worker shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub prepared: Prepared,
    pub recorder: Arc<Recorder>,
    pub connector: http::Connector,
    pub default_timeout: Duration,
    /// The worker's place in the fleet, as the latest assignment said (scripts read it too).
    pub place: Arc<PlaceCell>,
    /// The scripts' VMs, one per runtime thread, when a class has a script.
    pub scripts: Option<Arc<script::Pool>>,
}

/// A [`Place`] that users read while the control loop updates it.
#[derive(Debug, Default)]
pub(crate) struct PlaceCell(AtomicU64);

impl PlaceCell {
    pub fn new(place: Place) -> PlaceCell {
        PlaceCell(AtomicU64::new(
            (u64::from(place.index) << 32) | u64::from(place.count),
        ))
    }

    pub fn get(&self) -> Place {
        let v = self.0.load(Ordering::Relaxed);
        Place {
            index: (v >> 32) as u32,
            count: v as u32,
        }
    }

    pub fn set(&self, place: Place) {
        self.0
            .store(PlaceCell::new(place).0.into_inner(), Ordering::Relaxed);
    }
}

/// Checks that the plan can run, then returns the worker's control loop, to be spawned. It runs
/// until `from_master` closes.
pub fn start(
    plan: Arc<Plan>,
    config: Config,
    from_master: mpsc::Receiver<ToWorker>,
    to_master: mpsc::Sender<FromWorker>,
) -> Result<impl std::future::Future<Output = ()> + Send, Error> {
    let prepared = Prepared::new(plan, config.host.as_deref())?;
    let recorder = Arc::new(Recorder::new(config.shards, config.node));
    let classes: Vec<_> = prepared.classes.iter().map(|c| c.script.clone()).collect();
    let place = Arc::new(PlaceCell::new(Place::default()));
    let world = script::World {
        feeders: prepared.plan.feeders.clone(),
        place: place.clone(),
    };
    let scripts =
        script::Pool::new(&classes, &recorder, &world, config.shards).map_err(Error::Config)?;
    let shared = Arc::new(Shared {
        prepared,
        recorder,
        connector: http::Connector::new(&config.ca_certs).map_err(Error::Config)?,
        default_timeout: config.default_timeout,
        place,
        scripts: scripts.map(Arc::new),
    });
    Ok(users::run(
        shared,
        config.report_interval,
        from_master,
        to_master,
    ))
}
