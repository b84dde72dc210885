//! Transport outcomes: TLS, timeouts, refused connections; each is data in the stats.

use hatchery_e2e::{hatchery, read_csv, test_ca, Target, TempDir};

fn failures(dir: &TempDir) -> Vec<Vec<String>> {
    read_csv(&dir.path().join("run_failures.csv"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_requests_are_verified_against_the_given_ca() {
    let target = Target::start_tls().await;
    let dir = TempDir::new("tls");
    let plan = dir.write(
        "plan.yaml",
        "users: [{name: U, wait: {constant: 10ms}, tasks: [{get: /a}]}]\n",
    );
    let prefix = dir.path().join("run");
    let args = [
        "-f",
        plan.to_str().unwrap(),
        "--headless",
        "-u",
        "2",
        "-r",
        "100",
        "-t",
        "1s",
        "-s",
        "5s",
        "-H",
        &target.url(),
        "--csv",
        prefix.to_str().unwrap(),
    ];
    let ca = test_ca();
    let mut with_ca = args.to_vec();
    with_ca.extend(["--ca-cert", ca.to_str().unwrap()]);
    hatchery(&with_ca).run().await.expect_code(0);
    let rows = read_csv(&dir.path().join("run_stats.csv"));
    let a = rows.iter().find(|r| r[1] == "/a").expect("row /a");
    assert_eq!(a[2].parse::<u64>().unwrap(), target.count("GET", "/a"));
    assert!(target.count("GET", "/a") > 0);

    // Without the CA the certificate is not trusted: failures, never a request sent.
    let before = target.count("GET", "/a");
    hatchery(&args).run().await.expect_code(1);
    assert_eq!(target.count("GET", "/a"), before);
    let f = failures(&dir);
    assert!(
        f[1][2].contains("certificate") || f[1][2].contains("TLS"),
        "{f:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_refused_connections_are_recorded_as_failures() {
    let target = Target::start().await;
    let dir = TempDir::new("timeouts");
    let plan = dir.write(
        "plan.yaml",
        "users:
  - name: Slow
    wait: {constant: 10ms}
    tasks: [{get: /sleep/2000, name: slow, timeout: 100ms}]
  - name: Nowhere
    wait: {constant: 100ms}
    tasks: [{get: 'http://127.0.0.1:1/x', name: refused}]
",
    );
    let prefix = dir.path().join("run");
    let out = hatchery(&[
        "-f",
        plan.to_str().unwrap(),
        "--headless",
        "-u",
        "2",
        "-r",
        "100",
        "-t",
        "1s",
        "-H",
        &target.url(),
        "--csv",
        prefix.to_str().unwrap(),
    ])
    .run()
    .await;
    out.expect_code(1);
    let f = failures(&dir);
    let slow = f.iter().find(|r| r[1] == "slow").expect("slow failures");
    assert_eq!(slow[2], "timeout after 100ms");
    let refused = f
        .iter()
        .find(|r| r[1] == "refused")
        .expect("refused failures");
    assert!(refused[2].starts_with("connect error"), "{refused:?}");
    // Each timed-out request still counts once, with its response time near the timeout.
    let stats = read_csv(&dir.path().join("run_stats.csv"));
    let row = stats.iter().find(|r| r[1] == "slow").expect("stats row");
    assert_eq!(row[2], row[3], "every slow request failed: {row:?}");
    let max_ms: f64 = row[7].parse().unwrap();
    assert!((100.0..1000.0).contains(&max_ms), "{row:?}");
}
