//! What the UI and scripts read: readiness, Locust's `/stats/requests` and `/exceptions`, the
//! history of the charts, Prometheus metrics.

use axum::extract::State as Extract;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use hatchery_core::timestamp::unix_now;
use serde_json::{json, Value};

use super::{gone, Api};
use crate::report::thresholds::verdicts_json;
use crate::report::{json::requests_json, metrics};
use crate::run::Snapshot;
use hatchery_core::plan::Threshold;

/// 200 once the expected workers are connected, 503 before (and the counts either way).
pub(super) async fn readyz(Extract(api): Extract<Api>) -> Response {
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

pub(super) async fn stats_requests(Extract(api): Extract<Api>) -> Response {
    match api.snapshot().await {
        Some(snap) => Json(snapshot_json(&snap, &api.thresholds)).into_response(),
        None => gone(),
    }
}

pub(super) async fn stats_history(Extract(api): Extract<Api>) -> Response {
    match api.handle.history().await {
        Some(points) => Json(points).into_response(),
        None => gone(),
    }
}

/// Locust's `/exceptions`.
pub(super) async fn exceptions(Extract(api): Extract<Api>) -> Response {
    let Some(snap) = api.snapshot().await else {
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

pub(super) async fn prometheus(Extract(api): Extract<Api>) -> Response {
    let Some(snap) = api.snapshot().await else {
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

/// A snapshot in Locust's `/stats/requests` shape, with `host`, `workers`, `worker_count` and
/// each threshold's result so far (`thresholds`: the operator's verdict).
pub fn snapshot_json(snap: &Snapshot, thresholds: &[Threshold]) -> Value {
    let mut doc = requests_json(
        &snap.stats,
        &snap.window,
        snap.state.as_str(),
        snap.user_count,
        unix_now(),
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
    doc["thresholds"] = verdicts_json(thresholds, &snap.stats, snap.elapsed.as_secs_f64());
    doc
}
