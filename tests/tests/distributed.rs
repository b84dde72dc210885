//! Distributed mode with real processes: one master, workers that dial it over gRPC on
//! loopback, and a real HTTP target that counts what it receives.

use std::time::Duration;

use hatchery_e2e::{eventually, free_port, hatchery, http_get, read_csv, Running, Target, TempDir};
use serde_json::Value;

const PLAN: &str = "users:
  - name: Reader
    weight: 3
    wait: {constant: 20ms}
    on_start: [{get: /start/reader}]
    tasks: [{get: /a, name: read-a}]
  - name: Writer
    weight: 1
    wait: {constant: 20ms}
    on_start: [{get: /start/writer}]
    tasks: [{post: /b}]
";

struct Master {
    process: Running,
    grpc: u16,
    web: u16,
}

fn master(plan: &std::path::Path, target: &Target, extra: &[&str]) -> Master {
    let (grpc, web) = (free_port(), free_port());
    let (g, w) = (grpc.to_string(), web.to_string());
    let mut args = vec![
        "-f",
        plan.to_str().unwrap(),
        "--master",
        "--headless",
        "--master-bind-host",
        "127.0.0.1",
        "--master-bind-port",
        &g,
        "--web-host",
        "127.0.0.1",
        "--web-port",
        &w,
        "-H",
        &target_url_leak(target),
    ];
    args.extend_from_slice(extra);
    Master {
        process: hatchery(&args).spawn(),
        grpc,
        web,
    }
}

/// The target's URL with a 'static lifetime, for argument lists built from string slices.
fn target_url_leak(target: &Target) -> &'static str {
    Box::leak(target.url().into_boxed_str())
}

fn worker(grpc: u16, extra: &[&str]) -> Running {
    let port = grpc.to_string();
    let mut args = vec!["--worker", "--master-port", &port];
    args.extend_from_slice(extra);
    hatchery(&args).spawn()
}

async fn stats(web: u16) -> Option<Value> {
    let (code, body) = http_get(web, "/stats/requests").await?;
    (code == 200).then(|| serde_json::from_str(&body).ok())?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_run_exactly_the_weighted_users_and_the_totals_match_the_target() {
    let target = Target::start().await;
    let dir = TempDir::new("dist");
    let plan = dir.write("plan.yaml", PLAN);
    let prefix = dir.path().join("run");
    let m = master(
        &plan,
        &target,
        &[
            "-u",
            "4",
            "-r",
            "100",
            "-t",
            "3s",
            "-s",
            "5s",
            "--expect-workers",
            "3",
            "--csv",
            prefix.to_str().unwrap(),
        ],
    );
    // Before any worker: alive, not ready.
    let (code, body) = eventually("the master's API answers", Duration::from_secs(20), || {
        http_get(m.web, "/readyz")
    })
    .await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(http_get(m.web, "/healthz").await.unwrap().0, 200);
    let workers: Vec<Running> = (0..3).map(|_| worker(m.grpc, &[])).collect();
    eventually(
        "all three workers connected",
        Duration::from_secs(20),
        || async {
            let (code, _) = http_get(m.web, "/readyz").await?;
            (code == 200).then_some(())
        },
    )
    .await;
    let snap = eventually(
        "users spread over the workers",
        Duration::from_secs(20),
        || async {
            let s = stats(m.web).await?;
            (s["user_count"] == 4).then_some(s)
        },
    )
    .await;
    assert_eq!(snap["worker_count"], 3);
    let mut per_worker: Vec<u64> = snap["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["user_count"].as_u64().unwrap())
        .collect();
    per_worker.sort();
    assert_eq!(per_worker, vec![1, 1, 2]);

    let out = m.process.finish().await;
    out.expect_code(0);
    for w in workers {
        w.finish().await.expect_code(0);
    }
    assert_eq!(target.count("GET", "/start/reader"), 3);
    assert_eq!(target.count("GET", "/start/writer"), 1);
    let rows = read_csv(&dir.path().join("run_stats.csv"));
    let count = |name: &str| -> u64 {
        rows.iter()
            .find(|r| r[1] == name)
            .unwrap_or_else(|| panic!("{name}"))[2]
            .parse()
            .unwrap()
    };
    assert_eq!(count("read-a"), target.count("GET", "/a"));
    assert_eq!(count("/b"), target.count("POST", "/b"));
    let total: u64 = target
        .counts()
        .iter()
        .filter(|(k, _)| !k.starts_with("authorization"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(count("Aggregated"), total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_whose_workers_never_come_exits_3_after_the_max_wait() {
    let target = Target::start().await;
    let dir = TempDir::new("gate");
    let plan = dir.write("plan.yaml", PLAN);
    let m = master(
        &plan,
        &target,
        &[
            "--expect-workers",
            "2",
            "--expect-workers-max-wait",
            "1s",
            "-t",
            "10s",
        ],
    );
    let _one = worker(m.grpc, &[]);
    let out = m.process.finish().await;
    out.expect_code(3);
    assert!(
        out.stderr().contains("of 2 workers connected"),
        "{}",
        out.stderr()
    );
    assert_eq!(target.count("GET", "/a"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_another_plan_is_refused_and_says_why() {
    let target = Target::start().await;
    let dir = TempDir::new("hash");
    let plan = dir.write("plan.yaml", PLAN);
    let other = dir.write("other.yaml", &PLAN.replace("20ms", "30ms"));
    let m = master(
        &plan,
        &target,
        &["--expect-workers", "1", "--expect-workers-max-wait", "3s"],
    );
    let refused = worker(m.grpc, &["-f", other.to_str().unwrap()])
        .finish()
        .await;
    refused.expect_code(2);
    assert!(refused.stderr().contains("plan"), "{}", refused.stderr());
    // The master was not affected: it still waits for a worker with the right plan.
    let (code, _) = http_get(m.web, "/readyz").await.expect("master alive");
    assert_eq!(code, 503);
    let same = worker(m.grpc, &["-f", plan.to_str().unwrap()]);
    eventually(
        "the matching worker is accepted",
        Duration::from_secs(20),
        || async {
            let (code, _) = http_get(m.web, "/readyz").await?;
            (code == 200).then_some(())
        },
    )
    .await;
    drop(same);
    drop(m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_users_move_to_the_others_and_a_late_worker_gets_its_share() {
    let target = Target::start().await;
    let dir = TempDir::new("kill");
    let plan = dir.write("plan.yaml", PLAN);
    let m = master(
        &plan,
        &target,
        &["-u", "6", "-r", "50", "-t", "60s", "--expect-workers", "2"],
    );
    let mut a = worker(m.grpc, &[]);
    let _b = worker(m.grpc, &[]);
    eventually(
        "six users on two workers",
        Duration::from_secs(20),
        || async {
            let s = stats(m.web).await?;
            (s["user_count"] == 6 && s["worker_count"] == 2).then_some(())
        },
    )
    .await;
    a.kill().await;
    let s = eventually(
        "the survivor runs all six users",
        Duration::from_secs(20),
        || async {
            let s = stats(m.web).await?;
            (s["worker_count"] == 1 && s["user_count"] == 6).then_some(s)
        },
    )
    .await;
    assert_eq!(s["workers"][0]["user_count"], 6);
    let _c = worker(m.grpc, &[]);
    let s = eventually(
        "the late worker gets half",
        Duration::from_secs(20),
        || async {
            let s = stats(m.web).await?;
            let users: Vec<u64> = s["workers"]
                .as_array()?
                .iter()
                .filter_map(|w| w["user_count"].as_u64())
                .collect();
            (users == vec![3, 3] || (users.len() == 2 && users.iter().all(|&u| u == 3)))
                .then_some(s)
        },
    )
    .await;
    assert_eq!(s["user_count"], 6);
    drop(m);
}
