//! HTTP/2 for the users of a class with `http2: true`: one connection per origin, one stream at
//! a time, as a browser tab or a Locust user with an HTTP/2 adapter uses it (docs/plan.md).
//!
//! The connection is driven inside the user's own task while a request is out ([`Driver`]): no
//! connection task and no channel per user, as with [`crate::h1`]. While the user waits nothing
//! polls it; a GOAWAY or a close that came meanwhile is seen by [`Conn::check_open`] before the
//! next request, which polls the connection only when its socket may hold something unread
//! ([`Io`]).
//!
//! A request is built once, as [`crate::h1`] encodes it (so cookies, redirects, header checks
//! and bodies are the same code for both protocols); [`parts`] reads that head back into
//! pseudo-headers and fields, leaving out what HTTP/2 forbids (RFC 9113 8.2.2).

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use h2::client::{Connection, SendRequest};
use h2::Reason;
use http::header::{HeaderName, CONTENT_ENCODING};
use http::uri::{Authority, Scheme};
use http::{HeaderMap, HeaderValue, Method, Uri, Version};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::coding::Coding;
use crate::h1::{self, Keep, Response, Wanted};
use crate::http::{Origin, Stream};
use crate::prepare::{PreparedRequest, Url};

/// Flow-control window granted per stream and per connection: bulk bodies flow without a
/// WINDOW_UPDATE per 64 KiB, and a server can never have more than this unread.
const WINDOW: u32 = 1024 * 1024;

/// Why an HTTP/2 exchange failed; its text becomes the failure message in the stats.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server sent GOAWAY (or closed the connection) before answering this stream: on a
    /// reused connection, the same race as a keep-alive connection closed while idle.
    #[error("connection closed before the response ({0})")]
    ClosedBeforeResponse(h2::Error),
    #[error("stream reset by the server ({0})")]
    Reset(Reason),
    /// The response broke a limit or a rule (a header list over [`h1::MAX_HEAD`] bytes is one):
    /// the client reset the stream.
    #[error(
        "invalid response, stream reset by the client ({0}; a header list over {max} bytes is one cause)",
        max = h1::MAX_HEAD
    )]
    Refused(Reason),
    #[error("HTTP/2 error: {0}")]
    Protocol(h2::Error),
    #[error("cannot send over HTTP/2: {0}")]
    Request(&'static str),
    #[error(transparent)]
    Body(h1::Error),
}

impl Error {
    /// Closed before answering: worth one retry on a new connection, when idempotent.
    pub fn is_stale(&self) -> bool {
        matches!(self, Error::ClosedBeforeResponse(_))
    }

    /// The stream failed and was reset; the connection goes on.
    pub fn keeps_connection(&self) -> bool {
        matches!(
            self,
            Error::Reset(_) | Error::Refused(_) | Error::Request(_) | Error::Body(_)
        )
    }
}

/// Opens HTTP/2 on `io` (prior knowledge, or after ALPN chose "h2"), with every bound set.
pub async fn handshake(stream: Stream) -> Result<Conn, h2::Error> {
    let notes = Arc::new(Notes::default());
    let io = Io {
        stream,
        waker: Waker::from(notes.clone()),
        notes: notes.clone(),
    };
    let (send, conn) = h2::client::Builder::new()
        .enable_push(false)
        .max_header_list_size(h1::MAX_HEAD as u32)
        .initial_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .handshake::<_, Bytes>(io)
        .await?;
    Ok(Conn {
        send,
        conn,
        notes,
        closed: false,
        served: false,
        in_flight: false,
    })
}

/// One HTTP/2 connection of a user.
pub struct Conn {
    send: SendRequest<Bytes>,
    conn: Connection<Io, Bytes>,
    notes: Arc<Notes>,
    /// The connection future ended (closed, GOAWAY, or an error).
    closed: bool,
    served: bool,
    in_flight: bool,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("http2::Conn")
            .field("closed", &self.closed)
            .field("served", &self.served)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// Whether a previous exchange on this connection completed.
    pub fn served(&self) -> bool {
        self.served
    }

    /// Whether a stream was opened and its exchange neither returned nor failed.
    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// Whether another stream can be opened: takes in what arrived while the user waited (a
    /// poll that does not wait, made only when the socket may hold something unread: most
    /// often nothing came since the last response) and looks for a close or a GOAWAY.
    pub fn check_open(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        if !self.closed && self.notes.stirred() && Pin::new(&mut self.conn).poll(&mut cx).is_ready()
        {
            self.closed = true;
        }
        !self.closed && !matches!(self.send.poll_ready(&mut cx), Poll::Ready(Err(_)))
    }

    /// Sends `request` on a new stream and reads the response, keeping what `keep` asks for.
    pub async fn exchange(
        &mut self,
        request: h1::Request<'_>,
        origin: &Origin,
        keep: Keep,
    ) -> Result<Response, Error> {
        let (head, body) = match request.h2 {
            Some(p) => (p.head.clone(), p.body.clone()),
            None => parts(request, origin)?,
        };
        let result = self.send_and_receive(head, body, keep).await;
        self.in_flight = false;
        self.served |= result.is_ok();
        result
    }

    async fn send_and_receive(
        &mut self,
        head: http::Request<()>,
        body: Bytes,
        keep: Keep,
    ) -> Result<Response, Error> {
        let mut driver = Driver {
            conn: &mut self.conn,
            closed: &mut self.closed,
        };
        // Polled in place: `ready()` would take a clone of the handle (two more locks of the
        // connection's state per request).
        let send = &mut self.send;
        driver
            .run(std::future::poll_fn(|cx| send.poll_ready(cx)))
            .await
            .map_err(Error::ClosedBeforeResponse)?;
        let (response, mut stream) = send
            .send_request(head, body.is_empty())
            .map_err(Error::ClosedBeforeResponse)?;
        self.in_flight = true;
        if !body.is_empty() {
            stream
                .send_data(body, true)
                .map_err(Error::ClosedBeforeResponse)?;
        }
        // Nothing can have answered the stream before the connection sends it.
        let response = driver
            .run_io_first(response)
            .await
            .map_err(before_response)?;
        let (parts, mut recv) = response.into_parts();
        let (headers, coding) = kept_headers(parts.headers, keep);
        let mut body = keep.body.then(Vec::new);
        // A deflate body's decoded size is not in it: kept (within the same bound) to count it.
        if coding == Coding::Deflate && body.is_none() {
            body = Some(Vec::new());
        }
        let limit = h1::body_limit(keep.max_body);
        let mut body_len = 0u64;
        let mut tail = [0u8; 4];
        while let Some(data) = driver.run(recv.data()).await {
            let data = data.map_err(during_response)?;
            body_len += data.len() as u64;
            h1::roll(&mut tail, &data);
            if let Some(k) = body.as_mut() {
                h1::kept(k, &data, limit).map_err(Error::Body)?;
            }
            // The last data frame needs no other poll, and its window comes back when the
            // stream is dropped just after.
            if recv.is_end_stream() {
                break;
            }
            let _ = recv.flow_control().release_capacity(data.len());
        }
        Ok(Response {
            status: parts.status.as_u16(),
            headers,
            body: body.map_or_else(Bytes::new, Bytes::from),
            body_len,
            coding,
            tail,
        })
    }
}

/// Polls the connection beside what the user awaits on it, in the user's task.
struct Driver<'c> {
    conn: &'c mut Connection<Io, Bytes>,
    closed: &'c mut bool,
}

impl Driver<'_> {
    /// Awaits `f`, polling the connection only when `f` waits on it: most polls of a stream
    /// find what they wait for already read (a small response's data came with its head).
    async fn run<F: Future>(&mut self, f: F) -> F::Output {
        let mut f = pin!(f);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(v) = f.as_mut().poll(cx) {
                return Poll::Ready(v);
            }
            self.poll_conn_then(f.as_mut(), cx)
        })
        .await
    }

    /// Awaits `f`, which waits on the connection until it is polled: the connection first.
    async fn run_io_first<F: Future>(&mut self, f: F) -> F::Output {
        let mut f = pin!(f);
        std::future::poll_fn(|cx| self.poll_conn_then(f.as_mut(), cx)).await
    }

    /// Writes what `f` queued and reads what came, then polls `f`; a connection that ends
    /// fails its streams, and `f` then resolves with the error.
    fn poll_conn_then<F: Future>(
        &mut self,
        f: Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> Poll<F::Output> {
        if !*self.closed && Pin::new(&mut *self.conn).poll(cx).is_ready() {
            *self.closed = true;
        }
        f.poll(cx)
    }
}

/// What a connection's socket tells [`Conn::check_open`]: whether a poll of the connection
/// could take in anything (a GOAWAY, a close) that it has not seen.
#[derive(Debug, Default)]
struct Notes {
    /// The socket became ready since its last read.
    woken: AtomicBool,
    /// The last read of the socket found nothing left (it returned `Pending`).
    drained: AtomicBool,
    /// A write waits for the socket to take it.
    held: AtomicBool,
    /// Whom the socket wakes: the task that last polled it (the user's while an exchange
    /// waits on it).
    task: Mutex<Option<Waker>>,
}

impl Notes {
    fn stirred(&self) -> bool {
        self.woken.load(Ordering::Acquire)
            || !self.drained.load(Ordering::Relaxed)
            || self.held.load(Ordering::Relaxed)
    }

    /// Has `task` woken from now on, cloning its waker only when it changed.
    fn wakes(&self, task: &Waker) {
        let mut t = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if !t.as_ref().is_some_and(|w| w.will_wake(task)) {
            *t = Some(task.clone());
        }
    }
}

/// The socket's waker: notes that it became ready, then wakes the task that polled it.
impl Wake for Notes {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = task.as_ref() {
            task.wake_by_ref();
        }
    }
}

/// A connection's byte stream as h2 sees it: the socket is polled with [`Notes`] as its waker,
/// so that an idle connection that nothing reached is not polled before its next request.
#[derive(Debug)]
struct Io {
    stream: Stream,
    notes: Arc<Notes>,
    /// `notes` as a waker, made once.
    waker: Waker,
}

impl Io {
    /// `f` polls the socket with [`Notes`] as its waker, which wakes the task of `cx`.
    fn poll<T>(
        &mut self,
        cx: &Context<'_>,
        f: impl FnOnce(Pin<&mut Stream>, &mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        self.notes.wakes(cx.waker());
        f(
            Pin::new(&mut self.stream),
            &mut Context::from_waker(&self.waker),
        )
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        // Cleared before the read: a wake after it is for what this read did not see.
        this.notes.woken.store(false, Ordering::Release);
        let read = this.poll(cx, |s, cx| s.poll_read(cx, buf));
        this.notes
            .drained
            .store(read.is_pending(), Ordering::Relaxed);
        read
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let written = this.poll(cx, |s, cx| s.poll_write(cx, buf));
        this.notes
            .held
            .store(written.is_pending(), Ordering::Relaxed);
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let flushed = this.poll(cx, |s, cx| s.poll_flush(cx));
        this.notes
            .held
            .store(flushed.is_pending(), Ordering::Relaxed);
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().poll(cx, |s, cx| s.poll_shutdown(cx))
    }
}

/// An error before the response head: a GOAWAY or a close is a stale connection; a reset is
/// named for who sent it.
fn before_response(e: h2::Error) -> Error {
    if e.is_go_away() || e.is_io() {
        return Error::ClosedBeforeResponse(e);
    }
    during_response(e)
}

fn during_response(e: h2::Error) -> Error {
    match e.reason() {
        Some(r) if e.is_reset() && e.is_remote() => Error::Reset(r),
        Some(r) if e.is_reset() => Error::Refused(r),
        _ => Error::Protocol(e),
    }
}

/// What of `headers` the exchange keeps, and the body's coding.
fn kept_headers(headers: HeaderMap, keep: Keep) -> (HeaderMap, Coding) {
    let mut codings = headers.get_all(CONTENT_ENCODING).iter();
    let coding = match (codings.next(), codings.next()) {
        (None, _) => Coding::Identity,
        (Some(v), None) => Coding::of(v.as_bytes()),
        (Some(_), Some(_)) => Coding::Other,
    };
    // h2 has made the map already: keeping it whole costs nothing, sifting it would (a session
    // reads only `set-cookie` and `location` by name, a check or a script what it names).
    match Wanted::of(keep) {
        Wanted::All | Wanted::Session => (headers, coding),
        Wanted::None => (HeaderMap::new(), coding),
    }
}

/// Headers that only mean something to one HTTP/1.1 connection (`name` in lower case); RFC
/// 9113 8.2.2 forbids them, and `te` but for `te: trailers`.
pub fn connection_specific(name: &[u8], te_trailers: bool) -> bool {
    match name {
        b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding" | b"upgrade" => {
            true
        }
        b"te" => !te_trailers,
        _ => false,
    }
}

/// A request with nothing rendered in it, made ready for HTTP/2 once per plan: each send clones
/// it (reference counts and two small allocations) instead of reading the head again.
#[derive(Debug)]
pub struct Prepared {
    head: http::Request<()>,
    body: Bytes,
}

impl Prepared {
    /// `req` made ready when nothing in it is rendered (`None` otherwise); an error when HTTP/2
    /// cannot carry it (a plan's `host` that is no authority), so `--check` says so.
    pub fn of(req: &PreparedRequest) -> Result<Option<Prepared>, Error> {
        let (Url::Static { origin, .. }, Some(bytes)) = (&req.url, &req.wire) else {
            return Ok(None);
        };
        let request = h1::Request {
            bytes,
            is_head: false,
            idempotent: false,
            h2: None,
        };
        let (head, body) = parts(request, origin)?;
        Ok(Some(Prepared { head, body }))
    }
}

/// Reads a request as [`h1::encode`] wrote it (whose header values were checked to hold no CR,
/// LF or control) into an HTTP/2 request: `:method`, `:scheme`, `:authority` (the plan's `host`
/// when it sets one, else the URL's) and `:path` from the request line and the origin, the other
/// fields as they are, but connection-specific ones.
pub fn parts(
    request: h1::Request<'_>,
    origin: &Origin,
) -> Result<(http::Request<()>, Bytes), Error> {
    let bytes = request.bytes;
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(Error::Request("no end of head"))?;
    let mut lines = bytes[..end]
        .split(|&b| b == b'\n')
        .map(|l| l.trim_ascii_end());
    let line = lines.next().ok_or(Error::Request("no request line"))?;
    let mut words = line.splitn(3, |&b| b == b' ');
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return Err(Error::Request("bad request line"));
    };
    let mut req = http::Request::new(());
    *req.version_mut() = Version::HTTP_2;
    *req.method_mut() = Method::from_bytes(method).map_err(|_| Error::Request("bad method"))?;
    let mut authority = None;
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(Error::Request("bad header line"));
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name == b"host" {
            authority = Some(value);
            continue;
        }
        if connection_specific(name, value.eq_ignore_ascii_case(b"trailers")) {
            continue;
        }
        let name = HeaderName::from_bytes(name).map_err(|_| Error::Request("bad header name"))?;
        let value =
            HeaderValue::from_bytes(value).map_err(|_| Error::Request("bad header value"))?;
        req.headers_mut().append(name, value);
    }
    let authority = match authority {
        Some(a) => Authority::try_from(a).map_err(|_| Error::Request("host is no authority"))?,
        None => Authority::try_from(origin.authority.as_bytes())
            .map_err(|_| Error::Request("bad authority"))?,
    };
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(if origin.tls {
        Scheme::HTTPS
    } else {
        Scheme::HTTP
    });
    uri.authority = Some(authority);
    uri.path_and_query = Some(
        target
            .try_into()
            .map_err(|_| Error::Request("bad request target"))?,
    );
    *req.uri_mut() = Uri::from_parts(uri).map_err(|_| Error::Request("bad URL"))?;
    let body = Bytes::copy_from_slice(&bytes[end + 4..]);
    Ok((req, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        let authority: Authority = "127.0.0.1:8080".parse().unwrap();
        Origin::new(&Scheme::HTTP, &authority).unwrap()
    }

    fn request(bytes: &[u8]) -> h1::Request<'_> {
        h1::Request {
            bytes,
            is_head: false,
            idempotent: false,
            h2: None,
        }
    }

    #[test]
    fn the_request_line_and_host_become_pseudo_headers_and_connection_headers_stay_behind() {
        let bytes = b"POST /a?b=1 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nconnection: keep-alive\r\n\
            keep-alive: 5\r\nupgrade: h2c\r\nte: gzip\r\nx-a: 1\r\ncontent-length: 2\r\n\r\nhi";
        let (req, body) = parts(request(bytes), &origin()).unwrap();
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri().to_string(), "http://127.0.0.1:8080/a?b=1");
        let names: Vec<_> = req.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-a", "content-length"]);
        assert_eq!(body, "hi");
    }

    #[test]
    fn a_plans_host_is_the_authority_and_te_trailers_is_kept() {
        let bytes = b"GET / HTTP/1.1\r\nhost: example.test\r\nte: trailers\r\n\r\n";
        let (req, body) = parts(request(bytes), &origin()).unwrap();
        assert_eq!(req.uri().authority().unwrap().as_str(), "example.test");
        assert_eq!(req.headers()["te"], "trailers");
        assert!(body.is_empty());
    }

    #[test]
    fn headers_are_kept_whole_when_anything_reads_them_and_every_response_names_its_coding() {
        let mut headers = HeaderMap::new();
        headers.append("set-cookie", HeaderValue::from_static("a=1"));
        headers.append("location", HeaderValue::from_static("/b"));
        headers.append("content-encoding", HeaderValue::from_static("gzip"));
        headers.append("x-other", HeaderValue::from_static("1"));
        let keep = |headers, session| Keep {
            headers,
            session,
            ..Keep::default()
        };
        let (kept, coding) = kept_headers(headers.clone(), keep(false, true));
        assert_eq!(coding, Coding::Gzip);
        assert_eq!(kept.len(), 4);
        assert_eq!(kept_headers(headers.clone(), keep(true, false)).0.len(), 4);
        assert!(kept_headers(headers, keep(false, false)).0.is_empty());
    }
}
