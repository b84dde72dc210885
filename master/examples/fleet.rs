//! A fleet of simulated workers in one process, for measuring a real master: each speaks the
//! worker protocol on its own gRPC connection (Hello, heartbeats, a stats report every second,
//! Stopped), so 1,000 workers fit on one machine. It prints how long the fleet took to connect
//! and to be started, and, given the master's pid and web address, the master's CPU per report
//! and the latency of `GET /stats/requests` while the reports flow.
//!
//! ```sh
//! hatchery -f plan.yaml --master --headless --expect-workers 1000 -u 1000 -r 1000 -t 40s &
//! cargo run --release -p hatchery-master --example fleet -- --workers 1000 --endpoints 100 \
//!     --master-pid $! --web http://127.0.0.1:8089
//! ```
//!
//! Every worker reports the same statistics (built once per second): `--endpoints` rows, each
//! with `--samples` response times spread over 1 ms-2 s (about as many histogram buckets as a
//! busy endpoint fills in a second) and a failure message on every tenth row. The master's
//! merge does not depend on the values being different.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hatchery_core::protocol::{FromWorker, Report};
use hatchery_core::stats::{Sample, Stats};
use hatchery_core::timestamp::unix_now;
use hatchery_core::wire::proto::{self, master_message, worker_message};
use hatchery_core::wire::{self, CoordinatorClient};
use hatchery_core::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

#[derive(Debug, Clone)]
struct Args {
    master: String,
    workers: usize,
    endpoints: usize,
    samples: usize,
    /// Give up this long after the start, whatever the master does.
    limit: Duration,
    web: Option<String>,
    master_pid: Option<u32>,
    /// Workers connect at most this many per second (0: all at once).
    connect_rate: usize,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        master: "http://127.0.0.1:5557".into(),
        workers: 100,
        endpoints: 10,
        samples: 100,
        limit: Duration::from_secs(120),
        web: None,
        master_pid: None,
        connect_rate: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| v.parse::<usize>().map_err(|e| format!("{v}: {e}"));
        match flag.as_str() {
            "--master" => a.master = value()?,
            "--workers" => a.workers = num(value()?)?,
            "--endpoints" => a.endpoints = num(value()?)?,
            "--samples" => a.samples = num(value()?)?,
            "--limit" => a.limit = Duration::from_secs(num(value()?)? as u64),
            "--web" => a.web = Some(value()?),
            "--master-pid" => a.master_pid = Some(num(value()?)? as u32),
            "--connect-rate" => a.connect_rate = num(value()?)?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

/// What the workers tell the main task.
#[derive(Debug)]
enum Event {
    Ready(Instant),
    /// The first assignment with users arrived.
    Started(Instant),
    Reported,
    Ended(Result<(), String>),
}

/// Users assigned to the whole fleet now, and the most seen.
static ASSIGNED: AtomicU64 = AtomicU64::new(0);
static PEAK_ASSIGNED: AtomicU64 = AtomicU64::new(0);

fn reassign(old: &[u32], new: &[u32]) {
    let sum = |v: &[u32]| v.iter().map(|&u| u64::from(u)).sum::<u64>();
    let now = ASSIGNED.fetch_add(sum(new), Ordering::Relaxed) + sum(new);
    let now = now - sum(old);
    ASSIGNED.fetch_sub(sum(old), Ordering::Relaxed);
    PEAK_ASSIGNED.fetch_max(now, Ordering::Relaxed);
}

/// The report every worker sends this second.
type Current = Arc<Mutex<Arc<proto::Stats>>>;

fn build_stats(endpoints: usize, samples: usize, rng: &mut fastrand_lite::Rng) -> proto::Stats {
    let mut stats = Stats::new();
    let now = unix_now();
    for e in 0..endpoints {
        let name = format!("/api/endpoint/{e}");
        for s in 0..samples {
            // Log-uniform over 1 ms .. 2 s.
            let us = (1000.0 * 2000f64.powf(rng.f64())) as u64;
            let error = (e % 10 == 0 && s == 0).then_some("HTTP 503 Service Unavailable");
            stats.record(
                Method::Get,
                &name,
                Sample {
                    corrected_response_time_us: None,
                    response_time_us: us,
                    content_length: 512,
                    at_unix_s: now,
                    error,
                },
            );
        }
    }
    let report = FromWorker::Report(Box::new(Report {
        seq: 0,
        users: vec![],
        stats,
    }));
    match proto::WorkerMessage::from(&report).into_kind() {
        Ok(worker_message::Kind::Report(r)) => r.stats.unwrap_or_default(),
        _ => unreachable!("a report converts to a report"),
    }
}

/// A tiny xorshift generator, so the example needs no dependency beyond the master's.
mod fastrand_lite {
    #[derive(Debug)]
    pub struct Rng(u64);
    impl Rng {
        pub fn new(seed: u64) -> Rng {
            Rng(seed | 1)
        }
        pub fn f64(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }
}

async fn worker(
    i: usize,
    args: Arc<Args>,
    current: Current,
    events: mpsc::UnboundedSender<Event>,
) -> Result<(), String> {
    let endpoint = Endpoint::from_shared(args.master.clone()).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let channel = loop {
        match endpoint.connect().await {
            Ok(c) => break c,
            Err(e) if Instant::now() > deadline => return Err(format!("connect: {e}")),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let (out, out_rx) = mpsc::channel::<proto::WorkerMessage>(64);
    let hello = worker_message::Kind::Hello(proto::Hello {
        protocol_version: wire::PROTOCOL_VERSION,
        worker_id: format!("fleet-{i}"),
        hostname: "fleet".into(),
        cores: 1,
        plan_hash: String::new(),
        last_seq: 0,
        users: vec![],
        numbers: vec![],
    });
    let _ = out.send(hello.into()).await;
    let mut grpc = CoordinatorClient::new(channel)
        .max_decoding_message_size(wire::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(wire::MAX_MESSAGE_BYTES);
    let mut inbound = grpc
        .session(tonic::Request::new(ReceiverStream::new(out_rx)))
        .await
        .map_err(|s| format!("session: {}", s.message()))?
        .into_inner();
    let welcome = match inbound.message().await {
        Ok(Some(m)) => match m.into_kind() {
            Ok(master_message::Kind::Welcome(w)) => w,
            _ => return Err("the first message was not Welcome".into()),
        },
        Ok(None) => return Err("closed before Welcome".into()),
        Err(s) => return Err(format!("welcome: {}", s.message())),
    };
    let _ = events.send(Event::Ready(Instant::now()));
    let mut users: Vec<u32> = Vec::new();
    let mut started = false;
    let mut seq = 0u64;
    // Spread over the second like workers that started at different times.
    let phase = Duration::from_micros((i as u64 * 7919) % 1_000_000);
    let mut report =
        tokio::time::interval_at(tokio::time::Instant::now() + phase, Duration::from_secs(1));
    let beat_every = Duration::from_millis(u64::from(welcome.heartbeat_interval_ms.max(100)));
    let mut beat = tokio::time::interval(beat_every);
    let send_report = |seq: &mut u64, users: &[u32], full: bool| {
        *seq += 1;
        let stats = if full {
            let s = current.lock().unwrap_or_else(|e| e.into_inner()).clone();
            Some((*s).clone())
        } else {
            Some(proto::Stats::default())
        };
        proto::WorkerMessage::from(worker_message::Kind::Report(proto::Report {
            seq: *seq,
            users: users.to_vec(),
            stats,
        }))
    };
    loop {
        tokio::select! {
            m = inbound.message() => match m {
                Ok(Some(m)) => match m.into_kind() {
                    Ok(master_message::Kind::Assign(a)) => {
                        if !started && a.users.iter().any(|&u| u > 0) {
                            started = true;
                            let _ = events.send(Event::Started(Instant::now()));
                        }
                        reassign(&users, &a.users);
                        users = a.users;
                    }
                    Ok(master_message::Kind::Stop(_)) => {
                        let last = send_report(&mut seq, &users, started);
                        reassign(&users, &[]);
                        users.iter_mut().for_each(|u| *u = 0);
                        let stopped = worker_message::Kind::Stopped(proto::Stopped {});
                        if out.send(last).await.is_err() || out.send(stopped.into()).await.is_err() {
                            return Err("the session closed at stop".into());
                        }
                    }
                    Ok(master_message::Kind::Quit(_)) => return Ok(()),
                    Ok(master_message::Kind::ResetStats(_)) => {
                        let m = worker_message::Kind::StatsReset(proto::StatsReset {});
                        let _ = out.send(m.into()).await;
                    }
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                },
                Ok(None) => return Ok(()),
                Err(s) => return Err(format!("stream: {}", s.message())),
            },
            _ = report.tick() => {
                let full = users.iter().any(|&u| u > 0);
                if out.send(send_report(&mut seq, &users, full)).await.is_err() {
                    return Err("the session closed".into());
                }
                if full {
                    let _ = events.send(Event::Reported);
                }
            }
            _ = beat.tick() => {
                let hb = worker_message::Kind::Heartbeat(proto::Heartbeat {
                    users: users.clone(),
                    cpu_percent: 0.0,
                    memory_bytes: 0,
                });
                if out.send(hb.into()).await.is_err() {
                    return Err("the session closed".into());
                }
            }
        }
    }
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One `GET /stats/requests` on a fresh connection: the time to the whole answer.
async fn probe(web: &str) -> Option<Duration> {
    let addr = web.trim_start_matches("http://").trim_end_matches('/');
    let t = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET /stats/requests HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut body = Vec::new();
    s.read_to_end(&mut body).await.ok()?;
    body.starts_with(b"HTTP/1.1 200").then(|| t.elapsed())
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = match args() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let t0 = Instant::now();
    let mut rng = fastrand_lite::Rng::new(0x9e37_79b9_7f4a_7c15);
    let current: Current = Arc::new(Mutex::new(Arc::new(build_stats(
        args.endpoints,
        args.samples,
        &mut rng,
    ))));
    let (tx, mut rx) = mpsc::unbounded_channel();
    for i in 0..args.workers {
        if args.connect_rate > 0 && i > 0 && i % args.connect_rate == 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let (args, current, tx) = (args.clone(), current.clone(), tx.clone());
        tokio::spawn(async move {
            let r = worker(i, args, current, tx.clone()).await;
            let _ = tx.send(Event::Ended(r));
        });
    }
    drop(tx);
    let (mut ready, mut last_ready, mut first_start) = (0usize, None, None);
    let (mut ended, mut failed, mut reports) = (0usize, Vec::new(), 0u64);
    let mut window: Option<(Instant, f64, u64)> = None;
    let mut window_end: Option<(Instant, f64, u64)> = None;
    let mut latencies = Vec::new();
    let pid = args.master_pid.map(|p| p.to_string());
    let mut peak_rss = 0u64;
    let own = std::process::id().to_string();
    let own0 = cpu_seconds(&own).unwrap_or(0.0);
    let mut refresh = tokio::time::interval(Duration::from_secs(1));
    let mut poll = tokio::time::interval(Duration::from_millis(250));
    let limit = tokio::time::sleep(args.limit);
    tokio::pin!(limit);
    while ended < args.workers {
        tokio::select! {
            e = rx.recv() => match e {
                Some(Event::Ready(at)) => {
                    ready += 1;
                    last_ready = Some(at);
                    if ready == args.workers {
                        eprintln!("fleet: {} workers connected in {:.0} ms", ready, (at - t0).as_secs_f64() * 1000.0);
                    }
                }
                Some(Event::Started(at)) => {
                    if first_start.is_none() {
                        first_start = Some(at);
                    }
                }
                Some(Event::Reported) => reports += 1,
                Some(Event::Ended(r)) => {
                    ended += 1;
                    if let Err(e) = r { failed.push(e); }
                }
                None => break,
            },
            _ = refresh.tick() => {
                *current.lock().unwrap_or_else(|e| e.into_inner()) =
                    Arc::new(build_stats(args.endpoints, args.samples, &mut rng));
                if let Some(kib) = pid.as_deref().and_then(rss_kib) {
                    peak_rss = peak_rss.max(kib);
                }
                // The steady-state window: from the 3rd second after the start to the last
                // second seen before the stop.
                if let (Some(s), Some(p)) = (first_start, pid.as_deref()) {
                    if s.elapsed() > Duration::from_secs(3) {
                        if let Some(cpu) = cpu_seconds(p) {
                            let sample = (Instant::now(), cpu, reports);
                            if window.is_none() { window = Some(sample); } else { window_end = Some(sample); }
                        }
                    }
                }
            }
            _ = poll.tick(), if args.web.is_some() && first_start.is_some() => {
                if let Some(d) = probe(args.web.as_deref().unwrap_or_default()).await {
                    latencies.push(d);
                }
            }
            _ = &mut limit => {
                eprintln!("fleet: limit reached with {} of {} sessions still open", args.workers - ended, args.workers);
                break;
            }
        }
    }
    latencies.sort();
    let ms = |d: Option<Duration>| d.map_or(-1.0, |d| d.as_secs_f64() * 1000.0);
    let start_after_ready = match (last_ready, first_start) {
        (Some(r), Some(s)) => Some(s.saturating_duration_since(r)),
        _ => None,
    };
    let (cores, us_per_report) = match (window, window_end) {
        (Some((t1, c1, r1)), Some((t2, c2, r2))) if r2 > r1 => (
            (c2 - c1) / (t2 - t1).as_secs_f64(),
            (c2 - c1) * 1e6 / (r2 - r1) as f64,
        ),
        _ => (-1.0, -1.0),
    };
    let own_cpu = cpu_seconds(&own).unwrap_or(0.0) - own0;
    println!(
        "{{\"workers\":{},\"endpoints\":{},\"samples\":{},\"connected_ms\":{:.1},\"start_after_last_ready_ms\":{:.1},\"reports\":{},\"failed_sessions\":{},\"master_cores\":{:.3},\"master_us_per_report\":{:.1},\"stats_requests\":{},\"stats_requests_p50_ms\":{:.1},\"stats_requests_p99_ms\":{:.1},\"stats_requests_max_ms\":{:.1},\"driver_cpu_s\":{:.2},\"master_peak_rss_mb\":{:.1},\"peak_users_assigned\":{}}}",
        args.workers,
        args.endpoints,
        args.samples,
        ms(last_ready.map(|r| r - t0)),
        ms(start_after_ready),
        reports,
        failed.len(),
        cores,
        us_per_report,
        latencies.len(),
        pct(&latencies, 0.5),
        pct(&latencies, 0.99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        own_cpu,
        peak_rss as f64 / 1024.0,
        PEAK_ASSIGNED.load(Ordering::Relaxed),
    );
    if let Some(e) = failed.first() {
        eprintln!("fleet: first session error: {e}");
    }
}
