//! HTTP/2 frames (RFC 9113 section 4 and 6) over byte buffers, free of I/O: [`parse`] reads one
//! frame from the front of a buffer, checking what RFC 9113 asks of its size and stream, and the
//! `put_*` functions append frames to an output buffer.

use std::fmt;

/// A frame header's length.
pub const HEAD_LEN: usize = 9;
/// The largest frame payload accepted: SETTINGS_MAX_FRAME_SIZE's default, which the client
/// never raises.
pub const MAX_FRAME: usize = 16_384;
/// The client connection preface (RFC 9113 3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const PRIORITY: u8 = 2;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PUSH_PROMISE: u8 = 5;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY_FLAG: u8 = 0x20;

/// SETTINGS parameters (RFC 9113 6.5.2).
pub const HEADER_TABLE_SIZE: u16 = 1;
pub const ENABLE_PUSH: u16 = 2;
pub const INITIAL_WINDOW_SIZE: u16 = 4;
pub const MAX_FRAME_SIZE: u16 = 5;
pub const MAX_HEADER_LIST_SIZE: u16 = 6;

/// An error code (RFC 9113 7), named in messages as the RFC names it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Reason(pub u32);

impl Reason {
    pub const NO_ERROR: Reason = Reason(0);
    pub const PROTOCOL_ERROR: Reason = Reason(1);
    pub const FLOW_CONTROL_ERROR: Reason = Reason(3);
    pub const STREAM_CLOSED: Reason = Reason(5);
    pub const FRAME_SIZE_ERROR: Reason = Reason(6);
    pub const CANCEL: Reason = Reason(8);
    pub const COMPRESSION_ERROR: Reason = Reason(9);
    pub const ENHANCE_YOUR_CALM: Reason = Reason(11);
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            0 => "NO_ERROR",
            1 => "PROTOCOL_ERROR",
            2 => "INTERNAL_ERROR",
            3 => "FLOW_CONTROL_ERROR",
            4 => "SETTINGS_TIMEOUT",
            5 => "STREAM_CLOSED",
            6 => "FRAME_SIZE_ERROR",
            7 => "REFUSED_STREAM",
            8 => "CANCEL",
            9 => "COMPRESSION_ERROR",
            10 => "CONNECT_ERROR",
            11 => "ENHANCE_YOUR_CALM",
            12 => "INADEQUATE_SECURITY",
            13 => "HTTP_1_1_REQUIRED",
            n => return write!(f, "error code {n:#x}"),
        };
        f.write_str(name)
    }
}

impl fmt::Debug for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A connection error (RFC 9113 5.4.1): what the server sent that ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} ({reason})")]
pub struct Violation {
    pub reason: Reason,
    pub what: &'static str,
}

pub(crate) fn violation(reason: Reason, what: &'static str) -> Violation {
    Violation { reason, what }
}

fn protocol(what: &'static str) -> Violation {
    violation(Reason::PROTOCOL_ERROR, what)
}

fn size(what: &'static str) -> Violation {
    violation(Reason::FRAME_SIZE_ERROR, what)
}

/// One frame received, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    Data {
        stream: u32,
        end_stream: bool,
        data: &'a [u8],
        /// The whole payload's length, padding included: what flow control counts.
        flow: usize,
    },
    Headers {
        stream: u32,
        end_stream: bool,
        end_headers: bool,
        fragment: &'a [u8],
    },
    Continuation {
        stream: u32,
        end_headers: bool,
        fragment: &'a [u8],
    },
    Reset {
        stream: u32,
        reason: Reason,
    },
    /// A SETTINGS frame's parameters (6 bytes each), or its acknowledgement.
    Settings {
        ack: bool,
        params: &'a [u8],
    },
    PushPromise,
    Ping {
        ack: bool,
        payload: [u8; 8],
    },
    GoAway {
        last_stream: u32,
        reason: Reason,
    },
    WindowUpdate {
        stream: u32,
        increment: u32,
    },
    /// PRIORITY, or a type this client does not know: ignored (RFC 9113 5.5).
    Ignored,
}

/// What [`parse`] found at the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A frame, and the bytes it took.
    Frame(Frame<'a>, usize),
    /// The buffer holds less than a frame: this many bytes in all are needed.
    Need(usize),
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads the frame at the front of `buf`.
pub fn parse(buf: &[u8]) -> Result<Parsed<'_>, Violation> {
    if buf.len() < HEAD_LEN {
        return Ok(Parsed::Need(HEAD_LEN));
    }
    let len = (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
    if len > MAX_FRAME {
        return Err(size("a frame larger than SETTINGS_MAX_FRAME_SIZE"));
    }
    if buf.len() < HEAD_LEN + len {
        return Ok(Parsed::Need(HEAD_LEN + len));
    }
    let (kind, flags) = (buf[3], buf[4]);
    let stream = u32_at(buf, 5) & 0x7fff_ffff;
    let payload = &buf[HEAD_LEN..HEAD_LEN + len];
    let frame = payload_of(kind, flags, stream, payload)?;
    Ok(Parsed::Frame(frame, HEAD_LEN + len))
}

fn payload_of(kind: u8, flags: u8, stream: u32, p: &[u8]) -> Result<Frame<'_>, Violation> {
    let on_stream = |what| {
        if stream == 0 {
            Err(protocol(what))
        } else {
            Ok(())
        }
    };
    Ok(match kind {
        DATA => {
            on_stream("DATA on stream 0")?;
            Frame::Data {
                stream,
                end_stream: flags & END_STREAM != 0,
                data: unpadded(flags, p)?,
                flow: p.len(),
            }
        }
        HEADERS => {
            on_stream("HEADERS on stream 0")?;
            let mut fragment = unpadded(flags, p)?;
            if flags & PRIORITY_FLAG != 0 {
                fragment = fragment
                    .get(5..)
                    .ok_or(size("HEADERS too short for its priority"))?;
            }
            Frame::Headers {
                stream,
                end_stream: flags & END_STREAM != 0,
                end_headers: flags & END_HEADERS != 0,
                fragment,
            }
        }
        CONTINUATION => {
            on_stream("CONTINUATION on stream 0")?;
            Frame::Continuation {
                stream,
                end_headers: flags & END_HEADERS != 0,
                fragment: p,
            }
        }
        _ => control_of(kind, flags, stream, p)?,
    })
}

/// A frame that carries no part of a response: resets, settings, pings, GOAWAY, windows.
fn control_of(kind: u8, flags: u8, stream: u32, p: &[u8]) -> Result<Frame<'_>, Violation> {
    let on_stream = |what| {
        if stream == 0 {
            Err(protocol(what))
        } else {
            Ok(())
        }
    };
    let on_connection = |what| {
        if stream != 0 {
            Err(protocol(what))
        } else {
            Ok(())
        }
    };
    Ok(match kind {
        PRIORITY => {
            on_stream("PRIORITY on stream 0")?;
            if p.len() != 5 {
                return Err(size("PRIORITY not 5 bytes"));
            }
            Frame::Ignored
        }
        RST_STREAM => {
            on_stream("RST_STREAM on stream 0")?;
            if p.len() != 4 {
                return Err(size("RST_STREAM not 4 bytes"));
            }
            Frame::Reset {
                stream,
                reason: Reason(u32_at(p, 0)),
            }
        }
        SETTINGS => {
            on_connection("SETTINGS on a stream")?;
            let ack = flags & ACK != 0;
            if (ack && !p.is_empty()) || p.len() % 6 != 0 {
                return Err(size("SETTINGS of a wrong length"));
            }
            Frame::Settings { ack, params: p }
        }
        PUSH_PROMISE => Frame::PushPromise,
        PING => {
            on_connection("PING on a stream")?;
            let payload: [u8; 8] = p.try_into().map_err(|_| size("PING not 8 bytes"))?;
            Frame::Ping {
                ack: flags & ACK != 0,
                payload,
            }
        }
        GOAWAY => {
            on_connection("GOAWAY on a stream")?;
            if p.len() < 8 {
                return Err(size("GOAWAY shorter than 8 bytes"));
            }
            Frame::GoAway {
                last_stream: u32_at(p, 0) & 0x7fff_ffff,
                reason: Reason(u32_at(p, 4)),
            }
        }
        WINDOW_UPDATE => {
            if p.len() != 4 {
                return Err(size("WINDOW_UPDATE not 4 bytes"));
            }
            let increment = u32_at(p, 0) & 0x7fff_ffff;
            if increment == 0 {
                return Err(protocol("WINDOW_UPDATE of 0"));
            }
            Frame::WindowUpdate { stream, increment }
        }
        _ => Frame::Ignored,
    })
}

/// A DATA or HEADERS payload without its padding.
fn unpadded(flags: u8, p: &[u8]) -> Result<&[u8], Violation> {
    if flags & PADDED == 0 {
        return Ok(p);
    }
    let (&pad, rest) = p
        .split_first()
        .ok_or(protocol("padded frame without its pad length"))?;
    rest.len()
        .checked_sub(usize::from(pad))
        .map(|n| &rest[..n])
        .ok_or(protocol("padding longer than the frame"))
}

/// The parameters of a SETTINGS frame.
pub fn settings(params: &[u8]) -> impl Iterator<Item = (u16, u32)> + '_ {
    params
        .chunks_exact(6)
        .map(|c| (u16::from_be_bytes([c[0], c[1]]), u32_at(c, 2)))
}

fn put_head(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    let len = len as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
}

pub fn put_settings(out: &mut Vec<u8>, params: &[(u16, u32)]) {
    put_head(out, params.len() * 6, SETTINGS, 0, 0);
    for &(id, value) in params {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
}

pub fn put_settings_ack(out: &mut Vec<u8>) {
    put_head(out, 0, SETTINGS, ACK, 0);
}

pub fn put_ping_ack(out: &mut Vec<u8>, payload: [u8; 8]) {
    put_head(out, 8, PING, ACK, 0);
    out.extend_from_slice(&payload);
}

pub fn put_window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    put_head(out, 4, WINDOW_UPDATE, 0, stream);
    out.extend_from_slice(&increment.to_be_bytes());
}

pub fn put_reset(out: &mut Vec<u8>, stream: u32, reason: Reason) {
    put_head(out, 4, RST_STREAM, 0, stream);
    out.extend_from_slice(&reason.0.to_be_bytes());
}

pub fn put_goaway(out: &mut Vec<u8>, last_stream: u32, reason: Reason) {
    put_head(out, 8, GOAWAY, 0, 0);
    out.extend_from_slice(&last_stream.to_be_bytes());
    out.extend_from_slice(&reason.0.to_be_bytes());
}

/// A header block as HEADERS and as many CONTINUATION frames as `max_frame` makes it.
pub fn put_headers(out: &mut Vec<u8>, stream: u32, block: &[u8], end_stream: bool, max: usize) {
    let mut pieces = block.chunks(max.max(1));
    let first = pieces.next().unwrap_or_default();
    let mut rest = pieces.peekable();
    let mut flags = if end_stream { END_STREAM } else { 0 };
    if rest.peek().is_none() {
        flags |= END_HEADERS;
    }
    put_head(out, first.len(), HEADERS, flags, stream);
    out.extend_from_slice(first);
    while let Some(piece) = rest.next() {
        let flags = if rest.peek().is_none() {
            END_HEADERS
        } else {
            0
        };
        put_head(out, piece.len(), CONTINUATION, flags, stream);
        out.extend_from_slice(piece);
    }
}

pub fn put_data(out: &mut Vec<u8>, stream: u32, data: &[u8], end_stream: bool) {
    put_head(
        out,
        data.len(),
        DATA,
        if end_stream { END_STREAM } else { 0 },
        stream,
    );
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bytes: &[u8]) -> Result<Frame<'_>, Violation> {
        match parse(bytes)? {
            Parsed::Frame(f, n) => {
                assert_eq!(n, bytes.len());
                Ok(f)
            }
            Parsed::Need(n) => panic!("needs {n}"),
        }
    }

    #[test]
    fn frames_written_read_back() {
        let mut out = Vec::new();
        put_data(&mut out, 3, b"hello", true);
        assert_eq!(
            one(&out),
            Ok(Frame::Data {
                stream: 3,
                end_stream: true,
                data: b"hello",
                flow: 5
            })
        );
        out.clear();
        put_goaway(&mut out, 7, Reason::PROTOCOL_ERROR);
        assert_eq!(
            one(&out),
            Ok(Frame::GoAway {
                last_stream: 7,
                reason: Reason::PROTOCOL_ERROR
            })
        );
        out.clear();
        put_settings(
            &mut out,
            &[(ENABLE_PUSH, 0), (INITIAL_WINDOW_SIZE, 1 << 20)],
        );
        let Ok(Frame::Settings { ack: false, params }) = one(&out) else {
            panic!("not settings");
        };
        let got: Vec<_> = settings(params).collect();
        assert_eq!(got, [(ENABLE_PUSH, 0), (INITIAL_WINDOW_SIZE, 1 << 20)]);
    }

    #[test]
    fn a_long_header_block_goes_in_continuation_frames_the_last_ending_the_headers() {
        let block = vec![7u8; 25];
        let mut out = Vec::new();
        put_headers(&mut out, 1, &block, true, 10);
        let mut rest = &out[..];
        let mut got = Vec::new();
        while let Ok(Parsed::Frame(f, n)) = parse(rest) {
            got.push(f);
            rest = &rest[n..];
        }
        assert_eq!(got.len(), 3);
        assert!(matches!(
            got[0],
            Frame::Headers {
                end_stream: true,
                end_headers: false,
                ..
            }
        ));
        assert!(matches!(
            got[1],
            Frame::Continuation {
                end_headers: false,
                ..
            }
        ));
        assert!(
            matches!(got[2], Frame::Continuation { end_headers: true, fragment, .. } if fragment.len() == 5)
        );
    }

    #[test]
    fn padding_and_priority_are_taken_off_and_bad_sizes_refused() {
        // HEADERS, PADDED | PRIORITY | END_HEADERS, 2 bytes of padding.
        let mut f = vec![
            0, 0, 11, 1, 0x2c, 0, 0, 0, 1, 2, 0, 0, 0, 0, 9, 0x82, 0x84, 0x86, 0, 0,
        ];
        f[2] = (f.len() - HEAD_LEN) as u8;
        assert!(matches!(
            one(&f),
            Ok(Frame::Headers {
                fragment: [0x82, 0x84, 0x86],
                ..
            })
        ));
        let too_much_padding = [0, 0, 2, 0, 0x8, 0, 0, 0, 1, 5, 0];
        assert_eq!(
            one(&too_much_padding).unwrap_err().reason,
            Reason::PROTOCOL_ERROR
        );
        let big = [0, 0x40, 1, 0, 0, 0, 0, 0, 1];
        assert_eq!(parse(&big).unwrap_err().reason, Reason::FRAME_SIZE_ERROR);
        let ping = [0, 0, 4, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        assert_eq!(one(&ping).unwrap_err().reason, Reason::FRAME_SIZE_ERROR);
        let data_on_0 = [0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(one(&data_on_0).unwrap_err().reason, Reason::PROTOCOL_ERROR);
        assert_eq!(parse(&big[..5]), Ok(Parsed::Need(HEAD_LEN)));
        assert_eq!(parse(&ping[..10]), Ok(Parsed::Need(13)));
    }
}
