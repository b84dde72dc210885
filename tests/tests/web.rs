//! The master's web side against the real binary: Locust's REST API, the UI's assets, the
//! report, metrics, basic auth and a base path. (The UI itself is driven in Chromium by
//! tests/ui.)

use std::time::Duration;

use hatchery_e2e::prometheus::{Prometheus, Scrape};
use hatchery_e2e::{eventually, hatchery, http, worker, Master, Running, Target, TempDir};
use serde_json::Value;

const PLAN: &str = "users:
  - name: Reader
    weight: 3
    wait: {constant: 20ms}
    tasks: [{get: /a, name: read-a}]
  - name: Writer
    weight: 1
    wait: {constant: 20ms}
    tasks: [{post: /b}]
";

/// "Basic dTpw": u:p.
const AUTH: (&str, &str) = ("authorization", "Basic dTpw");

struct Ui {
    _master: Running,
    _worker: Running,
    web: u16,
}

impl Ui {
    async fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let path = format!("/base{path}");
        http(self.web, method, &path, body, &[AUTH])
            .await
            .expect("the master answers")
    }

    async fn stats(&self) -> Value {
        let (code, body) = self.call("GET", "/stats/requests", None).await;
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).expect("JSON")
    }
}

async fn ui(target: &Target, dir: &TempDir) -> Ui {
    let plan = dir.write("plan.yaml", PLAN);
    let m = Master::ui(&plan)
        .args(&["--web-base-path", "/base", "--web-auth", "u:p"])
        .host(&target.url())
        // Users finish the request in flight when stopped, so the counts match the target's.
        .stop_timeout("5s")
        .spawn()
        .await;
    let (master, web) = (m.process, m.web);
    let worker = worker(m.grpc, &[]).spawn();
    eventually("the worker connected", Duration::from_secs(20), || async {
        let (code, _) = http(web, "GET", "/base/readyz", None, &[]).await?;
        (code == 200).then_some(())
    })
    .await;
    Ui {
        _master: master,
        _worker: worker,
        web,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_api_starts_changes_stops_and_reports_a_test() {
    let target = Target::start().await;
    let dir = TempDir::new("web-api");
    let ui = ui(&target, &dir).await;

    // Health and readiness stay open; everything else asks for the password.
    assert_eq!(
        http(ui.web, "GET", "/base/healthz", None, &[])
            .await
            .unwrap()
            .0,
        200
    );
    let (code, _) = http(ui.web, "GET", "/base/stats/requests", None, &[])
        .await
        .unwrap();
    assert_eq!(code, 401);
    // The same credentials in the header the operator sends through the Kubernetes API
    // server's pod proxy (which drops Authorization); a wrong password there is refused too.
    for (value, want) in [("Basic dTpw", 200), ("Basic dTpx", 401), ("dTpw", 401)] {
        let header = [("x-hatchery-authorization", value)];
        let (code, _) = http(ui.web, "GET", "/base/stats/requests", None, &header)
            .await
            .unwrap();
        assert_eq!(code, want, "{value}");
    }
    let (code, page) = ui.call("GET", "/", None).await;
    assert!(code == 200 && page.contains("static/app.js"), "{code}");
    assert_eq!(ui.call("GET", "/static/app.js", None).await.0, 200);
    assert_eq!(ui.stats().await["state"], "ready");

    // Bad input is refused with a reason.
    let (code, body) = ui
        .call("POST", "/swarm", Some("user_count=x&spawn_rate=1"))
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("user_count"), "{body}");
    // Numbers out of bounds too: a billion users once grew the master by 1.2 GB/s until it was
    // killed, and a run time past what an Instant holds panicked the run.
    for (form, word) in [
        ("user_count=1000000000&spawn_rate=1e308", "--max-users"),
        ("user_count=4&spawn_rate=1e308", "spawn rate"),
        ("user_count=4&spawn_rate=0", "spawn rate"),
        (
            "user_count=4&spawn_rate=1&run_time=99999999999999h",
            "run time",
        ),
    ] {
        let (code, body) = ui.call("POST", "/swarm", Some(form)).await;
        assert_eq!(code, 400, "{form}: {body}");
        assert!(body.contains(word), "{form}: {body}");
    }
    assert_eq!(ui.stats().await["state"], "ready");

    let (code, body) = ui
        .call("POST", "/swarm", Some("user_count=4&spawn_rate=100"))
        .await;
    assert_eq!(code, 200, "{body}");
    eventually("four users", Duration::from_secs(20), || async {
        let s = ui.stats().await;
        (s["user_count"] == 4 && s["state"] == "running").then_some(())
    })
    .await;
    let (code, _) = ui
        .call("POST", "/swarm", Some("user_count=2&spawn_rate=100"))
        .await;
    assert_eq!(code, 200);
    eventually("two users", Duration::from_secs(20), || async {
        (ui.stats().await["user_count"] == 2).then_some(())
    })
    .await;
    eventually("requests counted", Duration::from_secs(20), || async {
        let s = ui.stats().await;
        (s["stats"]
            .as_array()?
            .iter()
            .any(|e| e["name"] == "read-a" && e["num_requests"].as_u64().unwrap_or(0) > 0))
        .then_some(())
    })
    .await;

    let (code, metrics) = ui.call("GET", "/metrics", None).await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains("# TYPE hatchery_response_time_seconds histogram"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"hatchery_requests_total{method="GET",name="read-a"}"#),
        "{metrics}"
    );

    let (code, body) = ui.call("GET", "/stop", None).await;
    assert_eq!(code, 200, "{body}");
    let stopped = eventually("stopped", Duration::from_secs(20), || async {
        let s = ui.stats().await;
        (s["state"] == "stopped").then_some(s)
    })
    .await;
    let requests = stopped["stats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "read-a")
        .unwrap()["num_requests"]
        .as_u64()
        .unwrap();
    // The master keeps serving the final numbers; they equal what the target saw.
    assert_eq!(requests, target.count("GET", "/a"));

    let (code, csv) = ui.call("GET", "/stats/requests/csv", None).await;
    assert_eq!(code, 200);
    assert!(
        csv.starts_with("Type,Name,Request Count,Failure Count,"),
        "{csv}"
    );
    assert!(csv.contains(&format!("GET,read-a,{requests},")), "{csv}");
    let (code, csv) = ui.call("GET", "/stats/failures/csv", None).await;
    assert!(
        code == 200 && csv.starts_with("Method,Name,Error,Occurrences"),
        "{csv}"
    );
    let (code, csv) = ui.call("GET", "/exceptions/csv", None).await;
    assert!(
        code == 200 && csv.starts_with("Count,Message,Traceback,Nodes"),
        "{csv}"
    );
    let (code, body) = ui.call("GET", "/exceptions", None).await;
    assert_eq!((code, body.as_str()), (200, r#"{"exceptions":[]}"#));
    let (code, report) = ui.call("GET", "/stats/report", None).await;
    assert!(
        code == 200 && report.contains("read-a") && report.contains("<svg"),
        "{code}"
    );
    let (code, history) = ui.call("GET", "/stats/history", None).await;
    let history: Value = serde_json::from_str(&history).unwrap();
    assert!(code == 200 && !history.as_array().unwrap().is_empty());

    let (code, body) = ui.call("GET", "/stats/reset", None).await;
    assert_eq!((code, body.as_str()), (200, "ok"));
    let s = ui.stats().await;
    let aggregated = s["stats"].as_array().unwrap().last().unwrap()["num_requests"].clone();
    assert_eq!(aggregated, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autostart_and_autoquit_run_one_test_and_write_the_html_report() {
    let target = Target::start().await;
    let dir = TempDir::new("web-auto");
    let plan = dir.write("plan.yaml", PLAN);
    let report = dir.path().join("report.html");
    let out = hatchery(&[
        "-f",
        plan.to_str().unwrap(),
        "--autostart",
        "--autoquit",
        "1",
        "-u",
        "2",
        "-r",
        "100",
        "-t",
        "1s",
        "-s",
        "5s",
        "--web-host",
        "127.0.0.1",
        "--web-port",
        "0",
        "-H",
        &target.url(),
        "--html",
        report.to_str().unwrap(),
    ])
    .run()
    .await;
    out.expect_code(0);
    let page = std::fs::read_to_string(&report).expect("the report was written");
    assert!(page.starts_with("<!doctype html>"));
    assert!(
        page.contains(&format!("<td>{}</td>", target.count("GET", "/a"))),
        "the report holds the final count"
    );
}

/// A master with a worker running two users against a fresh target (kept alive with the dir).
async fn two_users(tag: &str) -> (Target, TempDir, Ui) {
    let target = Target::start().await;
    let dir = TempDir::new(tag);
    let ui = ui(&target, &dir).await;
    let (code, body) = ui
        .call("POST", "/swarm", Some("user_count=2&spawn_rate=100"))
        .await;
    assert_eq!(code, 200, "{body}");
    (target, dir, ui)
}

/// deploy/grafana/hatchery-master.json asks Prometheus only for what a running master serves:
/// every `hatchery_*` name in its queries is a family of /metrics (or a histogram's `_bucket`,
/// `_sum`, `_count`), and every label it filters or groups by is on a sample of /metrics or is
/// added by the scrape (`loadtest` by the chart's PodMonitor, `instance` by Prometheus).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_dashboard_asks_only_for_what_a_master_serves() {
    let (_target, _dir, ui) = two_users("web-dashboard").await;
    let metrics = eventually(
        "requests and a worker in /metrics",
        Duration::from_secs(20),
        || async {
            let (_, m) = ui.call("GET", "/metrics", None).await;
            (m.contains("hatchery_requests_total{") && m.contains("hatchery_worker_users{"))
                .then_some(m)
        },
    )
    .await;
    let families: Vec<(&str, &str)> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    let mut labels: Vec<&str> = vec!["loadtest", "instance"];
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        if let Some((_, rest)) = line.split_once('{') {
            labels.extend(
                rest.split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, _)| k),
            );
        }
    }

    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/hatchery-master.json"
    );
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the dashboard")).expect("JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().expect("targets") {
            queries.push(t["expr"].as_str().expect("expr").to_string());
        }
    }
    for v in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if let Some(q) = v["definition"].as_str() {
            queries.push(q.to_string());
        }
    }
    assert!(queries.len() >= 15, "{queries:?}");
    for q in &queries {
        let names = promql::metric_names(q);
        assert!(!names.is_empty(), "no hatchery_* family in {q}");
        for name in names {
            let served = families.iter().any(|&(f, kind)| {
                f == name
                    || (kind == "histogram"
                        && ["_bucket", "_sum", "_count"]
                            .iter()
                            .any(|s| name.strip_prefix(f) == Some(s)))
            });
            assert!(
                served,
                "{name} (in {q}) is not served by /metrics:\n{metrics}"
            );
        }
        for label in promql::label_names(q) {
            assert!(
                label == "le" || labels.contains(&label.as_str()),
                "label {label} (in {q}) is on no sample of /metrics:\n{metrics}"
            );
        }
    }
}

/// Every query of deploy/grafana/hatchery-master.json, run by a real Prometheus (Debian's)
/// that scrapes a real master with a worker and two users: each parses and returns series, with
/// the dashboard's variables as Grafana would fill them (`loadtest` from the scrape's label, as
/// the chart's PodMonitor adds it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_answers_every_query_of_the_grafana_dashboard() {
    let (_target, _dir, ui) = two_users("web-prometheus").await;
    let prometheus = Prometheus::start(Scrape {
        port: ui.web,
        path: "/base/metrics",
        basic_auth: Some(("u", "p")),
        labels: &[("loadtest", "demo")],
    })
    .await;
    let dashboard = dashboard();
    for v in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        let Some(q) = v["definition"].as_str() else {
            continue;
        };
        let (series, label) = q
            .strip_prefix("label_values(")
            .and_then(|a| a.strip_suffix(')'))
            .and_then(|a| a.rsplit_once(','))
            .expect("label_values(series, label)");
        let series = series.replace("$loadtest", "demo");
        let want = if label.trim() == "loadtest" {
            "demo".to_string()
        } else {
            format!("127.0.0.1:{}", ui.web)
        };
        eventually(
            &format!("{q} lists {want}"),
            Duration::from_secs(30),
            || async {
                prometheus
                    .label_values(label.trim(), &series)
                    .await
                    .contains(&want)
                    .then_some(())
            },
        )
        .await;
    }
    for panel in dashboard["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().expect("targets") {
            let q = t["expr"]
                .as_str()
                .expect("expr")
                .replace("$loadtest", "demo")
                .replace("$instance", ".*")
                .replace("$__rate_interval", "10s");
            let title = panel["title"].as_str().unwrap_or_default();
            eventually(
                &format!("panel {title:?}: {q}"),
                Duration::from_secs(30),
                || async {
                    let series = prometheus
                        .query(&q)
                        .await
                        .unwrap_or_else(|e| panic!("{q}: {e}"));
                    // A value, and a number (a ratio or quantile over no data is NaN).
                    series
                        .iter()
                        .any(|s| s["value"][1].as_str().is_some_and(|v| v != "NaN"))
                        .then_some(())
                },
            )
            .await;
        }
    }
}

fn dashboard() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/hatchery-master.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("the dashboard")).expect("JSON")
}

/// Just enough of PromQL to read the names a query asks for.
mod promql {
    fn words(q: &str) -> impl Iterator<Item = (usize, &str)> {
        q.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .map(move |w| (w.as_ptr() as usize - q.as_ptr() as usize, w))
    }

    pub fn metric_names(q: &str) -> Vec<String> {
        words(q)
            .filter(|(_, w)| w.starts_with("hatchery_"))
            .map(|(_, w)| w.to_string())
            .collect()
    }

    /// Labels in `{k="v", k=~"v"}` matchers, `by (..)` / `without (..)` clauses and the last
    /// argument of Grafana's `label_values(series, label)`.
    pub fn label_names(q: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (at, w) in words(q) {
            let after = q[at + w.len()..].trim_start();
            let matcher = ["=~", "!~", "!=", "="]
                .iter()
                .any(|op| after.starts_with(op) && !after.starts_with("=="));
            if matcher && in_braces(q, at) {
                out.push(w.to_string());
            }
            if (w == "by" || w == "without") && after.starts_with('(') {
                let inner = &after[1..after.find(')').unwrap_or(after.len())];
                out.extend(inner.split(',').map(|l| l.trim().to_string()));
            }
        }
        if let Some(args) = q.strip_prefix("label_values(") {
            if let Some((_, label)) = args.trim_end_matches(')').rsplit_once(',') {
                out.push(label.trim().to_string());
            }
        }
        out
    }

    /// Whether `at` is inside a `{..}` selector.
    fn in_braces(q: &str, at: usize) -> bool {
        let before = &q[..at];
        before.matches('{').count() > before.matches('}').count()
    }

    #[test]
    fn names_are_read_from_matchers_groupings_and_label_values() {
        let q = r#"histogram_quantile(0.95, sum by (le, name) (rate(hatchery_x_bucket{loadtest=~"$lt", a="b"}[1m])))"#;
        assert_eq!(metric_names(q), ["hatchery_x_bucket"]);
        assert_eq!(label_names(q), ["le", "name", "loadtest", "a"]);
        assert_eq!(
            label_names(r#"label_values(hatchery_users{loadtest=~"$x"}, instance)"#),
            ["loadtest", "instance"]
        );
        assert!(label_names("sum(rate(hatchery_x[1m])) / 2").is_empty());
    }
}
