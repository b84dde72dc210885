//! The master's web side: the UI (embedded in the binary), Locust's REST API, the HTML report,
//! Prometheus metrics, health and readiness. Served in headless mode too, because the operator
//! and scripts read it. Handlers ask the run through its [`RunHandle`]; they never touch its
//! state.
//!
//! - this module: the router (open and protected routes under the base path) and the server.
//! - `auth`: HTTP basic authentication (`--web-auth`).
//! - `views`: readiness, Locust's JSON views, the charts' history, Prometheus metrics.
//! - `control`: `/swarm`, `/stop`, `/stats/reset`: commands to the run.
//! - `downloads`: the CSV tables and the HTML report as files.

mod auth;
mod control;
mod downloads;
mod views;

use std::future::Future;
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use hatchery_core::plan::Threshold;

use crate::run::{Command, Point, Snapshot, Status};

pub use downloads::report_html;
pub use views::snapshot_json;

const INDEX: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const STYLE_CSS: &str = include_str!("../web/style.css");

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
    /// The plan's host: the host in use, reported as such, while no `--host` or `/swarm` host
    /// replaces it.
    pub plan_host: Option<String>,
    /// The user classes this run runs; `/swarm` refuses Locust's class picker choosing others.
    pub classes: Vec<String>,
    /// The plan's thresholds, whose results `/stats/requests` reports (the operator's verdict).
    pub thresholds: Vec<Threshold>,
}

#[derive(Debug, Clone)]
struct Api {
    handle: RunHandle,
    title: String,
    plan_host: Option<String>,
    classes: Vec<String>,
    thresholds: Arc<[Threshold]>,
}

impl Api {
    /// The run's numbers, with the host in use.
    async fn snapshot(&self) -> Option<Snapshot> {
        let mut snap = self.handle.snapshot().await?;
        snap.host = snap.host.or_else(|| self.plan_host.clone());
        Some(snap)
    }

    /// The host tests run against now.
    fn host(&self) -> Option<String> {
        let status = self.handle.status.borrow().host.clone();
        status.or_else(|| self.plan_host.clone())
    }
}

/// All routes under the base path.
pub fn router(handle: RunHandle, web: &WebConfig) -> Router {
    let base = web.base_path.trim_end_matches('/');
    let api = Api {
        handle,
        title: web.title.clone(),
        plan_host: web.plan_host.clone(),
        classes: web.classes.clone(),
        thresholds: web.thresholds.clone().into(),
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
        .route(&p("/stats/requests"), get(views::stats_requests))
        .route(&p("/stats/history"), get(views::stats_history))
        .route(&p("/swarm"), post(control::swarm))
        .route(&p("/stop"), get(control::stop))
        .route(&p("/stats/reset"), get(control::reset))
        .route(&p("/stats/requests/csv"), get(downloads::requests_csv))
        .route(&p("/stats/failures/csv"), get(downloads::failures_csv))
        .route(&p("/exceptions"), get(views::exceptions))
        .route(&p("/exceptions/csv"), get(downloads::exceptions_csv))
        .route(&p("/stats/report"), get(downloads::report))
        .route(&p("/metrics"), get(views::prometheus));
    let protected = match &web.auth {
        Some(credentials) => {
            let expected = hatchery_core::secret::basic_authorization(credentials);
            protected.layer(middleware::from_fn_with_state(expected, auth::basic_auth))
        }
        None => protected,
    };
    let mut open = Router::new()
        .route(&p("/healthz"), get(|| async { "ok" }))
        .route(&p("/readyz"), get(views::readyz));
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
    // Both listeners bound their connections and cut those not admitted in time (crate::gate).
    let app = router(handle, &web)
        .layer(middleware::from_fn(crate::gate::admit_web))
        .into_make_service_with_connect_info::<crate::gate::Peer>();
    match &web.tls {
        Some(identity) => {
            let listener = crate::tls::HttpsListener::new(listener, identity)?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            axum::serve(crate::gate::PlainListener::new(listener), app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn gone() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"success": false, "message": "the run has ended"})),
    )
        .into_response()
}
