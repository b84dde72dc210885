//! The gRPC side of the master: one session per worker on the coordinator port (5557).
//!
//! A session checks the worker's `Hello`, sends the plan in `Welcome`, then turns the worker's
//! messages into [`FleetEvent`]s and the run's [`ToWorker`] messages into the stream back. It
//! counts each report sequence number of a worker id once, across reconnects, and acks it.
//! Anything malformed ends that session only, with a log line naming the peer.
//!
//! [`serve`] accepts the connections itself, so that with TLS a plaintext worker is answered
//! with a status saying what it lacks, and without TLS a worker that tries it is told so.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hatchery_core::numbers::Numbers;
use hatchery_core::plan::Bundle;
use hatchery_core::protocol::{FromWorker, ToWorker};
use hatchery_core::wire::proto::{self, master_message, worker_message};
use hatchery_core::wire::{self, CoordinatorServer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_stream::adapters::Map;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt as _;
use tonic::transport::Server;
use tonic::{Request, Response, Status, Streaming};

use crate::gate::{Gate, Guarded, Peer, WORKER_PORT_SPARE};
use crate::run::{self, FleetEvent};
use crate::tls::{self, Conn, Identity, Opening};

/// What every worker is told on arrival.
#[derive(Debug, Clone)]
pub struct Offer {
    pub bundle: Bundle,
    pub plan_hash: String,
    pub request_timeout: Duration,
    pub tags: Vec<String>,
    pub exclude_tags: Vec<String>,
    pub heartbeat_interval: Duration,
    pub heartbeat_liveness: u32,
    /// When set, a worker must send `authorization: Bearer <token>` in its session's metadata.
    pub token: Option<String>,
    /// Sessions held at once; one more is refused (`--max-workers`).
    pub max_workers: usize,
}

/// A place among the `max_workers` sessions, given back when dropped.
struct Seat(Arc<AtomicUsize>);

impl Drop for Seat {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How long a new connection may take to say `Hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The coordinator service.
#[derive(Debug, Clone)]
pub struct Coordinator {
    offer: Arc<Offer>,
    events: mpsc::Sender<FleetEvent>,
    /// The run's status, for the host workers are to use now.
    status: watch::Receiver<run::Status>,
    /// Highest report sequence number counted per worker id.
    counted: Arc<Mutex<HashMap<String, u64>>>,
    sessions: Arc<AtomicU64>,
    /// Sessions open now (at most `max_workers`).
    seated: Arc<AtomicUsize>,
}

impl Coordinator {
    pub fn new(
        offer: Offer,
        events: mpsc::Sender<FleetEvent>,
        status: watch::Receiver<run::Status>,
    ) -> Coordinator {
        Coordinator {
            offer: Arc::new(offer),
            events,
            status,
            counted: Arc::default(),
            sessions: Arc::default(),
            seated: Arc::default(),
        }
    }

    /// The tonic service, with the protocol's message size limits.
    pub fn into_service(self) -> CoordinatorServer<Coordinator> {
        CoordinatorServer::new(self)
            .max_decoding_message_size(wire::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(wire::MAX_MESSAGE_BYTES)
    }

    fn welcome(&self, acked_seq: u64) -> proto::MasterMessage {
        let o = &self.offer;
        master_message::Kind::Welcome(proto::Welcome {
            protocol_version: wire::PROTOCOL_VERSION,
            plan_yaml: o.bundle.yaml.clone(),
            plan_origin: o.bundle.origin.clone(),
            files: o.bundle.files.clone().into_iter().collect(),
            plan_hash: o.plan_hash.clone(),
            host: self.status.borrow().host.clone().unwrap_or_default(),
            request_timeout_ms: o.request_timeout.as_millis() as u64,
            tags: o.tags.clone(),
            exclude_tags: o.exclude_tags.clone(),
            heartbeat_interval_ms: o.heartbeat_interval.as_millis() as u32,
            heartbeat_liveness: o.heartbeat_liveness,
            acked_seq,
        })
        .into()
    }
}

/// A message a session's stream sends its worker. Boxed because a channel holds its slots in
/// blocks of 32 and keeps a second block once 32 messages went through: a `MasterMessage` is
/// 224 bytes, so each session's queue grew by 7 KB during a ramp (7 MB of the master's RSS
/// with 1,000 workers; `bench/master-users.sh`), 512 bytes with the box.
type Out = Result<Box<proto::MasterMessage>, Status>;
type Outbound = mpsc::Sender<Out>;

/// The session's stream as tonic takes it: the queue, unboxed as it is read.
type SessionStream = Map<ReceiverStream<Out>, fn(Out) -> Result<proto::MasterMessage, Status>>;

fn session_stream(rx: mpsc::Receiver<Out>) -> SessionStream {
    ReceiverStream::new(rx).map(|m| m.map(|b| *b))
}

#[tonic::async_trait]
impl wire::Coordinator for Coordinator {
    type SessionStream = SessionStream;

    async fn session(
        &self,
        request: Request<Streaming<proto::WorkerMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let connection = request.extensions().get::<Peer>().cloned();
        let peer = connection
            .as_ref()
            .and_then(|c| c.addr)
            .map_or_else(|| "unknown peer".to_string(), |a: SocketAddr| a.to_string());
        if let Some(token) = &self.offer.token {
            let expected = format!("Bearer {token}");
            let given = request
                .metadata()
                .get("authorization")
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            if !hatchery_core::secret::constant_time_eq(given, expected.as_bytes()) {
                let msg = "this master requires the worker token (--auth-token-file or HATCHERY_AUTH_TOKEN); the one given is missing or wrong";
                return Err(refuse(&peer, Status::unauthenticated(msg)));
            }
        }
        let max = self.offer.max_workers;
        let Ok(_) = self
            .seated
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
        else {
            let msg =
                format!("this master takes at most {max} workers (--max-workers) and has them all");
            return Err(refuse(&peer, Status::resource_exhausted(msg)));
        };
        let seat = Seat(self.seated.clone());
        let mut inbound = request.into_inner();
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, inbound.message()).await {
            Ok(Ok(Some(m))) => match m.into_kind() {
                Ok(worker_message::Kind::Hello(h)) => h,
                Ok(_) => {
                    return Err(refuse(
                        &peer,
                        Status::invalid_argument("the first message must be Hello"),
                    ))
                }
                Err(e) => return Err(refuse(&peer, e.into())),
            },
            Ok(Ok(None)) => return Err(refuse(&peer, Status::cancelled("closed before Hello"))),
            Ok(Err(status)) => return Err(refuse(&peer, status)),
            Err(_) => {
                return Err(refuse(
                    &peer,
                    Status::deadline_exceeded("no Hello within 10 s"),
                ))
            }
        };
        if let Err(e) = wire::check_hello(&hello) {
            return Err(refuse(&peer, e.into()));
        }
        let numbers = match wire::hello_numbers(&hello) {
            Ok(numbers) => numbers,
            Err(e) => return Err(refuse(&peer, e.into())),
        };
        if !hello.plan_hash.is_empty() && hello.plan_hash != self.offer.plan_hash {
            let msg = format!(
                "the worker's plan (hash {}) is not the master's (hash {}): start the worker without -f, or with the same plan",
                short(&hello.plan_hash),
                short(&self.offer.plan_hash)
            );
            return Err(refuse(&peer, Status::failed_precondition(msg)));
        }
        // A worker: its connection may now outlive the handshake deadline.
        if let Some(c) = &connection {
            c.admit();
        }
        let id = hello.worker_id.clone();
        let acked = *self
            .counted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .unwrap_or(&0);
        let (out_tx, out_rx) = mpsc::channel(256);
        let _ = out_tx.send(Ok(Box::new(self.welcome(acked)))).await;
        let session = self.sessions.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(worker = %id, %peer, host = %hello.hostname, cores = hello.cores, "worker connected");
        let this = self.clone();
        tokio::spawn(async move {
            let _seat = seat;
            let running = Running {
                users: hello.users,
                numbers,
            };
            let end = this.serve(&id, session, running, inbound, out_tx).await;
            if end == SessionEnd::RunEnded {
                tracing::info!(worker = %id, %peer, "session ended: {end}");
            } else {
                tracing::warn!(worker = %id, %peer, "session ended: {end}");
            }
            let left = FleetEvent::Left {
                id,
                session,
                reason: end.to_string(),
            };
            let _ = this.events.send(left).await;
        });
        Ok(Response::new(session_stream(out_rx)))
    }
}

/// Drops every `Assign` that another follows with nothing in between: an assignment is the
/// worker's whole target, so only the later one matters, and a worker slower than a fast ramp
/// gets the latest target instead of a queue of stale ones.
fn coalesce(queued: Vec<ToWorker>) -> Vec<ToWorker> {
    let mut out: Vec<ToWorker> = Vec::with_capacity(queued.len());
    for cmd in queued {
        if let (ToWorker::Assign(_), Some(ToWorker::Assign(_))) = (&cmd, out.last()) {
            out.pop();
        }
        out.push(cmd);
    }
    out
}

/// What a worker says it runs as it joins: users per class, and their numbers if it said.
struct Running {
    users: Vec<u32>,
    numbers: Option<Vec<Numbers>>,
}

impl Coordinator {
    /// Runs one session until either side ends it; returns why it ended.
    async fn serve(
        &self,
        id: &str,
        session: u64,
        running: Running,
        mut inbound: Streaming<proto::WorkerMessage>,
        out: Outbound,
    ) -> SessionEnd {
        let (to_worker, mut from_run) = mpsc::channel::<ToWorker>(256);
        let joined = FleetEvent::Joined {
            id: id.to_string(),
            session,
            tx: to_worker,
            running: running.users,
            numbers: running.numbers,
        };
        if self.events.send(joined).await.is_err() {
            return SessionEnd::RunEnded;
        }
        let mut beat = tokio::time::interval(self.offer.heartbeat_interval);
        loop {
            tokio::select! {
                msg = inbound.message() => match msg {
                    Ok(Some(m)) => {
                        if let Err(end) = self.on_message(id, m, &out).await {
                            if end == SessionEnd::RunEnded {
                                // The run is over and told this worker so before it went
                                // (its Quit waits in the queue): pass that on, or the worker
                                // takes the closed stream for a lost master and redials.
                                while let Ok(cmd) = from_run.try_recv() {
                                    let _ = out.send(Ok(Box::new((&cmd).into()))).await;
                                }
                                return end;
                            }
                            let _ = out.send(Err(Status::invalid_argument(end.to_string()))).await;
                            return end;
                        }
                    }
                    Ok(None) => return SessionEnd::WorkerClosed,
                    Err(status) => return SessionEnd::Stream(status.message().to_string()),
                },
                cmd = from_run.recv() => match cmd {
                    Some(cmd) => {
                        let mut queued = vec![cmd];
                        while let Ok(more) = from_run.try_recv() {
                            queued.push(more);
                        }
                        for cmd in coalesce(queued) {
                            let quit = matches!(cmd, ToWorker::Quit);
                            if out.send(Ok(Box::new((&cmd).into()))).await.is_err() {
                                return SessionEnd::WorkerGone;
                            }
                            if quit {
                                return SessionEnd::RunEnded;
                            }
                        }
                    }
                    // The run let go of this session: it gave the worker up (silent past the
                    // liveness), or a newer session of the same worker replaced it.
                    None => return SessionEnd::GivenUp,
                },
                _ = beat.tick() => {
                    let hb = master_message::Kind::MasterHeartbeat(proto::Heartbeat::default());
                    if out.send(Ok(Box::new(hb.into()))).await.is_err() {
                        return SessionEnd::WorkerGone;
                    }
                }
            }
        }
    }

    /// Checks and forwards one message; `Err` ends the session.
    async fn on_message(
        &self,
        id: &str,
        m: proto::WorkerMessage,
        out: &Outbound,
    ) -> Result<(), SessionEnd> {
        let invalid = SessionEnd::Invalid;
        let kind = m.into_kind().map_err(|e| invalid(e.to_string()))?;
        let msg = match kind {
            worker_message::Kind::Report(r) => {
                let report: hatchery_core::protocol::Report = r
                    .try_into()
                    .map_err(|e: wire::Error| invalid(format!("bad report: {e}")))?;
                let seq = report.seq;
                let fresh = {
                    let mut counted = self.counted.lock().unwrap_or_else(|e| e.into_inner());
                    let last = counted.entry(id.to_string()).or_default();
                    let fresh = seq > *last;
                    *last = (*last).max(seq);
                    fresh
                };
                let ack = master_message::Kind::Ack(proto::Ack { seq });
                let _ = out.send(Ok(Box::new(ack.into()))).await;
                if !fresh {
                    // Sent again after a reconnect, and counted the first time.
                    return Ok(());
                }
                FromWorker::Report(Box::new(report))
            }
            worker_message::Kind::Heartbeat(h) => FromWorker::Heartbeat(
                h.try_into()
                    .map_err(|e: wire::Error| invalid(format!("bad heartbeat: {e}")))?,
            ),
            worker_message::Kind::Stopped(_) => FromWorker::Stopped,
            worker_message::Kind::StatsReset(_) => FromWorker::StatsReset,
            worker_message::Kind::Rejected(r) => {
                return Err(invalid(format!(
                    "the worker rejected the plan: {}",
                    r.reason
                )));
            }
            worker_message::Kind::Hello(_) => return Err(invalid("a second Hello".to_string())),
        };
        let event = FleetEvent::Message {
            id: id.to_string(),
            msg,
        };
        self.events
            .send(event)
            .await
            .map_err(|_| SessionEnd::RunEnded)
    }
}

/// Why a worker session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum SessionEnd {
    /// The run is over (the worker was told to quit, or the run loop is gone).
    #[error("the run has ended")]
    RunEnded,
    #[error("the worker closed the session")]
    WorkerClosed,
    #[error("the worker went away")]
    WorkerGone,
    /// The run let go of this session: it gave the worker up (silent past the liveness), or a
    /// newer session of the same worker replaced it.
    #[error("the master gave this session up")]
    GivenUp,
    #[error("stream error: {0}")]
    Stream(String),
    /// The worker sent something it must not.
    #[error("{0}")]
    Invalid(String),
}

/// Serves the coordinator on `listener` until `shutdown` resolves, then waits for the open
/// sessions to end. With `tls` every worker must dial with TLS.
pub async fn serve(
    listener: TcpListener,
    coordinator: Coordinator,
    tls: Option<&Identity>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let (conns, conns_rx) = mpsc::channel::<io::Result<Guarded<Conn>>>(64);
    let (plain, plain_rx) = mpsc::channel::<io::Result<Guarded<TcpStream>>>(64);
    let acceptor = tls.map(|identity| identity.acceptor(b"h2"));
    let max = coordinator
        .offer
        .max_workers
        .saturating_add(WORKER_PORT_SPARE);
    let gate = Gate::new("workers'", max);
    let accepting = tokio::spawn(accept_workers(listener, gate, acceptor, conns, plain));
    // Plaintext workers of a TLS master meet this service, which tells them what they lack.
    let refusing = tokio::spawn(
        Server::builder()
            .add_service(CoordinatorServer::new(TlsRequired))
            .serve_with_incoming(ReceiverStream::new(plain_rx)),
    );
    let stop_accepting = accepting.abort_handle();
    let result = Server::builder()
        .add_service(coordinator.into_service())
        .serve_with_incoming_shutdown(ReceiverStream::new(conns_rx), async move {
            shutdown.await;
            stop_accepting.abort();
        })
        .await;
    refusing.abort();
    result
}

/// Sorts each new connection, under the port's gate, by its first byte: the sessions' server
/// gets TLS connections (with `tls`) or plaintext ones (without); the others are refused with a
/// reason.
async fn accept_workers(
    listener: TcpListener,
    mut gate: Gate,
    tls: Option<TlsAcceptor>,
    conns: mpsc::Sender<io::Result<Guarded<Conn>>>,
    plain: mpsc::Sender<io::Result<Guarded<TcpStream>>>,
) {
    loop {
        let (stream, peer) = tls::accept(&listener).await;
        let Some(pass) = gate.pass(peer) else {
            continue;
        };
        let (tls, conns, plain) = (tls.clone(), conns.clone(), plain.clone());
        tokio::spawn(async move {
            match (tls::opening(&stream, pass.deadline()).await, tls) {
                (Opening::Nothing, _) => {}
                (Opening::Plain, None) => {
                    let _ = conns.send(Ok(pass.wrap(Conn::Plain(stream)))).await;
                }
                (Opening::Tls, Some(acceptor)) => {
                    match tls::handshake(&acceptor, stream, pass.deadline()).await {
                        Ok(s) => {
                            let _ = conns.send(Ok(pass.wrap(Conn::Tls(Box::new(s))))).await;
                        }
                        Err(e) => {
                            tracing::warn!(%peer, "refused a worker connection: TLS handshake failed: {e}");
                        }
                    }
                }
                (Opening::Plain, Some(_)) => {
                    tracing::warn!(%peer, "refused a plaintext worker connection: this master requires TLS (start the worker with --tls-ca)");
                    let _ = plain.send(Ok(pass.wrap(stream))).await;
                }
                (Opening::Tls, None) => {
                    tracing::warn!(%peer, "refused a TLS worker connection: this master has no --tls-cert/--tls-key (start the worker without --tls-ca, or the master with them)");
                    // Not a TLS record: the worker's TLS library reports a peer that does not
                    // speak TLS, and a person trying with `openssl s_client` reads why.
                    let mut stream = stream;
                    let _ = tokio::time::timeout_at(pass.deadline(), async {
                        let _ = stream.write_all(NOT_TLS).await;
                        let _ = stream.shutdown().await;
                    })
                    .await;
                }
            }
        });
    }
}

/// What a master without TLS answers to a TLS handshake.
pub const NOT_TLS: &[u8] = b"this hatchery master does not speak TLS\n";

/// What a plaintext worker of a TLS master is told.
const TLS_REQUIRED: &str = "this master requires TLS: start the worker with --tls-ca FILE (the CA that signed the master's --tls-cert)";

/// The coordinator as a plaintext worker of a TLS master sees it: every session is refused.
#[derive(Debug, Clone, Copy)]
struct TlsRequired;

#[tonic::async_trait]
impl wire::Coordinator for TlsRequired {
    type SessionStream = SessionStream;

    async fn session(
        &self,
        _request: Request<Streaming<proto::WorkerMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        Err(Status::unauthenticated(TLS_REQUIRED))
    }
}

fn refuse(peer: &str, status: Status) -> Status {
    tracing::warn!(%peer, "refused a worker session: {}", status.message());
    status
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hatchery_core::protocol::{Assignment, Place};

    use super::*;

    fn assign(users: u32) -> ToWorker {
        let mut taken = Numbers::new();
        ToWorker::Assign(Box::new(Assignment {
            users: vec![users],
            numbers: vec![taken.take_lowest_free(u64::from(users))],
            stop_timeout: Duration::ZERO,
            place: Place::default(),
        }))
    }

    /// Every session holds two queues (the run's commands, the stream to the worker), each
    /// keeping two or more blocks of 32 slots once a ramp sent 32 messages: at 1,000 workers
    /// each byte of a slot is 64 KB of the master's memory.
    #[test]
    fn a_session_s_queues_hold_small_slots() {
        assert!(
            std::mem::size_of::<Out>() <= 16,
            "{}",
            std::mem::size_of::<Out>()
        );
        assert!(
            std::mem::size_of::<ToWorker>() <= 32,
            "{}",
            std::mem::size_of::<ToWorker>()
        );
    }

    fn users(cmds: &[ToWorker]) -> Vec<String> {
        cmds.iter()
            .map(|c| match c {
                ToWorker::Assign(a) => a.users[0].to_string(),
                ToWorker::Stop { .. } => "stop".to_string(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn only_the_last_of_consecutive_assignments_goes_out_and_the_order_stays() {
        let stop = ToWorker::Stop {
            timeout: Duration::ZERO,
        };
        let queued = vec![assign(1), assign(2), assign(3), stop, assign(0), assign(4)];
        assert_eq!(users(&coalesce(queued)), ["3", "stop", "4"]);
        assert_eq!(users(&coalesce(vec![assign(7)])), ["7"]);
    }
}
