//! A user's HTTP session: one request of the plan sent as requests' `Session` sends it, with
//! the user's cookies, following redirects, on the user's connections. [`Session::run`] is the
//! exchange [`crate::user::User::send`] times; the rules of redirects are in [`crate::redirect`].

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, AUTHORIZATION, CONTENT_TYPE, COOKIE, HOST, LOCATION, SET_COOKIE};
use http::{HeaderValue, Method};

use crate::coding::{self, Coding};
use crate::h1::{self, Keep};
use crate::http::{Connector, Origin, Pool};
use crate::jar::{url_of, Jar};
use crate::prepare::{encode_request, resolve, PreparedBody, PreparedRequest, RequestHead};
use crate::redirect::{self, MAX_REDIRECTS};

pub(crate) type Response = h1::Response;

/// What a request renders once, whatever it is sent to (a redirect sends it again); `None`
/// (nothing allocated, nothing held) for a request with nothing to render.
#[derive(Debug)]
pub(crate) struct Rendered {
    pub body: Bytes,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// Where one request of a chain goes, and how it differs from the plan's request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hop<'a> {
    pub origin: &'a Arc<Origin>,
    pub target: &'a str,
    pub method: &'a Method,
    /// The plan's request as written (not a redirect's).
    pub first: bool,
    /// The body (and its content type) go along.
    pub body: bool,
    /// The chain left the first request's origin: the plan's `authorization` and `host` stay
    /// behind (requests' `should_strip_auth`).
    pub foreign: bool,
}

impl<'a> Hop<'a> {
    /// The plan's request to `origin` and `target`.
    pub fn first(req: &'a PreparedRequest, origin: &'a Arc<Origin>, target: &'a str) -> Hop<'a> {
        Hop {
            origin,
            target,
            method: &req.method,
            first: true,
            body: true,
            foreign: false,
        }
    }
}

/// The request a redirect leads to, owned.
#[derive(Debug)]
struct Next {
    origin: Arc<Origin>,
    target: String,
    method: Method,
    body: bool,
    foreign: bool,
}

impl Next {
    fn hop(&self) -> Hop<'_> {
        Hop {
            origin: &self.origin,
            target: &self.target,
            method: &self.method,
            first: false,
            body: self.body,
            foreign: self.foreign,
        }
    }

    /// Where the `location` of a `status` response to `hop` leads.
    fn of(hop: Hop<'_>, status: u16, location: &[u8]) -> Result<Next, String> {
        let refused = |why: &dyn std::fmt::Display| {
            format!(
                "redirect refused: location {:?} {why}",
                String::from_utf8_lossy(location)
            )
        };
        let from = url_of(hop.origin, hop.target).ok_or_else(|| refused(&"has no base URL"))?;
        let to = redirect::location(&from, location).map_err(|e| refused(&e))?;
        // The same rules as any URL of the plan: core's for the origin, the worker's for what
        // goes on the request line.
        hatchery_core::validate::host_url(&to.origin().ascii_serialization())
            .map_err(|e| refused(&e))?;
        let (origin, target) = resolve(to.as_str(), None).map_err(|e| refused(&e))?;
        let (method, body) = redirect::method_after(status, hop.method);
        Ok(Next {
            origin: Arc::new(origin),
            target,
            method,
            body: hop.body && body,
            foreign: hop.foreign || redirect::strips_auth(&from, &to),
        })
    }
}

/// What of the user a request's exchange uses, borrowed apart from its timer.
#[derive(Debug)]
pub(crate) struct Session<'u> {
    pub pool: &'u mut Pool,
    pub connector: &'u Connector,
    /// `None` when the user keeps no cookies.
    pub jar: Option<&'u mut Option<Box<Jar>>>,
    pub wire: &'u mut Vec<u8>,
}

impl Session<'_> {
    /// Follows the redirect `outcome` (the response to `first`, which [`redirects`]) and those
    /// after it, at most [`MAX_REDIRECTS`]: the final response, or the failure that ended the
    /// chain. The caller boxes it: a chain's state is allocated only when a response
    /// redirects, so every user's task stays as small as a single request needs.
    pub async fn follow(
        mut self,
        req: &PreparedRequest,
        rendered: Option<&Rendered>,
        first: Hop<'_>,
        keep: Keep,
        mut outcome: Outcome,
    ) -> Outcome {
        let mut next: Option<Next> = None;
        let mut followed = 0;
        loop {
            let hop = next.as_ref().map_or(first, Next::hop);
            if followed > 0 {
                outcome = self.once(req, rendered, hop, keep).await;
                if !redirects(req, &outcome) {
                    return outcome;
                }
            }
            let status = outcome.response.status;
            if followed == MAX_REDIRECTS {
                return Outcome::failed(status, format!("too many redirects ({MAX_REDIRECTS})"));
            }
            followed += 1;
            let location = outcome.response.headers.get(LOCATION).map(|l| l.as_bytes());
            match Next::of(hop, status, location.unwrap_or_default()) {
                Ok(n) => next = Some(n),
                Err(message) => return Outcome::failed(status, message),
            }
        }
    }

    /// One request of the chain, with the jar's cookies; stores the cookies of its response.
    async fn once(
        &mut self,
        req: &PreparedRequest,
        rendered: Option<&Rendered>,
        hop: Hop<'_>,
        keep: Keep,
    ) -> Outcome {
        let jar = self.jar.as_ref().and_then(|j| j.as_deref());
        let request = request(jar, self.wire, req, rendered, hop);
        let outcome = exchange(self.pool, self.connector, hop.origin, request, keep).await;
        if let Some(jar) = self.jar.as_deref_mut() {
            store_cookies(jar, &outcome.response, hop);
        }
        outcome
    }
}

/// Decodes the final response's body when a check or capture reads it (`read`), and returns
/// the size the statistics report: the decoded size, Locust's `len(response.content)`. A gzip
/// body nobody reads is not decoded: its trailer holds its size. Decoding past `max_body` fails
/// the request, as a body received past it does.
pub(crate) fn decode_body(outcome: &mut Outcome, read: bool, max_body: u64) -> u64 {
    let r = &mut outcome.response;
    if outcome.error.is_some() {
        return r.body_len;
    }
    let limit = h1::body_limit(max_body);
    let decoded = match r.coding {
        Coding::Identity | Coding::Other => return r.body_len,
        Coding::Gzip if !read => return coding::gzip_size(r.tail),
        Coding::Deflate if !read => coding::decode(Coding::Deflate, &r.body, limit, None),
        c => {
            let mut out = Vec::new();
            let decoded = coding::decode(c, &r.body, limit, Some(&mut out));
            r.body = Bytes::from(out);
            decoded
        }
    };
    decoded.unwrap_or_else(|e| {
        outcome.error = Some(e.to_string());
        outcome.response.body_len
    })
}

/// Stores the cookies `response` sets, making the jar on the first one.
pub(crate) fn store_cookies(jar: &mut Option<Box<Jar>>, response: &Response, hop: Hop<'_>) {
    let mut cookies = response.headers.get_all(SET_COOKIE).iter().peekable();
    if cookies.peek().is_none() {
        return;
    }
    let Some(url) = url_of(hop.origin, hop.target) else {
        return;
    };
    let jar = jar.get_or_insert_with(Box::default);
    for value in cookies {
        jar.store(value.as_bytes(), &url);
    }
}

/// `req` encoded for `hop` (the prepared bytes when nothing differs), with the jar's cookies.
/// The cookie header and its URL (allocations) live only while the request is encoded, not
/// across its exchange: every user's task is as large as its largest state.
pub(crate) fn request<'a>(
    jar: Option<&Jar>,
    wire: &'a mut Vec<u8>,
    req: &'a PreparedRequest,
    rendered: Option<&Rendered>,
    hop: Hop<'_>,
) -> h1::Request<'a> {
    let mut cookie = String::new();
    if let (Some(jar), false) = (jar, req.sets_cookie && hop.first) {
        if let Some(url) = url_of(hop.origin, hop.target) {
            jar.header(&url, &mut cookie);
        }
    }
    let (bytes, h2): (&[u8], _) = match &req.wire {
        Some(w) if cookie.is_empty() && hop.first => (w, req.h2.as_ref()),
        _ => {
            encode(wire, req, rendered, hop, &cookie);
            (wire, None)
        }
    };
    h1::Request {
        bytes,
        is_head: hop.method == Method::HEAD,
        idempotent: hop.method.is_idempotent(),
        h2,
    }
}

/// Whether `outcome` is a redirect the request follows.
pub(crate) fn redirects(req: &PreparedRequest, outcome: &Outcome) -> bool {
    req.source.follow_redirects
        && outcome.error.is_none()
        && redirect::is_redirect(outcome.response.status)
        && outcome.response.headers.contains_key(LOCATION)
}

/// Encodes `req` for `hop` into `out`, with `cookie` (unless empty) as its `cookie` header. A
/// redirect leaves behind what requests' `resolve_redirects` drops: the body and its content
/// type after a 301, 302 or 303, `authorization` (and a plan's `host`) on another origin, and
/// the plan's `cookie` (the jar's is built for the new URL).
fn encode(
    out: &mut Vec<u8>,
    req: &PreparedRequest,
    rendered: Option<&Rendered>,
    hop: Hop<'_>,
    cookie: &str,
) {
    out.clear();
    let head = RequestHead {
        method: hop.method,
        origin: hop.origin,
        target: hop.target,
        host: !req.sets_host || hop.foreign,
        user_agent: !req.sets_user_agent,
        accept_encoding: !req.sets_accept_encoding,
    };
    let kept = |name: &HeaderName| {
        !(!hop.body && name == CONTENT_TYPE
            || hop.foreign && (name == AUTHORIZATION || name == HOST)
            || !hop.first && name == COOKIE)
    };
    let jar = (!cookie.is_empty()).then_some((COOKIE.as_str().as_bytes(), cookie.as_bytes()));
    let body: &[u8] = match (hop.body, rendered, &req.body) {
        (false, ..) => &[],
        (true, Some(r), _) => &r.body,
        (true, None, PreparedBody::Static(b)) => b,
        (true, None, _) => &[],
    };
    encode_request(
        out,
        &head,
        req.static_headers
            .iter()
            .chain(rendered.into_iter().flat_map(|r| r.headers.iter()))
            .filter(|(k, _)| kept(k))
            .map(|(k, v)| (k.as_str().as_bytes(), v.as_bytes()))
            .chain(jar),
        body,
    );
}

pub(crate) struct Outcome {
    pub error: Option<String>,
    pub response: Response,
}

impl Outcome {
    pub fn failed(status: u16, error: String) -> Outcome {
        Outcome {
            error: Some(error),
            response: Response {
                status,
                ..Response::default()
            },
        }
    }
}

/// One request on the user's connection to `origin`. A keep-alive connection that the server
/// closed just as the request went out is replaced, and the request sent once more.
pub(crate) async fn exchange(
    pool: &mut Pool,
    connector: &Connector,
    origin: &Arc<Origin>,
    request: h1::Request<'_>,
    keep: Keep,
) -> Outcome {
    let mut retried = false;
    loop {
        let conn = match if retried {
            pool.reconnect(connector, origin).await
        } else {
            pool.get(connector, origin).await
        } {
            Ok(c) => c,
            Err(e) => return Outcome::failed(0, e.to_string()),
        };
        let reused = conn.served();
        match conn.exchange(request, origin, keep).await {
            Ok(response) => {
                if !conn.is_open() {
                    // Closed by the server (or out of step): free its socket now, not when the
                    // user next needs a connection.
                    pool.discard(origin);
                }
                return Outcome {
                    error: None,
                    response,
                };
            }
            Err(e) if e.is_stale() && reused && !retried && request.idempotent => retried = true,
            Err(e) if e.is_stale() && reused && !request.idempotent => {
                pool.discard(origin);
                return Outcome::failed(0, h1::not_resent(&e));
            }
            Err(e) => {
                if !e.keeps_connection() {
                    pool.discard(origin);
                }
                return Outcome::failed(0, e.to_string());
            }
        }
    }
}
