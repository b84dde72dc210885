//! A purpose-built cleartext HTTP/2 server (the h2 crate's server side, prior knowledge) on
//! 127.0.0.1:0 that answers GETs and POSTs with "ok" but misbehaves in one named way
//! ([`Misbehaviour`]). It counts what it answered, so a test can hold the binary's report
//! against the server's own count.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::Reason;
use http::{Method, Response};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the server does besides answering "ok".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// GETs are answered with about 100 KiB of headers.
    HugeHeaders,
    /// GETs are answered with a 256 KiB body.
    HugeBody,
    /// Connection number *c* (from 1) answers *c* requests, then sends GOAWAY without answering
    /// the next one (it was not processed) and closes: so refused requests alternate between
    /// GETs and POSTs of a plan that alternates them.
    GoAwayAfterConnectionNumber,
    /// GETs get RST_STREAM (INTERNAL_ERROR) instead of a response.
    ResetGets,
    /// GETs are never answered (the stream stays open).
    StallGets,
    /// A connection that answered a request and then stays idle for [`IDLE_TIMEOUT`] gets
    /// GOAWAY (naming the last stream answered) and is closed, as nginx closes an idle HTTP/2
    /// connection after its `keepalive_timeout`.
    GoAwayWhenIdle,
}

/// How long [`Misbehaviour::GoAwayWhenIdle`] lets a connection idle.
pub const IDLE_TIMEOUT: Duration = Duration::from_millis(3);

#[derive(Debug, Default)]
struct Counts {
    connections: AtomicU64,
    answered: AtomicU64,
    answered_posts: AtomicU64,
}

/// A running bad HTTP/2 server; stops when dropped.
#[derive(Debug)]
pub struct BadH2 {
    pub addr: SocketAddr,
    counts: Arc<Counts>,
    task: JoinHandle<()>,
}

impl BadH2 {
    pub async fn start(misbehaviour: Misbehaviour) -> BadH2 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let counts = Arc::new(Counts::default());
        let c = counts.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let number = c.connections.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(serve(socket, misbehaviour, number, c.clone()));
            }
        });
        BadH2 { addr, counts, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted.
    pub fn connections(&self) -> u64 {
        self.counts.connections.load(Ordering::SeqCst)
    }

    /// Requests answered with a response (whatever it held).
    pub fn answered(&self) -> u64 {
        self.counts.answered.load(Ordering::SeqCst)
    }

    /// POSTs answered with a response.
    pub fn answered_posts(&self) -> u64 {
        self.counts.answered_posts.load(Ordering::SeqCst)
    }
}

impl Drop for BadH2 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(socket: TcpStream, misbehaviour: Misbehaviour, number: u64, counts: Arc<Counts>) {
    let Ok(mut conn) = h2::server::handshake(socket).await else {
        return;
    };
    let mut seen = 0;
    loop {
        let next = if misbehaviour == Misbehaviour::GoAwayWhenIdle && seen > 0 {
            tokio::time::timeout(IDLE_TIMEOUT, conn.accept()).await
        } else {
            Ok(conn.accept().await)
        };
        let Ok(next) = next else {
            conn.abrupt_shutdown(Reason::NO_ERROR);
            while conn.accept().await.is_some() {}
            return;
        };
        let Some(Ok((request, respond))) = next else {
            return;
        };
        seen += 1;
        if misbehaviour == Misbehaviour::GoAwayAfterConnectionNumber && seen > number {
            // The GOAWAY names the last stream processed, the one before this.
            conn.abrupt_shutdown(Reason::NO_ERROR);
            drop((request, respond));
            while conn.accept().await.is_some() {}
            return;
        }
        let post = request.method() == Method::POST;
        tokio::spawn(answer(
            request.into_body(),
            respond,
            post,
            misbehaviour,
            counts.clone(),
        ));
    }
}

/// Reads the request's body, then answers (or resets) as `misbehaviour` says.
async fn answer(
    mut body: h2::RecvStream,
    mut respond: SendResponse<Bytes>,
    post: bool,
    misbehaviour: Misbehaviour,
    counts: Arc<Counts>,
) {
    while let Some(Ok(data)) = body.data().await {
        let _ = body.flow_control().release_capacity(data.len());
    }
    let mut response = Response::builder().status(200);
    let mut payload = Bytes::from_static(b"ok");
    if !post {
        match misbehaviour {
            Misbehaviour::ResetGets => {
                respond.send_reset(Reason::INTERNAL_ERROR);
                return;
            }
            Misbehaviour::HugeHeaders => {
                let value = "a".repeat(1024);
                for i in 0..100 {
                    response = response.header(format!("x-filler-{i}"), value.as_str());
                }
            }
            Misbehaviour::HugeBody => payload = Bytes::from(vec![b'o'; 256 * 1024]),
            Misbehaviour::StallGets => {
                // Held until the client resets the stream or the connection ends.
                std::future::poll_fn(|cx| respond.poll_reset(cx)).await.ok();
                return;
            }
            Misbehaviour::GoAwayAfterConnectionNumber | Misbehaviour::GoAwayWhenIdle => {}
        }
    }
    let response = response.body(()).expect("a valid response");
    let Ok(mut stream) = respond.send_response(response, false) else {
        return;
    };
    counts.answered.fetch_add(1, Ordering::SeqCst);
    if post {
        counts.answered_posts.fetch_add(1, Ordering::SeqCst);
    }
    let _ = stream.send_data(payload, true);
}
