//! HTTP/2 for the users of a class with `http2: true`: one connection per origin, one stream at
//! a time, as a browser tab or a Locust user with an HTTP/2 adapter uses it (docs/plan.md).
//!
//! Hand-written, as [`crate::h1`] is (docs/architecture.md says why: the h2 crate cost twice
//! h2load's instructions per request): [`frame`] and [`hpack`] parse bytes in pure functions,
//! [`state`] takes in frames without I/O, and [`Conn`] moves bytes. The connection is driven
//! inside the user's own task while a request is out: no connection task, no channel, no
//! stream store. While the user waits nothing reads it; a GOAWAY or a close that came meanwhile
//! is seen by [`Conn::check_open`] before the next request (a read that never waits).
//!
//! A request is built once, as [`crate::h1`] encodes it (so cookies, redirects, header checks
//! and bodies are the same code for both protocols); [`parts`] reads that head back into
//! pseudo-headers and fields, leaving out what HTTP/2 forbids (RFC 9113 8.2.2), as a header
//! block that needs no connection's state (static table and literals only), so a request with
//! nothing rendered in it is encoded once per plan ([`Prepared`]).

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::header::HeaderName;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Method};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

use crate::h1::{self, Keep, Response, Wanted};
use crate::http::{Origin, Stream};
use crate::prepare::{PreparedRequest, Url};

pub mod frame;
pub mod hpack;
pub mod huffman;
pub mod state;

use frame::{Parsed, Reason, Violation};
use state::{Failure, State};

pub use state::WINDOW;

/// Bytes asked for per read (a frame larger than this makes the buffer grow to hold it).
const READ_SIZE: usize = 8 * 1024;

/// How a connection ended before a stream's response.
#[derive(Debug, thiserror::Error)]
pub enum Closed {
    #[error("GOAWAY, {0}")]
    GoAway(Reason),
    #[error("end of stream")]
    Eof,
    #[error("{0}")]
    Io(io::Error),
}

/// Why an HTTP/2 exchange failed; its text becomes the failure message in the stats.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server sent GOAWAY (or closed the connection) before answering this stream: on a
    /// reused connection, the same race as a keep-alive connection closed while idle.
    #[error("connection closed before the response ({0})")]
    ClosedBeforeResponse(Closed),
    #[error("stream reset by the server ({0})")]
    Reset(Reason),
    /// The response broke a limit or a rule (a header list over [`h1::MAX_HEAD`] bytes is one):
    /// the client reset the stream.
    #[error("invalid response, stream reset by the client ({0})")]
    Refused(&'static str),
    /// The server broke the protocol: the client sent GOAWAY and closed the connection.
    #[error("HTTP/2 connection error: {0}")]
    Protocol(Violation),
    #[error("connection closed in the middle of the response ({0})")]
    ClosedEarly(Closed),
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

/// Opens HTTP/2 on `stream` (prior knowledge, or after ALPN chose "h2"): the client's preface
/// and SETTINGS go out; the server's are read with the first response.
pub async fn handshake(mut stream: Stream) -> io::Result<Conn> {
    let mut out = Vec::new();
    state::preface(&mut out);
    stream.write_all(&out).await?;
    stream.flush().await?;
    out.clear();
    Ok(Conn {
        io: stream,
        buf: Vec::new(),
        pos: 0,
        out,
        state: State::default(),
        closed: false,
        served: false,
        in_flight: false,
    })
}

/// One HTTP/2 connection of a user.
pub struct Conn {
    io: Stream,
    /// Received bytes; `buf[pos..]` are not taken in yet.
    buf: Vec<u8>,
    pos: usize,
    /// What goes out next: the state's answers, then a request's frames.
    out: Vec<u8>,
    state: State,
    /// Closed by the server, or by the client after a connection error.
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

    /// Frees the read buffer while the connection is idle.
    pub fn release(&mut self) {
        if self.pos == self.buf.len() {
            self.buf = Vec::new();
            self.pos = 0;
        }
    }

    /// Whether another stream can be opened: takes in what arrived while the user waited (a
    /// read that never waits, and costs no system call unless the socket became readable) and
    /// looks for a close or a GOAWAY.
    pub fn check_open(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        // Read on the stack first: most often nothing came, and the read buffer, given back
        // while the user waited, is not made again for nothing.
        let mut bytes = [0u8; 512];
        while !self.closed {
            let mut rb = ReadBuf::new(&mut bytes);
            match Pin::new(&mut self.io).poll_read(&mut cx, &mut rb) {
                Poll::Pending => break,
                Poll::Ready(Ok(())) if !rb.filled().is_empty() => {
                    self.make_room();
                    self.buf.extend_from_slice(rb.filled());
                    if self.take_in().is_err() {
                        self.closed = true;
                    }
                }
                Poll::Ready(_) => self.closed = true,
            }
        }
        !self.closed && self.state.can_open()
    }

    /// Sends `request` on a new stream and reads the response, keeping what `keep` asks for.
    pub async fn exchange(
        &mut self,
        request: h1::Request<'_>,
        origin: &Origin,
        keep: Keep,
    ) -> Result<Response, Error> {
        let owned;
        let (block, body) = match request.h2 {
            Some(p) => (&p.block[..], &p.body[..]),
            None => {
                owned = parts(request, origin)?;
                (&owned.block[..], &owned.body[..])
            }
        };
        let result = self
            .send_and_receive(block, body, keep, request.is_head)
            .await;
        self.in_flight = false;
        self.served |= result.is_ok();
        result
    }

    async fn send_and_receive(
        &mut self,
        block: &[u8],
        mut body: &[u8],
        keep: Keep,
        is_head: bool,
    ) -> Result<Response, Error> {
        if self.closed {
            return Err(Error::ClosedBeforeResponse(Closed::Eof));
        }
        let id = self
            .state
            .open(Wanted::of(keep), keep.body, keep.max_body, is_head)
            .ok_or(Error::ClosedBeforeResponse(Closed::GoAway(
                Reason::NO_ERROR,
            )))?;
        self.in_flight = true;
        self.out.append(&mut self.state.out);
        frame::put_headers(
            &mut self.out,
            id,
            block,
            body.is_empty(),
            self.state.max_frame,
        );
        loop {
            body = self.queue_body(id, body);
            self.write_out().await?;
            if self.state.rx.end.is_some() {
                break;
            }
            self.read_more().await?;
            if self.state.rx.end.is_some() {
                break;
            }
        }
        // What the stream's end asked for (a reset) goes with the next request.
        self.finish()
    }

    /// Queues as much of the request body as the windows allow; returns the rest.
    fn queue_body<'b>(&mut self, id: u32, mut body: &'b [u8]) -> &'b [u8] {
        if self.state.rx.end.is_some() {
            // Answered (or reset) before the body was all sent: the rest is not wanted.
            return &[];
        }
        while !body.is_empty() {
            let n = self.state.send_capacity().min(body.len());
            if n == 0 {
                break;
            }
            let (now, rest) = body.split_at(n);
            frame::put_data(&mut self.out, id, now, rest.is_empty());
            self.state.sent(n);
            body = rest;
        }
        body
    }

    /// Writes what is queued, with the state's answers first.
    async fn write_out(&mut self) -> Result<(), Error> {
        if !self.state.out.is_empty() {
            let answers = std::mem::take(&mut self.state.out);
            self.out.splice(0..0, answers);
        }
        if self.out.is_empty() {
            return Ok(());
        }
        let written = async {
            self.io.write_all(&self.out).await?;
            self.io.flush().await
        }
        .await;
        self.out.clear();
        written.map_err(|e| {
            self.closed = true;
            self.lost(Closed::Io(e))
        })
    }

    /// Reads at least one more byte and takes in every whole frame.
    async fn read_more(&mut self) -> Result<(), Error> {
        let n = std::future::poll_fn(|cx| self.poll_fill(cx)).await;
        match n {
            Ok(0) => {
                self.closed = true;
                Err(self.lost(Closed::Eof))
            }
            // A violation after the whole response closes the connection, but the response
            // stands.
            Ok(_) => match self.take_in() {
                Err(v) if self.state.rx.end.is_none() => Err(Error::Protocol(v)),
                _ => Ok(()),
            },
            Err(e) => {
                self.closed = true;
                Err(self.lost(Closed::Io(e)))
            }
        }
    }

    /// The error for a connection that ended while the current stream was open.
    fn lost(&self, how: Closed) -> Error {
        if self.state.rx.has_head() {
            Error::ClosedEarly(how)
        } else {
            Error::ClosedBeforeResponse(how)
        }
    }

    /// Takes in every whole frame received; a connection error closes the connection (after
    /// a GOAWAY naming it, written when the connection is next written, if ever).
    fn take_in(&mut self) -> Result<(), Violation> {
        loop {
            match frame::parse(&self.buf[self.pos..]) {
                Ok(Parsed::Frame(f, n)) => {
                    let taken = self.state.on_frame(f);
                    self.pos += n;
                    if let Err(v) = taken {
                        return Err(self.fail(v));
                    }
                }
                Ok(Parsed::Need(n)) => {
                    self.buf
                        .reserve(n.saturating_sub(self.buf.len() - self.pos));
                    return Ok(());
                }
                Err(v) => return Err(self.fail(v)),
            }
        }
    }

    fn fail(&mut self, v: Violation) -> Violation {
        self.closed = true;
        frame::put_goaway(&mut self.state.out, 0, v.reason);
        let out = std::mem::take(&mut self.state.out);
        // Best effort: the connection is done either way.
        let mut cx = Context::from_waker(Waker::noop());
        let _ = pin!(self.io.write(&out)).poll(&mut cx);
        v
    }

    /// The response of the stream that ended, or why it failed.
    fn finish(&mut self) -> Result<Response, Error> {
        let rx = std::mem::take(&mut self.state.rx);
        match rx.end {
            Some(Ok(())) => Ok(Response {
                status: rx.status,
                headers: rx.headers,
                body: rx.body.map_or_else(Bytes::new, Bytes::from),
                body_len: rx.body_len,
                coding: rx.coding,
                tail: rx.tail,
            }),
            Some(Err(Failure::Reset(r))) => Err(Error::Reset(r)),
            Some(Err(Failure::Refused(why))) => Err(Error::Refused(why)),
            Some(Err(Failure::Body(e))) => Err(Error::Body(e)),
            Some(Err(Failure::NotProcessed(r))) => {
                Err(Error::ClosedBeforeResponse(Closed::GoAway(r)))
            }
            None => Err(Error::ClosedEarly(Closed::Eof)),
        }
    }

    /// Makes room for a read after `buf[pos..]`.
    fn make_room(&mut self) {
        h1::make_room(&mut self.buf, &mut self.pos, READ_SIZE);
    }

    /// Reads what the socket holds after `buf[pos..]`; 0 at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.make_room();
        pin!(self.io.read_buf(&mut self.buf)).poll(cx)
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

/// A request as HTTP/2 sends it: its header block, which holds nothing of any connection's
/// state, and its body.
#[derive(Debug)]
pub struct Prepared {
    block: Vec<u8>,
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
        parts(request, origin).map(Some)
    }
}

/// Reads a request as [`h1::encode`] wrote it (whose header values were checked to hold no CR,
/// LF or control) into an HTTP/2 request: `:method`, `:scheme`, `:authority` (the plan's `host`
/// when it sets one, else the URL's) and `:path` from the request line and the origin, the other
/// fields as they are (names in lower case), but connection-specific ones.
pub fn parts(request: h1::Request<'_>, origin: &Origin) -> Result<Prepared, Error> {
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
    let method = Method::from_bytes(method).map_err(|_| Error::Request("bad method"))?;
    PathAndQuery::try_from(target).map_err(|_| Error::Request("bad request target"))?;
    let mut fields = Vec::new();
    let mut authority = None;
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(Error::Request("bad header line"));
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        let name = HeaderName::from_bytes(name).map_err(|_| Error::Request("bad header name"))?;
        HeaderValue::from_bytes(value).map_err(|_| Error::Request("bad header value"))?;
        let name = name.as_str().as_bytes();
        if name == b"host" {
            authority = Some(value);
            continue;
        }
        if connection_specific(name, value.eq_ignore_ascii_case(b"trailers")) {
            continue;
        }
        hpack::encode_field(&mut fields, name, value);
    }
    let authority = match authority {
        Some(a) => Authority::try_from(a).map_err(|_| Error::Request("host is no authority"))?,
        None => Authority::try_from(origin.authority.as_bytes())
            .map_err(|_| Error::Request("bad authority"))?,
    };
    let mut block = Vec::with_capacity(fields.len() + target.len() + 64);
    let scheme: &[u8] = if origin.tls { b"https" } else { b"http" };
    hpack::encode_field(&mut block, b":method", method.as_str().as_bytes());
    hpack::encode_field(&mut block, b":scheme", scheme);
    hpack::encode_field(&mut block, b":authority", authority.as_str().as_bytes());
    hpack::encode_field(&mut block, b":path", target);
    block.extend_from_slice(&fields);
    let body = Bytes::copy_from_slice(&bytes[end + 4..]);
    Ok(Prepared { block, body })
}

#[cfg(test)]
#[path = "http2/tests.rs"]
mod tests;

#[cfg(test)]
#[path = "http2/against_h2.rs"]
mod against_h2;
