//! The master's web side: the UI (embedded in the binary), Locust's REST API, the HTML report,
//! Prometheus metrics, health and readiness. Served in headless mode too, because the operator
//! and scripts read it. Handlers ask the run through its [`RunHandle`]; they never touch its
//! state.

use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Form, Query, Request, State as Extract};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Json, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::report::{csv, html, json::requests_json, metrics};
use crate::run::{Command, Point, Snapshot, Status, Swarm, SwarmError};

const INDEX: &str = include_str!("web/index.html");
const APP_JS: &str = include_str!("web/app.js");
const STYLE_CSS: &str = include_str!("web/style.css");

/// How the web layer reaches the run: commands with replies, and the published status.
#[derive(Debug, Clone)]
pub struct RunHandle {
    pub commands: mpsc::Sender<Command>,
    pub status: watch::Receiver<Status>,
}

impl RunHandle {
    /// The run's current numbers; `None` once the run has ended.
    pub async fn snapshot(&self) -> Option<Snapshot> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Snapshot(tx)).await.ok()?;
        rx.await.ok()
    }

    async fn history(&self) -> Option<Vec<Point>> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::History(tx)).await.ok()?;
        rx.await.ok()
    }
}

/// How the web side is served.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    /// Prefix of every path (`--web-base-path`), without a trailing slash; "" for none.
    pub base_path: String,
    /// `--web-auth USER:PASSWORD`: HTTP basic auth on everything but health and readiness.
    pub auth: Option<String>,
    /// Names the run in the HTML report (the plan).
    pub title: String,
    /// `--tls-cert`/`--tls-key`: serve HTTPS only.
    pub tls: Option<crate::tls::Identity>,
}

#[derive(Debug, Clone)]
struct Api {
    handle: RunHandle,
    title: String,
}

/// All routes under the base path.
pub fn router(handle: RunHandle, web: &WebConfig) -> Router {
    let base = web.base_path.trim_end_matches('/');
    let api = Api {
        handle,
        title: web.title.clone(),
    };
    let p = |path: &str| format!("{base}{path}");
    let protected = Router::new()
        .route(
            &p("/"),
            get(|| async { page(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            &p("/static/app.js"),
            get(|| async { page(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            &p("/static/style.css"),
            get(|| async { page(STYLE_CSS, "text/css; charset=utf-8") }),
        )
        .route(&p("/stats/requests"), get(stats_requests))
        .route(&p("/stats/history"), get(stats_history))
        .route(&p("/swarm"), post(swarm))
        .route(&p("/stop"), get(stop))
        .route(&p("/stats/reset"), get(reset))
        .route(&p("/stats/requests/csv"), get(requests_csv))
        .route(&p("/stats/failures/csv"), get(failures_csv))
        .route(&p("/exceptions"), get(exceptions))
        .route(&p("/exceptions/csv"), get(exceptions_csv))
        .route(&p("/stats/report"), get(report))
        .route(&p("/metrics"), get(prometheus));
    let protected = match &web.auth {
        Some(credentials) => {
            let expected = format!("Basic {}", base64(credentials.as_bytes()));
            protected.layer(middleware::from_fn_with_state(expected, basic_auth))
        }
        None => protected,
    };
    let mut open = Router::new()
        .route(&p("/healthz"), get(|| async { "ok" }))
        .route(&p("/readyz"), get(readyz));
    if !base.is_empty() {
        let slash = format!("{base}/");
        open = open.route(
            base,
            get(move || async move { Redirect::permanent(&slash) }),
        );
    }
    open.merge(protected).with_state(api)
}

/// Serves on `listener` (over TLS when the config has an identity) until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    handle: RunHandle,
    web: WebConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(handle, &web);
    match &web.tls {
        Some(identity) => {
            let listener = crate::tls::HttpsListener::new(listener, identity)?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn basic_auth(Extract(expected): Extract<String>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    if hatchery_core::secret::constant_time_eq(given, expected.as_bytes()) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"hatchery\"")],
        "authentication required\n",
    )
        .into_response()
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> shift) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// 200 once the expected workers are connected, 503 before (and the counts either way).
async fn readyz(Extract(api): Extract<Api>) -> Response {
    let status = api.handle.status.borrow().clone();
    let body = json!({
        "ready": status.ready(),
        "state": status.state.as_str(),
        "workers": status.workers,
        "expected_workers": status.expected,
    });
    let code = if status.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

fn gone() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"success": false, "message": "the run has ended"})),
    )
        .into_response()
}

async fn stats_requests(Extract(api): Extract<Api>) -> Response {
    match api.handle.snapshot().await {
        Some(snap) => Json(snapshot_json(&snap)).into_response(),
        None => gone(),
    }
}

async fn stats_history(Extract(api): Extract<Api>) -> Response {
    match api.handle.history().await {
        Some(points) => Json(points).into_response(),
        None => gone(),
    }
}

/// Locust's form fields.
#[derive(Debug, Deserialize)]
struct SwarmForm {
    user_count: String,
    spawn_rate: String,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    run_time: Option<String>,
}

fn refuse(code: StatusCode, message: String) -> Response {
    (code, Json(json!({"success": false, "message": message}))).into_response()
}

async fn swarm(Extract(api): Extract<Api>, Form(form): Form<SwarmForm>) -> Response {
    let Ok(users) = form.user_count.trim().parse::<u64>() else {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "user_count must be a whole number, got {:?}",
                form.user_count
            ),
        );
    };
    let Ok(spawn_rate) = form.spawn_rate.trim().parse::<f64>() else {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("spawn_rate must be a number, got {:?}", form.spawn_rate),
        );
    };
    let run_time = match form
        .run_time
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        None => None,
        Some(t) => match hatchery_core::duration::parse(t) {
            Ok(d) => Some(d),
            Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("run_time: {e}")),
        },
    };
    let host = form
        .host
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty());
    let request = Swarm {
        users,
        spawn_rate,
        run_time,
        host: host.clone(),
    };
    let (tx, rx) = oneshot::channel();
    if api
        .handle
        .commands
        .send(Command::Swarm(request, tx))
        .await
        .is_err()
    {
        return gone();
    }
    match rx.await {
        Ok(Ok(message)) => {
            Json(json!({"success": true, "message": message, "host": host})).into_response()
        }
        Ok(Err(e @ (SwarmError::Limit(_) | SwarmError::Host(_)))) => {
            refuse(StatusCode::BAD_REQUEST, e.to_string())
        }
        Ok(Err(e @ (SwarmError::NoWorkers | SwarmError::Stopping))) => {
            refuse(StatusCode::CONFLICT, e.to_string())
        }
        Err(_) => gone(),
    }
}

async fn stop(Extract(api): Extract<Api>) -> Response {
    if api.handle.commands.send(Command::Stop).await.is_err() {
        return gone();
    }
    Json(json!({"success": true, "message": "Test stopped"})).into_response()
}

async fn reset(Extract(api): Extract<Api>) -> Response {
    if api.handle.commands.send(Command::ResetStats).await.is_err() {
        return gone();
    }
    "ok".into_response()
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn download(body: String, content_type: &'static str, name: &str) -> Response {
    let disposition = format!("attachment; filename=\"{name}\"");
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    (headers, body).into_response()
}

async fn requests_csv(Extract(api): Extract<Api>) -> Response {
    let Some(snap) = api.handle.snapshot().await else {
        return gone();
    };
    let body = csv::stats_csv(&snap.stats, now_s(), snap.elapsed.as_secs_f64());
    download(body, "text/csv", &format!("requests_{}.csv", now_s()))
}

async fn failures_csv(Extract(api): Extract<Api>) -> Response {
    let Some(snap) = api.handle.snapshot().await else {
        return gone();
    };
    download(
        csv::failures_csv(&snap.stats),
        "text/csv",
        &format!("failures_{}.csv", now_s()),
    )
}

async fn exceptions_csv(Extract(api): Extract<Api>) -> Response {
    let Some(snap) = api.handle.snapshot().await else {
        return gone();
    };
    download(
        csv::exceptions_csv(&snap.stats),
        "text/csv",
        &format!("exceptions_{}.csv", now_s()),
    )
}

/// Locust's `/exceptions`.
async fn exceptions(Extract(api): Extract<Api>) -> Response {
    let Some(snap) = api.handle.snapshot().await else {
        return gone();
    };
    let list: Vec<Value> = snap
        .stats
        .exceptions()
        .map(|(msg, e)| {
            let nodes: Vec<&str> = e.nodes.iter().map(String::as_str).collect();
            json!({"count": e.count, "msg": msg, "traceback": "", "nodes": nodes.join(", ")})
        })
        .collect();
    Json(json!({ "exceptions": list })).into_response()
}

#[derive(Debug, Deserialize)]
struct ReportQuery {
    #[serde(default)]
    download: Option<String>,
}

async fn report(Extract(api): Extract<Api>, Query(q): Query<ReportQuery>) -> Response {
    let Some(snap) = api.handle.snapshot().await else {
        return gone();
    };
    let history = api.handle.history().await.unwrap_or_default();
    let body = report_html(&api.title, &snap, &history);
    if q.download.is_some_and(|d| d != "0" && d != "false") {
        download(
            body,
            "text/html; charset=utf-8",
            &format!("report_{}.html", now_s()),
        )
    } else {
        Html(body).into_response()
    }
}

/// The HTML report of a snapshot and its history (also what `--html` writes).
pub fn report_html(title: &str, snap: &Snapshot, history: &[Point]) -> String {
    let meta = html::Meta {
        title: format!("Hatchery report: {title}"),
        host: snap.host.clone(),
        started: history.first().map(|p| p.time),
        ended: history.last().map(|p| p.time),
        run_seconds: snap.elapsed.as_secs_f64(),
        peak_users: history
            .iter()
            .map(|p| p.user_count)
            .max()
            .unwrap_or(snap.user_count),
    };
    html::render(&meta, &snap.stats, history)
}

async fn prometheus(Extract(api): Extract<Api>) -> Response {
    let Some(snap) = api.handle.snapshot().await else {
        return gone();
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics::render(&snap),
    )
        .into_response()
}

/// A snapshot in Locust's `/stats/requests` shape, with `host`, `workers` and `worker_count`.
pub fn snapshot_json(snap: &Snapshot) -> Value {
    let mut doc = requests_json(
        &snap.stats,
        &snap.window,
        snap.state.as_str(),
        snap.user_count,
        now_s(),
        snap.elapsed.as_secs_f64(),
    );
    let workers: Vec<Value> = snap
        .workers
        .iter()
        .map(|w| {
            json!({
                "id": w.id,
                "state": w.state,
                "user_count": w.users,
                "cpu_usage": w.cpu_percent,
                "memory_usage": w.memory_bytes,
            })
        })
        .collect();
    doc["worker_count"] = json!(workers.len());
    doc["workers"] = Value::Array(workers);
    doc["host"] = json!(snap.host);
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
            ("user:pa ss", "dXNlcjpwYSBzcw=="),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }
}
