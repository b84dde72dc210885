//! A user's cookie jar: RFC 6265 storage and matching (domain, path, expiry, `Secure`) from the
//! `cookie_store` crate, bounded the way browsers bound theirs so that a target cannot make a
//! worker hold more than a few hundred small cookies per user, whatever it sends.

use cookie_store::{Cookie, CookieStore};
use url::Url;

use crate::http::Origin;

/// A cookie whose name and value together are longer than this is ignored (browsers' 4096).
pub const MAX_COOKIE_BYTES: usize = 4096;
/// Cookies a jar keeps per domain at most; a new one beyond it is ignored.
pub const MAX_PER_DOMAIN: usize = 64;
/// Cookies a jar keeps at most; a new one beyond it is ignored.
pub const MAX_COOKIES: usize = 256;
/// A `set-cookie` line longer than this is not even parsed (the cookie plus its attributes).
const MAX_LINE: usize = 2 * MAX_COOKIE_BYTES;

/// One user's cookies. Created on the first `set-cookie` a user receives, so a user whose
/// target sets none carries no jar at all.
#[derive(Debug, Default)]
pub struct Jar {
    store: CookieStore,
}

impl Jar {
    /// Stores the cookie of one `set-cookie` header received for `url`; one the rules refuse
    /// (a foreign domain, a malformed line) or the bounds leave no room for is ignored, as a
    /// browser ignores it.
    pub fn store(&mut self, set_cookie: &[u8], url: &Url) {
        if set_cookie.len() > MAX_LINE {
            return;
        }
        let Ok(text) = std::str::from_utf8(set_cookie) else {
            return;
        };
        let Ok(cookie) = Cookie::parse(text, url) else {
            return;
        };
        if cookie.name().len() + cookie.value().len() > MAX_COOKIE_BYTES {
            return;
        }
        let Some(domain) = cookie.domain.as_cow().map(|d| d.into_owned()) else {
            return;
        };
        let path = String::from(&cookie.path);
        let replaces = self.store.contains_any(&domain, &path, cookie.name());
        if !replaces && !cookie.is_expired() && !self.room_for(&domain) {
            return;
        }
        let _ = self.store.insert(cookie.into_owned(), url);
    }

    /// The `cookie` header value for a request to `url` (`a=1; b=2`), appended to `out`;
    /// false when no cookie matches.
    pub fn header(&self, url: &Url, out: &mut String) -> bool {
        let mut any = false;
        for (name, value) in self.store.get_request_values(url) {
            if any {
                out.push_str("; ");
            }
            out.push_str(name);
            out.push('=');
            out.push_str(value);
            any = true;
        }
        any
    }

    /// Cookies held, expired ones included until a full jar purges them.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.store.iter_any().count()
    }

    fn room_for(&mut self, domain: &str) -> bool {
        if self.fits(domain) {
            return true;
        }
        let expired: Vec<(String, String, String)> = self
            .store
            .iter_any()
            .filter(|c| c.is_expired())
            .filter_map(|c| {
                let d = c.domain.as_cow()?.into_owned();
                Some((d, String::from(&c.path), c.name().to_string()))
            })
            .collect();
        for (d, p, n) in expired {
            self.store.remove(&d, &p, &n);
        }
        self.fits(domain)
    }

    fn fits(&self, domain: &str) -> bool {
        let (mut total, mut here) = (0, 0);
        for c in self.store.iter_any() {
            total += 1;
            if c.domain.as_cow().as_deref() == Some(domain) {
                here += 1;
            }
        }
        total < MAX_COOKIES && here < MAX_PER_DOMAIN
    }
}

/// The URL the jar matches a request against: the origin and the request target.
pub fn url_of(origin: &Origin, target: &str) -> Option<Url> {
    let scheme = if origin.tls { "https" } else { "http" };
    let authority = origin.authority.to_str().ok()?;
    Url::parse(&format!("{scheme}://{authority}{target}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    /// The cookie header for `u`, its cookies sorted (the jar's order is a hash map's).
    fn header(jar: &Jar, u: &str) -> String {
        let mut out = String::new();
        jar.header(&url(u), &mut out);
        let mut parts: Vec<&str> = out.split("; ").collect();
        parts.sort();
        parts.join("; ")
    }

    #[test]
    fn cookies_follow_the_rfc_6265_domain_path_and_secure_rules() {
        let mut jar = Jar::default();
        let from = url("http://shop.example.com/account/login");
        jar.store(b"sid=1; Path=/", &from);
        jar.store(b"cart=2; Path=/cart", &from);
        jar.store(b"wide=3; Domain=example.com; Path=/", &from);
        jar.store(b"evil=4; Domain=other.com; Path=/", &from);
        jar.store(b"tls=5; Secure; Path=/", &from);
        assert_eq!(header(&jar, "http://shop.example.com/"), "sid=1; wide=3");
        assert_eq!(
            header(&jar, "http://shop.example.com/cart/x"),
            "cart=2; sid=1; wide=3"
        );
        assert_eq!(header(&jar, "http://www.example.com/"), "wide=3");
        assert_eq!(header(&jar, "http://other.com/"), "");
        assert!(header(&jar, "https://shop.example.com/").contains("tls=5"));
    }

    #[test]
    fn an_expired_cookie_removes_the_one_it_names() {
        let mut jar = Jar::default();
        let from = url("http://127.0.0.1:8080/");
        jar.store(b"sid=1; Path=/", &from);
        assert_eq!(header(&jar, "http://127.0.0.1:8080/a"), "sid=1");
        jar.store(b"sid=; Path=/; Max-Age=0", &from);
        assert_eq!(header(&jar, "http://127.0.0.1:8080/a"), "");
    }

    #[test]
    fn a_jar_keeps_a_bounded_number_of_bounded_cookies() {
        let mut jar = Jar::default();
        let big = format!("big={}", "x".repeat(MAX_COOKIE_BYTES));
        jar.store(big.as_bytes(), &url("http://a.test/"));
        assert_eq!(jar.len(), 0);
        for i in 0..MAX_PER_DOMAIN + 10 {
            jar.store(format!("c{i}=v").as_bytes(), &url("http://a.test/"));
        }
        assert_eq!(jar.len(), MAX_PER_DOMAIN);
        // Replacing a cookie it holds is always allowed.
        jar.store(b"c0=new", &url("http://a.test/"));
        assert!(header(&jar, "http://a.test/").contains("c0=new"));
        for d in 0..10 {
            for i in 0..MAX_PER_DOMAIN {
                jar.store(
                    format!("c{i}=v").as_bytes(),
                    &url(&format!("http://d{d}.test/")),
                );
            }
        }
        assert_eq!(jar.len(), MAX_COOKIES);
    }

    #[test]
    fn a_full_jar_makes_room_by_dropping_expired_cookies() {
        let mut jar = Jar::default();
        let from = url("http://a.test/");
        for i in 0..MAX_PER_DOMAIN {
            jar.store(format!("c{i}=v").as_bytes(), &from);
        }
        jar.store(b"c0=; Max-Age=0", &from);
        jar.store(b"fresh=1", &from);
        assert!(header(&jar, "http://a.test/").contains("fresh=1"));
        assert_eq!(jar.len(), MAX_PER_DOMAIN);
    }
}
