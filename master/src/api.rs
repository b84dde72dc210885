//! The master's HTTP API on the web port: health, readiness and Locust's JSON stats, served in
//! headless mode too, because the operator and scripts read them. The handlers ask the run
//! through its [`RunHandle`]; they never touch its state.

use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State as Extract;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::report::json::requests_json;
use crate::run::{Command, Snapshot, Status};

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
}

/// The routes, for tests and for servers that add their own.
pub fn router(handle: RunHandle) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/stats/requests", get(stats_requests))
        .with_state(handle)
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    handle: RunHandle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(handle))
        .with_graceful_shutdown(shutdown)
        .await
}

/// 200 once the expected workers are connected, 503 before (and the counts either way).
async fn readyz(Extract(handle): Extract<RunHandle>) -> Response {
    let status = handle.status.borrow().clone();
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

/// Locust's `/stats/requests`, with `workers` and `worker_count` filled in.
async fn stats_requests(Extract(handle): Extract<RunHandle>) -> Response {
    match handle.snapshot().await {
        Some(snap) => Json(snapshot_json(&snap)).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "the run has ended"})),
        )
            .into_response(),
    }
}

/// A snapshot in Locust's `/stats/requests` shape.
pub fn snapshot_json(snap: &Snapshot) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut doc = requests_json(
        &snap.stats,
        &snap.window,
        snap.state.as_str(),
        snap.user_count,
        now,
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
    doc
}
