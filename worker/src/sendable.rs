//! What may go on a request line or into a request head. A rendered URL or header value holds
//! whatever a feeder row or a capture held; these checks stand between it and the wire, so a
//! value such as `a\r\nX-Evil: 1` fails its request instead of adding a header.
//!
//! Static parts are checked once when the plan is prepared; only rendered parts are checked per
//! request, in place and without allocating unless a path needs percent-encoding.

use std::borrow::Cow;

use http::header::{HeaderName, CONTENT_LENGTH, TRANSFER_ENCODING};

/// Why a URL or header cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsendable {
    #[error("URL {0:?} holds a space, CR, LF or control character")]
    Target(String),
    #[error(
        "URL {0:?} carries a user name or password: put credentials in an `authorization` header"
    )]
    Userinfo(String),
    #[error("header {0} is framing the client sets itself: remove it from the plan")]
    Framing(HeaderName),
    #[error("header {0} is set twice")]
    Duplicate(HeaderName),
}

/// Percent-encodes bytes outside ASCII (a path written in UTF-8, as browsers do); borrowed when
/// there are none.
pub fn encode_non_ascii(url: &str) -> Cow<'_, str> {
    if url.is_ascii() {
        return Cow::Borrowed(url);
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(url.len() + 16);
    for &b in url.as_bytes() {
        if b.is_ascii() {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
    Cow::Owned(out)
}

/// A request target is visible ASCII only (RFC 9112 3.2): no space, CR, LF or other control.
pub fn check_target(target: &str) -> Result<(), Unsendable> {
    if target.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(Unsendable::Target(target.to_string()))
    }
}

/// A URL's authority must not hold `user:password@`: it would otherwise reach the `Host` header.
pub fn check_no_userinfo(authority: &str, url: &str) -> Result<(), Unsendable> {
    if authority.contains('@') {
        Err(Unsendable::Userinfo(url.to_string()))
    } else {
        Ok(())
    }
}

/// A header the plan may set: not one that frames the message (content-length,
/// transfer-encoding: the client writes those from the body), and not one already set. `host`
/// and `connection` are the plan's to set: the client then leaves out its own `host`, and reads
/// the response's framing whatever `connection` asked for.
pub fn check_plan_header<'a>(
    name: &HeaderName,
    earlier: impl IntoIterator<Item = &'a HeaderName>,
) -> Result<(), Unsendable> {
    if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
        return Err(Unsendable::Framing(name.clone()));
    }
    if earlier.into_iter().any(|e| e == name) {
        return Err(Unsendable::Duplicate(name.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{CONNECTION, HOST};

    #[test]
    fn targets_with_controls_or_spaces_are_refused() {
        assert!(check_target("/a?b=c%20d").is_ok());
        for bad in ["/a\r\nX-Evil: 1", "/a b", "/a\tb", "/a\x7f", "/\u{e9}"] {
            assert!(check_target(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn non_ascii_paths_are_percent_encoded_and_ascii_ones_borrowed() {
        assert_eq!(encode_non_ascii("/caf\u{e9}"), "/caf%C3%A9");
        assert!(matches!(encode_non_ascii("/plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn framing_and_repeated_headers_are_refused() {
        let host = HeaderName::from_static("host");
        assert!(check_plan_header(&host, []).is_ok());
        assert!(check_plan_header(&CONNECTION, []).is_ok());
        assert!(matches!(
            check_plan_header(&CONTENT_LENGTH, []),
            Err(Unsendable::Framing(_))
        ));
        assert!(matches!(
            check_plan_header(&TRANSFER_ENCODING, []),
            Err(Unsendable::Framing(_))
        ));
        assert!(matches!(
            check_plan_header(&host, [&HOST]),
            Err(Unsendable::Duplicate(_))
        ));
    }
}
