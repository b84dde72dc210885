//! Files to download: the CSV tables and the HTML report.

use axum::extract::{Query, State as Extract};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use hatchery_core::timestamp::unix_now;
use serde::Deserialize;

use super::{gone, Api};
use crate::report::{csv, html};
use crate::run::{Point, Snapshot};

pub(super) fn download(body: String, content_type: &'static str, name: &str) -> Response {
    let disposition = format!("attachment; filename=\"{name}\"");
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    (headers, body).into_response()
}

/// A CSV table of the latest snapshot, as the file `<name>_<unix time>.csv`.
async fn csv_file(api: &Api, name: &str, table: impl FnOnce(&Snapshot) -> String) -> Response {
    let Some(snap) = api.snapshot().await else {
        return gone();
    };
    download(
        table(&snap),
        "text/csv",
        &format!("{name}_{}.csv", unix_now()),
    )
}

pub(super) async fn requests_csv(Extract(api): Extract<Api>) -> Response {
    csv_file(&api, "requests", |snap| {
        csv::stats_csv(&snap.stats, unix_now(), snap.elapsed.as_secs_f64())
    })
    .await
}

pub(super) async fn failures_csv(Extract(api): Extract<Api>) -> Response {
    csv_file(&api, "failures", |snap| csv::failures_csv(&snap.stats)).await
}

pub(super) async fn exceptions_csv(Extract(api): Extract<Api>) -> Response {
    csv_file(&api, "exceptions", |snap| csv::exceptions_csv(&snap.stats)).await
}

#[derive(Debug, Deserialize)]
pub(super) struct ReportQuery {
    #[serde(default)]
    download: Option<String>,
}

pub(super) async fn report(Extract(api): Extract<Api>, Query(q): Query<ReportQuery>) -> Response {
    let Some(snap) = api.snapshot().await else {
        return gone();
    };
    let history = api.handle.history().await.unwrap_or_default();
    let body = report_html(&api.title, &snap, &history);
    if q.download.is_some_and(|d| d != "0" && d != "false") {
        download(
            body,
            "text/html; charset=utf-8",
            &format!("report_{}.html", unix_now()),
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
