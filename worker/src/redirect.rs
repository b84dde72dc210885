//! Following redirects as python-requests does (Locust's `HttpUser`): which responses redirect,
//! the method and body of the next request, where a `location` leads (RFC 3986 reference
//! resolution) and when credentials stay behind. Pure functions; the user's session applies them.

use http::Method;
use url::Url;

use crate::sendable::encode_non_ascii;

/// Redirects followed at most (requests' `max_redirects`); the response after the last one
/// that redirects again fails the request.
pub const MAX_REDIRECTS: u32 = 30;

/// Whether a response of this status redirects (with a `location`).
pub fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// The method of the request a `status` redirect leads to, and whether the body goes along
/// (requests' `rebuild_method` and `resolve_redirects`): 303 and 302 turn anything but HEAD into
/// GET, 301 turns POST into GET; only 307 and 308 resend the body.
pub fn method_after(status: u16, method: &Method) -> (Method, bool) {
    let next = match status {
        302 | 303 if method != Method::HEAD => Method::GET,
        301 if method == Method::POST => Method::GET,
        _ => method.clone(),
    };
    (next, matches!(status, 307 | 308))
}

/// Why a `location` is not followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("holds a space, CR, LF or control character")]
    Unsendable,
    #[error("is not a URL ({0})")]
    Invalid(url::ParseError),
    #[error("carries a user name or password")]
    Userinfo,
    #[error("is not http or https")]
    Scheme,
}

/// Where a `location` received for `current` leads: resolved as an RFC 3986 reference against
/// it, without its fragment. Bytes outside ASCII (a UTF-8 path) are percent-encoded; a space,
/// CR, LF or other control (an obs-folded header arrives with its line breaks turned to
/// spaces) is refused rather than sent, as is a user name or password.
pub fn location(current: &Url, location: &[u8]) -> Result<Url, Refused> {
    if location.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(Refused::Unsendable);
    }
    let text = std::str::from_utf8(location).map_err(|_| Refused::Unsendable)?;
    let mut next = current
        .join(&encode_non_ascii(text))
        .map_err(Refused::Invalid)?;
    if !next.username().is_empty() || next.password().is_some() {
        return Err(Refused::Userinfo);
    }
    if !matches!(next.scheme(), "http" | "https") {
        return Err(Refused::Scheme);
    }
    next.set_fragment(None);
    Ok(next)
}

/// Whether a redirect from `from` to `to` leaves the `authorization` header behind (requests'
/// `should_strip_auth`): another host, scheme or port does, except http to https on the
/// default ports of the same host.
pub fn strips_auth(from: &Url, to: &Url) -> bool {
    if from.host_str() != to.host_str() {
        return true;
    }
    if from.scheme() == "http" && from.port().is_none() && to.scheme() == "https" {
        return to.port().is_some();
    }
    from.scheme() != to.scheme() || from.port_or_known_default() != to.port_or_known_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn see_other_and_found_become_get_and_temporary_and_permanent_keep_the_method() {
        let cases = [
            (301, Method::POST, Method::GET, false),
            (301, Method::PUT, Method::PUT, false),
            (302, Method::POST, Method::GET, false),
            (302, Method::DELETE, Method::GET, false),
            (303, Method::PUT, Method::GET, false),
            (303, Method::HEAD, Method::HEAD, false),
            (302, Method::HEAD, Method::HEAD, false),
            (307, Method::POST, Method::POST, true),
            (308, Method::PATCH, Method::PATCH, true),
        ];
        for (status, from, to, body) in cases {
            assert_eq!(method_after(status, &from), (to, body), "{status} {from}");
        }
        assert!([301, 302, 303, 307, 308].into_iter().all(is_redirect));
        assert!(![200, 300, 304, 305, 306, 309].into_iter().any(is_redirect));
    }

    /// RFC 3986 section 5.4.1, the normal examples, against its base URI.
    #[test]
    fn relative_locations_resolve_as_rfc_3986_says() {
        let base = Url::parse("http://a/b/c/d;p?q").unwrap();
        let cases = [
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g/"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q"),
            ("g#s", "http://a/b/c/g"),
            (";x", "http://a/b/c/;x"),
            ("g;x?y#s", "http://a/b/c/g;x?y"),
            ("", "http://a/b/c/d;p?q"),
            (".", "http://a/b/c/"),
            ("./", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../g", "http://a/g"),
            ("../../../g", "http://a/g"),
            ("https://other:8443/x?y", "https://other:8443/x?y"),
        ];
        for (reference, expected) in cases {
            let got = location(&base, reference.as_bytes()).unwrap();
            assert_eq!(got.as_str(), expected, "{reference:?}");
        }
    }

    #[test]
    fn a_location_with_a_line_break_userinfo_or_another_scheme_is_refused() {
        let base = Url::parse("http://127.0.0.1:8080/a").unwrap();
        for (bad, why) in [
            (&b"/x\r\nX-Evil: 1"[..], Refused::Unsendable),
            (b"/x   X-Evil: 1", Refused::Unsendable),
            (b"/x\ty", Refused::Unsendable),
            (b"http://user:pw@127.0.0.1:8080/", Refused::Userinfo),
            (b"//user@evil/", Refused::Userinfo),
            (b"ftp://127.0.0.1/", Refused::Scheme),
            (b"javascript:alert(1)", Refused::Scheme),
        ] {
            assert_eq!(
                location(&base, bad),
                Err(why),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let utf8 = location(&base, "/caf\u{e9}".as_bytes()).unwrap();
        assert_eq!(utf8.path(), "/caf%C3%A9");
    }

    #[test]
    fn credentials_stay_on_the_origin_they_were_given_for() {
        let url = |s: &str| Url::parse(s).unwrap();
        let strips = |a: &str, b: &str| strips_auth(&url(a), &url(b));
        assert!(!strips("http://h/a", "http://h/b"));
        assert!(!strips("http://h:8080/a", "http://h:8080/b"));
        assert!(!strips("http://h/a", "https://h/b"));
        assert!(!strips("http://h:80/a", "https://h:443/b"));
        assert!(strips("http://h/a", "http://other/b"));
        assert!(strips("http://h:8080/a", "http://h:8081/b"));
        assert!(strips("https://h/a", "http://h/b"));
        assert!(strips("http://h/a", "https://h:8443/b"));
    }
}
