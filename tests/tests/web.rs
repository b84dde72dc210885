//! The master's web side against the real binary: Locust's REST API, the UI's assets, the
//! report, metrics, basic auth and a base path. (The UI itself is driven in Chromium by
//! tests/ui.)

use std::time::Duration;

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
