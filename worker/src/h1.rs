//! The HTTP/1.1 client protocol of one keep-alive connection, over any byte stream: write a
//! request that was encoded into bytes, read the response head and body in place.
//!
//! A user sends one request at a time on its connection and nothing is shared, so there is no
//! connection task, no channel and no per-request allocation on this path: one write and (for a
//! small response) one read per request. The read buffer lives only while the connection is
//! busy; [`Conn::release`] gives it back while the user waits, which is most of an idle user's
//! memory.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Bytes asked for per read; the buffer grows past it only to hold a response head.
const READ_SIZE: usize = 8 * 1024;
/// A response head (status line and headers) larger than this is refused.
const MAX_HEAD: usize = 64 * 1024;
/// Response headers parsed at most.
const MAX_HEADERS: usize = 100;
/// A chunk-size line (with extensions) or a trailer line longer than this is refused.
const MAX_LINE: usize = 4 * 1024;

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
}

/// A request encoded for the wire, with what about it frames its response.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// A complete HTTP/1.1 request: head and body.
    pub bytes: &'a [u8],
    /// A HEAD request: no body follows whatever the response headers say.
    pub is_head: bool,
}

/// What to keep of a response besides its status and body length.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keep {
    pub headers: bool,
    pub body: bool,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Delimited by the server closing the connection.
    Close,
}

struct Head {
    status: u16,
    len: usize,
    framing: Framing,
    keep_alive: bool,
    headers: HeaderMap,
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
        let head = loop {
            match parse_head(&self.buf[self.pos..], keep.headers)? {
                Some(head) if (100..200).contains(&head.status) && head.status != 101 => {
                    self.pos += head.len;
                }
                Some(head) => break head,
                None => {
                    if self.buf.len() - self.pos > MAX_HEAD {
                        return Err(Error::Invalid("response head too large"));
                    }
                    let nothing_yet = self.buf.len() == self.pos && !self.saw_bytes();
                    match self.fill().await {
                        Ok(0) if nothing_yet => return Err(Error::ClosedBeforeResponse),
                        Ok(0) => return Err(Error::ClosedEarly),
                        Ok(_) => {}
                        Err(e) if nothing_yet => return Err(stale_or_io(e)),
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        };
        self.pos += head.len;
        let framing =
            if request.is_head || head.status == 204 || head.status == 304 || head.status == 101 {
                Framing::Empty
            } else {
                head.framing
            };
        let mut kept = keep.body.then(Vec::new);
        let body_len = match framing {
            Framing::Empty => 0,
            Framing::Length(n) => {
                self.body_bytes(n, kept.as_mut()).await?;
                n
            }
            Framing::Chunked => self.chunked(kept.as_mut()).await?,
            Framing::Close => self.until_close(kept.as_mut()).await?,
        };
        self.served = true;
        // Bytes past the response were never asked for: the connection is out of step.
        self.open = head.keep_alive
            && framing != Framing::Close
            && head.status != 101
            && self.pos == self.buf.len();
        Ok(Response {
            status: head.status,
            headers: head.headers,
            body: kept.map_or_else(Bytes::new, Bytes::from),
            body_len,
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

    /// Whether any byte has been received in this exchange. The buffer is cleared at the start
    /// of every read once consumed, so a non-zero `pos` means some response bytes arrived.
    fn saw_bytes(&self) -> bool {
        self.pos != 0
    }

    /// Reads more bytes after `buf[pos..]`; 0 at end of stream.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.pos == self.buf.len() && self.pos != 0 {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 0 && self.buf.capacity() - self.buf.len() < READ_SIZE / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.capacity() - self.buf.len() < READ_SIZE / 2 {
            self.buf.reserve(READ_SIZE);
        }
        self.io.read_buf(&mut self.buf).await
    }

    /// Consumes `n` body bytes, appending them to `keep`.
    async fn body_bytes(
        &mut self,
        mut n: u64,
        mut keep: Option<&mut Vec<u8>>,
    ) -> Result<(), Error> {
        loop {
            let available = self.buf.len() - self.pos;
            let take = available.min(usize::try_from(n).unwrap_or(usize::MAX));
            if let Some(k) = keep.as_deref_mut() {
                k.extend_from_slice(&self.buf[self.pos..self.pos + take]);
            }
            self.pos += take;
            n -= take as u64;
            if n == 0 {
                return Ok(());
            }
            if self.fill().await? == 0 {
                return Err(Error::ClosedEarly);
            }
        }
    }

    /// One CRLF-terminated line, without the CRLF, as a range of `buf` (consumed).
    async fn line(&mut self) -> Result<(usize, usize), Error> {
        loop {
            let rest = &self.buf[self.pos..];
            if let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
                let start = self.pos;
                self.pos += i + 2;
                return Ok((start, start + i));
            }
            if rest.len() > MAX_LINE {
                return Err(Error::Invalid("chunk line too long"));
            }
            if self.fill().await? == 0 {
                return Err(Error::ClosedEarly);
            }
        }
    }

    async fn chunked(&mut self, mut keep: Option<&mut Vec<u8>>) -> Result<u64, Error> {
        let mut total = 0u64;
        loop {
            let (a, b) = self.line().await?;
            let size = chunk_size(&self.buf[a..b]).ok_or(Error::Invalid("bad chunk size"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let (a, b) = self.line().await?;
                    if a == b {
                        return Ok(total);
                    }
                }
            }
            self.body_bytes(size, keep.as_deref_mut()).await?;
            total += size;
            let (a, b) = self.line().await?;
            if a != b {
                return Err(Error::Invalid("chunk not followed by CRLF"));
            }
        }
    }

    async fn until_close(&mut self, mut keep: Option<&mut Vec<u8>>) -> Result<u64, Error> {
        let mut total = 0u64;
        loop {
            let rest = &self.buf[self.pos..];
            total += rest.len() as u64;
            if let Some(k) = keep.as_deref_mut() {
                k.extend_from_slice(rest);
            }
            self.pos = self.buf.len();
            if self.fill().await? == 0 {
                return Ok(total);
            }
        }
    }
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

/// Parses a response head at the start of `bytes`; `None` while incomplete.
fn parse_head(bytes: &[u8], want_headers: bool) -> Result<Option<Head>, Error> {
    if bytes.is_empty() {
        return Ok(None);
    }
    // Left uninitialized: writing 100 empty headers per response cost more than the parse.
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        bytes,
        &mut headers,
    )? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let status = response.code.unwrap_or(0);
    let mut keep_alive = response.version == Some(1);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut map = HeaderMap::new();
    for h in response.headers.iter() {
        let name = h.name.as_bytes();
        // Dispatched on the length first: most headers are none of these three, and one
        // comparison rules them out.
        match name.len() {
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                let n = parse_u64(h.value).ok_or(Error::Invalid("bad content-length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(Error::Invalid("conflicting content-length"));
                }
                length = Some(n);
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                // Only the last coding decides the framing; anything but chunked there means
                // the body runs to the close.
                chunked = last_token(h.value).eq_ignore_ascii_case(b"chunked");
                if !chunked {
                    length = None;
                    keep_alive = false;
                }
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for token in h.value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        keep_alive = false;
                    } else if token.eq_ignore_ascii_case(b"keep-alive")
                        && response.version == Some(0)
                    {
                        keep_alive = true;
                    }
                }
            }
            _ => {}
        }
        if want_headers {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(name),
                HeaderValue::from_bytes(h.value),
            ) {
                map.append(k, v);
            }
        }
    }
    let framing = if chunked {
        Framing::Chunked
    } else {
        match length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::Close,
        }
    };
    Ok(Some(Head {
        status,
        len,
        framing,
        keep_alive,
        headers: map,
    }))
}

fn parse_u64(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    v.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

fn last_token(v: &[u8]) -> &[u8] {
    v.rsplit(|&b| b == b',').next().unwrap_or(v).trim_ascii()
}

fn chunk_size(line: &[u8]) -> Option<u64> {
    let hex = line.split(|&b| b == b';').next()?.trim_ascii();
    if hex.is_empty() || hex.len() > 15 {
        return None;
    }
    hex.iter().try_fold(0u64, |n, &b| {
        let d = (b as char).to_digit(16)?;
        Some(n * 16 + u64::from(d))
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

    const GET: Request<'static> = Request {
        bytes: b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
        is_head: false,
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
            body: true,
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
