//! One HTTP/2 connection's state as frames arrive, free of I/O: flow-control windows both ways,
//! the peer's settings, GOAWAY, the HPACK decoder, and the response of the one stream open at a
//! time ([`Rx`]). What it must answer (SETTINGS and PING acknowledgements, WINDOW_UPDATEs,
//! RST_STREAM) goes to [`State::out`], which the connection writes before it next waits.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::frame::{self, violation, Frame, Reason, Violation};
use super::hpack::{self, Sink};
use crate::coding::Coding;
use crate::h1::{self, Wanted, MAX_HEAD, MAX_INFORMATIONAL};

/// Flow-control window granted per stream and per connection: bulk bodies flow without a
/// WINDOW_UPDATE per 64 KiB, and a server can never have more than this unread.
pub const WINDOW: u32 = 1024 * 1024;
/// The initial window of RFC 9113 6.9.2, before SETTINGS say otherwise.
const DEFAULT_WINDOW: i64 = 65_535;
const MAX_WINDOW: i64 = (1 << 31) - 1;
/// A header block (HEADERS and its CONTINUATIONs) is buffered up to this many bytes: a header
/// list within [`MAX_HEAD`] fits even in Huffman codes longer than its bytes.
pub const MAX_BLOCK: usize = 4 * MAX_HEAD;
/// CONTINUATION frames per header block at most (empty ones would cost nothing to send).
pub const MAX_CONTINUATIONS: usize = 1024;

/// How the current stream ended, when it did not end with a whole response.
#[derive(Debug)]
pub enum Failure {
    /// RST_STREAM from the server.
    Reset(Reason),
    /// The response broke a rule or a bound; the client reset the stream.
    Refused(&'static str),
    /// The body broke `max_body`; the client reset the stream.
    Body(h1::Error),
    /// A GOAWAY left the stream out: the server did not process it.
    NotProcessed(Reason),
}

/// Where the current stream's response is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    #[default]
    Head,
    Body,
}

/// The response of the stream open now.
#[derive(Debug, Default)]
pub struct Rx {
    wanted: Wanted,
    phase: Phase,
    pub status: u16,
    pub headers: HeaderMap,
    pub coding: Coding,
    pub body: Option<Vec<u8>>,
    limit: u64,
    /// A response to HEAD: a content-length says what a GET would get, no DATA follows.
    is_head: bool,
    /// What the response's content-length says its DATA add up to, when it must.
    expected: Option<u64>,
    pub body_len: u64,
    pub tail: [u8; 4],
    informational: usize,
    /// Set when the stream ended, well or not.
    pub end: Option<Result<(), Failure>>,
}

impl Rx {
    /// Whether the final response's head has come.
    pub fn has_head(&self) -> bool {
        self.phase == Phase::Body || matches!(self.end, Some(Ok(())))
    }
}

/// A header block being received in CONTINUATION frames.
#[derive(Debug)]
struct Partial {
    stream: u32,
    end_stream: bool,
    frames: usize,
}

/// The state of one connection.
#[derive(Debug)]
pub struct State {
    decoder: hpack::Decoder,
    /// Frames to send before the connection next waits.
    pub out: Vec<u8>,
    next_id: u32,
    /// The stream open now (0: none).
    current: u32,
    pub rx: Rx,
    goaway: Option<u32>,
    seen_settings: bool,
    pub max_frame: usize,
    peer_window: i64,
    conn_send: i64,
    stream_send: i64,
    conn_recv: i64,
    conn_unacked: u32,
    stream_recv: i64,
    stream_unacked: u32,
    partial: Option<Partial>,
    block: Vec<u8>,
}

impl Default for State {
    fn default() -> State {
        State {
            decoder: hpack::Decoder::default(),
            out: Vec::new(),
            next_id: 1,
            current: 0,
            rx: Rx::default(),
            goaway: None,
            seen_settings: false,
            max_frame: frame::MAX_FRAME,
            peer_window: DEFAULT_WINDOW,
            conn_send: DEFAULT_WINDOW,
            stream_send: 0,
            conn_recv: i64::from(WINDOW),
            conn_unacked: 0,
            stream_recv: 0,
            stream_unacked: 0,
            partial: None,
            block: Vec::new(),
        }
    }
}

/// The client's preface after the magic: no push, the windows and the header list bound.
pub fn preface(out: &mut Vec<u8>) {
    out.extend_from_slice(frame::PREFACE);
    frame::put_settings(
        out,
        &[
            (frame::ENABLE_PUSH, 0),
            (frame::INITIAL_WINDOW_SIZE, WINDOW),
            (frame::MAX_HEADER_LIST_SIZE, MAX_HEAD as u32),
        ],
    );
    frame::put_window_update(out, 0, WINDOW - DEFAULT_WINDOW as u32);
}

impl State {
    /// Whether a new stream may be opened: no GOAWAY, stream ids left.
    pub fn can_open(&self) -> bool {
        self.goaway.is_none() && self.next_id < (1 << 31)
    }

    /// Opens the next stream for a response keeping what `wanted` and `max_body` say, and
    /// returns its id (`None` if [`State::can_open`] is false).
    pub fn open(
        &mut self,
        wanted: Wanted,
        body: bool,
        max_body: u64,
        is_head: bool,
    ) -> Option<u32> {
        if !self.can_open() {
            return None;
        }
        let id = self.next_id;
        self.next_id += 2;
        self.current = id;
        self.stream_send = self.peer_window;
        self.stream_recv = i64::from(WINDOW);
        self.stream_unacked = 0;
        self.rx = Rx {
            wanted,
            body: body.then(Vec::new),
            limit: h1::body_limit(max_body),
            is_head,
            ..Rx::default()
        };
        Some(id)
    }

    /// Request body bytes that may go out now: the smaller window, within one frame.
    pub fn send_capacity(&self) -> usize {
        let window = self.conn_send.min(self.stream_send).max(0);
        usize::try_from(window).unwrap_or(0).min(self.max_frame)
    }

    /// `n` request body bytes went out.
    pub fn sent(&mut self, n: usize) {
        self.conn_send -= n as i64;
        self.stream_send -= n as i64;
    }

    /// Ends the current stream without its response (the exchange gave up on it): resets it
    /// if it is still open.
    pub fn abandon(&mut self) {
        if self.current != 0 && self.rx.end.is_none() {
            frame::put_reset(&mut self.out, self.current, Reason::CANCEL);
        }
        self.current = 0;
    }

    /// Takes in one frame.
    pub fn on_frame(&mut self, f: Frame<'_>) -> Result<(), Violation> {
        if !self.seen_settings {
            if !matches!(f, Frame::Settings { ack: false, .. }) {
                return Err(violation(
                    Reason::PROTOCOL_ERROR,
                    "server preface without SETTINGS",
                ));
            }
            self.seen_settings = true;
        }
        if let Some(p) = &self.partial {
            let Frame::Continuation { stream, .. } = f else {
                return Err(violation(
                    Reason::PROTOCOL_ERROR,
                    "a header block interrupted",
                ));
            };
            if stream != p.stream {
                return Err(violation(
                    Reason::PROTOCOL_ERROR,
                    "CONTINUATION on another stream",
                ));
            }
        }
        match f {
            Frame::Data {
                stream,
                end_stream,
                data,
                flow,
            } => self.on_data(stream, end_stream, data, flow),
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                fragment,
            } => self.on_headers(stream, end_stream, end_headers, fragment),
            Frame::Continuation {
                end_headers,
                fragment,
                ..
            } => self.on_continuation(end_headers, fragment),
            Frame::Reset { stream, reason } => {
                self.known(stream)?;
                if stream == self.current {
                    self.end(Err(Failure::Reset(reason)));
                }
                Ok(())
            }
            Frame::Settings { ack, params } => self.on_settings(ack, params),
            Frame::PushPromise => Err(violation(
                Reason::PROTOCOL_ERROR,
                "PUSH_PROMISE though push is disabled",
            )),
            Frame::Ping { ack, payload } => {
                if !ack {
                    frame::put_ping_ack(&mut self.out, payload);
                }
                Ok(())
            }
            Frame::GoAway {
                last_stream,
                reason,
            } => {
                self.on_goaway(last_stream, reason);
                Ok(())
            }
            Frame::WindowUpdate { stream, increment } => self.on_window_update(stream, increment),
            Frame::Ignored => Ok(()),
        }
    }

    fn on_headers(
        &mut self,
        stream: u32,
        end_stream: bool,
        end_headers: bool,
        fragment: &[u8],
    ) -> Result<(), Violation> {
        self.known(stream)?;
        if end_headers {
            return self.on_block(stream, end_stream, fragment);
        }
        self.block.clear();
        self.block.extend_from_slice(fragment);
        self.partial = Some(Partial {
            stream,
            end_stream,
            frames: 0,
        });
        Ok(())
    }

    /// No stream opens after a GOAWAY, and the current one fails if it was left out.
    fn on_goaway(&mut self, last_stream: u32, reason: Reason) {
        let last = self.goaway.map_or(last_stream, |l| l.min(last_stream));
        self.goaway = Some(last);
        if self.current > last {
            self.end(Err(Failure::NotProcessed(reason)));
        }
    }

    /// A stream the client opened (the server opens none: push is off).
    fn known(&self, stream: u32) -> Result<(), Violation> {
        if stream >= self.next_id || stream % 2 == 0 {
            return Err(violation(
                Reason::PROTOCOL_ERROR,
                "a frame on a stream never opened",
            ));
        }
        Ok(())
    }

    fn end(&mut self, mut end: Result<(), Failure>) {
        // RFC 9113 8.1.1: a content-length that is not what the DATA added up to makes the
        // response malformed (a body cut short, or one longer than announced).
        if end.is_ok() && self.rx.expected.is_some_and(|n| n != self.rx.body_len) {
            end = Err(Failure::Refused(
                "a body whose length is not its content-length",
            ));
        }
        if let Err(Failure::Refused(_) | Failure::Body(_)) = &end {
            frame::put_reset(&mut self.out, self.current, Reason::CANCEL);
        }
        self.rx.end = Some(end);
        self.current = 0;
    }

    fn on_data(
        &mut self,
        stream: u32,
        end_stream: bool,
        data: &[u8],
        flow: usize,
    ) -> Result<(), Violation> {
        self.known(stream)?;
        // Bounded by MAX_FRAME.
        let flow32 = flow as u32;
        self.conn_recv -= i64::from(flow32);
        if self.conn_recv < 0 {
            return Err(violation(
                Reason::FLOW_CONTROL_ERROR,
                "DATA past the connection window",
            ));
        }
        self.conn_unacked += flow32;
        if self.conn_unacked >= WINDOW / 2 {
            frame::put_window_update(&mut self.out, 0, self.conn_unacked);
            self.conn_recv += i64::from(self.conn_unacked);
            self.conn_unacked = 0;
        }
        if stream != self.current {
            // A stream the client gave up on: only its share of the window matters.
            return Ok(());
        }
        self.stream_recv -= i64::from(flow32);
        if self.stream_recv < 0 {
            return Err(violation(
                Reason::FLOW_CONTROL_ERROR,
                "DATA past the stream window",
            ));
        }
        if self.rx.phase != Phase::Body {
            self.end(Err(Failure::Refused("DATA before the response head")));
            return Ok(());
        }
        let rx = &mut self.rx;
        rx.body_len += data.len() as u64;
        h1::roll(&mut rx.tail, data);
        if let Some(k) = rx.body.as_mut() {
            if let Err(e) = h1::kept(k, data, rx.limit) {
                self.end(Err(Failure::Body(e)));
                return Ok(());
            }
        }
        if end_stream {
            self.end(Ok(()));
            return Ok(());
        }
        self.stream_unacked += flow32;
        if self.stream_unacked >= WINDOW / 2 {
            frame::put_window_update(&mut self.out, stream, self.stream_unacked);
            self.stream_recv += i64::from(self.stream_unacked);
            self.stream_unacked = 0;
        }
        Ok(())
    }

    fn on_continuation(&mut self, end_headers: bool, fragment: &[u8]) -> Result<(), Violation> {
        let Some(p) = self.partial.as_mut() else {
            return Err(violation(
                Reason::PROTOCOL_ERROR,
                "CONTINUATION after a whole block",
            ));
        };
        p.frames += 1;
        if p.frames > MAX_CONTINUATIONS || self.block.len() + fragment.len() > MAX_BLOCK {
            return Err(violation(
                Reason::ENHANCE_YOUR_CALM,
                "a header block past its bounds",
            ));
        }
        self.block.extend_from_slice(fragment);
        if !end_headers {
            return Ok(());
        }
        let (stream, end_stream) = (p.stream, p.end_stream);
        self.partial = None;
        let block = std::mem::take(&mut self.block);
        let result = self.on_block(stream, end_stream, &block);
        // A block past one frame is rare: its buffer is not kept while the connection lives.
        if block.capacity() <= frame::MAX_FRAME {
            self.block = block;
        }
        result
    }

    /// A whole header block on `stream`: decoded whatever the stream (the table must follow
    /// the server's), kept only for the current one.
    fn on_block(&mut self, stream: u32, end_stream: bool, block: &[u8]) -> Result<(), Violation> {
        let compression = |_| {
            violation(
                Reason::COMPRESSION_ERROR,
                "a header block that does not decode",
            )
        };
        if stream != self.current {
            self.decoder
                .decode(block, 0, &mut Nothing)
                .map_err(compression)?;
            return Ok(());
        }
        if self.rx.phase == Phase::Body {
            // Trailers: read for the table, then dropped.
            let size = self
                .decoder
                .decode(block, MAX_HEAD, &mut Nothing)
                .map_err(compression)?;
            if !end_stream {
                self.end(Err(Failure::Refused("trailers that do not end the stream")));
            } else if size > MAX_HEAD {
                self.end(Err(Failure::Refused(TOO_LARGE)));
            } else {
                self.end(Ok(()));
            }
            return Ok(());
        }
        let mut head = Head {
            wanted: self.rx.wanted,
            ..Head::default()
        };
        let size = self
            .decoder
            .decode(block, MAX_HEAD, &mut head)
            .map_err(compression)?;
        head.finish();
        if size > MAX_HEAD {
            self.end(Err(Failure::Refused(TOO_LARGE)));
            return Ok(());
        }
        if let Some(why) = head.invalid {
            self.end(Err(Failure::Refused(why)));
            return Ok(());
        }
        let status = head.status;
        if (100..200).contains(&status) {
            self.rx.informational += 1;
            if status == 101 || end_stream {
                self.end(Err(Failure::Refused(
                    "an interim response that HTTP/2 forbids",
                )));
            } else if self.rx.informational > MAX_INFORMATIONAL {
                self.end(Err(Failure::Refused("too many interim responses")));
            }
            return Ok(());
        }
        let rx = &mut self.rx;
        rx.status = status;
        // No content by definition (RFC 9110 6.4.1): its content-length need not be DATA's.
        if !(rx.is_head || status == 204 || status == 304) {
            rx.expected = head.content_length;
        }
        rx.headers = head.headers;
        rx.coding = head.coding.coding();
        // A deflate body's decoded size is not in it: kept (within the same bound) to count it.
        if rx.coding == Coding::Deflate && rx.body.is_none() {
            rx.body = Some(Vec::new());
        }
        rx.phase = Phase::Body;
        if end_stream {
            self.end(Ok(()));
        }
        Ok(())
    }

    fn on_settings(&mut self, ack: bool, params: &[u8]) -> Result<(), Violation> {
        if ack {
            return Ok(());
        }
        for (id, value) in frame::settings(params) {
            match id {
                frame::ENABLE_PUSH if value != 0 => {
                    return Err(violation(Reason::PROTOCOL_ERROR, "a server enabling push"));
                }
                frame::INITIAL_WINDOW_SIZE => {
                    let value = i64::from(value);
                    if value > MAX_WINDOW {
                        return Err(violation(Reason::FLOW_CONTROL_ERROR, "a window too large"));
                    }
                    if self.current != 0 {
                        self.stream_send += value - self.peer_window;
                    }
                    self.peer_window = value;
                }
                frame::MAX_FRAME_SIZE => {
                    let value = value as usize;
                    if !(frame::MAX_FRAME..=(1 << 24) - 1).contains(&value) {
                        return Err(violation(
                            Reason::PROTOCOL_ERROR,
                            "a bad SETTINGS_MAX_FRAME_SIZE",
                        ));
                    }
                    self.max_frame = value;
                }
                // The table size bounds the server's decoder, which this client's encoder
                // never adds to; other settings bound the server.
                _ => {}
            }
        }
        frame::put_settings_ack(&mut self.out);
        Ok(())
    }

    fn on_window_update(&mut self, stream: u32, increment: u32) -> Result<(), Violation> {
        let window = if stream == 0 {
            &mut self.conn_send
        } else {
            self.known(stream)?;
            if stream != self.current {
                return Ok(());
            }
            &mut self.stream_send
        };
        *window += i64::from(increment);
        if *window > MAX_WINDOW {
            return Err(violation(
                Reason::FLOW_CONTROL_ERROR,
                "a window past 2^31-1",
            ));
        }
        Ok(())
    }
}

const TOO_LARGE: &str = "a header list over 65536 bytes (SETTINGS_MAX_HEADER_LIST_SIZE)";

/// A sink that wants nothing: a block decoded only for the table.
struct Nothing;

impl Sink for Nothing {
    fn wants(&mut self, _: &[u8]) -> bool {
        false
    }
    fn field(&mut self, _: &[u8], _: &[u8]) {}
}

/// The `content-encoding` fields seen.
#[derive(Debug, Default)]
enum Codings {
    #[default]
    None,
    One(Coding),
    Several,
}

impl Codings {
    fn coding(&self) -> Coding {
        match self {
            Codings::None => Coding::Identity,
            Codings::One(c) => *c,
            Codings::Several => Coding::Other,
        }
    }
}

/// A response head as it is decoded: `:status` (the one pseudo-header a response has, first),
/// the body's coding, and the headers `wanted`.
#[derive(Debug, Default)]
struct Head {
    wanted: Wanted,
    status: u16,
    coding: Codings,
    headers: HeaderMap,
    content_length: Option<u64>,
    regular: bool,
    invalid: Option<&'static str>,
}

impl Sink for Head {
    fn wants(&mut self, name: &[u8]) -> bool {
        if name.first() != Some(&b':') {
            self.regular = true;
            return name == b"content-encoding"
                || name == b"content-length"
                || self.wanted.keeps(name);
        }
        true
    }

    fn field(&mut self, name: &[u8], value: &[u8]) {
        if name.first() == Some(&b':') {
            let status = match value {
                [a @ b'1'..=b'9', b @ b'0'..=b'9', c @ b'0'..=b'9'] => {
                    u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
                }
                _ => 0,
            };
            if name != b":status" || self.regular || self.status != 0 || status == 0 {
                self.invalid = Some("a bad or misplaced pseudo-header");
            }
            self.status = status;
            return;
        }
        if name == b"content-length" {
            let n = h1::decode::parse_u64(value);
            if n.is_none() || self.content_length.is_some_and(|m| Some(m) != n) {
                self.invalid = Some("a bad content-length");
            }
            self.content_length = n;
        }
        if name == b"content-encoding" {
            self.coding = match self.coding {
                Codings::None => Codings::One(Coding::of(value)),
                _ => Codings::Several,
            };
        }
        if !self.wanted.keeps(name) {
            return;
        }
        // Upper case is malformed in HTTP/2 (RFC 9113 8.2.1); `from_bytes` would fold it.
        let name = match name.iter().any(u8::is_ascii_uppercase) {
            true => None,
            false => HeaderName::from_bytes(name).ok(),
        };
        let value = HeaderValue::from_bytes(value).ok();
        match (name, value) {
            (Some(n), Some(v)) => {
                self.headers.append(n, v);
            }
            _ => self.invalid = Some("a bad header name or value"),
        }
    }
}

impl Head {
    fn finish(&mut self) {
        if self.status == 0 && self.invalid.is_none() {
            self.invalid = Some("no :status");
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
