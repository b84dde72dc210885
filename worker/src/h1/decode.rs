//! The response parser: a pure state machine over bytes, apart from any I/O (as mini-redis
//! checks and parses frames apart from its connection). [`Decoder::decode`] is given what has
//! arrived and says how much of it it consumed and what that was; the connection only reads
//! more when told [`Event::NeedMore`]. The same input gives the same events however it is split,
//! which the fuzz target (`fuzz/fuzz_targets/h1_response.rs`) and the property tests check.

use std::mem::MaybeUninit;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::Error;
use crate::coding::Coding;

/// A response head (status line and headers) larger than this is refused.
pub const MAX_HEAD: usize = 64 * 1024;
/// Response headers parsed at most.
pub const MAX_HEADERS: usize = 100;
/// A chunk-size line (with extensions) or a trailer line longer than this is refused.
pub const MAX_LINE: usize = 4 * 1024;
/// Informational (1xx) responses skipped before the final one at most.
pub const MAX_INFORMATIONAL: usize = 8;
/// Trailer lines after a chunked body at most.
pub const MAX_TRAILERS: usize = 64;

/// Which response headers a decoder keeps in [`Head::headers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wanted {
    #[default]
    None,
    /// What a session acts on: `set-cookie` and `location` (a response without them allocates
    /// nothing; `content-encoding` is read into [`Head::coding`] whatever is kept).
    Session,
    All,
}

impl Wanted {
    pub(crate) fn keeps(self, name: &[u8]) -> bool {
        match self {
            Wanted::None => false,
            Wanted::All => true,
            Wanted::Session => match name.len() {
                10 => name.eq_ignore_ascii_case(b"set-cookie"),
                8 => name.eq_ignore_ascii_case(b"location"),
                _ => false,
            },
        }
    }
}

/// The final response's head.
#[derive(Debug, Default)]
pub struct Head {
    pub status: u16,
    /// Its `content-encoding` (always read, whatever headers are kept).
    pub coding: Coding,
    /// Empty unless the decoder was asked for headers.
    pub headers: HeaderMap,
}

/// What the consumed bytes were.
#[derive(Debug)]
pub enum Event<'a> {
    /// Nothing more can be decoded from the input: read more.
    NeedMore,
    /// The final response's head (informational responses are skipped).
    Head(Head),
    /// Decoded body bytes (chunk framing removed).
    Body(&'a [u8]),
    /// The response is complete; bytes after it were not consumed.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers(usize),
    ToClose,
    Done,
}

/// Decodes one response.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    is_head: bool,
    wanted: Wanted,
    informational: usize,
    keep_alive: bool,
}

/// How the body is delimited, from the head (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    Close,
}

impl Decoder {
    /// A decoder for the response to a request; `is_head` for HEAD (no body, whatever the
    /// headers say); `want_headers` to keep the headers in [`Head::headers`].
    pub fn new(is_head: bool, want_headers: bool) -> Decoder {
        let wanted = if want_headers {
            Wanted::All
        } else {
            Wanted::None
        };
        Decoder::keeping(is_head, wanted)
    }

    /// A decoder keeping the headers `wanted`.
    pub fn keeping(is_head: bool, wanted: Wanted) -> Decoder {
        Decoder {
            state: State::Head,
            is_head,
            wanted,
            informational: 0,
            keep_alive: false,
        }
    }

    /// Decodes from the start of `input`: how many bytes were consumed, and what they were.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Result<(usize, Event<'a>), Error> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self.state {
                State::Head => {
                    let Some(n) = self.head(rest)? else {
                        return Ok((used, Event::NeedMore));
                    };
                    let Some(head) = n.1 else {
                        used += n.0;
                        continue;
                    };
                    return Ok((used + n.0, Event::Head(head)));
                }
                State::Length(left) | State::ChunkData(left) => {
                    if rest.is_empty() {
                        return Ok((used, Event::NeedMore));
                    }
                    let take = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let left = left - take as u64;
                    self.state = match self.state {
                        State::Length(_) if left == 0 => State::Done,
                        State::Length(_) => State::Length(left),
                        _ if left == 0 => State::ChunkEnd,
                        _ => State::ChunkData(left),
                    };
                    return Ok((used + take, Event::Body(&rest[..take])));
                }
                State::ChunkSize => {
                    let Some((line, n)) = line(rest)? else {
                        return Ok((used, Event::NeedMore));
                    };
                    let size = chunk_size(line).ok_or(Error::Invalid("bad chunk size"))?;
                    self.state = if size == 0 {
                        State::Trailers(0)
                    } else {
                        State::ChunkData(size)
                    };
                    used += n;
                }
                State::ChunkEnd => {
                    if rest.len() < 2 {
                        return Ok((used, Event::NeedMore));
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(Error::Invalid("chunk not followed by CRLF"));
                    }
                    self.state = State::ChunkSize;
                    used += 2;
                }
                State::Trailers(seen) => {
                    let Some((line, n)) = line(rest)? else {
                        return Ok((used, Event::NeedMore));
                    };
                    self.state = if line.is_empty() {
                        State::Done
                    } else if seen >= MAX_TRAILERS {
                        return Err(Error::Invalid("too many trailer lines"));
                    } else {
                        State::Trailers(seen + 1)
                    };
                    used += n;
                }
                State::ToClose if rest.is_empty() => return Ok((used, Event::NeedMore)),
                State::ToClose => return Ok((input.len(), Event::Body(rest))),
                State::Done => return Ok((used, Event::End)),
            }
        }
    }

    /// The server closed the connection: whether that ends the response (a body delimited by
    /// the close) or cuts it short.
    pub fn at_close(&mut self) -> Result<(), Error> {
        match self.state {
            State::ToClose | State::Done => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(Error::ClosedEarly),
        }
    }

    /// After [`Event::End`]: whether the connection may carry another request.
    pub fn reusable(&self) -> bool {
        self.keep_alive && self.state == State::Done
    }

    /// One head at the start of `input`: `None` while incomplete; the bytes it took, and the
    /// head unless it was an informational response (skipped).
    fn head(&mut self, input: &[u8]) -> Result<Option<(usize, Option<Head>)>, Error> {
        let Some(parsed) = parse_head(input, self.wanted)? else {
            if input.len() > MAX_HEAD {
                return Err(Error::Invalid("response head too large"));
            }
            return Ok(None);
        };
        let status = parsed.head.status;
        if (100..200).contains(&status) && status != 101 {
            self.informational += 1;
            if self.informational > MAX_INFORMATIONAL {
                return Err(Error::Invalid("too many informational (1xx) responses"));
            }
            return Ok(Some((parsed.len, None)));
        }
        let framing = if self.is_head || matches!(status, 101 | 204 | 304) {
            Framing::Empty
        } else {
            parsed.framing
        };
        self.keep_alive = parsed.keep_alive && status != 101 && framing != Framing::Close;
        self.state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::Close => State::ToClose,
        };
        Ok(Some((parsed.len, Some(parsed.head))))
    }
}

/// A whole response decoded at once from `input`, as the connection would decode it arriving
/// in pieces of `piece` bytes (the server closing after the last): the head, the body, the bytes
/// consumed and whether the connection could be reused. For the fuzz target and tests.
pub fn decode_all(
    input: &[u8],
    is_head: bool,
    piece: usize,
) -> Result<(Head, Vec<u8>, usize, bool), Error> {
    let mut decoder = Decoder::new(is_head, true);
    let (mut pos, mut arrived) = (0, piece.max(1).min(input.len()));
    let (mut head, mut body) = (None, Vec::new());
    loop {
        let (n, event) = decoder.decode(&input[pos..arrived])?;
        pos += n;
        match event {
            Event::Head(h) => head = Some(h),
            Event::Body(b) => body.extend_from_slice(b),
            Event::End => break,
            Event::NeedMore if arrived == input.len() => {
                decoder.at_close()?;
                break;
            }
            Event::NeedMore => arrived = (arrived + piece.max(1)).min(input.len()),
        }
    }
    let head = head.ok_or(Error::ClosedEarly)?;
    Ok((head, body, pos, decoder.reusable()))
}

/// One CRLF-terminated line at the start of `input`, without the CRLF, and the bytes it took.
fn line(input: &[u8]) -> Result<Option<(&[u8], usize)>, Error> {
    match input.windows(2).position(|w| w == b"\r\n") {
        Some(i) if i <= MAX_LINE => Ok(Some((&input[..i], i + 2))),
        Some(_) => Err(Error::Invalid("chunk line too long")),
        None if input.len() > MAX_LINE => Err(Error::Invalid("chunk line too long")),
        None => Ok(None),
    }
}

struct Parsed {
    head: Head,
    len: usize,
    framing: Framing,
    keep_alive: bool,
}

/// Parses a response head at the start of `bytes`; `None` while incomplete.
fn parse_head(bytes: &[u8], wanted: Wanted) -> Result<Option<Parsed>, Error> {
    if bytes.is_empty() {
        return Ok(None);
    }
    // Left uninitialized: writing 100 empty headers per response cost more than the parse.
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    // RFC 9112 5.2: a user agent replaces a folded line (obs-fold) by spaces, not refuses it.
    let len = match httparse::ParserConfig::default()
        .allow_obsolete_multiline_headers_in_responses(true)
        .parse_response_with_uninit_headers(&mut response, bytes, &mut headers)?
    {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let status = response.code.unwrap_or(0);
    let mut keep_alive = response.version == Some(1);
    let mut length: Option<u64> = None;
    // Whether the last transfer coding is chunked, once a Transfer-Encoding was seen.
    let mut chunked: Option<bool> = None;
    let mut coding = Coding::Identity;
    let mut map = HeaderMap::new();
    for h in response.headers.iter() {
        let name = h.name.as_bytes();
        // Dispatched on the length first: most headers are none of these, and one
        // comparison rules them out.
        match name.len() {
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                let n = parse_u64(h.value).ok_or(Error::Invalid("bad content-length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(Error::Invalid("conflicting content-length"));
                }
                length = Some(n);
            }
            16 if name.eq_ignore_ascii_case(b"content-encoding") => {
                // Two codings (or two headers) are not decoded: left as received.
                coding = match coding {
                    Coding::Identity => Coding::of(h.value),
                    _ => Coding::Other,
                };
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                chunked = Some(last_token(h.value).eq_ignore_ascii_case(b"chunked"));
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
        if wanted.keeps(name) {
            keep_header(&mut map, name, h.value);
        }
    }
    // RFC 9112 6.3: Transfer-Encoding overrides Content-Length, and a response with both may
    // be a smuggling attempt, so the connection is not reused after it.
    if chunked.is_some() && length.is_some() {
        keep_alive = false;
    }
    Ok(Some(Parsed {
        head: Head {
            status,
            coding,
            headers: map,
        },
        len,
        framing: framing(chunked, length),
        keep_alive,
    }))
}

fn keep_header(map: &mut HeaderMap, name: &[u8], value: &[u8]) {
    let Ok(k) = HeaderName::from_bytes(name) else {
        return;
    };
    let v = if value.iter().any(|&b| b == b'\r' || b == b'\n') {
        let unfolded: Vec<u8> = value
            .iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b })
            .collect();
        HeaderValue::from_bytes(&unfolded)
    } else {
        HeaderValue::from_bytes(value)
    };
    if let Ok(v) = v {
        map.append(k, v);
    }
}

/// RFC 9112 6.3, whatever the header order: a chunked last coding frames the body by chunks,
/// any other transfer coding runs to the close, and Content-Length counts only without one.
fn framing(chunked: Option<bool>, length: Option<u64>) -> Framing {
    match (chunked, length) {
        (Some(true), _) => Framing::Chunked,
        (Some(false), _) | (None, None) => Framing::Close,
        (None, Some(0)) => Framing::Empty,
        (None, Some(n)) => Framing::Length(n),
    }
}

/// A content-length value: decimal digits (at most 19, so no overflow), spaces around allowed.
pub(crate) fn parse_u64(v: &[u8]) -> Option<u64> {
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

#[cfg(test)]
mod tests;
