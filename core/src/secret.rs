//! Comparing secrets (worker tokens, web passwords) without leaking where they differ.

/// A second header the master takes `--web-auth`'s `Basic ...` credentials in: the Kubernetes
/// API server removes `Authorization` from a request it authenticated before its pod proxy
/// passes the request on, so the operator, which reads the master through that proxy, sends
/// them here. The same credentials, checked the same way: no other way in.
pub const WEB_AUTH_PROXY_HEADER: &str = "x-hatchery-authorization";

/// The `Authorization` value of HTTP basic authentication for `user:password` (RFC 7617),
/// standard base64 with padding from the maintained `base64` crate.
pub fn basic_authorization(credentials: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(credentials.as_bytes());
    format!("Basic {encoded}")
}

/// Whether `a` equals `b`, taking the same time wherever the first difference is.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_authorization_is_base64_as_in_the_rfc() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
            ("user:pa ss", "dXNlcjpwYSBzcw=="),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ] {
            assert_eq!(basic_authorization(plain), format!("Basic {encoded}"));
        }
    }

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"Bearer abc", b"Bearer abc"));
        assert!(!constant_time_eq(b"Bearer abd", b"Bearer abc"));
        assert!(!constant_time_eq(b"Bearer ab", b"Bearer abc"));
        assert!(constant_time_eq(b"", b""));
    }
}
