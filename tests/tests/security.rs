//! Securing the master with real processes on loopback: TLS on the workers' port and the web
//! port with one certificate (tests/fixtures), the worker token over it, the web UI's basic
//! auth; and the peers that must be refused without touching the run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hatchery_e2e::{
    csv_count, eventually, fixture, hatchery, http, https, other_ca, test_ca, worker, Builder,
    Finished, Master, Port, Running, Target, TempDir,
};

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

/// A headless master on loopback ports it picks, with TLS from the fixtures when `tls`.
fn master(plan: &Path, target: &Target, tls: bool) -> Builder<Master> {
    let m = Master::headless(plan).host(&target.url());
    if !tls {
        return m;
    }
    let (cert, key) = (fixture("localhost.pem"), fixture("localhost.key"));
    m.args(&["--tls-cert", cert.to_str().unwrap()])
        .args(&["--tls-key", key.to_str().unwrap()])
}

fn ca_flag(ca: &Path) -> [&str; 2] {
    ["--tls-ca", ca.to_str().unwrap()]
}

/// `GET path` over HTTPS trusting the test CA, with `headers`.
async fn get(web: u16, path: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    https(web, "GET", path, &test_ca(), headers).await
}

/// The stats CSV's request count for `name`.
fn count(dir: &TempDir, name: &str) -> u64 {
    csv_count(&dir.path().join("run_stats.csv"), name)
}

fn assert_refused(out: &Finished, says: &str) {
    out.expect_code(2);
    assert!(out.stderr().contains(says), "{}", out.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_workers_with_the_token_run_the_test_and_the_totals_match_the_target() {
    let target = Target::start().await;
    let dir = TempDir::new("tls-run");
    let plan = dir.write("plan.yaml", PLAN);
    let token = dir.write("token", "s3cret\n");
    let prefix = dir.path().join("run");
    let m = master(&plan, &target, true)
        .users(4)
        .spawn_rate(100.0)
        .run_time("2s")
        .stop_timeout("5s")
        .workers(2)
        .args(&["--web-auth", "u:p"])
        .csv(&prefix)
        .env("HATCHERY_AUTH_TOKEN", "s3cret")
        .spawn()
        .await;

    // The web port speaks HTTPS with the same certificate; health stays open, the rest asks for
    // the password; a plain HTTP request is told to use https.
    let (code, body) = eventually(
        "the web UI answers over HTTPS",
        Duration::from_secs(20),
        || get(m.web, "/healthz", &[]),
    )
    .await;
    assert_eq!((code, body.as_str()), (200, "ok"));
    assert_eq!(get(m.web, "/stats/requests", &[]).await.unwrap().0, 401);
    let wrong = ("authorization", "Basic dTp4"); // u:x
    assert_eq!(
        get(m.web, "/stats/requests", &[wrong]).await.unwrap().0,
        401
    );
    let right = ("authorization", "Basic dTpw"); // u:p
    let (code, body) = get(m.web, "/stats/requests", &[right]).await.unwrap();
    assert_eq!(code, 200, "{body}");
    let stats: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(stats["state"], "ready");
    let (code, body) = http(m.web, "GET", "/healthz", None, &[]).await.unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("https://"), "{body}");
    assert!(https(m.web, "GET", "/healthz", &other_ca(), &[])
        .await
        .is_none());

    // TLS alone is not enough when the master wants the token.
    let no_token = worker(m.grpc, &ca_flag(&test_ca())).run().await;
    assert_refused(&no_token, "token");

    let ca = test_ca();
    let mut with_both = ca_flag(&ca).to_vec();
    with_both.extend(["--auth-token-file", token.to_str().unwrap()]);
    let workers: Vec<Running> = (0..2).map(|_| worker(m.grpc, &with_both).spawn()).collect();
    let out = m.process.finish().await;
    out.expect_code(0);
    for w in workers {
        w.finish().await.expect_code(0);
    }
    assert!(
        out.stderr().contains("(TLS)"),
        "the master says its workers' port is TLS: {}",
        out.stderr()
    );
    assert!(target.count("GET", "/a") > 0);
    assert_eq!(count(&dir, "read-a"), target.count("GET", "/a"));
    assert_eq!(count(&dir, "/b"), target.count("POST", "/b"));
    assert_eq!(
        count(&dir, "Aggregated"),
        target.count("GET", "/a") + target.count("POST", "/b")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_master_refuses_plaintext_and_distrusting_workers_and_the_run_goes_on() {
    let target = Target::start().await;
    let dir = TempDir::new("tls-refuse");
    let plan = dir.write("plan.yaml", PLAN);
    let prefix = dir.path().join("run");
    let m = master(&plan, &target, true)
        .users(2)
        .spawn_rate(100.0)
        .run_time("1s")
        .stop_timeout("5s")
        .csv(&prefix)
        .spawn()
        .await;
    eventually("the master listens", Duration::from_secs(20), || {
        get(m.web, "/healthz", &[])
    })
    .await;

    // No --tls-ca: the master answers in plaintext that it wants TLS, and the worker says so.
    let plain = worker(m.grpc, &[]).run().await;
    assert_refused(
        &plain,
        "this master requires TLS: start the worker with --tls-ca",
    );
    // A CA that did not sign the master's certificate: the worker refuses the master.
    let distrusting = worker(m.grpc, &ca_flag(&other_ca())).run().await;
    assert_refused(&distrusting, "is not trusted");
    assert!(
        distrusting.stderr().contains("--tls-ca must hold the CA"),
        "{}",
        distrusting.stderr()
    );

    // Neither joined: the gate is still closed, and a trusting worker runs the test.
    let (code, body) = get(m.web, "/readyz", &[]).await.unwrap();
    assert_eq!(code, 503, "{body}");
    let good = worker(m.grpc, &ca_flag(&test_ca())).spawn();
    let out = m.process.finish().await;
    out.expect_code(0);
    good.finish().await.expect_code(0);
    let log = out.stderr();
    assert!(
        log.contains("refused a plaintext worker connection"),
        "{log}"
    );
    assert!(
        log.contains("TLS handshake failed") && log.contains("does not trust"),
        "{log}"
    );
    assert!(target.count("GET", "/a") > 0);
    assert_eq!(count(&dir, "read-a"), target.count("GET", "/a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_worker_is_told_a_plaintext_master_does_not_speak_tls() {
    let target = Target::start().await;
    let dir = TempDir::new("tls-plain-master");
    let plan = dir.write("plan.yaml", PLAN);
    let m = master(&plan, &target, false)
        .users(1)
        .spawn_rate(100.0)
        .run_time("1s")
        .spawn()
        .await;
    eventually("the master listens", Duration::from_secs(20), || {
        http(m.web, "GET", "/healthz", None, &[])
    })
    .await;
    let tls = worker(m.grpc, &ca_flag(&test_ca())).run().await;
    assert_refused(&tls, "does not speak TLS");
    let plain = worker(m.grpc, &[]).spawn();
    let out = m.process.finish().await;
    out.expect_code(0);
    plain.finish().await.expect_code(0);
    assert!(
        out.stderr().contains("refused a TLS worker connection"),
        "{}",
        out.stderr()
    );
    assert!(target.count("GET", "/a") + target.count("POST", "/b") > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_serves_its_web_ui_over_https() {
    let target = Target::start().await;
    let dir = TempDir::new("tls-standalone");
    let plan = dir.write("plan.yaml", PLAN);
    let (cert, key) = (fixture("localhost.pem"), fixture("localhost.key"));
    let mut ui = hatchery(&[
        "-f",
        plan.to_str().unwrap(),
        "--web-host",
        "127.0.0.1",
        "--web-port",
        "0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "-H",
        &target.url(),
    ])
    .spawn();
    let web = ui.listening(Port::Web).await;
    let (code, _) = eventually(
        "the web UI answers over HTTPS",
        Duration::from_secs(20),
        || get(web, "/healthz", &[]),
    )
    .await;
    assert_eq!(code, 200);
    let (code, body) = get(web, "/stats/requests", &[]).await.unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"state\""), "{body}");
    assert_eq!(
        http(web, "GET", "/healthz", None, &[]).await.unwrap().0,
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_without_its_key_or_with_a_foreign_key_is_a_config_error() {
    let dir = TempDir::new("tls-config");
    let plan = dir.write("plan.yaml", PLAN);
    let cert = fixture("localhost.pem");
    let lone = hatchery(&[
        "-f",
        plan.to_str().unwrap(),
        "--master",
        "--tls-cert",
        cert.to_str().unwrap(),
    ])
    .run()
    .await;
    assert_refused(&lone, "--tls-key");
    // The CA's certificate is no key: refused before anything listens.
    let not_a_key = hatchery(&[
        "-f",
        plan.to_str().unwrap(),
        "--master",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        test_ca().to_str().unwrap(),
    ])
    .run()
    .await;
    assert_refused(&not_a_key, "private key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_past_max_workers_is_refused_and_the_run_goes_on() {
    let target = Target::start().await;
    let dir = TempDir::new("max-workers");
    let plan = dir.write("plan.yaml", PLAN);
    let prefix = dir.path().join("run");
    let m = master(&plan, &target, false)
        .users(2)
        .spawn_rate(100.0)
        .run_time("3s")
        .stop_timeout("5s")
        .workers(1)
        .args(&["--max-workers", "1"])
        .csv(&prefix)
        .spawn()
        .await;
    let first = worker(m.grpc, &[]).spawn();
    eventually(
        "the first worker runs users",
        Duration::from_secs(20),
        || async { (target.count("GET", "/a") > 0).then_some(()) },
    )
    .await;
    let second = worker(m.grpc, &[]).run().await;
    assert_refused(
        &second,
        "this master takes at most 1 workers (--max-workers)",
    );
    let out = m.process.finish().await;
    out.expect_code(0);
    first.finish().await.expect_code(0);
    assert!(out.stderr().contains("--max-workers"), "{}", out.stderr());
    assert_eq!(count(&dir, "read-a"), target.count("GET", "/a"));
}

/// The usual one-liner: a self-signed certificate (basic constraints CA:TRUE, as openssl makes
/// it) for localhost and 127.0.0.1, and its key, written as `NAME.pem` and `NAME.key`.
fn openssl_self_signed(dir: &TempDir, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.path().join(format!("{name}.pem")),
        dir.path().join(format!("{name}.key")),
    );
    let status = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(status.success(), "openssl req -x509 failed");
    (cert, key)
}

/// A headless master serving `cert` and `key`, two users for a second.
async fn tls_master(plan: &Path, target: &Target, cert: &Path, key: &Path, csv: &Path) -> Master {
    Master::headless(plan)
        .host(&target.url())
        .users(2)
        .spawn_rate(100.0)
        .run_time("1s")
        .stop_timeout("5s")
        .csv(csv)
        .args(&["--tls-cert", cert.to_str().unwrap()])
        .args(&["--tls-key", key.to_str().unwrap()])
        .spawn()
        .await
}

/// A worker trusting `ca` runs the test; the totals equal the target's count.
async fn runs_with(m: Master, ca: &Path, dir: &TempDir, target: &Target) {
    let w = worker(m.grpc, &ca_flag(ca)).spawn();
    m.process.finish().await.expect_code(0);
    w.finish().await.expect_code(0);
    assert!(target.count("GET", "/a") > 0);
    assert_eq!(count(dir, "read-a"), target.count("GET", "/a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_certificate_given_as_tls_ca_is_trusted_as_itself_and_no_other() {
    let target = Target::start().await;
    let dir = TempDir::new("tls-self-signed");
    let plan = dir.write("plan.yaml", PLAN);
    let (cert, key) = openssl_self_signed(&dir, "c");
    let (other, _) = openssl_self_signed(&dir, "other");
    let m = tls_master(&plan, &target, &cert, &key, &dir.path().join("run")).await;
    // Another self-signed certificate with the same names is not the master's.
    let stranger = worker(m.grpc, &ca_flag(&other)).run().await;
    assert_refused(&stranger, "is not trusted");
    runs_with(m, &cert, &dir, &target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hatchery_certs_writes_a_ca_and_a_master_certificate_that_workers_and_browsers_trust() {
    let target = Target::start().await;
    let dir = TempDir::new("tls-certs");
    let plan = dir.write("plan.yaml", PLAN);
    let certs = dir.path().join("certs");
    let c = certs.to_str().unwrap();
    let made = hatchery(&["certs", c, "--host", "localhost", "--host", "127.0.0.1"])
        .run()
        .await;
    made.expect_code(0);
    assert!(made.stdout().contains("--tls-ca"), "{}", made.stdout());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(certs.join("master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key is its owner's alone");
    }
    // Never over existing files.
    let again = hatchery(&["certs", c, "--host", "localhost"]).run().await;
    assert_refused(&again, "exists");

    let (cert, key, ca) = (
        certs.join("master.pem"),
        certs.join("master.key"),
        certs.join("ca.pem"),
    );
    let m = tls_master(&plan, &target, &cert, &key, &dir.path().join("run")).await;
    let (code, body) = https(m.web, "GET", "/healthz", &ca, &[])
        .await
        .expect("HTTPS");
    assert_eq!((code, body.as_str()), (200, "ok"));
    // The CA signed the master's certificate, nothing else: the test CA's workers are refused.
    let stranger = worker(m.grpc, &ca_flag(&test_ca())).run().await;
    assert_refused(&stranger, "is not trusted");
    runs_with(m, &ca, &dir, &target).await;
}

/// `--master-address` (what the operator passes: the master pod's IP) is dialled before the
/// master's name, and the name stays the one the certificate must hold: a master whose
/// certificate names only `master.invalid`, a name no resolver knows, is joined through
/// 127.0.0.1 and trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_joins_through_the_masters_address_and_verifies_the_masters_name() {
    let target = Target::start().await;
    let dir = TempDir::new("tls-address");
    let plan = dir.write("plan.yaml", PLAN);
    let certs = dir.path().join("certs");
    hatchery(&["certs", certs.to_str().unwrap(), "--host", "master.invalid"])
        .run()
        .await
        .expect_code(0);
    let ca = certs.join("ca.pem");
    let (cert, key) = (certs.join("master.pem"), certs.join("master.key"));
    let m = tls_master(&plan, &target, &cert, &key, &dir.path().join("run")).await;
    let w = worker(
        m.grpc,
        &[
            "--tls-ca",
            ca.to_str().unwrap(),
            "--master-host",
            "master.invalid",
            "--master-address",
            "127.0.0.1",
        ],
    )
    .spawn();
    m.process.finish().await.expect_code(0);
    w.finish().await.expect_code(0);
    assert!(target.count("GET", "/a") > 0);
    assert_eq!(count(&dir, "read-a"), target.count("GET", "/a"));
}

/// An address that leads to another master (on Kubernetes: a restarted master's old pod IP,
/// now another test's) is dropped when that master refuses the worker, and the worker joins
/// its own master by name: here another master with another token holds 127.0.0.1:PORT and
/// the worker's master listens on 127.0.0.2:PORT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_masters_address_that_leads_to_another_master_is_dropped_for_the_name() {
    let target = Target::start().await;
    let dir = TempDir::new("stale-address");
    let plan = dir.write("plan.yaml", PLAN);
    let prefix = dir.path().join("run");
    let stranger = master(&plan, &target, false)
        .users(2)
        .run_time("30s")
        .env("HATCHERY_AUTH_TOKEN", "not-yours")
        .spawn()
        .await;
    let ours = master(&plan, &target, false)
        .bind("127.0.0.2")
        .ports(stranger.grpc, 0)
        .users(2)
        .spawn_rate(100.0)
        .run_time("1s")
        .stop_timeout("5s")
        .csv(&prefix)
        .env("HATCHERY_AUTH_TOKEN", "s3cret")
        .spawn()
        .await;
    let w = worker(
        ours.grpc,
        &[
            "--master-host",
            "127.0.0.2",
            "--master-address",
            "127.0.0.1",
        ],
    )
    .env("HATCHERY_AUTH_TOKEN", "s3cret")
    .spawn();
    ours.process.finish().await.expect_code(0);
    let out = w.finish().await;
    out.expect_code(0);
    let log = out.stderr();
    assert!(
        log.contains("the master's address http://127.0.0.1:")
            && log.contains("requires the worker token"),
        "{log}"
    );
    assert!(target.count("GET", "/a") > 0);
    assert_eq!(count(&dir, "read-a"), target.count("GET", "/a"));
    let mut stranger = stranger.process;
    stranger.kill().await;
}
