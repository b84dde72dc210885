//! Distributed mode with real processes: one master, workers that dial it over gRPC on
//! loopback, and a real HTTP target that counts what it receives.

use std::time::Duration;

use hatchery_e2e::{
    aggregated, eventually, hatchery, http_get, read_csv, stats, worker, Builder, Master, Running,
    Target, TempDir,
};

/// Three Readers to one Writer, each announcing its start on the target.
const PLAN: &str = hatchery_e2e::READER_WRITER_PLAN;

/// A headless master of `plan` against `target`, on ports it picks.
fn master(plan: &std::path::Path, target: &Target) -> Builder<Master> {
    Master::headless(plan).host(&target.url())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_run_exactly_the_weighted_users_and_the_totals_match_the_target() {
    let target = Target::start().await;
    let dir = TempDir::new("dist");
    let plan = dir.write("plan.yaml", PLAN);
    let prefix = dir.path().join("run");
    let m = master(&plan, &target)
        .users(4)
        .spawn_rate(100.0)
        .run_time("3s")
        .stop_timeout("5s")
        .workers(3)
        .csv(&prefix)
        .spawn()
        .await;
    // Before any worker: alive, not ready.
    let (code, body) = eventually("the master's API answers", Duration::from_secs(20), || {
        http_get(m.web, "/readyz")
    })
    .await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(http_get(m.web, "/healthz").await.unwrap().0, 200);
    let workers: Vec<Running> = (0..3).map(|_| worker(m.grpc, &[]).spawn()).collect();
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
    let m = master(&plan, &target)
        .workers(2)
        .args(&["--expect-workers-max-wait", "1s"])
        .run_time("10s")
        .spawn()
        .await;
    let _one = worker(m.grpc, &[]).spawn();
    let out = m.process.finish().await;
    out.expect_code(3);
    assert!(
        out.stderr().contains("of 2 workers connected"),
        "{}",
        out.stderr()
    );
    // It names the port the workers were to reach: the one it got, not the 0 it asked for.
    let port = format!("reach this master on port {}\n", m.grpc);
    assert!(out.stderr().contains(&port), "{}", out.stderr());
    assert_eq!(target.count("GET", "/a"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_another_plan_is_refused_and_says_why() {
    let target = Target::start().await;
    let dir = TempDir::new("hash");
    let plan = dir.write("plan.yaml", PLAN);
    let other = dir.write("other.yaml", &PLAN.replace("20ms", "30ms"));
    let m = master(&plan, &target)
        .workers(1)
        .args(&["--expect-workers-max-wait", "3s"])
        .spawn()
        .await;
    let refused = worker(m.grpc, &["-f", other.to_str().unwrap()])
        .spawn()
        .finish()
        .await;
    refused.expect_code(2);
    assert!(refused.stderr().contains("plan"), "{}", refused.stderr());
    // The master was not affected: it still waits for a worker with the right plan.
    let (code, _) = http_get(m.web, "/readyz").await.expect("master alive");
    assert_eq!(code, 503);
    let same = worker(m.grpc, &["-f", plan.to_str().unwrap()]).spawn();
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
    let prefix = dir.path().join("run");
    let m = master(&plan, &target)
        .users(6)
        .spawn_rate(50.0)
        .run_time("60s")
        .stop_timeout("5s")
        .workers(2)
        .csv(&prefix)
        .spawn()
        .await;
    let mut a = worker(m.grpc, &[]).spawn();
    let b = worker(m.grpc, &[]).spawn();
    eventually(
        "six users on two workers",
        Duration::from_secs(20),
        || async {
            let s = stats(m.web).await?;
            (s["user_count"] == 6 && s["worker_count"] == 2 && aggregated(&s) > 0).then_some(())
        },
    )
    .await;
    // What the master had counted just before the kill: the killed worker can only lose what
    // the target saw beyond that (its last second, unreported), plus the requests its three
    // users had in flight (the target may count those a moment after the kill).
    let counted_before = aggregated(&stats(m.web).await.expect("stats"));
    a.kill().await;
    let could_lose = target.total() - counted_before + 3;
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
    let c = worker(m.grpc, &[]).spawn();
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
    assert_eq!(http_get(m.web, "/stop").await.map(|r| r.0), Some(200));
    let out = m.process.finish().await;
    out.expect_code(0);
    b.finish().await.expect_code(0);
    c.finish().await.expect_code(0);
    // Nothing is counted twice, and what is missing is at most what the killed worker had not
    // reported when it died.
    let rows = read_csv(&dir.path().join("run_stats.csv"));
    let counted: u64 = rows
        .iter()
        .find(|r| r[1] == "Aggregated")
        .expect("Aggregated")[2]
        .parse()
        .unwrap();
    let seen = target.total();
    assert!(counted <= seen, "counted {counted} of {seen} requests");
    assert!(
        seen - counted <= could_lose,
        "lost {} requests; the killed worker could lose at most {could_lose}",
        seen - counted,
    );
    eprintln!("kill -9: {seen} requests seen, {counted} counted, at most {could_lose} lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_master_adopts_the_running_workers_and_loses_no_request() {
    let target = Target::start().await;
    let dir = TempDir::new("restart");
    let plan = dir.write("plan.yaml", PLAN);
    let mut first = master(&plan, &target)
        .users(4)
        .spawn_rate(100.0)
        .run_time("60s")
        .workers(2)
        .spawn()
        .await;
    let (grpc, web) = (first.grpc, first.web);
    // The workers wait for the new master far longer than this test needs: once, on a machine
    // busy with four builds, a worker ran out of a 30 s budget (not reproduced since).
    let workers: Vec<Running> = (0..2)
        .map(|_| worker(grpc, &["--master-timeout", "120s"]).spawn())
        .collect();
    eventually("four users running", Duration::from_secs(20), || async {
        let s = stats(web).await?;
        (s["user_count"] == 4).then_some(())
    })
    .await;
    first.process.kill().await;
    // The users go on without a master.
    let before = target.count("GET", "/a");
    eventually(
        "requests while the master is down",
        Duration::from_secs(20),
        || async { (target.count("GET", "/a") > before + 20).then_some(()) },
    )
    .await;
    let prefix = dir.path().join("run");
    let second = master(&plan, &target)
        .ports(grpc, web)
        .users(4)
        .spawn_rate(100.0)
        .run_time("2s")
        .stop_timeout("5s")
        .workers(2)
        .csv(&prefix)
        .spawn()
        .await
        .process;
    second.finish().await.expect_code(0);
    for w in workers {
        w.finish().await.expect_code(0);
    }
    // The new master took the running users over instead of starting new ones...
    assert_eq!(target.count("GET", "/start/reader"), 3);
    assert_eq!(target.count("GET", "/start/writer"), 1);
    // ...and its totals hold every request, from before, during and after the restart.
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
}

/// Opens a gRPC session to the master with `hello` and returns how it ended.
async fn session_with(grpc: u16, hello: hatchery_core::wire::proto::Hello) -> tonic::Status {
    use hatchery_core::wire::proto::{worker_message::Kind, WorkerMessage};
    use hatchery_core::wire::CoordinatorClient;
    let mut client = CoordinatorClient::connect(format!("http://127.0.0.1:{grpc}"))
        .await
        .expect("connect");
    let first = WorkerMessage {
        kind: Some(Kind::Hello(hello)),
    };
    let stream = tokio_stream::iter(vec![first]);
    match client.session(stream).await {
        Ok(resp) => {
            let mut inbound = resp.into_inner();
            loop {
                match inbound.message().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => return tonic::Status::ok("closed"),
                    Err(s) => return s,
                }
            }
        }
        Err(s) => s,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_worker_port_is_refused_and_the_run_goes_on() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let target = Target::start().await;
    let dir = TempDir::new("garbage");
    let plan = dir.write("plan.yaml", PLAN);
    let prefix = dir.path().join("run");
    let m = master(&plan, &target)
        .users(2)
        .spawn_rate(100.0)
        .run_time("1s")
        .stop_timeout("5s")
        .csv(&prefix)
        .spawn()
        .await;
    eventually("the master listens", Duration::from_secs(20), || {
        http_get(m.web, "/healthz")
    })
    .await;

    // Not HTTP/2 at all: the connection is closed.
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", m.grpc))
        .await
        .unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n\x00\xff garbage")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut sink)).await;

    // Another protocol version: refused, naming both versions.
    let hello = hatchery_core::wire::proto::Hello {
        protocol_version: 99,
        worker_id: "intruder".into(),
        ..Default::default()
    };
    let status = session_with(m.grpc, hello).await;
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("99"), "{status:?}");

    // An oversized field: refused.
    let hello = hatchery_core::wire::proto::Hello {
        protocol_version: hatchery_core::wire::PROTOCOL_VERSION,
        worker_id: "x".repeat(10_000),
        ..Default::default()
    };
    let status = session_with(m.grpc, hello).await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

    // None of that counted as a worker: the gate is still closed, and a real one runs the test.
    let (code, body) = http_get(m.web, "/readyz").await.unwrap();
    assert_eq!(code, 503, "{body}");
    let w = worker(m.grpc, &[]).spawn();
    let out = m.process.finish().await;
    out.expect_code(0);
    w.finish().await.expect_code(0);
    assert!(
        out.stderr().contains("refused a worker session"),
        "{}",
        out.stderr()
    );
    let rows = read_csv(&dir.path().join("run_stats.csv"));
    let reads = rows.iter().find(|r| r[1] == "read-a").expect("read-a")[2]
        .parse::<u64>()
        .unwrap();
    assert_eq!(reads, target.count("GET", "/a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_starts_that_many_workers_on_one_machine() {
    let target = Target::start().await;
    let dir = TempDir::new("processes");
    let plan = dir.write("plan.yaml", PLAN);
    let m = master(&plan, &target)
        .users(4)
        .spawn_rate(100.0)
        .run_time("1s")
        .workers(2)
        .spawn()
        .await;
    let workers = worker(m.grpc, &["--processes", "2"]).spawn();
    m.process.finish().await.expect_code(0);
    workers.finish().await.expect_code(0);
    assert_eq!(
        target.count("GET", "/start/reader") + target.count("GET", "/start/writer"),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_with_a_token_refuses_workers_without_it() {
    let target = Target::start().await;
    let dir = TempDir::new("token");
    let plan = dir.write("plan.yaml", PLAN);
    let token_file = dir.write("token", "s3cret\n");
    let m = master(&plan, &target)
        .users(2)
        .spawn_rate(100.0)
        .run_time("1s")
        .env("HATCHERY_AUTH_TOKEN", "s3cret")
        .spawn()
        .await;
    let (grpc, web, master) = (m.grpc, m.web, m.process);
    let g = grpc.to_string();
    eventually("the master listens", Duration::from_secs(20), || {
        http_get(web, "/healthz")
    })
    .await;

    let none = worker(grpc, &[]).spawn().finish().await;
    none.expect_code(2);
    assert!(none.stderr().contains("token"), "{}", none.stderr());
    let wrong = hatchery(&["--worker", "--master-port", &g])
        .env("HATCHERY_AUTH_TOKEN", "guess")
        .run()
        .await;
    wrong.expect_code(2);
    // Refused workers never counted: the gate is still closed.
    assert_eq!(http_get(web, "/readyz").await.unwrap().0, 503);

    let right = worker(grpc, &["--auth-token-file", token_file.to_str().unwrap()]).spawn();
    let out = master.finish().await;
    out.expect_code(0);
    right.finish().await.expect_code(0);
    assert!(
        out.stderr().contains("refused a worker session"),
        "{}",
        out.stderr()
    );
    assert!(target.count("GET", "/a") > 0);
}

/// Two classes of equal weight, each announcing its start on the target.
const TWO_CLASSES: &str = "users:
  - name: A
    wait: {constant: 50ms}
    on_start: [{get: /start/a}]
    tasks: [{get: /a}]
  - name: B
    wait: {constant: 50ms}
    on_start: [{get: /start/b}]
    tasks: [{get: /b}]
";

/// The worker processes in the master's order (by worker id; ids hold the pid), as indices
/// into `pids`.
fn master_order(s: &serde_json::Value, pids: &[u32]) -> Option<Vec<usize>> {
    s["workers"]
        .as_array()?
        .iter()
        .map(|w| {
            let id = w["id"].as_str()?;
            pids.iter()
                .position(|pid| id.split('-').any(|part| part == pid.to_string()))
        })
        .collect()
}

/// Kills a worker and waits until `left` workers run the two users.
async fn kill_and_settle(mut worker: Running, web: u16, left: u64) {
    worker.kill().await;
    let what = format!("{left} worker(s) run both users");
    eventually(&what, Duration::from_secs(20), || async {
        let s = stats(web).await?;
        (s["worker_count"] == left && s["user_count"] == 2).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_users_move_the_fleet_never_runs_more_than_the_target() {
    let target = Target::start().await;
    let dir = TempDir::new("moves");
    let plan = dir.write("plan.yaml", TWO_CLASSES);
    let m = master(&plan, &target)
        .users(2)
        .spawn_rate(100.0)
        .run_time("60s")
        .workers(3)
        .spawn()
        .await;
    let mut workers: Vec<Option<Running>> =
        (0..3).map(|_| Some(worker(m.grpc, &[]).spawn())).collect();
    let pids: Vec<u32> = workers.iter().flatten().map(Running::pid).collect();
    let s = eventually(
        "two users on three workers",
        Duration::from_secs(20),
        || async {
            let s = stats(m.web).await?;
            (s["user_count"] == 2 && s["worker_count"] == 3).then_some(s)
        },
    )
    .await;
    // Sample the fleet's user count as fast as the API answers while users move.
    let (done, watching) = tokio::sync::watch::channel(false);
    let web = m.web;
    let sampler = tokio::spawn(async move {
        let (mut peak, mut samples) = (0u64, 0u64);
        while !*watching.borrow() {
            if let Some(s) = stats(web).await {
                peak = peak.max(s["user_count"].as_u64().unwrap_or(0));
                samples += 1;
            }
            tokio::task::yield_now().await;
        }
        (peak, samples)
    });
    // The first worker runs the A user, the second the B user, the third none. Without the
    // first, an even spread over two could also move B to the third worker and start A on the
    // second; only A may start again.
    let order = master_order(&s, &pids).expect("every worker listed");
    let starts = || target.count("GET", "/start/a") + target.count("GET", "/start/b");
    let started_before = starts();
    let first = workers[order[0]].take().expect("the first worker");
    kill_and_settle(first, m.web, 2).await;
    assert_eq!(
        (starts() - started_before, target.count("GET", "/start/b")),
        (1, 1),
        "only the lost worker's user started again; the B user was not stopped and restarted"
    );
    // Down to one worker with both users; then a newcomer takes one over: stopped on the old
    // worker before it starts on the new one.
    let second = workers[order[1]].take().expect("the second worker");
    kill_and_settle(second, m.web, 1).await;
    let newcomer = worker(m.grpc, &[]).spawn();
    eventually(
        "the newcomer gets its share",
        Duration::from_secs(20),
        || async {
            let s = stats(m.web).await?;
            let users: Vec<u64> = s["workers"]
                .as_array()?
                .iter()
                .filter_map(|w| w["user_count"].as_u64())
                .collect();
            (users == vec![1, 1]).then_some(())
        },
    )
    .await;
    let _ = done.send(true);
    let (peak, samples) = sampler.await.expect("the sampler");
    assert!(samples > 10, "only {samples} samples");
    assert!(
        peak <= 2,
        "the fleet ran {peak} users, above the target of 2"
    );
    assert_eq!(http_get(m.web, "/stop").await.map(|r| r.0), Some(200));
    m.process.finish().await.expect_code(0);
    newcomer.finish().await.expect_code(0);
    for w in workers.into_iter().flatten() {
        w.finish().await.expect_code(0);
    }
}
