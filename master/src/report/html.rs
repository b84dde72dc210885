//! The HTML report (`GET /stats/report`, `--html FILE`): one self-contained page, no script,
//! charts drawn as inline SVG, readable offline and printable.

use std::fmt::Write as _;

use hatchery_core::stats::{Entry, Stats, PERCENTILES};

use crate::run::Point;

/// What the report shows beside the statistics.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub title: String,
    pub host: Option<String>,
    /// Unix seconds.
    pub started: Option<u64>,
    pub ended: Option<u64>,
    pub run_seconds: f64,
    pub peak_users: u32,
}

/// Renders the report.
pub fn render(meta: &Meta, stats: &Stats, history: &[Point]) -> String {
    let mut o = String::with_capacity(16 * 1024);
    let _ = write!(
        o,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>{STYLE}</style></head><body><h1>{t}</h1>",
        t = esc(&meta.title)
    );
    summary(&mut o, meta, stats);
    o.push_str("<h2>Requests</h2>");
    requests_table(&mut o, stats, meta.run_seconds);
    o.push_str("<h2>Response time percentiles (ms)</h2>");
    percentiles_table(&mut o, stats);
    if history.len() >= 2 {
        o.push_str("<h2>Charts</h2>");
        chart(
            &mut o,
            "Requests per second",
            history,
            &[
                ("RPS", |p| p.current_rps),
                ("Failures/s", |p| p.current_fail_per_sec),
            ],
        );
        chart(
            &mut o,
            "Response times (ms)",
            history,
            &[("p50", |p| p.p50_ms), ("p95", |p| p.p95_ms)],
        );
        chart(
            &mut o,
            "Users",
            history,
            &[("users", |p| f64::from(p.user_count))],
        );
    }
    failures(&mut o, stats);
    o.push_str("<footer>Hatchery report</footer></body></html>\n");
    o
}

const STYLE: &str = "body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;padding:0 16px;color:#1d2330}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px}\
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}\
th,td{padding:4px 8px;border-bottom:1px solid #e3e6ec;text-align:right;white-space:nowrap}\
th:nth-child(-n+2),td:nth-child(-n+2){text-align:left}tr.total td{font-weight:600}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px}dt{color:#5b6477}dd{margin:0}\
svg{width:100%;height:auto;max-width:1200px;background:#fafbfc;border:1px solid #e3e6ec;margin-bottom:12px}\
.wrap{overflow-x:auto}footer{margin-top:32px;color:#8a93a6;font-size:12px}\
@media(prefers-color-scheme:dark){body{background:#12151b;color:#dde2ec}th,td{border-color:#2a303b}svg{background:#181c24;border-color:#2a303b}}";

fn summary(o: &mut String, meta: &Meta, stats: &Stats) {
    let total = stats.total();
    let _ = write!(o, "<dl>");
    let mut row = |k: &str, v: String| {
        let _ = write!(o, "<dt>{k}</dt><dd>{}</dd>", esc(&v));
    };
    if let Some(h) = &meta.host {
        row("Host", h.clone());
    }
    if let (Some(s), Some(e)) = (meta.started, meta.ended) {
        row("Period", format!("{} – {} (UTC)", utc(s), utc(e)));
    }
    row("Duration", format!("{:.0} s", meta.run_seconds));
    row("Peak users", meta.peak_users.to_string());
    row("Requests", total.num_requests.to_string());
    row(
        "Failures",
        format!(
            "{} ({:.2}%)",
            total.num_failures,
            total.fail_ratio() * 100.0
        ),
    );
    row(
        "Requests/s",
        format!("{:.1}", total.total_rps(meta.run_seconds)),
    );
    let _ = write!(o, "</dl>");
}

fn requests_table(o: &mut String, stats: &Stats, secs: f64) {
    // Aggregated has corrected times as soon as any row does.
    let intended = stats.total().corrected.is_some();
    o.push_str("<div class=\"wrap\"><table><thead><tr><th>Type</th><th>Name</th><th># Requests</th><th># Fails</th><th>Median</th><th>95%</th><th>99%</th>");
    if intended {
        o.push_str("<th>95% (intended)</th><th>99% (intended)</th>");
    }
    o.push_str("<th>Average</th><th>Min</th><th>Max</th><th>Avg size (B)</th><th>RPS</th><th>Failures/s</th></tr></thead><tbody>");
    let row = |o: &mut String, method: &str, name: &str, e: &Entry, class: &str| {
        let mut from_intended = String::new();
        if intended {
            for q in [0.95, 0.99] {
                let _ = match e.corrected_percentile_ms(q) {
                    Some(ms) => write!(from_intended, "<td>{ms:.2}</td>"),
                    None => write!(from_intended, "<td></td>"),
                };
            }
        }
        let _ = write!(
            o,
            "<tr class=\"{class}\"><td>{method}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td>{from_intended}<td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.0}</td><td>{:.2}</td><td>{:.2}</td></tr>",
            esc(name),
            e.num_requests,
            e.num_failures,
            e.median_response_time_ms(),
            e.percentile_ms(0.95),
            e.percentile_ms(0.99),
            e.avg_response_time_ms(),
            e.min_response_time_ms(),
            e.max_response_time_ms(),
            e.avg_content_length(),
            e.total_rps(secs),
            e.total_fail_per_sec(secs),
        );
    };
    for (m, name, e) in stats.entries() {
        row(o, m.as_str(), name, e, "");
    }
    row(o, "", "Aggregated", stats.total(), "total");
    o.push_str("</tbody></table></div>");
    if intended {
        o.push_str("<p>(intended): response times measured from when each request of a paced user was due on its schedule, not from when it went out, so time a late target held the user back is counted (coordinated omission corrected, as wrk2 does). Paced users' requests only; blank for rows without any.</p>");
    }
}

fn percentiles_table(o: &mut String, stats: &Stats) {
    o.push_str("<div class=\"wrap\"><table><thead><tr><th>Type</th><th>Name</th>");
    for q in PERCENTILES {
        let _ = write!(o, "<th>{}%</th>", q * 100.0);
    }
    o.push_str("</tr></thead><tbody>");
    let row = |o: &mut String, method: &str, name: &str, e: &Entry, class: &str| {
        let _ = write!(
            o,
            "<tr class=\"{class}\"><td>{method}</td><td>{}</td>",
            esc(name)
        );
        for us in e.histogram.quantiles(&PERCENTILES) {
            let _ = write!(o, "<td>{:.2}</td>", us as f64 / 1000.0);
        }
        o.push_str("</tr>");
    };
    for (m, name, e) in stats.entries().filter(|(_, _, e)| e.num_requests > 0) {
        row(o, m.as_str(), name, e, "");
    }
    if stats.total().num_requests > 0 {
        row(o, "", "Aggregated", stats.total(), "total");
    }
    o.push_str("</tbody></table></div>");
}

fn failures(o: &mut String, stats: &Stats) {
    let errors: Vec<_> = stats.errors().collect();
    if !errors.is_empty() {
        o.push_str("<h2>Failures</h2><div class=\"wrap\"><table><thead><tr><th>Method</th><th>Name</th><th>Error</th><th>Occurrences</th></tr></thead><tbody>");
        for e in errors {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td style=\"text-align:left;white-space:normal\">{}</td><td>{}</td></tr>",
                e.method,
                esc(e.name),
                esc(e.error),
                e.stat.occurrences
            );
        }
        o.push_str("</tbody></table></div>");
    }
    let exceptions: Vec<_> = stats.exceptions().collect();
    if !exceptions.is_empty() {
        o.push_str("<h2>Exceptions</h2><div class=\"wrap\"><table><thead><tr><th>Count</th><th>Message</th><th>Nodes</th></tr></thead><tbody>");
        for (msg, e) in exceptions {
            let nodes: Vec<&str> = e.nodes.iter().map(String::as_str).collect();
            let _ = write!(
                o,
                "<tr><td>{}</td><td style=\"text-align:left;white-space:normal\">{}</td><td>{}</td></tr>",
                e.count,
                esc(msg),
                esc(&nodes.join(", "))
            );
        }
        o.push_str("</tbody></table></div>");
    }
}

/// A named line: how to read its value from a point.
type Series = (&'static str, fn(&Point) -> f64);

const COLORS: [&str; 2] = ["#2f6fde", "#d64545"];

/// A line chart of some series over the history, as inline SVG.
fn chart(o: &mut String, title: &str, points: &[Point], series: &[Series]) {
    let (w, h, pad) = (1000.0, 220.0, 40.0);
    let t0 = points[0].time as f64;
    let span = (points[points.len() - 1].time as f64 - t0).max(1.0);
    let top = series
        .iter()
        .flat_map(|(_, f)| points.iter().map(f))
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.1;
    let _ = write!(
        o,
        "<svg viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{t}\"><text x=\"{pad}\" y=\"18\" font-size=\"13\" fill=\"currentColor\">{t}</text>\
         <text x=\"4\" y=\"{y0}\" font-size=\"11\" fill=\"#8a93a6\">{top:.1}</text><text x=\"4\" y=\"{y1}\" font-size=\"11\" fill=\"#8a93a6\">0</text>",
        t = esc(title),
        y0 = pad,
        y1 = h - pad / 2.0,
        top = top / 1.1
    );
    for (i, (name, f)) in series.iter().enumerate() {
        let mut d = String::new();
        for (k, p) in points.iter().enumerate() {
            let x = pad + (p.time as f64 - t0) / span * (w - 2.0 * pad);
            let y = h - pad / 2.0 - f(p) / top * (h - 1.5 * pad);
            let _ = write!(d, "{}{x:.1},{y:.1}", if k == 0 { "M" } else { "L" });
        }
        let c = COLORS[i % COLORS.len()];
        let _ = write!(
            o,
            "<path d=\"{d}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"1.6\"/><text x=\"{x}\" y=\"18\" font-size=\"12\" fill=\"{c}\">{n}</text>",
            x = w - 200.0 + i as f64 * 90.0,
            n = esc(name)
        );
    }
    o.push_str("</svg>");
}

/// `YYYY-MM-DD HH:MM:SS` of a Unix time, UTC.
fn utc(unix: u64) -> String {
    let mut s = String::new();
    let _ = hatchery_core::timestamp::write_rfc3339(unix, &mut s);
    s.replace('T', " ").trim_end_matches('Z').to_string()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hatchery_core::stats::Sample;
    use hatchery_core::Method;

    #[test]
    fn the_report_is_one_page_with_tables_charts_and_escaped_names() {
        let mut stats = Stats::new();
        for (us, err) in [(1_000, None), (3_000, Some("HTTP 500 <oops>"))] {
            let s = Sample {
                corrected_response_time_us: None,
                response_time_us: us,
                content_length: 10,
                at_unix_s: 100,
                error: err,
            };
            stats.record(Method::Post, "/cart?<x>", s);
        }
        let points: Vec<Point> = (0..3)
            .map(|i| Point {
                time: 100 + i,
                user_count: 2,
                current_rps: 1.0 + i as f64,
                current_fail_per_sec: 0.5,
                p50_ms: 1.0,
                p95_ms: 3.0,
            })
            .collect();
        let meta = Meta {
            title: "Hatchery report: plan.yaml".into(),
            host: Some("http://127.0.0.1:8080".into()),
            started: Some(100),
            ended: Some(103),
            run_seconds: 3.0,
            peak_users: 2,
        };
        let html = render(&meta, &stats, &points);
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains("/cart?&lt;x&gt;"));
        assert!(html.contains("HTTP 500 &lt;oops&gt;"));
        assert_eq!(html.matches("<svg").count(), 3);
        assert!(html.contains("1970-01-01 00:01:40"));
        assert!(!html.contains("<script"), "no script: readable anywhere");
        assert!(
            !html.contains("(intended)"),
            "no paced user, no such column"
        );
        assert!(
            !html.contains("http://") || html.matches("http://").count() == 1,
            "no external resource"
        );
    }

    #[test]
    fn times_from_the_intended_send_time_get_columns_when_a_row_has_them() {
        let mut stats = Stats::new();
        let mut s = Sample {
            corrected_response_time_us: None,
            response_time_us: 2_000,
            content_length: 0,
            at_unix_s: 100,
            error: None,
        };
        stats.record(Method::Get, "/unpaced", s);
        s.corrected_response_time_us = Some(1_234_000);
        stats.record(Method::Get, "/paced", s);
        let html = render(&Meta::default(), &stats, &[]);
        assert!(html.contains("<th>95% (intended)</th><th>99% (intended)</th>"));
        assert!(html.contains("<td>2.00</td><td>1234.00</td><td>1234.00</td><td>2.00</td>"));
        assert!(html.contains("<td>2.00</td><td></td><td></td><td>2.00</td>"));
    }
}
