//! The operator's own HTTP endpoint: `/healthz` (the process answers), `/readyz` (the API
//! server was reached and the controller watches), and `/metrics` in Prometheus' text format.
//!
//! The numbers are plain atomics bumped by the reconciler: a handful of counters and one
//! fixed-bucket histogram do not justify a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::crd::Phase;

/// Upper bounds (seconds) of the reconcile-duration histogram's buckets.
const BUCKETS: [f64; 8] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];
const PHASES: [Phase; 6] = [
    Phase::Pending,
    Phase::WaitingForWorkers,
    Phase::Running,
    Phase::Stopping,
    Phase::Succeeded,
    Phase::Failed,
];

/// What the reconciler counts. Shared through the controller's context.
#[derive(Debug, Default)]
pub struct Metrics {
    ready: AtomicBool,
    /// This replica holds the leader Lease (or runs without leader election).
    leading: AtomicBool,
    reconciles: AtomicU64,
    failures: AtomicU64,
    /// Cumulative counts per bucket of [`BUCKETS`], then the total (`+Inf`).
    buckets: [AtomicU64; BUCKETS.len() + 1],
    duration_micros: AtomicU64,
    /// Status transitions into each phase of [`PHASES`].
    transitions: [AtomicU64; PHASES.len()],
    /// Failed reconciles by the error's kind ([`crate::controller::Error::kind`]).
    errors: Mutex<BTreeMap<&'static str, u64>>,
    /// Requests the operator's client sent to the API server, by verb and resource (a few
    /// dozen keys at most: the operator only sends the requests its code makes).
    api: Mutex<BTreeMap<(&'static str, String), u64>>,
}

/// The verb and resource of a request to the API server, as the API server's audit log names
/// them: `list`/`watch`/`get` for GETs of a collection or an object, `pods/proxy` for a
/// subresource. Namespaces and names are left out, so the keys stay few.
pub fn api_call(method: &http::Method, path: &str, query: Option<&str>) -> (&'static str, String) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // /api/v1/... or /apis/GROUP/VERSION/...
    let rest = match parts.first() {
        Some(&"api") => parts.get(2..).unwrap_or_default(),
        Some(&"apis") => parts.get(3..).unwrap_or_default(),
        _ => return (verb(method, false, query), "other".into()),
    };
    let rest = match rest {
        ["namespaces", _, more @ ..] if !more.is_empty() => more,
        other => other,
    };
    let (resource, is_object) = match rest {
        [] => ("other".to_string(), false),
        [resource] => (resource.to_string(), false),
        [resource, _name] => (resource.to_string(), true),
        [resource, _name, sub, ..] => (format!("{resource}/{sub}"), true),
    };
    (verb(method, is_object, query), resource)
}

fn verb(method: &http::Method, is_object: bool, query: Option<&str>) -> &'static str {
    let watching = query.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    match *method {
        http::Method::GET if watching => "watch",
        http::Method::GET if is_object => "get",
        http::Method::GET => "list",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "other",
    }
}

impl Metrics {
    /// The controller is watching: `/readyz` answers 200 from now on.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// One reconcile ended after `took`, well or not.
    pub fn reconciled(&self, took: Duration, ok: bool) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        let secs = took.as_secs_f64();
        for (bound, count) in BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.buckets[BUCKETS.len()].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.duration_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// A reconcile failed with an error of this kind.
    pub fn failed(&self, kind: &'static str) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        *errors.entry(kind).or_default() += 1;
    }

    /// The client sent a request (see [`api_call`]).
    pub fn api_request(&self, method: &http::Method, path: &str, query: Option<&str>) {
        let key = api_call(method, path, query);
        let mut api = self.api.lock().unwrap_or_else(|e| e.into_inner());
        *api.entry(key).or_default() += 1;
    }

    /// A LoadTest's status moved into `phase`.
    pub fn entered(&self, phase: Phase) {
        if let Some(i) = PHASES.iter().position(|p| *p == phase) {
            self.transitions[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Prometheus' text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::with_capacity(1024);
        header(
            &mut out,
            "reconciles_total",
            "Reconciles of LoadTests, by result.",
            "counter",
        );
        let failures = load(&self.failures);
        let total = load(&self.reconciles);
        let _ = writeln!(
            out,
            "hatchery_operator_reconciles_total{{result=\"ok\"}} {}",
            total.saturating_sub(failures)
        );
        let _ = writeln!(
            out,
            "hatchery_operator_reconciles_total{{result=\"error\"}} {failures}"
        );
        header(
            &mut out,
            "reconcile_duration_seconds",
            "Time spent in one reconcile.",
            "histogram",
        );
        for (bound, count) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "hatchery_operator_reconcile_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                load(count)
            );
        }
        let count = load(&self.buckets[BUCKETS.len()]);
        let _ = writeln!(
            out,
            "hatchery_operator_reconcile_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             hatchery_operator_reconcile_duration_seconds_sum {}\n\
             hatchery_operator_reconcile_duration_seconds_count {count}",
            load(&self.duration_micros) as f64 / 1e6
        );
        header(
            &mut out,
            "phase_transitions_total",
            "LoadTest status changes into each phase.",
            "counter",
        );
        for (phase, count) in PHASES.iter().zip(&self.transitions) {
            let _ = writeln!(
                out,
                "hatchery_operator_phase_transitions_total{{phase=\"{phase:?}\"}} {}",
                load(count)
            );
        }
        header(
            &mut out,
            "leader",
            "1 while this replica holds the leader Lease.",
            "gauge",
        );
        let _ = writeln!(
            out,
            "hatchery_operator_leader {}",
            u8::from(self.leading.load(Ordering::Relaxed))
        );
        header(
            &mut out,
            "reconcile_errors_total",
            "Failed reconciles, by the kind of error.",
            "counter",
        );
        for (kind, n) in self.errors.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "hatchery_operator_reconcile_errors_total{{kind=\"{kind}\"}} {n}"
            );
        }
        header(
            &mut out,
            "api_requests_total",
            "Requests sent to the Kubernetes API server, by verb and resource.",
            "counter",
        );
        for ((verb, resource), n) in self.api.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "hatchery_operator_api_requests_total{{verb=\"{verb}\",resource=\"{resource}\"}} {n}"
            );
        }
        out
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP hatchery_operator_{name} {help}");
    let _ = writeln!(out, "# TYPE hatchery_operator_{name} {kind}");
}

fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(m): State<Arc<Metrics>>| async move {
                if m.is_ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not watching yet")
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(m): State<Arc<Metrics>>| async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    m.render(),
                )
                    .into_response()
            }),
        )
        .with_state(metrics)
}

/// Serves the endpoints on `listener` until the process ends.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) -> std::io::Result<()> {
    tracing::info!("health and metrics on http://{}", listener.local_addr()?);
    axum::serve(listener, router(metrics)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_reconciles_buckets_and_phases() {
        let m = Metrics::default();
        m.reconciled(Duration::from_millis(3), true);
        m.reconciled(Duration::from_millis(40), false);
        m.reconciled(Duration::from_secs(9), true);
        m.entered(Phase::Running);
        m.entered(Phase::Running);
        m.failed("conflict");
        m.failed("conflict");
        m.set_leading(true);
        let get = http::Method::GET;
        m.api_request(
            &get,
            "/api/v1/namespaces/a/pods/m-0:8089/proxy/stats/requests",
            None,
        );
        m.api_request(
            &get,
            "/api/v1/namespaces/b/pods/m-1:8089/proxy/stats/requests",
            None,
        );
        let text = m.render();
        for line in [
            "hatchery_operator_reconciles_total{result=\"ok\"} 2",
            "hatchery_operator_reconciles_total{result=\"error\"} 1",
            "hatchery_operator_reconcile_duration_seconds_bucket{le=\"0.005\"} 1",
            "hatchery_operator_reconcile_duration_seconds_bucket{le=\"0.05\"} 2",
            "hatchery_operator_reconcile_duration_seconds_bucket{le=\"5\"} 2",
            "hatchery_operator_reconcile_duration_seconds_bucket{le=\"+Inf\"} 3",
            "hatchery_operator_reconcile_duration_seconds_sum 9.043",
            "hatchery_operator_reconcile_duration_seconds_count 3",
            "hatchery_operator_phase_transitions_total{phase=\"Running\"} 2",
            "hatchery_operator_phase_transitions_total{phase=\"Failed\"} 0",
            "hatchery_operator_reconcile_errors_total{kind=\"conflict\"} 2",
            "hatchery_operator_leader 1",
            "hatchery_operator_api_requests_total{verb=\"get\",resource=\"pods/proxy\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn api_calls_are_named_by_verb_and_resource_as_the_audit_log_does() {
        use http::Method;
        let call = |m: &Method, path: &str, q: Option<&str>| {
            let (verb, resource) = api_call(m, path, q);
            format!("{verb} {resource}")
        };
        let cases = [
            (
                Method::GET,
                "/api/v1/namespaces/ns/pods",
                Some("labelSelector=a%3Db"),
                "list pods",
            ),
            (
                Method::GET,
                "/api/v1/pods",
                Some("watch=true&resourceVersion=5"),
                "watch pods",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/ns/pods/p:8089/proxy/stats/requests",
                None,
                "get pods/proxy",
            ),
            (
                Method::PATCH,
                "/apis/hatchery.io/v1alpha1/namespaces/ns/loadtests/lt/status",
                None,
                "patch loadtests/status",
            ),
            (
                Method::PATCH,
                "/apis/apps/v1/namespaces/ns/statefulsets/w",
                Some("fieldManager=x"),
                "patch statefulsets",
            ),
            (
                Method::POST,
                "/api/v1/namespaces/ns/secrets",
                None,
                "create secrets",
            ),
            (
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/ns/events",
                None,
                "create events",
            ),
            (
                Method::GET,
                "/apis/hatchery.io/v1alpha1/loadtests",
                None,
                "list loadtests",
            ),
            (Method::GET, "/api/v1/namespaces/ns", None, "get namespaces"),
            (Method::GET, "/version", None, "list other"),
        ];
        for (method, path, query, want) in cases {
            assert_eq!(call(&method, path, query), want, "{method} {path}");
        }
    }

    #[tokio::test]
    async fn readyz_follows_the_controller() {
        let metrics = Arc::new(Metrics::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, metrics.clone()));
        let status = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await.unwrap();
            let mut body = String::new();
            s.read_to_string(&mut body).await.unwrap();
            body.split(' ').nth(1).unwrap().to_string()
        };
        assert_eq!(status("/healthz").await, "200");
        assert_eq!(status("/readyz").await, "503");
        metrics.set_ready();
        assert_eq!(status("/readyz").await, "200");
        assert_eq!(status("/metrics").await, "200");
    }
}
