//! Limits before work on the master's two ports (docs/security.md): connections are bounded
//! before anything is read, and one that does not finish its handshake in time is cut. A flood
//! of idle TCP connections, real sockets from this test process, neither stops the run nor
//! keeps a real worker out, and the master's memory stays bounded.
//!
//! The sandbox caps a process at 20,000 file descriptors, so the flood is 10,000 connections to
//! one port, checked and closed, then 10,000 to the other.

use std::time::{Duration, Instant};

use hatchery_e2e::{aggregated, eventually, stats, worker, Master, Running, Target, TempDir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The master's handshake deadline (`gate::HANDSHAKE_TIMEOUT`).
const HANDSHAKE: Duration = Duration::from_secs(10);
/// How long after its deadline a connection may take to be seen closed.
const SLACK: Duration = Duration::from_secs(10);
const FLOOD: usize = 10_000;
/// What the master may grow by while the flood is held open: a generous bound. It grew by
/// about 18 MB here (5,256 connections in their handshake on the workers' port); without the
/// bounds 10,000 idle web connections took 156 MB, and kept it.
const MAX_GROWTH_KB: u64 = 64 * 1024;

/// A headless master of `users` users with a long run time, waiting for one worker.
async fn master(dir: &TempDir, target: &Target, users: &str) -> Master {
    let plan = dir.write("plan.yaml", hatchery_e2e::READER_WRITER_PLAN);
    Master::headless(&plan)
        .host(&target.url())
        .args(&[
            "-u",
            users,
            "-r",
            "100",
            "-t",
            "120s",
            "--expect-workers",
            "1",
        ])
        .spawn()
        .await
}

/// Resident memory of a process, in KiB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Reads until the master closes the connection (end of stream or an error), or `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    let read_to_end = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read_to_end)
        .await
        .ok()
        .map(|()| start.elapsed())
}

/// Opens `n` idle TCP connections to `port` (all within a minute); each stays open on this
/// side until dropped.
async fn flood(port: u16, n: usize) -> Vec<TcpStream> {
    let open = async {
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            conns.push(
                TcpStream::connect(("127.0.0.1", port))
                    .await
                    .expect("connect"),
            );
        }
        conns
    };
    tokio::time::timeout(Duration::from_secs(60), open)
        .await
        .expect("the connections open within a minute")
}

/// Waits until the master's Aggregated count grew past `from`: the run goes on.
async fn advances(web: u16, from: u64) -> u64 {
    eventually("the stats advance", Duration::from_secs(30), || async {
        let n = aggregated(&stats(web).await?);
        (n > from).then_some(n)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_finish_their_handshake_are_cut_at_the_deadline() {
    let target = Target::start().await;
    let dir = TempDir::new("limits-deadline");
    let m = master(&dir, &target, "1").await;
    let w = worker(m.grpc, &[]).spawn();
    eventually(
        "the worker runs its user",
        Duration::from_secs(20),
        || async {
            let s = stats(m.web).await?;
            (s["user_count"] == 1).then_some(())
        },
    )
    .await;
    let connect = |port: u16| async move {
        TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect")
    };
    // A web client that made a request is admitted, and keeps its connection.
    let mut kept = connect(m.web).await;
    let healthz = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n";
    let mut answer = [0u8; 256];
    kept.write_all(healthz).await.unwrap();
    assert!(kept.read(&mut answer).await.unwrap() > 0);

    // Silent; an HTTP/2 preface and no more; half a request head.
    let mut silent_grpc = connect(m.grpc).await;
    let mut preface = connect(m.grpc).await;
    preface
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let mut silent_web = connect(m.web).await;
    let mut half_head = connect(m.web).await;
    half_head
        .write_all(b"GET /stats/requests HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let cases = [
        ("a silent connection to the workers' port", &mut silent_grpc),
        ("an HTTP/2 preface without a session", &mut preface),
        ("a silent connection to the web port", &mut silent_web),
        ("half a request head on the web port", &mut half_head),
    ];
    let mut waits = Vec::new();
    for (what, stream) in cases {
        waits.push((what, closed_within(stream, HANDSHAKE + SLACK).await));
    }
    for (what, waited) in &waits {
        assert!(
            waited.is_some(),
            "{what}: still open {:?} after connecting",
            HANDSHAKE + SLACK
        );
    }

    // The deadline has passed for the admitted ones too: they were not cut.
    kept.write_all(healthz).await.unwrap();
    assert!(
        kept.read(&mut answer).await.unwrap_or(0) > 0,
        "an admitted web connection outlives the deadline"
    );
    m.process.terminate();
    m.process.finish().await;
    let out = w.finish().await;
    assert!(
        !out.stderr().contains("lost the master"),
        "the worker kept its session past the deadline:\n{}",
        out.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_connections_to_each_port_neither_stop_the_run_nor_keep_a_worker_out() {
    let target = Target::start().await;
    let dir = TempDir::new("limits-flood");
    let m = master(&dir, &target, "4").await;
    let pid = m.process.pid();
    let first: Running = worker(m.grpc, &[]).spawn();
    let before = advances(m.web, 0).await;
    let rss_start = rss_kb(pid);

    // The web port: the run goes on (the target keeps being served) while the flood is held,
    // and once the flood's connections passed their deadline the UI answers again.
    let served = target.total();
    let held = flood(m.web, FLOOD).await;
    eprintln!("{FLOOD} connections open to the web port");
    eventually(
        "the target is still served",
        Duration::from_secs(30),
        || async { (target.total() > served + 100).then_some(()) },
    )
    .await;
    let rss_web = rss_kb(pid);
    let during = eventually(
        "the web port answers again",
        HANDSHAKE + SLACK * 2,
        || async { stats(m.web).await.map(|s| aggregated(&s)) },
    )
    .await;
    assert!(during > before, "the run went on: {during} > {before}");
    eprintln!("the web port answers again");
    drop(held);

    // The workers' port: the stats keep advancing, and a worker started after the flood joins
    // and gets its share of the users.
    let held = flood(m.grpc, FLOOD).await;
    eprintln!("{FLOOD} connections open to the workers' port");
    let after = advances(m.web, during).await;
    let rss_grpc = rss_kb(pid);
    let mut second: Running = worker(m.grpc, &[]).spawn();
    let joined = tokio::time::timeout(HANDSHAKE + SLACK * 3, async {
        loop {
            if let Some(s) = stats(m.web).await {
                let busy = s["workers"].as_array().map_or(0, |ws| {
                    ws.iter()
                        .filter(|w| w["user_count"].as_u64() > Some(0))
                        .count()
                });
                if s["worker_count"] == 2 && busy == 2 && s["user_count"] == 4 {
                    return s;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let Ok(joined) = joined else {
        second.kill().await;
        let last = stats(m.web).await;
        let mut master = m.process;
        master.kill().await;
        let master = master.finish().await.stderr();
        let tail: Vec<&str> = master.lines().rev().take(30).collect();
        panic!(
            "the late worker did not join and run users: {last:?}\n--- its stderr\n{}\n--- master\n{}",
            second.finish().await.stderr(), tail.join("\n")
        );
    };
    let rss_end = rss_kb(pid);
    drop(held);
    eprintln!(
        "master VmRSS: {rss_start} kB before, {rss_web} kB with {FLOOD} idle web connections, \
         {rss_grpc} kB with {FLOOD} idle worker-port connections, {rss_end} kB after the join; \
         stats {before} -> {after}"
    );
    for (what, kb) in [("web", rss_web), ("workers'", rss_grpc), ("end", rss_end)] {
        assert!(
            kb < rss_start + MAX_GROWTH_KB,
            "{what}: {kb} kB, started at {rss_start} kB"
        );
    }
    assert_eq!(joined["user_count"], 4);
    drop((first, second));
}
