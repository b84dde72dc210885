//! The HTTP/1.1 client protocol of one keep-alive connection, over any byte stream: write a
//! request that was encoded into bytes, read the response head and body in place (`decode` is
//! the parser, a pure state machine over the bytes received).
//!
//! A user sends one request at a time on its connection and nothing is shared, so there is no
//! connection task, no channel and no per-request allocation on this path: one write and (for a
//! small response) one read per request. The read buffer lives only while the connection is
//! busy; [`Conn::release`] gives it back while the user waits, which is most of an idle user's
//! memory.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;

use crate::coding::Coding;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

pub(crate) mod decode;

pub use decode::{
    decode_all, Decoder, Event, Head, Wanted, MAX_HEAD, MAX_INFORMATIONAL, MAX_TRAILERS,
};

/// Bytes asked for per read; the buffer grows past it only to hold a response head.
const READ_SIZE: usize = 8 * 1024;
/// Body bytes kept for checks and captures when the plan sets no `max_body`.
pub const DEFAULT_MAX_BODY: u64 = 16 * 1024 * 1024;

/// Why an exchange failed; its text becomes the failure message in the stats.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
    /// The server closed the connection before sending a byte of the response: on a reused
    /// keep-alive connection, the server's idle close raced the request.
    #[error("connection closed before the response")]
    ClosedBeforeResponse,
    /// The same race when the server's close came as a reset (or the write hit a broken pipe);
    /// the failure message names it.
    #[error("connection reset before the response: {0}")]
    ResetBeforeResponse(io::Error),
    #[error("connection closed in the middle of the response")]
    ClosedEarly,
    #[error("invalid response: {0}")]
    Invalid(&'static str),
    #[error("invalid response head: {0}")]
    Parse(#[from] httparse::Error),
    /// The body to keep for checks and captures is longer than the plan's `max_body`.
    #[error("response body larger than {0} bytes (max_body)")]
    BodyTooLarge(u64),
}

/// A request encoded for the wire, with what about it frames its response.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// A complete HTTP/1.1 request: head and body.
    pub bytes: &'a [u8],
    /// A HEAD request: no body follows whatever the response headers say.
    pub is_head: bool,
    /// May be sent again when a reused connection closed before its response (RFC 9110
    /// 9.2.2); a request that is not (POST, PATCH) may have taken effect, so it never is.
    pub idempotent: bool,
    /// The same request made ready for HTTP/2 once per plan, when `bytes` are the plan's own
    /// (nothing rendered); otherwise HTTP/2 reads `bytes`.
    pub h2: Option<&'a crate::http2::Prepared>,
}

/// What to keep of a response besides its status and body length.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keep {
    /// Every header (a capture reads one).
    pub headers: bool,
    /// At least `set-cookie` and `location` (a session acts on them).
    pub session: bool,
    pub body: bool,
    /// Body bytes kept at most ([`Error::BodyTooLarge`] beyond); 0 means [`DEFAULT_MAX_BODY`].
    pub max_body: u64,
}

impl Wanted {
    /// The headers `keep` asks for.
    pub fn of(keep: Keep) -> Wanted {
        match (keep.headers, keep.session) {
            (true, _) => Wanted::All,
            (false, true) => Wanted::Session,
            (false, false) => Wanted::None,
        }
    }
}

impl Keep {
    fn body_limit(&self) -> u64 {
        body_limit(self.max_body)
    }
}

/// Body bytes kept (or decoded) at most for a plan's `max_body` (0: the default).
pub fn body_limit(max_body: u64) -> u64 {
    if max_body == 0 {
        DEFAULT_MAX_BODY
    } else {
        max_body
    }
}

#[derive(Debug, Default)]
pub struct Response {
    pub status: u16,
    /// Empty unless [`Keep::headers`].
    pub headers: HeaderMap,
    /// Empty unless [`Keep::body`].
    pub body: Bytes,
    /// Body bytes received (after chunked decoding), kept or not.
    pub body_len: u64,
    /// The body's `content-encoding`. A body kept is as received, still encoded.
    pub coding: Coding,
    /// The last four body bytes (a gzip body's decoded size, see [`crate::coding::gzip_size`]).
    pub tail: [u8; 4],
}

/// One open HTTP/1.1 connection.
#[derive(Debug)]
pub struct Conn<S> {
    io: S,
    /// Received bytes; `buf[pos..]` are not consumed yet.
    buf: Vec<u8>,
    pos: usize,
    /// The last response left the connection open and in step; false during an exchange.
    open: bool,
    /// At least one exchange completed on it (so a close before the response is a stale
    /// keep-alive connection, worth one retry on a new one).
    served: bool,
    /// A request is in flight: a first byte of it was written and its exchange has not ended.
    /// Still set when the exchange was dropped midway (its user aborted).
    in_flight: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(io: S) -> Conn<S> {
        Conn {
            io,
            buf: Vec::new(),
            pos: 0,
            open: true,
            served: false,
            in_flight: false,
        }
    }

    /// Whether a request was sent on it (at least its first byte written) and the exchange
    /// that sent it neither returned nor failed: it was abandoned midway.
    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// Whether a previous exchange on this connection completed.
    pub fn served(&self) -> bool {
        self.served
    }

    /// Frees the read buffer while the connection is idle.
    pub fn release(&mut self) {
        if self.pos == self.buf.len() {
            self.buf = Vec::new();
            self.pos = 0;
        }
    }

    /// Whether another request can be sent: the last response left the connection open.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// [`Conn::is_open`], and the server has not closed it since (a poll that never waits, so
    /// it costs no syscall unless the socket became readable, which on an idle connection
    /// means closed).
    pub fn check_open(&mut self) -> bool {
        if !self.open {
            return false;
        }
        let mut byte = [0u8; 1];
        let mut rb = ReadBuf::new(&mut byte);
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(&mut self.io).poll_read(&mut cx, &mut rb) {
            Poll::Pending => true,
            // EOF, an error, or bytes nobody asked for: not a connection to send on.
            Poll::Ready(_) => {
                self.open = false;
                false
            }
        }
    }

    /// Sends `request` and reads the response, keeping what `keep` asks for.
    pub async fn exchange(&mut self, request: Request<'_>, keep: Keep) -> Result<Response, Error> {
        let result = self.send_and_receive(request, keep).await;
        self.in_flight = false;
        result
    }

    async fn send_and_receive(
        &mut self,
        request: Request<'_>,
        keep: Keep,
    ) -> Result<Response, Error> {
        self.open = false;
        // `open` meant nothing is left from the last response.
        self.buf.clear();
        self.pos = 0;
        self.write_request(request.bytes)
            .await
            .map_err(stale_or_io)?;
        let mut decoder = Decoder::keeping(request.is_head, Wanted::of(keep));
        let mut head = None;
        let mut body = keep.body.then(Vec::new);
        let mut body_len = 0u64;
        let mut tail = [0u8; 4];
        let mut received = false;
        loop {
            let (used, event) = decoder.decode(&self.buf[self.pos..])?;
            self.pos += used;
            match event {
                Event::Head(h) => {
                    // A deflate body's decoded size is not in it: kept (within the same bound
                    // as a body a check reads) so that it can be counted.
                    if h.coding == Coding::Deflate && body.is_none() {
                        body = Some(Vec::new());
                    }
                    head = Some(h);
                }
                Event::Body(bytes) => {
                    body_len += bytes.len() as u64;
                    roll(&mut tail, bytes);
                    if let Some(k) = body.as_mut() {
                        kept(k, bytes, keep.body_limit())?;
                    }
                }
                Event::End => break,
                Event::NeedMore => match self.fill().await {
                    Ok(0) if !received => return Err(Error::ClosedBeforeResponse),
                    Ok(0) => {
                        decoder.at_close()?;
                        break;
                    }
                    Ok(_) => received = true,
                    Err(e) if !received => return Err(stale_or_io(e)),
                    Err(e) => return Err(e.into()),
                },
            }
        }
        let head = head.ok_or(Error::ClosedEarly)?;
        self.served = true;
        // Bytes past the response were never asked for: the connection is out of step.
        self.open = decoder.reusable() && self.pos == self.buf.len();
        Ok(Response {
            status: head.status,
            headers: head.headers,
            body: body.map_or_else(Bytes::new, Bytes::from),
            body_len,
            coding: head.coding,
            tail,
        })
    }

    /// Writes the whole request, marking it in flight from its first byte written (one write
    /// for any request that fits the socket's send buffer).
    async fn write_request(&mut self, request: &[u8]) -> io::Result<()> {
        let mut rest = request;
        while !rest.is_empty() {
            let n = self.io.write(rest).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.in_flight = true;
            rest = &rest[n..];
        }
        self.io.flush().await
    }

    /// Reads more bytes after `buf[pos..]`; 0 at end of stream.
    async fn fill(&mut self) -> io::Result<usize> {
        make_room(&mut self.buf, &mut self.pos, READ_SIZE);
        self.io.read_buf(&mut self.buf).await
    }
}

/// Keeps the last four bytes of a body arriving in pieces.
pub(crate) fn roll(tail: &mut [u8; 4], bytes: &[u8]) {
    if bytes.len() >= 4 {
        tail.copy_from_slice(&bytes[bytes.len() - 4..]);
    } else {
        tail.rotate_left(bytes.len());
        tail[4 - bytes.len()..].copy_from_slice(bytes);
    }
}

/// Appends `bytes` to the kept body, refusing to grow it past `limit`.
pub(crate) fn kept(k: &mut Vec<u8>, bytes: &[u8], limit: u64) -> Result<(), Error> {
    if (k.len() + bytes.len()) as u64 > limit {
        return Err(Error::BodyTooLarge(limit));
    }
    k.extend_from_slice(bytes);
    Ok(())
}

/// A reset or broken pipe before any response byte is the same race as a clean close.
fn stale_or_io(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted => Error::ResetBeforeResponse(e),
        _ => Error::Io(e),
    }
}

impl Error {
    /// The server closed (or reset) the connection before answering: on a reused keep-alive
    /// connection, a race with its idle close, worth one retry on a new connection.
    pub fn is_stale(&self) -> bool {
        matches!(
            self,
            Error::ClosedBeforeResponse | Error::ResetBeforeResponse(_)
        )
    }
}

/// The failure message of a request that met a stale keep-alive connection and was not sent
/// again because it is not idempotent.
pub fn not_resent(e: &dyn std::fmt::Display) -> String {
    format!("{e} on a reused connection; not resent (the method is not idempotent)")
}

/// Appends a request head (request line, headers, and `content-length` when there is a body or
/// the method expects one) and the body to `out`.
pub fn encode<'a>(
    out: &mut Vec<u8>,
    method: &str,
    target: &str,
    headers: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    body: &[u8],
) {
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (k, v) in headers {
        out.extend_from_slice(k);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Makes room for a read of about `read_size` bytes after `buf[*pos..]`, the bytes not yet
/// taken: a buffer taken whole starts over, one mostly taken moves its rest to the front.
pub(crate) fn make_room(buf: &mut Vec<u8>, pos: &mut usize, read_size: usize) {
    if *pos == buf.len() {
        buf.clear();
        *pos = 0;
    } else if *pos > 0 && buf.capacity() - buf.len() < read_size / 2 {
        buf.drain(..*pos);
        *pos = 0;
    }
    if buf.capacity() - buf.len() < read_size / 2 {
        buf.reserve(read_size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

    const GET: Request<'static> = Request {
        bytes: b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
        is_head: false,
        idempotent: true,
        h2: None,
    };

    /// A connection whose server side answers each request (read up to the blank line) with the
    /// next of `answers`, written in pieces of `piece` bytes.
    fn serve(answers: Vec<&'static [u8]>, piece: usize) -> Conn<DuplexStream> {
        let (client, mut server) = duplex(64 * 1024);
        tokio::spawn(async move {
            for answer in answers {
                let mut seen = Vec::new();
                while !seen.ends_with(b"\r\n\r\n") {
                    let mut b = [0u8; 1];
                    if server.read(&mut b).await.unwrap_or(0) == 0 {
                        return;
                    }
                    seen.push(b[0]);
                }
                for part in answer.chunks(piece) {
                    server.write_all(part).await.unwrap();
                    tokio::task::yield_now().await;
                }
            }
        });
        Conn::new(client)
    }

    fn all() -> Keep {
        Keep {
            headers: true,
            session: true,
            body: true,
            max_body: 0,
        }
    }

    /// Polls `exchange` once (as a user aborted at that point would have) and drops it.
    async fn abandon<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut Conn<S>) {
        let exchange = conn.exchange(GET, all());
        tokio::pin!(exchange);
        assert!(poll_once(exchange.as_mut()).await.is_none());
    }

    async fn poll_once<F: std::future::Future + Unpin>(mut f: F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            Poll::Ready(match Pin::new(&mut f).poll(cx) {
                Poll::Ready(v) => Some(v),
                Poll::Pending => None,
            })
        })
        .await
    }

    #[tokio::test]
    async fn a_request_is_in_flight_from_its_first_byte_written_until_its_exchange_ends() {
        // Written, never answered, dropped: in flight.
        let (client, _server) = duplex(64 * 1024);
        let mut conn = Conn::new(client);
        abandon(&mut conn).await;
        assert!(conn.in_flight());

        // Nothing written (the pipe is full), dropped: never sent.
        let (mut client, _server) = duplex(4);
        client.write_all(b"full").await.unwrap();
        let mut conn = Conn::new(client);
        abandon(&mut conn).await;
        assert!(!conn.in_flight());

        // Answered: no longer in flight.
        let mut conn = serve(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"], 64);
        conn.exchange(GET, all()).await.unwrap();
        assert!(!conn.in_flight());
    }

    #[tokio::test]
    async fn a_content_length_response_is_read_and_the_connection_reused() {
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\nok";
        for piece in [1, 3, 1000] {
            let mut conn = serve(vec![ok, ok], piece);
            for _ in 0..2 {
                let r = conn.exchange(GET, all()).await.unwrap();
                assert_eq!((r.status, &r.body[..], r.body_len), (200, &b"ok"[..], 2));
                assert_eq!(r.headers["x-a"], "b");
                assert!(conn.is_open());
            }
        }
    }

    #[tokio::test]
    async fn chunked_bodies_are_decoded_with_extensions_and_trailers() {
        let answer: &[u8] = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n\
            3;x=y\r\nabc\r\n0A\r\n0123456789\r\n0\r\nTrailer: t\r\n\r\n";
        for piece in [1, 7, 1000] {
            let mut conn = serve(vec![answer, answer], piece);
            for _ in 0..2 {
                let r = conn.exchange(GET, all()).await.unwrap();
                assert_eq!(r.status, 201);
                assert_eq!(&r.body[..], b"abc0123456789");
                assert_eq!(r.body_len, 13);
                assert!(conn.is_open());
            }
        }
    }

    #[tokio::test]
    async fn a_body_is_counted_but_not_kept_unless_wanted() {
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let mut conn = serve(vec![ok], 2);
        let r = conn.exchange(GET, Keep::default()).await.unwrap();
        assert_eq!((r.body_len, r.body.len(), r.headers.len()), (5, 0, 0));
    }

    #[tokio::test]
    async fn informational_responses_are_skipped() {
        let answer: &[u8] =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nx";
        let mut conn = serve(vec![answer], 1000);
        let r = conn.exchange(GET, all()).await.unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"x"[..]));
    }

    #[tokio::test]
    async fn head_204_and_304_responses_have_no_body() {
        let answer: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n";
        let mut conn = serve(vec![answer], 1000);
        let head = Request {
            bytes: b"HEAD / HTTP/1.1\r\n\r\n",
            is_head: true,
            idempotent: true,
            h2: None,
        };
        let r = conn.exchange(head, all()).await.unwrap();
        assert_eq!((r.status, r.body_len), (200, 0));
        assert!(conn.is_open());
        let answer: &[u8] = b"HTTP/1.1 304 Not Modified\r\n\r\n";
        let mut conn = serve(vec![answer], 1000);
        assert_eq!(conn.exchange(GET, all()).await.unwrap().status, 304);
        assert!(conn.is_open());
    }

    #[tokio::test]
    async fn connection_close_and_http_1_0_end_the_connection() {
        let answer: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 0\r\n\r\n";
        let mut conn = serve(vec![answer], 1000);
        conn.exchange(GET, all()).await.unwrap();
        assert!(!conn.is_open());
        let answer: &[u8] = b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n";
        let mut conn = serve(vec![answer], 1000);
        conn.exchange(GET, all()).await.unwrap();
        assert!(!conn.is_open());
        let answer: &[u8] =
            b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\ncontent-length: 0\r\n\r\n";
        let mut conn = serve(vec![answer], 1000);
        conn.exchange(GET, all()).await.unwrap();
        assert!(conn.is_open());
    }

    #[tokio::test]
    async fn a_body_without_length_runs_to_the_close() {
        let answer: &[u8] = b"HTTP/1.1 200 OK\r\n\r\nall of it";
        let mut conn = serve(vec![answer], 4);
        let r = conn.exchange(GET, all()).await.unwrap();
        assert_eq!(&r.body[..], b"all of it");
        assert!(!conn.is_open());
    }

    #[tokio::test]
    async fn closes_before_and_during_the_response_are_told_apart() {
        let mut conn = serve(vec![], 1);
        assert!(matches!(
            conn.exchange(GET, all()).await,
            Err(Error::ClosedBeforeResponse | Error::ResetBeforeResponse(_) | Error::Io(_))
        ));
        let short: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc";
        let mut conn = serve(vec![short], 1000);
        assert!(matches!(
            conn.exchange(GET, all()).await,
            Err(Error::ClosedEarly)
        ));
    }

    #[tokio::test]
    async fn a_probe_sees_that_the_server_closed_an_idle_connection() {
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        let mut conn = serve(vec![ok], 1000);
        conn.exchange(GET, all()).await.unwrap();
        assert!(conn.served());
        // The server task ends after its one answer, dropping its end.
        for _ in 0..100 {
            if !conn.check_open() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the probe never saw the close");
    }

    #[tokio::test]
    async fn garbage_and_oversized_heads_are_errors() {
        let mut conn = serve(vec![b"SMTP ready\r\n\r\n"], 1000);
        assert!(matches!(
            conn.exchange(GET, all()).await,
            Err(Error::Parse(_))
        ));
        let mut conn = serve(vec![b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n"], 1000);
        assert!(matches!(
            conn.exchange(GET, all()).await,
            Err(Error::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn transfer_encoding_frames_the_body_in_either_header_order_and_ends_the_connection() {
        let te_first: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\
            Content-Length: 100\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        let cl_first: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\
            Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        for answer in [te_first, cl_first] {
            let mut conn = serve(vec![answer], 1000);
            let r = conn.exchange(GET, all()).await.unwrap();
            assert_eq!(&r.body[..], b"ok");
            assert!(
                !conn.is_open(),
                "reused after Transfer-Encoding with Content-Length"
            );
        }
        let gzip_then_length: &[u8] =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nabcdef";
        let length_then_gzip: &[u8] =
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: gzip\r\n\r\nabcdef";
        for answer in [gzip_then_length, length_then_gzip] {
            let mut conn = serve(vec![answer], 1000);
            let r = conn.exchange(GET, all()).await.unwrap();
            assert_eq!(
                &r.body[..],
                b"abcdef",
                "a body not ending in chunked runs to the close"
            );
            assert!(!conn.is_open());
        }
    }

    #[tokio::test]
    async fn endless_informational_responses_and_trailers_are_refused() {
        let many_1xx: &'static [u8] = "HTTP/1.1 102 Processing\r\n\r\n"
            .repeat(MAX_INFORMATIONAL + 1)
            .leak()
            .as_bytes();
        let mut conn = serve(vec![many_1xx], 1000);
        assert!(matches!(
            conn.exchange(GET, all()).await,
            Err(Error::Invalid(m)) if m.contains("informational")
        ));
        let trailers = format!(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n{}\r\n",
            "T: x\r\n".repeat(MAX_TRAILERS + 1)
        );
        let mut conn = serve(vec![trailers.leak().as_bytes()], 1000);
        assert!(matches!(
            conn.exchange(GET, all()).await,
            Err(Error::Invalid(m)) if m.contains("trailer")
        ));
    }

    #[tokio::test]
    async fn a_kept_body_past_max_body_fails_but_an_uncounted_one_is_only_drained() {
        let big: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123456789";
        let small = Keep {
            max_body: 9,
            ..all()
        };
        let mut conn = serve(vec![big], 3);
        assert!(matches!(
            conn.exchange(GET, small).await,
            Err(Error::BodyTooLarge(9))
        ));
        let mut conn = serve(vec![big], 3);
        let counted = Keep {
            body: false,
            ..small
        };
        assert_eq!(conn.exchange(GET, counted).await.unwrap().body_len, 10);
        let to_close: &[u8] = b"HTTP/1.1 200 OK\r\n\r\n0123456789";
        let mut conn = serve(vec![to_close], 3);
        assert!(matches!(
            conn.exchange(GET, small).await,
            Err(Error::BodyTooLarge(9))
        ));
    }

    #[tokio::test]
    async fn a_response_names_its_coding_and_its_last_four_bytes_and_deflate_is_kept_to_count() {
        let gzip: &[u8] =
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\ncontent-length: 6\r\n\r\nab1234";
        for piece in [1, 3, 1000] {
            let mut conn = serve(vec![gzip], piece);
            let r = conn.exchange(GET, Keep::default()).await.unwrap();
            assert_eq!(
                (r.coding, r.tail, r.body.len()),
                (Coding::Gzip, *b"1234", 0)
            );
        }
        let deflate: &[u8] =
            b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\ncontent-length: 3\r\n\r\nxyz";
        let mut conn = serve(vec![deflate], 1000);
        let r = conn.exchange(GET, Keep::default()).await.unwrap();
        assert_eq!((r.coding, &r.body[..]), (Coding::Deflate, &b"xyz"[..]));
        let twice: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\
            Content-Encoding: gzip\r\ncontent-length: 0\r\n\r\n";
        let mut conn = serve(vec![twice], 1000);
        let r = conn.exchange(GET, Keep::default()).await.unwrap();
        assert_eq!(r.coding, Coding::Other);
    }

    #[test]
    fn requests_carry_a_length_when_they_have_a_body_or_should() {
        let mut out = Vec::new();
        encode(
            &mut out,
            "GET",
            "/a?b=1",
            [(&b"host"[..], &b"h:1"[..])].into_iter(),
            b"",
        );
        assert_eq!(out, b"GET /a?b=1 HTTP/1.1\r\nhost: h:1\r\n\r\n");
        out.clear();
        encode(&mut out, "POST", "/", std::iter::empty(), b"");
        assert_eq!(out, b"POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
        out.clear();
        encode(&mut out, "PUT", "/", std::iter::empty(), b"xy");
        assert_eq!(out, b"PUT / HTTP/1.1\r\ncontent-length: 2\r\n\r\nxy");
    }
}
