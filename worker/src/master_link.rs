//! The worker's side of the network protocol: dial the master, say `Hello`, take the plan from
//! `Welcome`, run it, and keep the session alive.
//!
//! This runs on its own runtime thread, apart from the users' runtime, so heartbeats go out on
//! time however busy the users keep their threads. Reports are kept until the master acks them:
//! when the master goes away the worker keeps its users running, keeps the unsent reports
//! (merged into one), reconnects with backoff and sends them again; the master counts each
//! sequence number once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use hatchery_core::numbers::Numbers;
use hatchery_core::plan::Bundle;
use hatchery_core::protocol::{Assignment, FromWorker, Heartbeat, Report, ToWorker};
use hatchery_core::stats::Stats;
use hatchery_core::wire::proto::{self, master_message, worker_message};
use hatchery_core::wire::{self, CoordinatorClient};
use hatchery_core::Plan;
use rustls::pki_types::CertificateDer;
use tokio::sync::mpsc;
use tokio::time::{sleep, sleep_until, Instant};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Code;

use crate::dial::{self, DialError, MasterTls};
use crate::usage::{rss_bytes, Usage};

/// How a worker reaches its master.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// `http://HOST:PORT` of the master's coordinator port.
    pub endpoint: String,
    /// Stable for the life of the process, so the master re-adopts it after a reconnect.
    pub worker_id: String,
    pub hostname: String,
    /// The worker's own copy of the plan (`-f`), which must match the master's.
    pub local_plan: Option<Bundle>,
    /// Threads of the users' runtime (and stats shards).
    pub threads: usize,
    pub ca_certs: Vec<CertificateDer<'static>>,
    /// Give up (stop the users, exit) after this long without a master.
    pub master_timeout: Duration,
    /// Sent as `authorization: Bearer <token>` when the master requires one.
    pub token: Option<String>,
    /// `--tls-ca`: dial with TLS (the endpoint is then `https://`) and trust only that CA.
    pub master_tls: Option<MasterTls>,
    /// `--master-address`: the master's own address (`http(s)://IP:PORT`), dialled in turn with
    /// `endpoint` until the first session (see [`Link::run`]).
    pub direct: Option<String>,
    /// The master's name (`--master-host`), which its TLS certificate must hold whichever
    /// address is dialled.
    pub master_name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The master refused this worker (protocol version, plan hash, token, a full fleet):
    /// retrying cannot help.
    #[error("the master refused this worker: {0}")]
    Refused(String),
    #[error("no master at {endpoint} for {} s", .after.as_secs())]
    MasterLost { endpoint: String, after: Duration },
    #[error("the master's plan is invalid here:\n{0}")]
    Plan(String),
    #[error("{0}")]
    Config(String),
    /// The master's certificate is not trusted, or the master does not speak TLS.
    #[error("{0}")]
    Tls(String),
}

/// The engine (users) once a plan has arrived; it outlives sessions.
struct Engine {
    to_worker: mpsc::Sender<ToWorker>,
    from_worker: mpsc::Receiver<FromWorker>,
    plan_hash: String,
}

/// A report not yet acked; `sent` once it went out on some session.
struct Pending {
    report: Report,
    sent: bool,
}

struct Link {
    cfg: LinkConfig,
    users: tokio::runtime::Handle,
    engine: Option<Engine>,
    pending: VecDeque<Pending>,
    last_seq: u64,
    /// Highest sequence number a master acked.
    acked: u64,
    /// Everything reported since the plan started (or the last stats reset): what a restarted
    /// master, which lost its totals, is sent so that nothing is lost.
    cumulative: Stats,
    latest_users: Vec<u32>,
    /// The user numbers of the latest assignment (the worker runs it at once), per class, until
    /// a stop: told to a master that restarted, so it hands out none of them again.
    latest_numbers: Option<Vec<Numbers>>,
    usage: Usage,
    /// When the master was last heard from.
    last_contact: Instant,
    /// Whether a session was ever welcomed, and when the worker started: see [`next_backoff`].
    welcomed: bool,
    started: Instant,
    /// The master's address still worth dialling (until the first session, or until it led
    /// to a master that refused this worker).
    direct: Option<String>,
}

/// Why a session ended.
enum End {
    Quit,
    Lost(String),
    /// No session came of the connection (closed before `Welcome`, e.g. by a master that holds
    /// its maximum of connections): retried like an unreachable master, with backoff.
    NoSession(String),
}

/// Runs the worker until the master says quit. Users run on `users`.
pub async fn run(cfg: LinkConfig, users: tokio::runtime::Handle) -> Result<(), LinkError> {
    let mut link = Link {
        direct: cfg.direct.clone(),
        cfg,
        users,
        engine: None,
        pending: VecDeque::new(),
        last_seq: 0,
        acked: 0,
        cumulative: Stats::new(),
        latest_users: Vec::new(),
        latest_numbers: None,
        usage: Usage::default(),
        last_contact: Instant::now(),
        welcomed: false,
        started: Instant::now(),
    };
    let result = link.run().await;
    if let Some(engine) = &link.engine {
        let _ = engine.to_worker.send(ToWorker::Quit).await;
    }
    result
}

const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// A master that is starting (a pod scheduled with its workers) is found within a second of
/// listening: at 5 s, workers up before it waited up to 5 s more (a 7.6 s start on Kubernetes).
/// A connection attempt a second per worker costs a master nothing.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Until its first session, for [`STARTING`], a worker retries at least every 200 ms (as
/// ZeroMQ's reconnect interval, 100 ms, has Locust's workers do): on Kubernetes the workers start
/// with their master and are refused at once until kube-proxy routes the master's Service
/// (measured: the last refusal came 0.2 to 2 s after the master listened), and a backoff grown
/// to 1 s left each worker up to a second behind (start steps in tests/k8s/e2e.sh).
const STARTING_BACKOFF: Duration = Duration::from_millis(200);
const STARTING: Duration = Duration::from_secs(60);
const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection attempt gives up after a second, for the first [`QUICK_DIALS`] attempts in a row,
/// then after 2, 4 and at most [`MAX_CONNECT_TIMEOUT`] s. A SYN that goes nowhere (on
/// Kubernetes, the master's Service address before kube-proxy programmed it) then costs a
/// second and a fresh attempt follows, instead of waiting out the kernel's SYN retransmissions
/// (1 s, then 2 s more): with 5 s, and then with a timeout doubling from the first failure,
/// workers up within a second of `kubectl apply` connected at 7.6 s and 6.9 s. A far master
/// whose SYNs are lost now and then still gets the longer waits after that.
const FIRST_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const QUICK_DIALS: u32 = 8;

/// The wait after a failed attempt that followed a wait of `backoff`: doubled, up to 200 ms
/// while `starting` (no session yet, within [`STARTING`] of the start), else up to 1 s.
fn next_backoff(backoff: Duration, starting: bool) -> Duration {
    let cap = if starting {
        STARTING_BACKOFF
    } else {
        MAX_BACKOFF
    };
    (backoff * 2).min(cap)
}

/// The connect timeout of the attempt after `failures` failed ones in a row.
fn connect_timeout(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(QUICK_DIALS - 1).min(8);
    FIRST_CONNECT_TIMEOUT
        .saturating_mul(1 << doublings)
        .min(MAX_CONNECT_TIMEOUT)
}

impl Link {
    /// Dials until the master says quit. Until the first session, a worker given the master's
    /// address (`--master-address`) dials it and the master's name in turn, the address first:
    /// on Kubernetes the operator passes the master pod's IP, which leads to the master as soon
    /// as it listens, while its Service's address is refused until the cluster routes it
    /// (0.2 to 4 s later, measured by tests/k8s/e2e.sh). After the first session only the name
    /// is dialled: a master that restarts has a new address. An address that leads to a master
    /// that refuses this worker, or whose certificate is not trusted (another test's master now
    /// holding that IP), is dropped and the name dialled alone.
    async fn run(&mut self) -> Result<(), LinkError> {
        let mut backoff = INITIAL_BACKOFF;
        let mut failed_dials = 0;
        let mut address_turn = true;
        loop {
            if self.welcomed {
                self.direct = None;
            }
            let direct = self.direct.clone().filter(|_| address_turn);
            address_turn = !address_turn;
            let (endpoint, tls_name) = match &direct {
                Some(address) => (address.clone(), Some(self.cfg.master_name.as_str())),
                None => (self.cfg.endpoint.clone(), None),
            };
            let timeout = connect_timeout(failed_dials);
            let dialed =
                dial::channel(&endpoint, self.cfg.master_tls.as_ref(), tls_name, timeout).await;
            let end = match (dialed, &direct) {
                (Ok(channel), _) => {
                    failed_dials = 0;
                    match (self.session(channel).await, &direct) {
                        (Err(e), Some(address)) => self.drop_address(address, &e.to_string()),
                        (result, _) => result?,
                    }
                }
                (Err(DialError::Fatal(why)), Some(address)) => self.drop_address(address, &why),
                (Err(DialError::Fatal(why)), None) => return Err(LinkError::Tls(why)),
                (Err(DialError::Unreachable(why)), _) => {
                    failed_dials += 1;
                    End::NoSession(why)
                }
            };
            match end {
                End::Quit => return Ok(()),
                End::Lost(why) => {
                    tracing::warn!("lost the master: {why}; reconnecting");
                    backoff = INITIAL_BACKOFF;
                }
                End::NoSession(why) => {
                    tracing::debug!("no session with {endpoint}: {why}");
                    if self.last_contact.elapsed() >= self.cfg.master_timeout {
                        return Err(LinkError::MasterLost {
                            endpoint: self.cfg.endpoint.clone(),
                            after: self.cfg.master_timeout,
                        });
                    }
                    self.wait(backoff).await;
                    let starting = !self.welcomed && self.started.elapsed() < STARTING;
                    backoff = next_backoff(backoff, starting);
                }
            }
        }
    }

    /// Stops dialling the master's address, which led to no master of this worker's.
    fn drop_address(&mut self, address: &str, why: &str) -> End {
        tracing::warn!(
            "the master's address {address} led to no session ({why}); dialling {} alone",
            self.cfg.endpoint
        );
        self.direct = None;
        End::NoSession(why.to_string())
    }

    /// Sleeps, still taking the engine's reports so its users never block on a full queue.
    async fn wait(&mut self, d: Duration) {
        let until = Instant::now() + d;
        loop {
            let msg = match &mut self.engine {
                Some(e) => tokio::select! {
                    m = e.from_worker.recv() => m,
                    _ = sleep_until(until) => return,
                },
                None => {
                    sleep_until(until).await;
                    return;
                }
            };
            if let Some(FromWorker::Report(r)) = msg {
                self.keep(*r);
            }
        }
    }

    /// Queues a report under the next wire sequence number (this link numbers them, so a
    /// report it makes up, like the totals for a restarted master, never collides); unsent ones
    /// merge, so a long outage holds one report, not thousands.
    fn keep(&mut self, mut report: Report) {
        self.latest_users = report.users.clone();
        self.cumulative.merge(&report.stats);
        match self.pending.back_mut() {
            Some(last) if !last.sent => {
                last.report.stats.merge(&report.stats);
                last.report.users = report.users;
            }
            _ => {
                self.last_seq += 1;
                report.seq = self.last_seq;
                self.pending.push_back(Pending {
                    report,
                    sent: false,
                });
            }
        }
    }

    fn hello(&self) -> proto::WorkerMessage {
        worker_message::Kind::Hello(proto::Hello {
            protocol_version: wire::PROTOCOL_VERSION,
            worker_id: self.cfg.worker_id.clone(),
            hostname: self.cfg.hostname.clone(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            plan_hash: self
                .cfg
                .local_plan
                .as_ref()
                .map(Bundle::hash)
                .unwrap_or_default(),
            last_seq: self.last_seq,
            users: match &self.latest_numbers {
                Some(numbers) => numbers.iter().map(|n| n.len() as u32).collect(),
                None => self.latest_users.clone(),
            },
            numbers: self
                .latest_numbers
                .iter()
                .flatten()
                .map(Into::into)
                .collect(),
        })
        .into()
    }

    async fn session(&mut self, channel: Channel) -> Result<End, LinkError> {
        let (out, out_rx) = mpsc::channel::<proto::WorkerMessage>(256);
        let _ = out.send(self.hello()).await;
        let mut grpc = CoordinatorClient::new(channel)
            .max_decoding_message_size(wire::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(wire::MAX_MESSAGE_BYTES);
        let mut request = tonic::Request::new(ReceiverStream::new(out_rx));
        if let Some(token) = &self.cfg.token {
            let value = format!("Bearer {token}").parse().map_err(|_| {
                LinkError::Config("the worker token holds characters a header cannot carry".into())
            })?;
            request.metadata_mut().insert("authorization", value);
        }
        let mut inbound = match grpc.session(request).await {
            Ok(r) => r.into_inner(),
            Err(s)
                if matches!(
                    s.code(),
                    Code::FailedPrecondition
                        | Code::InvalidArgument
                        | Code::Unauthenticated
                        | Code::ResourceExhausted
                ) =>
            {
                return Err(LinkError::Refused(s.message().to_string()));
            }
            Err(s) => return Ok(End::NoSession(s.message().to_string())),
        };
        let welcome = match tokio::time::timeout(WELCOME_TIMEOUT, inbound.message()).await {
            Ok(Ok(Some(m))) => match m.into_kind() {
                Ok(master_message::Kind::Welcome(w)) => w,
                _ => return Ok(End::NoSession("the first message was not Welcome".into())),
            },
            Ok(Err(s)) if s.code() == Code::FailedPrecondition => {
                return Err(LinkError::Refused(s.message().to_string()));
            }
            Ok(Err(s)) => return Ok(End::NoSession(s.message().to_string())),
            Ok(Ok(None)) | Err(_) => return Ok(End::NoSession("no Welcome".into())),
        };
        wire::check_version(welcome.protocol_version)
            .map_err(|e| LinkError::Refused(e.to_string()))?;
        self.last_contact = Instant::now();
        self.welcomed = true;
        self.adopt(&welcome)?;
        tracing::info!(master = %self.cfg.endpoint, "connected; plan {}", &welcome.plan_hash[..welcome.plan_hash.len().min(12)]);
        if welcome.acked_seq < self.acked {
            // A master that forgot what it acked restarted: it gets everything so far, once.
            tracing::warn!("the master restarted; sending it this worker's totals so far");
            self.pending.clear();
            self.last_seq += 1;
            self.pending.push_back(Pending {
                report: Report {
                    seq: self.last_seq,
                    users: self.latest_users.clone(),
                    stats: self.cumulative.clone(),
                },
                sent: false,
            });
        }
        // Everything the master has not counted goes again, in order.
        self.pending.retain(|p| p.report.seq > welcome.acked_seq);
        for p in self.pending.iter_mut() {
            p.sent = true;
            let msg: proto::WorkerMessage =
                (&FromWorker::Report(Box::new(p.report.clone()))).into();
            if out.send(msg).await.is_err() {
                return Ok(End::Lost("the session closed".into()));
            }
        }
        let interval = Duration::from_millis(u64::from(welcome.heartbeat_interval_ms.max(100)));
        let liveness = interval * welcome.heartbeat_liveness.max(1);
        self.drive(&mut inbound, &out, interval, liveness).await
    }

    /// Starts the engine from the first Welcome; later ones must carry the same plan.
    fn adopt(&mut self, w: &proto::Welcome) -> Result<(), LinkError> {
        if let Some(engine) = &self.engine {
            if engine.plan_hash != w.plan_hash {
                return Err(LinkError::Refused(format!(
                    "the master now runs another plan ({}), not the one this worker runs ({})",
                    w.plan_hash, engine.plan_hash
                )));
            }
            return Ok(());
        }
        let bundle = Bundle {
            yaml: w.plan_yaml.clone(),
            origin: w.plan_origin.clone(),
            files: w.files.clone().into_iter().collect(),
        };
        if bundle.hash() != w.plan_hash {
            return Err(LinkError::Refused(
                "the plan arrived damaged (hash mismatch)".to_string(),
            ));
        }
        let mut plan: Plan = bundle.parse().map_err(|d| LinkError::Plan(d.to_string()))?;
        plan.filter_tags(&w.tags, &w.exclude_tags);
        let config = crate::Config {
            node: self.cfg.worker_id.clone(),
            host: (!w.host.is_empty()).then(|| w.host.clone()),
            default_timeout: Duration::from_millis(w.request_timeout_ms.max(1)),
            shards: self.cfg.threads,
            ca_certs: self.cfg.ca_certs.clone(),
            ..Default::default()
        };
        let (to_worker, from_master) = mpsc::channel(64);
        let (to_master, from_worker) = mpsc::channel(64);
        let engine = crate::start(Arc::new(plan), config, from_master, to_master)
            .map_err(|e| LinkError::Config(e.to_string()))?;
        self.users.spawn(engine);
        self.engine = Some(Engine {
            to_worker,
            from_worker,
            plan_hash: w.plan_hash.clone(),
        });
        Ok(())
    }

    async fn drive(
        &mut self,
        inbound: &mut tonic::Streaming<proto::MasterMessage>,
        out: &mpsc::Sender<proto::WorkerMessage>,
        interval: Duration,
        liveness: Duration,
    ) -> Result<End, LinkError> {
        let mut beat = tokio::time::interval(interval);
        loop {
            let engine = self.engine.as_mut().expect("adopted before driving");
            tokio::select! {
                m = inbound.message() => match m {
                    Ok(Some(m)) => {
                        self.last_contact = Instant::now();
                        if let Some(end) = self.on_master(m).await {
                            return Ok(end);
                        }
                    }
                    Ok(None) => return Ok(End::Lost("the master closed the session".into())),
                    Err(s) => return Ok(End::Lost(s.message().to_string())),
                },
                m = engine.from_worker.recv() => {
                    let Some(m) = m else { return Ok(End::Quit) };
                    let msg: proto::WorkerMessage = match m {
                        FromWorker::Report(r) => {
                            self.keep(*r);
                            let Some(last) = self.pending.back_mut() else { continue };
                            last.sent = true;
                            (&FromWorker::Report(Box::new(last.report.clone()))).into()
                        }
                        FromWorker::StatsReset => {
                            // Reports after this start from zero.
                            self.cumulative = Stats::new();
                            (&FromWorker::StatsReset).into()
                        }
                        other => (&other).into(),
                    };
                    if out.send(msg).await.is_err() {
                        return Ok(End::Lost("the session closed".into()));
                    }
                }
                _ = beat.tick() => {
                    let hb = Heartbeat {
                        users: self.latest_users.clone(),
                        cpu_percent: self.usage.cpu_percent(),
                        memory_bytes: rss_bytes(),
                    };
                    if out.send((&FromWorker::Heartbeat(hb)).into()).await.is_err() {
                        return Ok(End::Lost("the session closed".into()));
                    }
                }
                _ = sleep(liveness.saturating_sub(self.last_contact.elapsed())) => {
                    return Ok(End::Lost(format!("no word from the master for {} ms", liveness.as_millis())));
                }
            }
        }
    }

    /// Applies one master message; `Some` ends the session.
    async fn on_master(&mut self, m: proto::MasterMessage) -> Option<End> {
        let engine = self.engine.as_ref()?;
        let cmd = match m.into_kind() {
            Ok(master_message::Kind::Assign(a)) => match Assignment::try_from(a) {
                Ok(a) => {
                    self.latest_numbers = Some(a.numbers.clone());
                    ToWorker::Assign(Box::new(a))
                }
                Err(e) => return Some(End::Lost(format!("bad assignment: {e}"))),
            },
            Ok(master_message::Kind::Stop(s)) => {
                self.latest_numbers = None;
                ToWorker::Stop {
                    timeout: Duration::from_millis(s.timeout_ms),
                }
            }
            Ok(master_message::Kind::ResetStats(_)) => ToWorker::ResetStats,
            Ok(master_message::Kind::Ack(a)) => {
                self.acked = self.acked.max(a.seq);
                self.pending.retain(|p| p.report.seq > a.seq);
                return None;
            }
            Ok(master_message::Kind::Quit(_)) => {
                let _ = engine.to_worker.send(ToWorker::Quit).await;
                return Some(End::Quit);
            }
            Ok(master_message::Kind::Configure(c)) => ToWorker::SetHost(c.host),
            Ok(master_message::Kind::MasterHeartbeat(_)) => return None,
            Ok(master_message::Kind::Welcome(_)) => return None,
            Err(e) => return Some(End::Lost(e.to_string())),
        };
        if engine.to_worker.send(cmd).await.is_err() {
            return Some(End::Quit);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_starting_worker_retries_every_200_ms_and_a_running_one_backs_off_to_a_second() {
        let waits = |starting| {
            let mut b = INITIAL_BACKOFF;
            let mut seen = vec![b.as_millis()];
            for _ in 0..6 {
                b = next_backoff(b, starting);
                seen.push(b.as_millis());
            }
            seen
        };
        assert_eq!(waits(true), [100, 200, 200, 200, 200, 200, 200]);
        assert_eq!(waits(false), [100, 200, 400, 800, 1000, 1000, 1000]);
    }

    #[test]
    fn a_dial_gives_up_after_one_second_eight_times_then_two_four_and_five() {
        let secs: Vec<u64> = [0, 1, 7, 8, 9, 10, 40]
            .into_iter()
            .map(|n| connect_timeout(n).as_secs())
            .collect();
        assert_eq!(secs, [1, 1, 1, 2, 4, 5, 5]);
    }
}
