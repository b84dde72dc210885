//! Locust's `GET /stats/requests` document, also printed by `--json` at the end of a run.
//!
//! Same keys as Locust's, so its clients read ours. Times are milliseconds as floats with
//! microsecond precision (Locust rounds min and max to whole milliseconds, which hides a fast
//! server's latency). The top-level `total_rps` is over the whole run; Locust puts the current
//! rate there, which is `current_rps` here. One key is ours: `abandoned_requests`, the requests
//! sent that no row holds because their users were stopped without waiting for them.

use serde_json::{json, Map, Value};

use hatchery_core::histogram::Histogram;
use hatchery_core::stats::{Entry, Stats, Window};
use hatchery_core::Method;

/// Percentiles each row reports (Locust's `PERCENTILES_TO_STATISTICS`).
const ROW_PERCENTILES: [(f64, &str); 2] = [
    (0.95, "response_time_percentile_0.95"),
    (0.99, "response_time_percentile_0.99"),
];

/// Current percentiles the charts plot (Locust's `PERCENTILES_TO_CHART`).
const CHART_PERCENTILES: [(f64, &str); 2] = [
    (0.5, "response_time_percentile_0.5"),
    (0.95, "response_time_percentile_0.95"),
];

/// The document; `workers` is empty and `worker_count` 0, for the caller to fill in.
pub fn requests_json(
    stats: &Stats,
    window: &Window,
    state: &str,
    user_count: u32,
    now_unix_s: u64,
    run_seconds: f64,
) -> Value {
    let mut rows: Vec<Value> = stats
        .entries()
        .map(|(m, name, e)| row(Some(m), name, e, now_unix_s, run_seconds))
        .collect();
    let total = stats.total();
    rows.push(row(None, "Aggregated", total, now_unix_s, run_seconds));
    let errors: Vec<Value> = stats
        .errors()
        .map(|e| {
            json!({
                "method": e.method.as_str(),
                "name": e.name,
                "error": e.error,
                "occurrences": e.stat.occurrences,
            })
        })
        .collect();
    let qs = CHART_PERCENTILES.map(|(q, _)| q);
    let current = window.quantiles(now_unix_s, &qs);
    let current: Map<String, Value> = CHART_PERCENTILES
        .iter()
        .enumerate()
        .map(|(i, (_, key))| {
            let v = current.as_ref().map_or(Value::Null, |us| json!(ms(us[i])));
            ((*key).to_owned(), v)
        })
        .collect();
    json!({
        "stats": rows,
        "errors": errors,
        "current_rps": total.current_rps(now_unix_s),
        "current_fail_per_sec": total.current_fail_per_sec(now_unix_s),
        "total_rps": total.total_rps(run_seconds),
        "total_fail_per_sec": total.total_fail_per_sec(run_seconds),
        "total_avg_response_time": total.avg_response_time_ms(),
        "fail_ratio": total.fail_ratio(),
        "current_response_time_percentiles": current,
        "state": state,
        "user_count": user_count,
        "workers": [],
        "worker_count": 0,
        "abandoned_requests": stats.abandoned_requests(),
    })
}

fn row(method: Option<Method>, name: &str, e: &Entry, now_unix_s: u64, run_seconds: f64) -> Value {
    let mut v = json!({
        "method": method.map(Method::as_str),
        "name": name,
        "num_requests": e.num_requests,
        "num_failures": e.num_failures,
        "min_response_time": e.min_response_time_ms(),
        "max_response_time": e.max_response_time_ms(),
        "current_rps": e.current_rps(now_unix_s),
        "current_fail_per_sec": e.current_fail_per_sec(now_unix_s),
        "avg_response_time": e.avg_response_time_ms(),
        "median_response_time": e.median_response_time_ms(),
        "total_rps": e.total_rps(run_seconds),
        "total_fail_per_sec": e.total_fail_per_sec(run_seconds),
        "avg_content_length": e.avg_content_length(),
    });
    let percentiles = e.histogram.quantiles(&ROW_PERCENTILES.map(|(q, _)| q));
    for ((_, key), us) in ROW_PERCENTILES.iter().zip(percentiles) {
        v[*key] = json!(ms(us));
    }
    if let Some(c) = e.corrected.as_deref().filter(|h| !h.is_empty()) {
        v["corrected"] = corrected(c);
    }
    v
}

/// Response times from the intended send time (paced users' requests only, so `num_requests`
/// may be below the row's), under the row's own keys. Absent from rows without any, so
/// Locust's clients see Locust's document.
fn corrected(h: &Histogram) -> Value {
    let mut v = json!({
        "num_requests": h.count(),
        "avg_response_time": h.sum() as f64 / (h.count() as f64 * 1000.0),
        "median_response_time": ms(h.quantile(0.5)),
        "max_response_time": ms(h.max()),
    });
    let percentiles = h.quantiles(&ROW_PERCENTILES.map(|(q, _)| q));
    for ((_, key), us) in ROW_PERCENTILES.iter().zip(percentiles) {
        v[*key] = json!(ms(us));
    }
    v
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use hatchery_core::stats::Sample;

    use super::*;

    fn stats() -> Stats {
        let mut s = Stats::new();
        for (rt, at) in [(1000, 100), (3000, 101)] {
            let sample = Sample {
                corrected_response_time_us: None,
                response_time_us: rt,
                content_length: 10,
                at_unix_s: at,
                error: None,
            };
            s.record(Method::Get, "/a", sample);
        }
        let failed = Sample {
            corrected_response_time_us: None,
            response_time_us: 250,
            content_length: 0,
            at_unix_s: 101,
            error: Some("HTTP 503"),
        };
        s.record(Method::Post, "/b", failed);
        s
    }

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    }

    #[test]
    fn the_document_has_locusts_keys() {
        let doc = requests_json(&stats(), &Window::new(), "running", 10, 103, 2.0);
        assert_eq!(
            keys(&doc),
            [
                "abandoned_requests",
                "current_fail_per_sec",
                "current_response_time_percentiles",
                "current_rps",
                "errors",
                "fail_ratio",
                "state",
                "stats",
                "total_avg_response_time",
                "total_fail_per_sec",
                "total_rps",
                "user_count",
                "worker_count",
                "workers",
            ]
        );
        assert_eq!(
            keys(&doc["stats"][0]),
            [
                "avg_content_length",
                "avg_response_time",
                "current_fail_per_sec",
                "current_rps",
                "max_response_time",
                "median_response_time",
                "method",
                "min_response_time",
                "name",
                "num_failures",
                "num_requests",
                "response_time_percentile_0.95",
                "response_time_percentile_0.99",
                "total_fail_per_sec",
                "total_rps",
            ]
        );
        assert_eq!(
            keys(&doc["errors"][0]),
            ["error", "method", "name", "occurrences"]
        );
        assert_eq!(doc["workers"], json!([]));
        assert_eq!(doc["worker_count"], json!(0));
        assert_eq!(doc["abandoned_requests"], json!(0));
    }

    #[test]
    fn only_rows_of_paced_requests_carry_corrected_percentiles() {
        let mut s = stats();
        for k in 0..4 {
            let sample = Sample {
                corrected_response_time_us: Some(300_000 + k * 200_000),
                response_time_us: 300_000,
                content_length: 0,
                at_unix_s: 101,
                error: None,
            };
            s.record(Method::Get, "/paced", sample);
        }
        let doc = requests_json(&s, &Window::new(), "running", 1, 103, 2.0);
        let rows = doc["stats"].as_array().unwrap();
        let row = |name: &str| rows.iter().find(|r| r["name"] == json!(name)).unwrap();
        assert!(row("/a").get("corrected").is_none());
        assert!(row("/b").get("corrected").is_none());
        let paced = row("/paced");
        assert_eq!(paced["response_time_percentile_0.99"], json!(300.0));
        assert_eq!(
            paced["corrected"],
            json!({
                "num_requests": 4,
                "avg_response_time": 600.0,
                "median_response_time": paced["corrected"]["median_response_time"],
                "max_response_time": 900.0,
                "response_time_percentile_0.95": 900.0,
                "response_time_percentile_0.99": 900.0,
            })
        );
        let median = paced["corrected"]["median_response_time"].as_f64().unwrap();
        assert!((median - 500.0).abs() <= 0.5, "{median}");
        assert_eq!(row("Aggregated")["corrected"]["num_requests"], json!(4));
    }

    #[test]
    fn rows_come_sorted_then_aggregated_with_times_in_milliseconds() {
        let doc = requests_json(&stats(), &Window::new(), "running", 10, 103, 2.0);
        let names: Vec<&Value> = doc["stats"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["name"])
            .collect();
        assert_eq!(names, [&json!("/a"), &json!("/b"), &json!("Aggregated")]);
        let a = &doc["stats"][0];
        assert_eq!(a["method"], json!("GET"));
        assert_eq!(a["min_response_time"], json!(1.0));
        assert_eq!(a["max_response_time"], json!(3.0));
        assert_eq!(a["avg_response_time"], json!(2.0));
        assert_eq!(a["response_time_percentile_0.99"], json!(3.0));
        assert_eq!(a["total_rps"], json!(1.0));
        let total = &doc["stats"][2];
        assert_eq!(total["method"], Value::Null);
        assert_eq!(total["num_failures"], json!(1));
        assert_eq!(doc["fail_ratio"], json!(1.0 / 3.0));
        assert_eq!(doc["total_rps"], json!(1.5));
        assert_eq!(doc["current_rps"], json!(1.5));
        assert_eq!(doc["errors"][0]["error"], json!("HTTP 503"));
        assert_eq!(doc["state"], json!("running"));
        assert_eq!(doc["user_count"], json!(10));
    }

    #[test]
    fn current_percentiles_come_from_the_window_and_are_null_without_one() {
        let empty = requests_json(&stats(), &Window::new(), "running", 1, 103, 2.0);
        assert_eq!(
            empty["current_response_time_percentiles"],
            json!({"response_time_percentile_0.5": null, "response_time_percentile_0.95": null})
        );
        let mut h = Histogram::new();
        h.record(4000);
        let mut w = Window::new();
        w.push(102, &h);
        let doc = requests_json(&stats(), &w, "running", 1, 103, 2.0);
        assert_eq!(
            doc["current_response_time_percentiles"],
            json!({"response_time_percentile_0.5": 4.0, "response_time_percentile_0.95": 4.0})
        );
    }
}
