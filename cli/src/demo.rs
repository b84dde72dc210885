//! The demo target: a small HTTP server with the routes the examples use, so the quickstart runs
//! with nothing else installed. It listens on loopback unless told otherwise.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::args::RunArgs;

/// The plan `hatchery demo` runs when no -f is given.
const QUICKSTART: &str = include_str!("../../examples/quickstart.yaml");

/// `hatchery demo`: the demo target on a free loopback port, in its own thread and runtime so it
/// does not share the users' runtime, and a headless run against it.
pub fn run_demo(mut args: RunArgs) -> i32 {
    let listener = match std::net::TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on 127.0.0.1: {e}");
            return crate::exit::CONFIG;
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return crate::exit::CONFIG;
        }
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let _ = listener.set_nonblocking(true);
            let listener = TcpListener::from_std(listener)?;
            serve(listener, async {
                let _ = stopped.await;
            })
            .await
        })
    });
    tracing::info!("demo target listening on http://{addr}");
    args.host = Some(format!("http://{addr}"));
    args.headless = true;
    args.users.get_or_insert(20);
    args.spawn_rate.get_or_insert(10.0);
    args.run_time.get_or_insert(Duration::from_secs(20));
    let code = match &args.plan {
        Some(path) => match hatchery_core::Plan::load(path) {
            Ok(plan) => crate::run_plan(&args, plan, &path.display().to_string()),
            Err(d) => {
                eprintln!("{d}");
                crate::exit::CONFIG
            }
        },
        None => match hatchery_core::Plan::parse(
            QUICKSTART,
            "examples/quickstart.yaml",
            &hatchery_core::plan::Dir(".".into()),
        ) {
            Ok(plan) => crate::run_plan(&args, plan, "examples/quickstart.yaml"),
            Err(d) => {
                eprintln!("{d}");
                crate::exit::CONFIG
            }
        },
    };
    let _ = stop.send(());
    if let Ok(Err(e)) = server.join() {
        tracing::warn!("demo target: {e}");
    }
    code
}

/// The longest `/slow` will wait, so no request can hold a connection for long.
const MAX_SLOW: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct State {
    orders: AtomicU64,
    requests: AtomicU64,
    started: std::time::Instant,
}

impl Default for State {
    fn default() -> State {
        State {
            orders: AtomicU64::default(),
            requests: AtomicU64::default(),
            started: std::time::Instant::now(),
        }
    }
}

/// How long a job takes (`POST /jobs`, then `GET /jobs/ID` until `done`).
const JOB_MS: u128 = 300;
/// The catalogue: products 1..=PRODUCTS, PAGE to a page.
const PRODUCTS: u64 = 1000;
const PAGE: u64 = 20;

/// `GET /products?page=N` (1 when missing or not a number): the page's ids and the next page.
fn catalogue_page(query: &str) -> String {
    let page = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("page="))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1)
        .max(1);
    let first = (page - 1).saturating_mul(PAGE).saturating_add(1);
    let ids: Vec<String> = (first..first.saturating_add(PAGE))
        .take_while(|id| *id <= PRODUCTS)
        .map(|id| id.to_string())
        .collect();
    let next = if first.saturating_add(PAGE) <= PRODUCTS {
        page.saturating_add(1).to_string()
    } else {
        "null".to_string()
    };
    format!(r#"{{"items":[{}],"next":{next}}}"#, ids.join(","))
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let state = Arc::new(State::default());
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => r?,
            _ = &mut shutdown => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(state.clone(), req));
            // Client resets are routine under load; nothing to report.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    // What the target has served, for checking a run's totals (not counted itself).
    if req.method() == Method::GET && req.uri().path() == "/_stats" {
        let n = state.requests.load(Ordering::Relaxed);
        return Ok(json(StatusCode::OK, format!(r#"{{"requests":{n}}}"#)));
    }
    state.requests.fetch_add(1, Ordering::Relaxed);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let authorized = req.headers().get("authorization").is_some();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let response = match (&method, segments.as_slice()) {
        (&Method::GET, [""]) => text(StatusCode::OK, "hatchery demo target\n"),
        (&Method::GET, ["a"]) | (&Method::POST, ["b"]) => text(StatusCode::OK, "ok"),
        // A catalogue of 1,000 products in pages of 20: `{"items": [ids], "next": page or null}`.
        (&Method::GET, ["products"]) => json(StatusCode::OK, catalogue_page(&query)),
        // A job that is done 300 ms after it was made. Its id is the time it was made (ms since
        // the target started), so the target keeps nothing per job.
        (&Method::POST, ["jobs"]) if authorized => {
            let made = state.started.elapsed().as_millis();
            json(StatusCode::ACCEPTED, format!(r#"{{"id":{made}}}"#))
        }
        (&Method::GET, ["jobs", id]) => match id.parse::<u128>() {
            Ok(made) => {
                let now = state.started.elapsed().as_millis();
                let state = if now >= made.saturating_add(JOB_MS) {
                    "done"
                } else {
                    "running"
                };
                json(
                    StatusCode::OK,
                    format!(r#"{{"id":{made},"state":"{state}"}}"#),
                )
            }
            Err(_) => text(StatusCode::NOT_FOUND, "no such job"),
        },
        (&Method::GET, ["products", id]) => match id.parse::<u64>() {
            Ok(id) => json(
                StatusCode::OK,
                format!(
                    r#"{{"id":{id},"name":"product {id}","price":{}}}"#,
                    100 + id % 900
                ),
            ),
            Err(_) => text(StatusCode::NOT_FOUND, "no such product"),
        },
        (&Method::POST, ["login"]) => {
            let user = serde_user(&body).unwrap_or_else(|| "guest".to_string());
            json(StatusCode::OK, format!(r#"{{"token":"token-{user}"}}"#))
        }
        (&Method::POST, ["cart"]) if authorized => {
            json(StatusCode::OK, r#"{"items":1}"#.to_string())
        }
        (&Method::POST, ["checkout"]) if authorized => {
            let n = state.orders.fetch_add(1, Ordering::Relaxed) + 1;
            json(StatusCode::CREATED, format!(r#"{{"order_id":{n}}}"#))
        }
        (&Method::POST, ["cart" | "checkout" | "jobs"]) => {
            text(StatusCode::UNAUTHORIZED, "log in first")
        }
        (&Method::GET, ["slow"]) => {
            let ms = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("ms="))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(100);
            tokio::time::sleep(Duration::from_millis(ms).min(MAX_SLOW)).await;
            text(StatusCode::OK, "ok")
        }
        (_, ["status", code]) => match code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
        {
            Some(s) => text(s, s.canonical_reason().unwrap_or("")),
            None => text(StatusCode::BAD_REQUEST, "status must be 100-999"),
        },
        _ => text(StatusCode::NOT_FOUND, "not found"),
    };
    Ok(response)
}

/// The `user` field of a JSON body.
fn serde_user(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let user = v.get("user")?;
    Some(match user {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", "text/plain".parse().expect("static header"));
    r
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        "application/json".parse().expect("static header"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_is_paged_and_ends() {
        assert_eq!(
            catalogue_page(""),
            format!(
                r#"{{"items":[{}],"next":2}}"#,
                (1..=20)
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            )
        );
        assert!(catalogue_page("page=2").starts_with(r#"{"items":[21,"#));
        assert!(catalogue_page("page=50").ends_with(r#"1000],"next":null}"#));
        assert_eq!(catalogue_page("page=51"), r#"{"items":[],"next":null}"#);
        // Whatever a client sends, a page is at most 20 ids.
        assert_eq!(catalogue_page("page=0"), catalogue_page("page=1"));
        assert_eq!(catalogue_page("page=x"), catalogue_page(""));
        assert_eq!(
            catalogue_page(&format!("page={}", u64::MAX)),
            r#"{"items":[],"next":null}"#
        );
    }
}
