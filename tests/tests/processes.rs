//! `--processes` with real processes, each test in a process group of its own whose size is
//! watched: a test that fails kills the group at a low bound instead of filling the machine.

use std::time::Duration;

use hatchery_e2e::{
    csv_count, fixture, hatchery, Finished, Master, ProcessGroup, Run, Standalone, Target, TempDir,
};
use tokio::time::Instant;

/// Runs `run` in its own process group until it exits, failing (and killing the group) when the
/// group ever holds more than `bound` processes or the run takes longer than `limit`. Returns
/// what it printed and the largest group seen.
async fn run_bounded(run: Run, bound: usize, limit: Duration) -> (Finished, usize) {
    let mut process = run.own_group().spawn();
    let group = ProcessGroup(process.pid());
    let deadline = Instant::now() + limit;
    let mut most = 0;
    loop {
        let size = group.size();
        most = most.max(size);
        if size > bound {
            group.kill();
            panic!("{size} processes in the group, more than {bound}: --processes multiplied");
        }
        if process.exited().is_some() {
            return (process.finish().await, most);
        }
        if Instant::now() > deadline {
            group.kill();
            panic!("still running after {limit:?} ({size} processes)");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_in_a_config_file_start_that_many_workers_and_the_children_start_none() {
    let dir = TempDir::new("conf-processes");
    // Nothing listens on port 1: each child gives up after --master-timeout.
    dir.write(
        "hatchery.conf",
        "worker = true\nprocesses = 2\nmaster-host = 127.0.0.1\nmaster-port = 1\nmaster-timeout = 2s\n",
    );
    // The environment says so too; the children must not listen to it either.
    let run = hatchery(&[])
        .current_dir(dir.path())
        .env("HATCHERY_PROCESSES", "2");
    let (out, most) = run_bounded(run, 3, Duration::from_secs(30)).await;
    assert_eq!(most, 3, "the parent and its two workers: {}", out.stderr());
    out.expect_code(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_processes_runs_a_master_and_that_many_local_workers() {
    let target = Target::start().await;
    let dir = TempDir::new("standalone-processes");
    let plan = dir.write("plan.yaml", hatchery_e2e::READER_WRITER_PLAN);
    let prefix = dir.path().join("run");
    let run = Standalone::headless(&plan)
        .host(&target.url())
        .users(4)
        .spawn_rate(100.0)
        .run_time("1s")
        .stop_timeout("5s")
        .csv(&prefix)
        .args(&["--processes", "2", "--master-bind-port", "0"])
        .command();
    let (out, most) = run_bounded(run, 3, Duration::from_secs(60)).await;
    out.expect_code(0);
    assert_eq!(most, 3, "the master and its two workers: {}", out.stderr());
    assert_eq!(
        target.count("GET", "/start/reader") + target.count("GET", "/start/writer"),
        4
    );
    let stats = dir.path().join("run_stats.csv");
    assert_eq!(csv_count(&stats, "Aggregated"), target.total());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_zero_is_refused_with_a_reason() {
    let dir = TempDir::new("processes-zero");
    let plan = dir.write("plan.yaml", hatchery_e2e::READER_WRITER_PLAN);
    let out = hatchery(&[
        "-f",
        plan.to_str().unwrap(),
        "--headless",
        "--processes",
        "0",
    ])
    .run()
    .await;
    out.expect_code(2);
    assert!(
        out.stderr().contains("--processes must be"),
        "{}",
        out.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_master_with_processes_runs_local_workers_that_trust_its_own_certificate() {
    let target = Target::start().await;
    let dir = TempDir::new("master-processes");
    let plan = dir.write("plan.yaml", hatchery_e2e::READER_WRITER_PLAN);
    let (cert, key) = (fixture("localhost.pem"), fixture("localhost.key"));
    let run = Master::headless(&plan)
        .host(&target.url())
        .users(4)
        .spawn_rate(100.0)
        .run_time("1s")
        .stop_timeout("5s")
        .args(&[
            "--processes",
            "2",
            "--master-bind-port",
            "0",
            "--web-port",
            "0",
        ])
        .args(&["--tls-cert", cert.to_str().unwrap()])
        .args(&["--tls-key", key.to_str().unwrap()])
        .command();
    let (out, most) = run_bounded(run, 3, Duration::from_secs(60)).await;
    out.expect_code(0);
    assert_eq!(most, 3, "the master and its two workers: {}", out.stderr());
    assert!(out.stderr().contains("(2 connected)"), "{}", out.stderr());
    assert_eq!(
        target.count("GET", "/start/reader") + target.count("GET", "/start/writer"),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_to_the_parent_of_worker_processes_stops_them_all() {
    // Nothing listens on port 1: without a master the two workers would keep redialling for
    // the whole master timeout.
    let mut parent = hatchery(&[
        "--worker",
        "--processes",
        "2",
        "--master-host",
        "127.0.0.1",
        "--master-port",
        "1",
        "--master-timeout",
        "120s",
    ])
    .own_group()
    .spawn();
    let group = ProcessGroup(parent.pid());
    let deadline = Instant::now() + Duration::from_secs(30);
    while group.size() < 3 {
        assert!(Instant::now() < deadline, "the two workers did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The parent alone, as `kill PID` or a supervisor would.
    parent.terminate();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (exited, size) = (parent.exited().is_some(), group.size());
        if exited && size == 0 {
            break;
        }
        if Instant::now() > deadline {
            group.kill();
            panic!("20 s after SIGTERM: parent exited {exited}, {size} processes left");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = parent.finish().await;
    assert!(
        out.stderr().contains("passing it on to 2 worker processes"),
        "{}",
        out.stderr()
    );
}
