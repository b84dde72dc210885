//! Limits before work on the master's two ports, as mini-redis bounds its connections before it
//! reads a byte: every accepted TCP connection takes a permit of its port's [`Gate`] before any
//! task is spawned or byte read for it, and keeps it for its whole life. A connection over the
//! bound is closed at once (see [`Gate::pass`] for why not left in the kernel's backlog).
//!
//! Until it is admitted, a connection must be through its handshake by [`HANDSHAKE_TIMEOUT`]
//! after it was accepted, or it is cut: first byte, TLS handshake, then on the workers' port the
//! HTTP/2 preface and a session's valid `Hello`, on the web port a first request that passed
//! authentication. So a peer that connects and says nothing (or too little) holds a permit for
//! at most that long, and what the master spends on it is bounded by the number of permits.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::{ConnectInfo, Connected as WebConnected};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::tls::HttpsListener;

/// How long a new connection has, from being accepted, to finish its handshake and be admitted.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections the workers' port holds besides `--max-workers` sessions: room for that many
/// connections in their handshake at once, however many idle ones a peer opens.
pub const WORKER_PORT_SPARE: usize = 256;

/// Connections the web port holds at once. A browser opens at most six per host; the UI, a few
/// scripts and a Prometheus scraper need far fewer.
pub const MAX_WEB_CONNECTIONS: usize = 256;

/// How long an admitted web connection may stay without sending a byte before it is closed,
/// so that idle keep-alive connections cannot hold every permit of the web port for good. The
/// UI polls every 2 s; a browser or a scraper that was idle longer opens a new connection.
pub const WEB_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How often turning connections away is logged at most: a flood must not flood the log too.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The bound on one port's connections, owned by its accept loop.
#[derive(Debug)]
pub(crate) struct Gate {
    permits: Arc<Semaphore>,
    max: usize,
    port: &'static str,
    /// Connections closed at once since the last log line, and when the next may be written.
    refused: u64,
    next_log: Instant,
    /// How long an admitted connection may send nothing (`None`: as long as it likes).
    idle: Option<Duration>,
}

impl Gate {
    pub(crate) fn new(port: &'static str, max: usize) -> Gate {
        Gate {
            permits: Arc::new(Semaphore::new(max)),
            max,
            port,
            refused: 0,
            next_log: Instant::now(),
            idle: None,
        }
    }

    /// Admitted connections that send nothing for `idle` are closed.
    pub(crate) fn idle_after(mut self, idle: Duration) -> Gate {
        self.idle = Some(idle);
        self
    }

    /// A pass for a connection just accepted, or `None` when the port holds its maximum: the
    /// caller then drops (closes) the connection at once. Closing beats leaving it in the
    /// kernel's backlog: the backlog is first come, first served, so behind a flood of idle
    /// connections a worker would wait out every one of their deadlines, while a worker that is
    /// turned away retries on its own (100 ms backoff) and gets the first permit that frees; and
    /// the log says what happens.
    pub(crate) fn pass(&mut self, peer: SocketAddr) -> Option<Pass> {
        let now = Instant::now();
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Some(Pass {
                permit,
                admission: Admission::default(),
                deadline: now + HANDSHAKE_TIMEOUT,
                idle: self.idle,
            });
        }
        self.refused += 1;
        if now >= self.next_log {
            tracing::warn!(%peer, "the {} port holds its maximum of {} connections: closed {} new one(s) at once (logged at most every {} s)", self.port, self.max, self.refused, LOG_EVERY.as_secs());
            self.refused = 0;
            self.next_log = now + LOG_EVERY;
        }
        None
    }
}

/// A connection's place under its port's bound, and its handshake deadline.
#[derive(Debug)]
pub(crate) struct Pass {
    permit: OwnedSemaphorePermit,
    admission: Admission,
    deadline: Instant,
    idle: Option<Duration>,
}

impl Pass {
    /// When the connection must be admitted by.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The connection's stream, cut at the deadline unless admitted before.
    pub(crate) fn wrap<S>(self, io: S) -> Guarded<S> {
        Guarded {
            io,
            deadline: Box::pin(tokio::time::sleep_until(self.deadline)),
            admission: self.admission,
            idle: self.idle,
            idle_until: None,
            _permit: self.permit,
        }
    }
}

/// Whether a connection was admitted (no deadline any more). Shared by its stream and the
/// requests on it.
#[derive(Debug, Clone, Default)]
pub struct Admission(Arc<AtomicBool>);

impl Admission {
    fn admit(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn admitted(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A connection under its port's bound: reading fails once the deadline passed unadmitted, or
/// once an admitted connection with an idle bound sent nothing for that long, which ends the
/// connection (tonic and hyper always have a read pending on it).
#[derive(Debug)]
pub struct Guarded<S> {
    io: S,
    deadline: Pin<Box<Sleep>>,
    admission: Admission,
    idle: Option<Duration>,
    /// Started at the first read after admission, moved on by every byte read after it.
    idle_until: Option<Pin<Box<Sleep>>>,
    _permit: OwnedSemaphorePermit,
}

/// What the sessions and requests on a connection know of it (a request extension).
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: Option<SocketAddr>,
    admission: Admission,
}

impl Peer {
    /// The connection proved itself (a valid `Hello`, an authenticated request): it may stay
    /// past the handshake deadline.
    pub fn admit(&self) {
        self.admission.admit();
    }
}

impl<S: Connected<ConnectInfo = TcpConnectInfo>> Connected for Guarded<S> {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        Peer {
            addr: self.io.connect_info().remote_addr(),
            admission: self.admission.clone(),
        }
    }
}

impl Peer {
    fn of_web<L, S>(stream: &IncomingStream<'_, L>) -> Peer
    where
        L: Listener<Io = Guarded<S>, Addr = SocketAddr>,
    {
        Peer {
            addr: Some(*stream.remote_addr()),
            admission: stream.io().admission.clone(),
        }
    }
}

impl WebConnected<IncomingStream<'_, PlainListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, PlainListener>) -> Peer {
        Peer::of_web(&stream)
    }
}

impl WebConnected<IncomingStream<'_, HttpsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, HttpsListener>) -> Peer {
        Peer::of_web(&stream)
    }
}

/// Admits the connection of every request that passed authentication (any answer but 401).
pub(crate) async fn admit_web(request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|c| c.0.clone());
    let response = next.run(request).await;
    if response.status() != StatusCode::UNAUTHORIZED {
        if let Some(peer) = peer {
            peer.admit();
        }
    }
    response
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let admitted = self.admission.admitted();
        if !admitted && self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "not through the handshake within {} s of connecting",
                    HANDSHAKE_TIMEOUT.as_secs()
                ),
            )));
        }
        let idle = if admitted { self.idle } else { None };
        if let Some(idle) = idle {
            let until = self
                .idle_until
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
            if until.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("idle for {} s", idle.as_secs()),
                )));
            }
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut self.io).poll_read(cx, buf);
        if let (Some(idle), Some(until)) = (idle, self.idle_until.as_mut()) {
            if buf.filled().len() > before {
                until.as_mut().reset(Instant::now() + idle);
            }
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The plain web port as an axum listener, under its gate.
#[derive(Debug)]
pub(crate) struct PlainListener {
    listener: TcpListener,
    gate: Gate,
}

impl PlainListener {
    pub(crate) fn new(listener: TcpListener) -> PlainListener {
        PlainListener {
            listener,
            gate: Gate::new("web", MAX_WEB_CONNECTIONS).idle_after(WEB_IDLE_TIMEOUT),
        }
    }
}

impl Listener for PlainListener {
    type Io = Guarded<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, peer) = crate::tls::accept(&self.listener).await;
            if let Some(pass) = self.gate.pass(peer) {
                return (pass.wrap(stream), peer);
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9))
    }

    #[tokio::test]
    async fn a_port_holds_its_maximum_and_a_connection_that_ends_frees_its_place() {
        let mut gate = Gate::new("test", 2);
        let a = gate.pass(peer()).expect("first");
        let _b = gate.pass(peer()).expect("second");
        assert!(gate.pass(peer()).is_none(), "over the bound");
        drop(a);
        assert!(gate.pass(peer()).is_some(), "a place freed");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unadmitted_connection_is_cut_at_its_deadline_and_an_admitted_one_is_not() {
        let mut gate = Gate::new("test", 2);
        let (client, server) = tokio::io::duplex(64);
        let mut silent = gate.pass(peer()).expect("a pass").wrap(server);
        let start = Instant::now();
        let mut buf = [0u8; 8];
        let err = silent.read(&mut buf).await.expect_err("cut");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(Instant::now() - start, HANDSHAKE_TIMEOUT);
        drop(client);

        let (mut client, server) = tokio::io::duplex(64);
        let mut admitted = gate.pass(peer()).expect("a pass").wrap(server);
        admitted.admission.admit();
        tokio::time::advance(HANDSHAKE_TIMEOUT * 2).await;
        client.write_all(b"late").await.unwrap();
        assert_eq!(admitted.read(&mut buf).await.unwrap(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn an_admitted_connection_with_an_idle_bound_is_cut_after_that_long_without_a_byte() {
        let idle = Duration::from_secs(60);
        let mut gate = Gate::new("test", 2).idle_after(idle);
        let (mut client, server) = tokio::io::duplex(64);
        let mut conn = gate.pass(peer()).expect("a pass").wrap(server);
        conn.admission.admit();
        let mut buf = [0u8; 8];
        // Bytes keep it open past the bound: each moves the deadline on.
        for _ in 0..3 {
            client.write_all(b"GET").await.unwrap();
            assert_eq!(conn.read(&mut buf).await.unwrap(), 3);
            tokio::time::advance(idle - Duration::from_secs(1)).await;
        }
        let start = Instant::now();
        let err = conn.read(&mut buf).await.expect_err("cut");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(
            Instant::now() - start <= Duration::from_secs(1),
            "cut an idle minute after the last byte"
        );
        // The permit is back once the connection is gone.
        drop(conn);
        let _a = gate.pass(peer()).expect("a place");
        let _b = gate.pass(peer()).expect("another place");
    }
}
