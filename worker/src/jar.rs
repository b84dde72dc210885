//! A user's cookie jar: RFC 6265 storage and matching (domain, path, expiry, `Secure`) from the
//! `cookie_store` crate, bounded the way browsers bound theirs so that a target cannot make a
//! worker hold more than a few hundred small cookies per user, whatever it sends.

use cookie_store::{Cookie, CookieError, CookieStore, RawCookie};
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

/// Why the jar did not take a cookie. A target's are ignored silently, as a browser ignores
/// them; a script's setting is refused with this, so that the script learns why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the name is empty")]
    EmptyName,
    #[error("the {part} holds {found:?}, which a cookie cannot carry (printable ASCII only, no `;`{more})")]
    Unsendable {
        part: &'static str,
        found: char,
        /// What else that part may not hold.
        more: &'static str,
    },
    #[error("{part} of {len} bytes is over the most, {max}")]
    TooLong {
        part: &'static str,
        len: usize,
        max: usize,
    },
    #[error("the path must start with `/`, found {0:?}")]
    RelativePath(String),
    #[error("{host} cannot set a cookie for the domain {domain:?} (only for itself or a domain it is under, RFC 6265 5.3)")]
    ForeignDomain { domain: String, host: String },
    #[error("the jar holds {MAX_PER_DOMAIN} cookies for {0} already, its most for one domain")]
    DomainFull(String),
    #[error("the jar holds {MAX_COOKIES} cookies already, its most")]
    Full,
    #[error("not a cookie: {0}")]
    Malformed(String),
}

/// A cookie a script sets, with the attributes a `set-cookie` line would give it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Setting<'a> {
    pub name: &'a str,
    pub value: &'a str,
    /// `None`: a host-only cookie of the URL's host.
    pub domain: Option<&'a str>,
    /// `None`: `/` (as `requests`' `cookies.set`), not the URL's directory.
    pub path: Option<&'a str>,
    pub secure: bool,
    /// Seconds from now it lives; 0 or less removes the cookie it names. `None`: until the
    /// user stops.
    pub max_age: Option<i64>,
}

/// The longest domain and path a script may give a cookie: with a name and value of at most
/// [`MAX_COOKIE_BYTES`], its `set-cookie` line stays under [`MAX_LINE`].
const MAX_DOMAIN: usize = 255;
const MAX_PATH: usize = 2048;

impl Setting<'_> {
    /// The `set-cookie` line a host would send for this setting, its parts checked first so that
    /// none can carry another attribute or a line break.
    fn line(&self) -> Result<String, Refused> {
        if self.name.is_empty() {
            return Err(Refused::EmptyName);
        }
        bounded(
            "a name and value",
            self.name.len() + self.value.len(),
            MAX_COOKIE_BYTES,
        )?;
        sendable(
            "name",
            self.name,
            |c| c == '=' || c == ' ',
            ", `=` or space",
        )?;
        sendable("value", self.value, |_| false, "")?;
        if self.value.starts_with(' ') || self.value.ends_with(' ') {
            let more = ", nor a space at either end";
            return Err(Refused::Unsendable {
                part: "value",
                found: ' ',
                more,
            });
        }
        let path = self.path.unwrap_or("/");
        bounded("a path", path.len(), MAX_PATH)?;
        sendable("path", path, |c| c == ' ', " or space")?;
        if !path.starts_with('/') {
            return Err(Refused::RelativePath(path.to_string()));
        }
        let mut line = format!("{}={}; Path={path}", self.name, self.value);
        if let Some(domain) = self.domain {
            bounded("a domain", domain.len(), MAX_DOMAIN)?;
            sendable("domain", domain, |c| c == ' ', " or space")?;
            if domain.trim_start_matches('.').is_empty() {
                return Err(Refused::Malformed(format!("empty domain {domain:?}")));
            }
            line.push_str("; Domain=");
            line.push_str(domain);
        }
        if self.secure {
            line.push_str("; Secure");
        }
        if let Some(seconds) = self.max_age {
            line.push_str(&format!("; Max-Age={}", seconds.max(0)));
        }
        Ok(line)
    }
}

/// `text` holds printable ASCII only, without `;` or what `also` refuses.
fn sendable(
    part: &'static str,
    text: &str,
    also: impl Fn(char) -> bool,
    more: &'static str,
) -> Result<(), Refused> {
    match text
        .chars()
        .find(|&c| !(' '..='~').contains(&c) || c == ';' || also(c))
    {
        Some(found) => Err(Refused::Unsendable { part, found, more }),
        None => Ok(()),
    }
}

fn bounded(part: &'static str, len: usize, max: usize) -> Result<(), Refused> {
    match len > max {
        true => Err(Refused::TooLong { part, len, max }),
        false => Ok(()),
    }
}

impl Jar {
    /// Stores the cookie of one `set-cookie` header received for `url`; one the rules refuse
    /// (a foreign domain, a malformed line) or the bounds leave no room for is ignored, as a
    /// browser ignores it.
    pub fn store(&mut self, set_cookie: &[u8], url: &Url) {
        if set_cookie.len() > MAX_LINE {
            return;
        }
        if let Ok(text) = std::str::from_utf8(set_cookie) {
            let _ = self.insert(text, url);
        }
    }

    /// Stores a cookie a script sets for `url`, as if `url`'s host had sent it with
    /// `set-cookie`: the same RFC 6265 rules and the same bounds, but refused with why.
    pub fn set(&mut self, setting: &Setting<'_>, url: &Url) -> Result<(), Refused> {
        self.insert(&setting.line()?, url)
    }

    /// The value of the cookie `name` a request to `url` would carry (of two, the one with
    /// the longer path, sent first).
    pub fn get(&self, name: &str, url: &Url) -> Option<&str> {
        self.sent(url)
            .into_iter()
            .find(|c| c.name() == name)
            .map(|c| c.value())
    }

    /// The cookies a request to `url` would carry, by name (of two with one name, the one
    /// with the longer path), sorted by name.
    pub fn values(&self, url: &Url) -> Vec<(&str, &str)> {
        let mut values: Vec<(&str, &str)> = Vec::new();
        for c in self.sent(url) {
            if !values.iter().any(|(n, _)| *n == c.name()) {
                values.push((c.name(), c.value()));
            }
        }
        values.sort_unstable();
        values
    }

    /// The cookies for `url` in the order a request sends them: longer paths first.
    fn sent(&self, url: &Url) -> Vec<&Cookie<'static>> {
        let mut cookies = self.store.matches(url);
        cookies.sort_by_key(|c| std::cmp::Reverse(String::from(&c.path).len()));
        cookies
    }

    fn insert(&mut self, line: &str, url: &Url) -> Result<(), Refused> {
        let raw = RawCookie::parse(line).map_err(|e| Refused::Malformed(e.to_string()))?;
        let cookie = Cookie::try_from_raw_cookie(&raw, url).map_err(|e| match e {
            CookieError::DomainMismatch => Refused::ForeignDomain {
                domain: raw.domain().unwrap_or_default().to_string(),
                host: url.host_str().unwrap_or_default().to_string(),
            },
            other => Refused::Malformed(other.to_string()),
        })?;
        let len = cookie.name().len() + cookie.value().len();
        bounded("a name and value", len, MAX_COOKIE_BYTES)?;
        let Some(domain) = cookie.domain.as_cow().map(|d| d.into_owned()) else {
            return Err(Refused::Malformed("no domain".to_string()));
        };
        let path = String::from(&cookie.path);
        let replaces = self.store.contains_any(&domain, &path, cookie.name());
        if !replaces && !cookie.is_expired() {
            self.room_for(&domain)?;
        }
        match self.store.insert(cookie.into_owned(), url) {
            // An expired cookie removes the one it names, if any, and is not kept.
            Ok(_) | Err(CookieError::Expired) => Ok(()),
            Err(e) => Err(Refused::Malformed(e.to_string())),
        }
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

    fn room_for(&mut self, domain: &str) -> Result<(), Refused> {
        if self.fits(domain).is_ok() {
            return Ok(());
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

    fn fits(&self, domain: &str) -> Result<(), Refused> {
        let (mut total, mut here) = (0, 0);
        for c in self.store.iter_any() {
            total += 1;
            if c.domain.as_cow().as_deref() == Some(domain) {
                here += 1;
            }
        }
        if here >= MAX_PER_DOMAIN {
            return Err(Refused::DomainFull(domain.to_string()));
        }
        if total >= MAX_COOKIES {
            return Err(Refused::Full);
        }
        Ok(())
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

    fn setting<'a>(name: &'a str, value: &'a str) -> Setting<'a> {
        Setting {
            name,
            value,
            ..Setting::default()
        }
    }

    #[test]
    fn a_cookie_a_script_sets_is_sent_as_one_its_host_set() {
        let mut jar = Jar::default();
        let from = url("http://shop.example.com/account/login");
        jar.set(&setting("sid", "1"), &from).unwrap();
        let wide = Setting {
            domain: Some("example.com"),
            ..setting("wide", "2")
        };
        jar.set(&wide, &from).unwrap();
        let cart = Setting {
            path: Some("/cart"),
            ..setting("sid", "cart")
        };
        jar.set(&cart, &from).unwrap();
        let tls = Setting {
            secure: true,
            ..setting("tls", "3")
        };
        jar.set(&tls, &from).unwrap();
        // The default path is `/`, not the URL's directory (`/account`).
        assert_eq!(header(&jar, "http://shop.example.com/"), "sid=1; wide=2");
        assert_eq!(header(&jar, "http://www.example.com/x"), "wide=2");
        assert!(header(&jar, "https://shop.example.com/").contains("tls=3"));
        // Of two cookies named alike, the one with the longer path is sent first and read.
        let (home, cart) = (
            url("http://shop.example.com/"),
            url("http://shop.example.com/cart/1"),
        );
        assert_eq!(jar.get("sid", &home), Some("1"));
        assert_eq!(jar.get("sid", &cart), Some("cart"));
        assert_eq!(jar.get("tls", &home), None);
        assert_eq!(jar.values(&cart), [("sid", "cart"), ("wide", "2")]);
        // A max_age of 0 removes the cookie it names, as `Max-Age=0` from the host does.
        let gone = Setting {
            max_age: Some(0),
            ..setting("sid", "")
        };
        jar.set(&gone, &from).unwrap();
        assert_eq!(jar.get("sid", &home), None);
        let later = Setting {
            max_age: Some(3600),
            ..setting("later", "1")
        };
        jar.set(&later, &from).unwrap();
        assert_eq!(jar.get("later", &home), Some("1"));
    }

    #[test]
    fn a_cookie_a_host_could_not_set_or_a_header_could_not_carry_is_refused_with_why() {
        let mut jar = Jar::default();
        let from = url("http://shop.example.com/");
        let set = |jar: &mut Jar, s: Setting<'_>| jar.set(&s, &from).unwrap_err().to_string();
        for (name, value, found) in [
            ("a\r\nX-Evil", "1", '\r'),
            ("a", "1\nX-Evil: 1", '\n'),
            ("a", "1; Domain=other.com", ';'),
            ("a;b", "1", ';'),
            ("a\u{0}", "1", '\u{0}'),
            ("a", "\u{7f}", '\u{7f}'),
            ("a=b", "1", '='),
            ("a b", "1", ' '),
            ("a", "é", 'é'),
        ] {
            let err = set(&mut jar, setting(name, value));
            assert!(
                err.contains(&format!("{found:?}")),
                "{name:?}={value:?}: {err}"
            );
        }
        assert!(set(&mut jar, setting("a", " 1")).contains("a space at either end"));
        assert_eq!(set(&mut jar, setting("", "1")), "the name is empty");
        let foreign = Setting {
            domain: Some("other.com"),
            ..setting("a", "1")
        };
        assert_eq!(
            set(&mut jar, foreign),
            "shop.example.com cannot set a cookie for the domain \"other.com\" (only for itself or a domain it is under, RFC 6265 5.3)"
        );
        let relative = Setting {
            path: Some("cart"),
            ..setting("a", "1")
        };
        assert!(set(&mut jar, relative).contains("must start with `/`"));
        let injected = Setting {
            path: Some("/; Domain=other.com"),
            ..setting("a", "1")
        };
        assert!(set(&mut jar, injected).contains("';'"));
        let big = "x".repeat(MAX_COOKIE_BYTES);
        assert_eq!(
            set(&mut jar, setting("big", &big)),
            "a name and value of 4099 bytes is over the most, 4096"
        );
        let long = "/".repeat(MAX_PATH + 1);
        let long = Setting {
            path: Some(&long),
            ..setting("a", "1")
        };
        assert!(set(&mut jar, long).starts_with("a path of 2049 bytes"));
        assert_eq!(jar.len(), 0);
    }

    #[test]
    fn a_script_meets_the_jars_bounds_as_a_target_does() {
        let mut jar = Jar::default();
        let from = url("http://a.test/");
        for i in 0..MAX_PER_DOMAIN {
            jar.set(&setting(&format!("c{i}"), "v"), &from).unwrap();
        }
        assert_eq!(
            jar.set(&setting("one-more", "v"), &from),
            Err(Refused::DomainFull("a.test".to_string()))
        );
        // Replacing one it holds is always allowed.
        jar.set(&setting("c0", "new"), &from).unwrap();
        assert_eq!(jar.get("c0", &from), Some("new"));
        for d in 1..MAX_COOKIES / MAX_PER_DOMAIN {
            let from = url(&format!("http://d{d}.test/"));
            for i in 0..MAX_PER_DOMAIN {
                jar.set(&setting(&format!("c{i}"), "v"), &from).unwrap();
            }
        }
        assert_eq!(
            jar.set(&setting("c", "v"), &url("http://more.test/")),
            Err(Refused::Full)
        );
        assert_eq!(jar.len(), MAX_COOKIES);
    }
}
