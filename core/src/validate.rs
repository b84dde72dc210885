//! What a worker can use, as one rule each, checked wherever such a value comes in: the plan,
//! `--host`, the web UI's new host, the operator's LoadTest. A value one of them accepts can
//! then not fail on every worker.

use http::header::{HeaderName, HeaderValue};
use http::uri::{Scheme, Uri};

/// Why a host URL cannot be used; the text completes "`host` ...".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostProblem {
    #[error("must start with http:// or https://")]
    Scheme,
    #[error("cannot contain spaces")]
    Spaces,
    #[error("has no host name")]
    NoHostName,
    #[error("has an invalid port (expected a number from 0 to 65535)")]
    Port,
    #[error("is not a valid URL")]
    NotAUrl,
}

/// Checks a base URL (`http(s)://host[:port][/path]`) the way a worker reads it, and returns it
/// parsed: its scheme is http or https and it has a host name and a valid port.
pub fn host_url(url: &str) -> Result<Uri, HostProblem> {
    let lower = url.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
    else {
        return Err(HostProblem::Scheme);
    };
    if url.chars().any(char::is_whitespace) {
        return Err(HostProblem::Spaces);
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let (host, port) = match host_port.rfind(':') {
        Some(i) if !host_port[i..].contains(']') => (&host_port[..i], Some(&host_port[i + 1..])),
        _ => (host_port, None),
    };
    if host.is_empty() {
        return Err(HostProblem::NoHostName);
    }
    if port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err(HostProblem::Port);
    }
    let uri: Uri = url.parse().map_err(|_| HostProblem::NotAUrl)?;
    let usable = matches!(uri.scheme(), Some(s) if *s == Scheme::HTTP || *s == Scheme::HTTPS)
        && uri.authority().is_some();
    if !usable {
        return Err(HostProblem::NotAUrl);
    }
    Ok(uri)
}

/// Whether `name` can be sent as a header name (an RFC 9110 token).
pub fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name {name:?}"))
}

/// Whether `value` can be sent as a header value: no control characters but tabs.
pub fn header_value(name: &str, value: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(value).map_err(|_| format!("invalid value for header {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_needs_an_http_scheme_a_host_name_and_a_valid_port() {
        for ok in [
            "http://127.0.0.1:8080",
            "https://example.com/base/",
            "HTTP://Example.com",
            "http://[::1]:80",
            "http://h:0",
        ] {
            assert!(host_url(ok).is_ok(), "{ok}");
        }
        let cases = [
            ("127.0.0.1:8080", HostProblem::Scheme),
            ("ftp://x", HostProblem::Scheme),
            ("http://h x", HostProblem::Spaces),
            ("http://", HostProblem::NoHostName),
            ("http://:80", HostProblem::NoHostName),
            ("http://h:99999", HostProblem::Port),
            ("http://h:", HostProblem::Port),
            ("http://h/a\u{7f}", HostProblem::NotAUrl),
            ("http://h\u{1}/", HostProblem::NotAUrl),
        ];
        for (url, problem) in cases {
            assert_eq!(host_url(url).err(), Some(problem), "{url}");
        }
    }

    #[test]
    fn header_names_are_tokens_and_values_have_no_control_characters() {
        assert!(header_name("X-Request-Id").is_ok());
        assert!(header_name("bad name").is_err());
        assert!(header_name("").is_err());
        assert!(header_value("x", "a b\tc").is_ok());
        assert!(header_value("x", "line\nbreak").is_err());
        assert!(header_value("x", "del\u{7f}").is_err());
    }
}
