//! Content codings of response bodies (RFC 9110 section 8.4): which one a response names, and
//! decoding gzip and deflate with flate2, never past a limit, so a small compressed body (a
//! "gzip bomb") fails its request instead of filling the worker's memory.

use std::io::Read;

use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};

/// A response's `content-encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Coding {
    #[default]
    Identity,
    Gzip,
    Deflate,
    /// Any other coding, or several: left as received.
    Other,
}

impl Coding {
    /// The coding a `content-encoding` value names.
    pub fn of(value: &[u8]) -> Coding {
        let value = value.trim_ascii();
        if value.is_empty() || value.eq_ignore_ascii_case(b"identity") {
            Coding::Identity
        } else if value.eq_ignore_ascii_case(b"gzip") || value.eq_ignore_ascii_case(b"x-gzip") {
            Coding::Gzip
        } else if value.eq_ignore_ascii_case(b"deflate") {
            Coding::Deflate
        } else {
            Coding::Other
        }
    }
}

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Decoded, the body is longer than the limit (`max_body`).
    #[error("response body larger than {0} bytes (max_body)")]
    TooLarge(u64),
    #[error("invalid {0} body: {1}")]
    Invalid(&'static str, std::io::Error),
}

/// Decodes `body` (in `coding`), appending to `out` when given, and returns the decoded size;
/// fails as soon as that would pass `limit`. Identity and unknown codings are their own size.
pub fn decode(
    coding: Coding,
    body: &[u8],
    limit: u64,
    mut out: Option<&mut Vec<u8>>,
) -> Result<u64, DecodeError> {
    let (name, mut reader): (&'static str, Box<dyn Read + '_>) = match coding {
        Coding::Identity | Coding::Other => return Ok(body.len() as u64),
        Coding::Gzip => ("gzip", Box::new(MultiGzDecoder::new(body))),
        // RFC 9110 "deflate" is the zlib format; some servers send raw deflate, which
        // urllib3 (requests) accepts too.
        Coding::Deflate if is_zlib(body) => ("deflate", Box::new(ZlibDecoder::new(body))),
        Coding::Deflate => ("deflate", Box::new(DeflateDecoder::new(body))),
    };
    let mut chunk = [0u8; 8 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader
            .read(&mut chunk)
            .map_err(|e| DecodeError::Invalid(name, e))?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
        if total > limit {
            return Err(DecodeError::TooLarge(limit));
        }
        if let Some(out) = out.as_deref_mut() {
            out.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Whether `body` starts with a zlib header (RFC 1950: method 8, check bits).
fn is_zlib(body: &[u8]) -> bool {
    match body {
        [cmf, flg, ..] => cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

/// The size a gzip body decodes to, from its trailer (RFC 1952 ISIZE: the last member's input
/// size modulo 2^32), without decoding it; `tail` is the body's last four bytes.
pub fn gzip_size(tail: [u8; 4]) -> u64 {
    u64::from(u32::from_le_bytes(tail))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use flate2::Compression;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_and_both_kinds_of_deflate_decode_and_name_their_size() {
        let text = b"hello hello hello hello".repeat(100);
        let mut zlib = ZlibEncoder::new(Vec::new(), Compression::default());
        zlib.write_all(&text).unwrap();
        let mut raw = DeflateEncoder::new(Vec::new(), Compression::default());
        raw.write_all(&text).unwrap();
        for (coding, body) in [
            (Coding::Gzip, gzip(&text)),
            (Coding::Deflate, zlib.finish().unwrap()),
            (Coding::Deflate, raw.finish().unwrap()),
        ] {
            let mut out = Vec::new();
            let size = decode(coding, &body, 1 << 20, Some(&mut out)).unwrap();
            assert_eq!((size, &out), (text.len() as u64, &text), "{coding:?}");
        }
        let g = gzip(&text);
        let tail: [u8; 4] = g[g.len() - 4..].try_into().unwrap();
        assert_eq!(gzip_size(tail), text.len() as u64);
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        // 64 MiB of zeros compress to about 64 KiB.
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 100 << 10);
        let mut out = Vec::new();
        let err = decode(Coding::Gzip, &bomb, 1 << 20, Some(&mut out)).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge(l) if l == 1 << 20));
        assert!(out.len() <= 1 << 20);
        assert_eq!(
            err.to_string(),
            "response body larger than 1048576 bytes (max_body)"
        );
    }

    #[test]
    fn codings_are_named_case_insensitively_and_garbage_is_an_error() {
        assert_eq!(Coding::of(b" GZIP "), Coding::Gzip);
        assert_eq!(Coding::of(b"x-gzip"), Coding::Gzip);
        assert_eq!(Coding::of(b"Deflate"), Coding::Deflate);
        assert_eq!(Coding::of(b"identity"), Coding::Identity);
        assert_eq!(Coding::of(b"br"), Coding::Other);
        assert_eq!(Coding::of(b"gzip, gzip"), Coding::Other);
        assert!(matches!(
            decode(Coding::Gzip, b"not gzip", 100, None),
            Err(DecodeError::Invalid("gzip", _))
        ));
    }
}
