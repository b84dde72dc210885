//! A target for session behaviour (cookies, redirects, forms) on 127.0.0.1:0 that records every
//! request it receives, so a test can hold the binary's report against the server's own log.
//!
//! - `POST /login`: sets a new session cookie `sid=s-N` and answers `302` to `/home`.
//! - `GET /home`: `200 welcome` with a `sid` cookie the server issued, `401` otherwise.
//! - `/redirect/CODE?to=URL`: answers CODE with `location: URL` (as given, not decoded).
//! - `/chain/N`: `302` to `/chain/N-1`; `/chain/0` answers `200 end`.
//! - `/loop`: `302` to itself.
//! - anything else: `200` and the body `METHOD PATH` (an echo of what arrived).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request as the server received it.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub cookie: Option<String>,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub accept_encoding: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    seen: Vec<Seen>,
    sessions: Vec<String>,
}

/// A running session server; stops when dropped.
#[derive(Debug)]
pub struct SessionServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl SessionServer {
    pub async fn start() -> SessionServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let state: Arc<Mutex<State>> = Arc::default();
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| answer(state.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        SessionServer { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Requests received for `method` and `path`.
    pub fn count(&self, method: &str, path: &str) -> u64 {
        let state = self.state.lock().unwrap();
        state
            .seen
            .iter()
            .filter(|s| s.method == method && s.path == path)
            .count() as u64
    }

    /// The session cookies issued by `POST /login` (`sid=s-N`).
    pub fn sessions(&self) -> Vec<String> {
        self.state.lock().unwrap().sessions.clone()
    }
}

impl Drop for SessionServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn header(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

async fn answer(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut seen = Seen {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        query: req.uri().query().map(str::to_string),
        cookie: header(&req, "cookie"),
        authorization: header(&req, "authorization"),
        content_type: header(&req, "content-type"),
        accept_encoding: header(&req, "accept-encoding"),
        body: Vec::new(),
    };
    seen.body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let mut state = state.lock().unwrap();
    let response = route(&mut state, &seen);
    state.seen.push(seen);
    Ok(response)
}

fn route(state: &mut State, seen: &Seen) -> Response<Full<Bytes>> {
    let path = seen.path.as_str();
    if seen.method == "POST" && path == "/login" {
        let sid = format!("s-{}", state.sessions.len() + 1);
        state.sessions.push(sid.clone());
        return redirect(302, "/home", Some(format!("sid={sid}; Path=/; HttpOnly")));
    }
    if path == "/home" {
        let has_session = seen.cookie.as_deref().is_some_and(|c| {
            c.split("; ")
                .filter_map(|kv| kv.strip_prefix("sid="))
                .any(|sid| state.sessions.iter().any(|s| s == sid))
        });
        return if has_session {
            text(StatusCode::OK, "welcome".into())
        } else {
            text(StatusCode::UNAUTHORIZED, "log in first".into())
        };
    }
    if let Some(code) = path.strip_prefix("/redirect/") {
        let to = seen
            .query
            .as_deref()
            .and_then(|q| q.strip_prefix("to="))
            .unwrap_or("/");
        return redirect(code.parse().unwrap_or(302), to, None);
    }
    if let Some(n) = path.strip_prefix("/chain/") {
        let n: u32 = n.parse().unwrap_or(0);
        return if n == 0 {
            text(StatusCode::OK, "end".into())
        } else {
            redirect(302, &format!("/chain/{}", n - 1), None)
        };
    }
    if path == "/loop" {
        return redirect(302, "/loop", None);
    }
    text(StatusCode::OK, format!("{} {}", seen.method, path))
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

fn redirect(code: u16, to: &str, cookie: Option<String>) -> Response<Full<Bytes>> {
    let mut r = text(
        StatusCode::from_u16(code).unwrap_or(StatusCode::FOUND),
        String::new(),
    );
    if let Ok(v) = to.parse() {
        r.headers_mut().insert("location", v);
    }
    if let Some(c) = cookie.and_then(|c| c.parse().ok()) {
        r.headers_mut().insert("set-cookie", c);
    }
    r
}
