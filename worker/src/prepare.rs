//! What can be worked out once per plan rather than per request: origins, static paths, header
//! values, bodies and stats names. Templates that do need rendering are rendered per request.

use std::sync::Arc;

use bytes::Bytes;
use hatchery_core::plan::{Body, Call, CaptureSource, Plan, Request, Step, Task, UserClass};
use hatchery_core::template::Template;
use hatchery_core::validate;
use hatchery_core::Method;
use http::header::{
    HeaderName, HeaderValue, ACCEPT_ENCODING, CONTENT_TYPE, COOKIE, HOST, USER_AGENT,
};
use http::Uri;

use crate::body;
use crate::http::Origin;
use crate::sendable::{check_no_userinfo, check_plan_header, check_target, encode_non_ascii};
use crate::Error;

/// A plan made ready to run.
#[derive(Debug)]
pub struct Prepared {
    pub plan: Arc<Plan>,
    pub classes: Vec<PreparedClass>,
}

#[derive(Debug)]
pub struct PreparedClass {
    pub on_start: Vec<PreparedStep>,
    pub on_stop: Vec<PreparedStep>,
    pub tasks: Vec<Vec<PreparedStep>>,
    /// Running sums of the task weights, for a weighted pick with one random number.
    pub cumulative_weights: Vec<u64>,
    /// What relative URLs are joined to (scripts' requests resolve theirs per request).
    pub base: Option<Base>,
    /// The class's script, compiled and checked against its `call:` steps.
    pub script: Option<Arc<crate::script::Compiled>>,
}

#[derive(Debug)]
// Built once per plan and read in place on every task: no indirection for the common case.
#[allow(clippy::large_enum_variant)]
pub enum PreparedStep {
    Request(PreparedRequest),
    Call(Call),
}

/// The base every relative path is joined to.
#[derive(Debug, Clone)]
pub struct Base {
    pub origin: Origin,
    /// The host URL's path without its trailing slash ("" for `http://h:80/`).
    pub path: String,
}

impl Base {
    pub fn parse(url: &str) -> Result<Base, String> {
        let uri = validate::host_url(url).map_err(|problem| format!("host {url:?} {problem}"))?;
        let origin = match (uri.scheme(), uri.authority()) {
            (Some(scheme), Some(authority)) => {
                check_no_userinfo(authority.as_str(), url).map_err(|e| e.to_string())?;
                Origin::new(scheme, authority)
            }
            _ => None,
        }
        .ok_or_else(|| format!("host {url:?} must use http:// or https://"))?;
        Ok(Base {
            origin,
            path: uri.path().trim_end_matches('/').to_string(),
        })
    }
}

#[derive(Debug)]
pub struct PreparedRequest {
    pub source: Request,
    pub method: http::Method,
    pub core_method: Method,
    pub url: Url,
    /// The stats name when it does not depend on rendering.
    pub name: Option<Arc<str>>,
    pub static_headers: Vec<(HeaderName, HeaderValue)>,
    pub dynamic_headers: Vec<(HeaderName, Template)>,
    pub body: PreparedBody,
    /// Whether the plan sets these itself (so ours are left out).
    pub sets_host: bool,
    pub sets_user_agent: bool,
    /// The plan sets `cookie` itself: the jar's are not added (as requests leaves a `Cookie`
    /// header given to a request alone).
    pub sets_cookie: bool,
    /// The plan sets `accept-encoding` itself: ours (`gzip, deflate`) is left out.
    pub sets_accept_encoding: bool,
    /// The whole request on the wire, when nothing in it is rendered per request.
    pub wire: Option<Vec<u8>>,
    /// `wire` made ready for HTTP/2 once per plan, in a class that speaks it; `None` otherwise
    /// (and for a script's request, read per request).
    pub h2: Option<crate::http2::Prepared>,
    /// Whether checks or captures read the body (otherwise it is only drained and counted).
    pub needs_body: bool,
    pub needs_json: bool,
    /// Whether a capture reads a response header.
    pub needs_headers: bool,
}

#[derive(Debug)]
pub enum Url {
    /// Known before the run: where to connect and the request target (path and query).
    Static { origin: Arc<Origin>, target: String },
    /// Rendered per request, then joined to `base` when relative.
    Dynamic { base: Option<Base> },
}

#[derive(Debug)]
pub enum PreparedBody {
    Static(Bytes),
    Json,
    Text,
    Form,
    /// A multipart body rendered per request, with the boundary its content type names.
    Multipart(String),
}

impl Prepared {
    /// `host` overrides the plan's host (`--host`). Fails when a relative path has no host to
    /// go to, or a URL is unusable.
    pub fn new(plan: Arc<Plan>, host: Option<&str>) -> Result<Prepared, Error> {
        let scripts = crate::script::compile_all(&plan).map_err(Error::Script)?;
        let classes = plan
            .users
            .iter()
            .zip(scripts)
            .map(|(class, script)| prepare_class(&plan, class, host, script))
            .collect::<Result<_, _>>()?;
        Ok(Prepared { plan, classes })
    }
}

fn prepare_class(
    plan: &Plan,
    class: &UserClass,
    host: Option<&str>,
    script: Option<Arc<crate::script::Compiled>>,
) -> Result<PreparedClass, Error> {
    let base = match host.or(class.host.as_deref()).or(plan.host.as_deref()) {
        Some(url) => Some(Base::parse(url).map_err(Error::Config)?),
        None => None,
    };
    let http2 = plan.http2(class);
    let prep = |steps: &[Step]| -> Result<Vec<PreparedStep>, Error> {
        steps
            .iter()
            .map(|step| match step {
                Step::Request(r) => {
                    if http2 {
                        check_http2_headers(r, &class.name)?;
                    }
                    let mut prepared = prepare_request(r, base.as_ref(), &class.name)?;
                    if http2 {
                        prepared.h2 = crate::http2::Prepared::of(&prepared).map_err(|e| {
                            Error::Config(format!(
                                "{e} (user class {}, line {})",
                                class.name, r.line
                            ))
                        })?;
                    }
                    Ok(PreparedStep::Request(prepared))
                }
                Step::Call(c) => Ok(PreparedStep::Call(c.clone())),
            })
            .collect()
    };
    let mut cumulative_weights = Vec::with_capacity(class.tasks.len());
    let mut sum = 0u64;
    for t in &class.tasks {
        sum += u64::from(t.weight);
        cumulative_weights.push(sum);
    }
    Ok(PreparedClass {
        on_start: prep(&class.on_start)?,
        on_stop: prep(&class.on_stop)?,
        tasks: class
            .tasks
            .iter()
            .map(|t: &Task| prep(&t.steps))
            .collect::<Result<_, _>>()?,
        cumulative_weights,
        base,
        script,
    })
}

/// A class that speaks HTTP/2 cannot send headers that only mean something to one HTTP/1.1
/// connection (RFC 9113 8.2.2): refused here, so `--check` says so, rather than dropped.
fn check_http2_headers(r: &Request, class: &str) -> Result<(), Error> {
    for (name, value) in &r.headers {
        let te_trailers = value
            .as_static()
            .is_some_and(|v| v.eq_ignore_ascii_case("trailers"));
        let name = name.to_ascii_lowercase();
        if crate::http2::connection_specific(name.as_bytes(), te_trailers) {
            return Err(Error::Config(format!(
                "header {name} is connection-specific and HTTP/2 has no place for it: remove \
                 it or set `http2: false` (user class {class}, line {})",
                r.line
            )));
        }
    }
    Ok(())
}

fn prepare_request(
    r: &Request,
    base: Option<&Base>,
    class: &str,
) -> Result<PreparedRequest, Error> {
    let at = |what: String| Error::Config(format!("{what} (user class {class}, line {})", r.line));
    build(r, base, |add_content_type, static_headers| {
        body(r, add_content_type, static_headers)
    })
    .map_err(at)
}

/// Prepares `r` with the body `body` makes (given whether to add its content type, and the
/// static headers to add it to): the plan's body, or one a script built as bytes.
pub(crate) fn build(
    r: &Request,
    base: Option<&Base>,
    body: impl FnOnce(bool, &mut StaticHeaders) -> PreparedBody,
) -> Result<PreparedRequest, String> {
    let url = url(r, base)?;
    let name = stats_name(r, &url);
    let (mut static_headers, dynamic_headers) = headers(r)?;
    let sets = |statics: &StaticHeaders, h: &HeaderName| {
        statics.iter().any(|(k, _)| k == h) || dynamic_headers.iter().any(|(k, _)| k == h)
    };
    let add_content_type = !sets(&static_headers, &CONTENT_TYPE);
    let body = body(add_content_type, &mut static_headers);
    let sets_host = sets(&static_headers, &HOST);
    let sets_user_agent = sets(&static_headers, &USER_AGENT);
    let sets_cookie = sets(&static_headers, &COOKIE);
    let sets_accept_encoding = sets(&static_headers, &ACCEPT_ENCODING);
    let method = to_http_method(r.method);
    let wire = match (&url, &body) {
        (Url::Static { origin, target }, PreparedBody::Static(b)) if dynamic_headers.is_empty() => {
            let head = RequestHead {
                method: &method,
                origin,
                target,
                host: !sets_host,
                user_agent: !sets_user_agent,
                accept_encoding: !sets_accept_encoding,
            };
            let mut out = Vec::new();
            encode_request(&mut out, &head, header_bytes(&static_headers), b);
            Some(out)
        }
        _ => None,
    };
    let reads = Reads::of(r);
    Ok(PreparedRequest {
        source: r.clone(),
        method,
        core_method: r.method,
        url,
        name,
        static_headers,
        dynamic_headers,
        body,
        sets_host,
        sets_user_agent,
        sets_cookie,
        sets_accept_encoding,
        wire,
        h2: None,
        needs_body: reads.body,
        needs_json: reads.json,
        needs_headers: reads.headers,
    })
}

/// The URL, resolved once when neither it nor its query is rendered per request.
fn url(r: &Request, base: Option<&Base>) -> Result<Url, String> {
    let static_query = || r.query.iter().all(|(_, v)| v.as_static().is_some());
    match r.url.as_static() {
        Some(text) if static_query() => {
            let (origin, target) = resolve(&static_text(r, text), base)?;
            Ok(Url::Static {
                origin: Arc::new(origin),
                target,
            })
        }
        _ => Ok(Url::Dynamic {
            base: base.cloned(),
        }),
    }
}

/// A static URL with its static query appended.
fn static_text(r: &Request, url: &str) -> String {
    let mut text = url.to_string();
    append_query(
        &mut text,
        r.query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_static().unwrap_or_default())),
    );
    text
}

/// The stats name: the plan's, or the URL as written when it is not rendered.
fn stats_name(r: &Request, url: &Url) -> Option<Arc<str>> {
    match (&r.name, url) {
        (Some(n), _) => Some(Arc::from(n.as_str())),
        (None, Url::Static { .. }) => r
            .url
            .as_static()
            .map(|s| Arc::from(static_text(r, s).as_str())),
        (None, Url::Dynamic { .. }) => None,
    }
}

pub(crate) type StaticHeaders = Vec<(HeaderName, HeaderValue)>;
type DynamicHeaders = Vec<(HeaderName, Template)>;

/// The plan's headers, checked: those known now as values, the others as templates.
fn headers(r: &Request) -> Result<(StaticHeaders, DynamicHeaders), String> {
    let mut static_headers = Vec::new();
    let mut dynamic_headers = Vec::new();
    for (k, v) in &r.headers {
        let name = validate::header_name(k)?;
        let earlier =
            (static_headers.iter().map(|(k, _)| k)).chain(dynamic_headers.iter().map(|(k, _)| k));
        check_plan_header(&name, earlier).map_err(|e| e.to_string())?;
        match v.as_static() {
            Some(s) => static_headers.push((name, validate::header_value(k, s)?)),
            None => dynamic_headers.push((name, v.clone())),
        }
    }
    Ok((static_headers, dynamic_headers))
}

/// The body, known now when nothing in it is rendered; a JSON, form or multipart body adds its
/// content type when `add_content_type` (the plan sets none).
fn body(r: &Request, add_content_type: bool, static_headers: &mut StaticHeaders) -> PreparedBody {
    let mut content_type = |value: HeaderValue| {
        if add_content_type {
            static_headers.push((CONTENT_TYPE, value));
        }
    };
    let all_static =
        |pairs: &[(String, Template)]| pairs.iter().all(|(_, v)| v.as_static().is_some());
    match &r.body {
        Body::Empty => PreparedBody::Static(Bytes::new()),
        Body::Json(j) => {
            content_type(HeaderValue::from_static("application/json"));
            match j.as_static() {
                Some(b) => PreparedBody::Static(Bytes::copy_from_slice(b)),
                None => PreparedBody::Json,
            }
        }
        Body::Text(t) => match t.as_static() {
            Some(s) => PreparedBody::Static(Bytes::copy_from_slice(s.as_bytes())),
            None => PreparedBody::Text,
        },
        Body::Form(pairs) => {
            content_type(HeaderValue::from_static(body::FORM_TYPE));
            if !all_static(pairs) {
                return PreparedBody::Form;
            }
            let mut out = Vec::new();
            body::form(&mut out, statics(pairs));
            PreparedBody::Static(Bytes::from(out))
        }
        Body::Multipart(m) => {
            let boundary = body::boundary();
            if let Ok(v) = HeaderValue::from_str(&body::multipart_type(&boundary)) {
                content_type(v);
            }
            if !all_static(&m.fields) {
                return PreparedBody::Multipart(boundary);
            }
            let mut out = Vec::new();
            body::multipart(&mut out, &boundary, statics(&m.fields), &m.files);
            PreparedBody::Static(Bytes::from(out))
        }
    }
}

/// Pairs whose values are all static, as text.
fn statics(pairs: &[(String, Template)]) -> impl Iterator<Item = (&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_static().unwrap_or_default()))
}

fn header_bytes(headers: &StaticHeaders) -> impl Iterator<Item = (&[u8], &[u8])> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str().as_bytes(), v.as_bytes()))
}

/// What of a response the request's checks and captures read.
struct Reads {
    body: bool,
    json: bool,
    headers: bool,
}

impl Reads {
    fn of(r: &Request) -> Reads {
        let captures_from = |f: fn(&CaptureSource) -> bool| r.captures.iter().any(|c| f(&c.from));
        let json =
            !r.check.json.is_empty() || captures_from(|s| matches!(s, CaptureSource::Json(_)));
        Reads {
            body: json
                || !r.check.body_contains.is_empty()
                || captures_from(|s| matches!(s, CaptureSource::Regex(_))),
            json,
            headers: captures_from(|s| matches!(s, CaptureSource::Header(_))),
        }
    }
}

/// What a request's head holds besides the plan's headers: the request line, and which of our
/// own headers go first.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    pub method: &'a http::Method,
    pub origin: &'a Origin,
    pub target: &'a str,
    /// Add `host` (the plan sets none).
    pub host: bool,
    /// Add `user-agent` (the plan sets none).
    pub user_agent: bool,
    /// Add `accept-encoding: gzip, deflate` (the plan sets none), as requests does.
    pub accept_encoding: bool,
}

/// Encodes a whole request: `head`, then the plan's `headers`, then the body.
pub fn encode_request<'a>(
    out: &mut Vec<u8>,
    head: &RequestHead<'a>,
    headers: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    body: &[u8],
) {
    let ours = [
        head.host
            .then_some((&b"host"[..], head.origin.authority.as_bytes())),
        head.user_agent
            .then_some((&b"user-agent"[..], crate::USER_AGENT.as_bytes())),
        head.accept_encoding
            .then_some((&b"accept-encoding"[..], &b"gzip, deflate"[..])),
    ];
    crate::h1::encode(
        out,
        head.method.as_str(),
        head.target,
        ours.into_iter().flatten().chain(headers),
        body,
    );
}

pub(crate) fn to_http_method(m: Method) -> http::Method {
    match m {
        Method::Get => http::Method::GET,
        Method::Post => http::Method::POST,
        Method::Put => http::Method::PUT,
        Method::Patch => http::Method::PATCH,
        Method::Delete => http::Method::DELETE,
        Method::Head => http::Method::HEAD,
        // Statistics types of a script's entries, never a request's method (plan requests and
        // `user.http` take Method::ALL only).
        Method::Script | Method::Call => http::Method::GET,
    }
}

/// Splits a rendered URL into where to connect and the request target. Relative URLs are joined
/// to the base.
/// Bytes outside ASCII are percent-encoded; a target holding a space, CR, LF or control, or an
/// authority holding `user:password@`, is refused (see [`crate::sendable`]).
pub fn resolve(url: &str, base: Option<&Base>) -> Result<(Origin, String), String> {
    let unsendable = |e: crate::sendable::Unsendable| e.to_string();
    if url.starts_with('/') {
        let base = base.ok_or_else(|| {
            format!("no host for the relative URL {url:?}: set `host:` in the plan or pass --host")
        })?;
        let target = format!("{}{}", base.path, encode_non_ascii(url));
        check_target(&target).map_err(unsendable)?;
        return Ok((base.origin.clone(), target));
    }
    let uri: Uri = encode_non_ascii(url)
        .parse()
        .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
        return Err(format!("URL {url:?} must start with / or http(s)://"));
    };
    check_no_userinfo(authority.as_str(), url).map_err(unsendable)?;
    let origin =
        Origin::new(scheme, authority).ok_or_else(|| format!("URL {url:?} must use http(s)"))?;
    let target = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    check_target(&target).map_err(unsendable)?;
    Ok((origin, target))
}

/// Appends `?k=v&...` (or `&k=v` after an existing query), percent-encoding keys and values.
pub fn append_query<'a>(url: &mut String, pairs: impl Iterator<Item = (&'a str, &'a str)>) {
    for (k, v) in pairs {
        url.push(if url.contains('?') { '&' } else { '?' });
        encode_component(url, k);
        url.push('=');
        encode_component(url, v);
    }
}

fn encode_component(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_urls_join_the_host_path() {
        let base = Base::parse("http://127.0.0.1:8080/api/").unwrap();
        let (origin, target) = resolve("/a?x=1", Some(&base)).unwrap();
        assert_eq!(origin.port, 8080);
        assert_eq!(origin.host, "127.0.0.1");
        assert_eq!(target, "/api/a?x=1");
    }

    #[test]
    fn absolute_urls_carry_their_own_origin() {
        let (origin, target) = resolve("https://localhost/x", None).unwrap();
        assert!(origin.tls);
        assert_eq!(origin.port, 443);
        assert_eq!(target, "/x");
    }

    #[test]
    fn a_relative_url_without_a_host_is_a_clear_error() {
        let err = resolve("/a", None).unwrap_err();
        assert!(err.contains("--host"), "{err}");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        let mut url = "/search".to_string();
        append_query(&mut url, [("q", "a b&c"), ("n", "1")].into_iter());
        assert_eq!(url, "/search?q=a%20b%26c&n=1");
    }
}
