//! The Prometheus text exposition of a snapshot (`GET /metrics`).

use std::fmt::Write as _;

use hatchery_core::stats::Entry;

use crate::run::{Snapshot, WorkerView};

/// Upper bounds of the response-time buckets, in seconds.
const BUCKETS_S: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Renders the metrics: users, workers, state, and per (method, name) requests, failures and
/// a response-time histogram; per worker its state, users, CPU and memory.
pub fn render(snap: &Snapshot) -> String {
    let mut out = String::new();
    let entries: Vec<(String, &Entry)> = snap
        .stats
        .entries()
        .map(|(m, name, e)| (format!("method=\"{m}\",name=\"{}\"", escape(name)), e))
        .collect();
    family(&mut out, "hatchery_users", "gauge", "Users running.");
    let _ = writeln!(out, "hatchery_users {}", snap.user_count);
    family(&mut out, "hatchery_workers", "gauge", "Workers connected.");
    let _ = writeln!(out, "hatchery_workers {}", snap.workers.len());
    family(
        &mut out,
        "hatchery_state",
        "gauge",
        "The run's state (1 for the current one).",
    );
    let _ = writeln!(out, "hatchery_state{{state=\"{}\"}} 1", snap.state.as_str());
    let requests = "hatchery_requests_total";
    family(
        &mut out,
        requests,
        "counter",
        "Requests completed, failed ones included.",
    );
    for (labels, e) in &entries {
        let _ = writeln!(out, "{requests}{{{labels}}} {}", e.num_requests);
    }
    let failures = "hatchery_failures_total";
    family(&mut out, failures, "counter", "Requests that failed.");
    for (labels, e) in &entries {
        let _ = writeln!(out, "{failures}{{{labels}}} {}", e.num_failures);
    }
    let hist = "hatchery_response_time_seconds";
    family(
        &mut out,
        hist,
        "histogram",
        "Response times of completed requests.",
    );
    for (labels, e) in &entries {
        histogram(&mut out, hist, labels, e);
    }
    let per_worker: [WorkerGauge; 3] = [
        ("hatchery_worker_users", "Users a worker runs.", |w| {
            w.users.to_string()
        }),
        (
            "hatchery_worker_cpu_percent",
            "A worker's CPU use, percent of one core.",
            |w| w.cpu_percent.to_string(),
        ),
        (
            "hatchery_worker_memory_bytes",
            "A worker's resident memory.",
            |w| w.memory_bytes.to_string(),
        ),
    ];
    family(
        &mut out,
        "hatchery_worker_up",
        "gauge",
        "A connected worker, by id and state.",
    );
    for w in &snap.workers {
        let _ = writeln!(
            out,
            "hatchery_worker_up{{worker=\"{}\",state=\"{}\"}} 1",
            escape(&w.id),
            w.state
        );
    }
    for (name, help, value) in per_worker {
        family(&mut out, name, "gauge", help);
        for w in &snap.workers {
            let _ = writeln!(out, "{name}{{worker=\"{}\"}} {}", escape(&w.id), value(w));
        }
    }
    out
}

/// Name, help, and how to read a worker's value.
type WorkerGauge = (&'static str, &'static str, fn(&WorkerView) -> String);

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, labels: &str, e: &Entry) {
    for le in BUCKETS_S {
        let n = e.histogram.count_at_most((le * 1e6) as u64);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{{labels},le=\"+Inf\"}} {}",
        e.histogram.count()
    );
    let _ = writeln!(
        out,
        "{name}_sum{{{labels}}} {}",
        e.histogram.sum() as f64 / 1e6
    );
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", e.histogram.count());
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::State;
    use hatchery_core::stats::{Sample, Stats, Window};
    use hatchery_core::Method;
    use std::time::Duration;

    fn snapshot() -> Snapshot {
        let mut stats = Stats::new();
        for (us, err) in [(300, None), (2_000, None), (40_000, Some("HTTP 500"))] {
            let s = Sample {
                corrected_response_time_us: None,
                response_time_us: us,
                content_length: 2,
                at_unix_s: 1,
                error: err,
            };
            stats.record(Method::Get, "/a \"b\"", s);
        }
        Snapshot {
            state: State::Running,
            host: None,
            stats,
            window: Window::default(),
            user_count: 3,
            workers: vec![WorkerView {
                id: "w-1".into(),
                state: "running",
                users: 3,
                cpu_percent: 12.5,
                memory_bytes: 1024,
            }],
            elapsed: Duration::from_secs(1),
        }
    }

    #[test]
    fn metrics_are_valid_text_exposition_with_a_histogram_per_entry() {
        let text = render(&snapshot());
        let labels = r#"method="GET",name="/a \"b\"""#;
        for want in [
            "hatchery_users 3".to_string(),
            "hatchery_workers 1".to_string(),
            r#"hatchery_state{state="running"} 1"#.to_string(),
            format!("hatchery_requests_total{{{labels}}} 3"),
            format!("hatchery_failures_total{{{labels}}} 1"),
            format!(r#"hatchery_response_time_seconds_bucket{{{labels},le="0.0005"}} 1"#),
            format!(r#"hatchery_response_time_seconds_bucket{{{labels},le="0.0025"}} 2"#),
            format!(r#"hatchery_response_time_seconds_bucket{{{labels},le="+Inf"}} 3"#),
            format!("hatchery_response_time_seconds_count{{{labels}}} 3"),
            r#"hatchery_worker_users{worker="w-1"} 3"#.to_string(),
        ] {
            assert!(text.lines().any(|l| l == want), "missing {want}\n{text}");
        }
        // Every sample follows its family's TYPE line.
        let ty = text
            .find("# TYPE hatchery_response_time_seconds histogram")
            .unwrap();
        let sample = text.find("hatchery_response_time_seconds_bucket").unwrap();
        assert!(ty < sample);
    }
}
