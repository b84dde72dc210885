//! HPACK (RFC 7541) as a client needs it, over byte buffers and free of I/O: a [`Decoder`] of
//! response header blocks with the dynamic table and Huffman strings, which decodes a value only
//! when its [`Sink`] wants the field or the table keeps it; and [`encode_field`], which writes
//! request fields from the static table and literals without indexing (no dynamic table of
//! ours for the server to keep, so a block encoded once can be sent on any connection).

use std::collections::VecDeque;

use super::huffman;

/// The dynamic table's size until a SETTINGS_HEADER_TABLE_SIZE says otherwise; the client never
/// sends one, so the server's table updates may not exceed it.
pub const TABLE_SIZE: usize = 4096;

/// Why a header block cannot be decoded: a connection error (COMPRESSION_ERROR), since the
/// decoder's table no longer matches the server's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("header block ends inside a field")]
    Truncated,
    #[error("integer too large in a header block")]
    Integer,
    #[error("header block refers to index {0}, not in the table")]
    Index(usize),
    #[error(transparent)]
    Huffman(#[from] huffman::Invalid),
    #[error("dynamic table size update to {0}, over {TABLE_SIZE}")]
    TableSize(usize),
    #[error("dynamic table size update after a field")]
    LateTableSize,
}

/// Where decoded fields go.
pub trait Sink {
    /// Whether the field named `name` is wanted: a field that is not is only counted, and its
    /// value is not decoded unless the dynamic table keeps it.
    fn wants(&mut self, name: &[u8]) -> bool;
    fn field(&mut self, name: &[u8], value: &[u8]);
}

/// The static table, RFC 7541 Appendix A (index 1 first).
pub const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// Bytes of the decoder's name and value buffers kept between blocks.
const SCRATCH: usize = 4096;

/// Per entry overhead in the table's size (RFC 7541 4.1), also counted per field in a header
/// list's size (RFC 9113 6.5.2).
pub const ENTRY_OVERHEAD: usize = 32;

/// The dynamic table: newest entry first, each one buffer holding name then value. Evicted
/// buffers are kept for the next entries, so a server that indexes every field (nginx does)
/// costs no allocation per response once the table is full.
#[derive(Debug, Default)]
struct Table {
    entries: VecDeque<Entry>,
    size: usize,
    max: usize,
    spare: Vec<Vec<u8>>,
}

#[derive(Debug)]
struct Entry {
    bytes: Vec<u8>,
    name_len: usize,
}

impl Entry {
    fn name(&self) -> &[u8] {
        &self.bytes[..self.name_len]
    }

    fn value(&self) -> &[u8] {
        &self.bytes[self.name_len..]
    }
}

impl Table {
    fn evict_to(&mut self, max: usize) {
        while self.size > max {
            let Some(e) = self.entries.pop_back() else {
                break;
            };
            self.size -= e.bytes.len() + ENTRY_OVERHEAD;
            if self.spare.len() < TABLE_SIZE / ENTRY_OVERHEAD {
                self.spare.push(e.bytes);
            }
        }
    }

    fn insert(&mut self, name: &[u8], value: &[u8]) {
        let size = name.len() + value.len() + ENTRY_OVERHEAD;
        if size > self.max {
            self.evict_to(0);
            return;
        }
        self.evict_to(self.max - size);
        let mut bytes = self.spare.pop().unwrap_or_default();
        bytes.clear();
        bytes.extend_from_slice(name);
        bytes.extend_from_slice(value);
        self.size += size;
        self.entries.push_front(Entry {
            bytes,
            name_len: name.len(),
        });
    }

    /// Entry `index` of the static table followed by this one (1-based).
    fn get(&self, index: usize) -> Result<(&[u8], &[u8]), Error> {
        if let Some(&(n, v)) = index.checked_sub(1).and_then(|i| STATIC.get(i)) {
            return Ok((n, v));
        }
        let e = index
            .checked_sub(STATIC.len() + 1)
            .and_then(|i| self.entries.get(i))
            .ok_or(Error::Index(index))?;
        Ok((e.name(), e.value()))
    }
}

/// The decoding side of one connection's HPACK context.
#[derive(Debug)]
pub struct Decoder {
    table: Table,
    name: Vec<u8>,
    value: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder {
            table: Table {
                max: TABLE_SIZE,
                ..Table::default()
            },
            name: Vec::new(),
            value: Vec::new(),
        }
    }
}

/// How a literal field is indexed (RFC 7541 6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Literal {
    Incremental,
    NotIndexed,
}

impl Decoder {
    /// Decodes one complete header block, handing `sink` the fields it wants while the header
    /// list's size stays within `limit`, and returns that size (name, value and 32 bytes a
    /// field, RFC 9113 6.5.2). Past `limit` nothing more reaches `sink`, but the block is still
    /// decoded to the end, so that the table stays the server's.
    pub fn decode(
        &mut self,
        mut block: &[u8],
        limit: usize,
        sink: &mut impl Sink,
    ) -> Result<usize, Error> {
        let mut size = 0usize;
        let mut first = true;
        while let Some(&b) = block.first() {
            if b & 0x80 != 0 {
                let index = integer(&mut block, 7)?;
                let (name, value) = self.table.get(index)?;
                size = size.saturating_add(name.len() + value.len() + ENTRY_OVERHEAD);
                if size <= limit && sink.wants(name) {
                    sink.field(name, value);
                }
            } else if b & 0xe0 == 0x20 {
                let max = integer(&mut block, 5)?;
                if !first {
                    return Err(Error::LateTableSize);
                }
                if max > TABLE_SIZE {
                    return Err(Error::TableSize(max));
                }
                self.table.max = max;
                self.table.evict_to(max);
                continue;
            } else {
                let (kind, prefix) = if b & 0x40 != 0 {
                    (Literal::Incremental, 6)
                } else {
                    (Literal::NotIndexed, 4)
                };
                let n = self.literal(&mut block, kind, prefix, size, limit, sink)?;
                size = size.saturating_add(n);
            }
            first = false;
        }
        // A long name or value is rare: its buffer is not kept while the connection lives.
        for b in [&mut self.name, &mut self.value] {
            if b.capacity() > SCRATCH {
                *b = Vec::new();
            }
        }
        Ok(size)
    }

    /// One literal field; returns its size in the header list.
    fn literal(
        &mut self,
        block: &mut &[u8],
        kind: Literal,
        prefix: u8,
        size: usize,
        limit: usize,
        sink: &mut impl Sink,
    ) -> Result<usize, Error> {
        let index = integer(block, prefix)?;
        // The name: from a table (a static one borrowed, a dynamic one copied, since inserting
        // may evict it) or a literal.
        let mut stat: Option<&'static [u8]> = None;
        self.name.clear();
        if index == 0 {
            string(block, &mut self.name)?;
        } else if let Some(&(n, _)) = STATIC.get(index - 1) {
            stat = Some(n);
        } else {
            let (n, _) = self.table.get(index)?;
            self.name.extend_from_slice(n);
        }
        let name: &[u8] = stat.unwrap_or(&self.name);
        let wanted = size < limit && sink.wants(name);
        self.value.clear();
        let value_len = if wanted || kind == Literal::Incremental {
            string(block, &mut self.value)?;
            self.value.len()
        } else {
            skip_string(block)?
        };
        let field = name.len() + value_len + ENTRY_OVERHEAD;
        if wanted && size.saturating_add(field) <= limit {
            sink.field(name, &self.value);
        }
        if kind == Literal::Incremental {
            self.table.insert(name, &self.value);
        }
        Ok(field)
    }
}

/// Reads an integer with an `n`-bit prefix (RFC 7541 5.1), at most 2^28 or so.
fn integer(block: &mut &[u8], n: u8) -> Result<usize, Error> {
    let (&first, mut rest) = block.split_first().ok_or(Error::Truncated)?;
    let mask = (1u16 << n) as usize - 1;
    let mut value = usize::from(first) & mask;
    if value == mask {
        let mut shift = 0;
        loop {
            let (&b, r) = rest.split_first().ok_or(Error::Truncated)?;
            rest = r;
            if shift > 21 {
                return Err(Error::Integer);
            }
            value += usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    *block = rest;
    Ok(value)
}

/// The raw bytes of a string literal and whether they are Huffman-coded.
fn raw<'b>(block: &mut &'b [u8]) -> Result<(&'b [u8], bool), Error> {
    let huffman = block.first().ok_or(Error::Truncated)? & 0x80 != 0;
    let len = integer(block, 7)?;
    if len > block.len() {
        return Err(Error::Truncated);
    }
    let (s, rest) = block.split_at(len);
    *block = rest;
    Ok((s, huffman))
}

/// Appends a string literal's value to `out`.
fn string(block: &mut &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    match raw(block)? {
        (s, true) => huffman::decode(s, out)?,
        (s, false) => out.extend_from_slice(s),
    }
    Ok(())
}

/// Skips a string literal, returning its decoded length.
fn skip_string(block: &mut &[u8]) -> Result<usize, Error> {
    match raw(block)? {
        (s, true) => Ok(huffman::decoded_len(s)?),
        (s, false) => Ok(s.len()),
    }
}

/// Writes an integer with an `n`-bit prefix whose other bits are `flags`.
fn put_integer(out: &mut Vec<u8>, flags: u8, n: u8, mut value: usize) {
    let mask = (1usize << n) - 1;
    if value < mask {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | mask as u8);
    value -= mask;
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    put_integer(out, 0, 7, s.len());
    out.extend_from_slice(s);
}

/// Appends one request field (`name` in lower case): the static table's entry when it holds
/// the whole field, else a literal without indexing, naming the static entry when one has the
/// name. Strings go as they are: a Huffman pass would cost more than the bytes it saves on
/// loopback, and the server would pay to undo it.
pub fn encode_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    let mut name_index = 0;
    for (i, &(n, v)) in STATIC.iter().enumerate() {
        if n == name {
            if v == value {
                put_integer(out, 0x80, 7, i + 1);
                return;
            }
            if name_index == 0 {
                name_index = i + 1;
            }
        } else if name_index != 0 {
            // Entries with one name are adjacent.
            break;
        }
    }
    put_integer(out, 0, 4, name_index);
    if name_index == 0 {
        put_string(out, name);
    }
    put_string(out, value);
}

#[cfg(test)]
#[path = "hpack_tests.rs"]
mod tests;

/// A sink that keeps every field as text, for the tests.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct All(pub Vec<(String, String)>);

#[cfg(test)]
impl Sink for All {
    fn wants(&mut self, _: &[u8]) -> bool {
        true
    }
    fn field(&mut self, name: &[u8], value: &[u8]) {
        self.0.push((
            String::from_utf8(name.to_vec()).unwrap(),
            String::from_utf8(value.to_vec()).unwrap(),
        ));
    }
}
