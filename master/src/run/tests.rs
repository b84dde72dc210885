//! The run against in-memory workers on tokio's paused clock: timings are exact.

use super::*;
use hatchery_core::protocol::{Heartbeat, Place, Report};
use hatchery_core::stats::Sample;
use hatchery_core::Method;

#[derive(Default)]
struct Quiet {
    events: Vec<Event>,
}

impl Observer for Quiet {
    fn tick(&mut self, _: &View<'_>) {}
    fn event(&mut self, e: &Event, _: &View<'_>) {
        self.events.push(e.clone());
    }
}

fn config(users: u32, rate: f64, run_time: Duration) -> RunConfig {
    RunConfig {
        host: None,
        users,
        max_users: 1000,
        spawn_rate: rate,
        run_time: Some(run_time),
        stop_timeout: Duration::ZERO,
        shape: None,
        claims: vec![
            Claim {
                weight: 3,
                fixed: None,
            },
            Claim {
                weight: 1,
                fixed: None,
            },
        ],
        class_names: vec!["A".into(), "B".into()],
        reset_stats: false,
        expect_workers: 1,
        expect_workers_max_wait: None,
        heartbeat_liveness: Some(3),
        end_without_workers: true,
        autostart: true,
        quit_after: Some(Duration::ZERO),
    }
}

struct Wires {
    events: mpsc::Sender<FleetEvent>,
    commands: mpsc::Sender<Command>,
    inbox: Inbox,
}

fn wires() -> Wires {
    let (events, events_rx) = mpsc::channel(256);
    let (commands, commands_rx) = mpsc::channel(16);
    let (status, _) = watch::channel(Status {
        state: State::Ready,
        workers: 0,
        expected: 0,
        host: None,
    });
    Wires {
        events,
        commands,
        inbox: Inbox {
            events: events_rx,
            commands: commands_rx,
            status,
        },
    }
}

fn stats_with(requests: u64) -> Stats {
    let mut s = Stats::new();
    for _ in 0..requests {
        s.record(
            Method::Get,
            "/a",
            Sample {
                corrected_response_time_us: None,
                response_time_us: 1000,
                content_length: 2,
                at_unix_s: 1,
                error: None,
            },
        );
    }
    s
}

/// How a fake worker behaves.
#[derive(Clone, Copy)]
struct Fake {
    /// Requests reported with each assignment.
    per_assign: u64,
    /// Requests in the final report.
    last: u64,
    /// Sends heartbeats every second (a silent worker looks dead after the liveness).
    alive: bool,
}

/// Joins the run, records when each assignment arrived, and answers like a worker would.
async fn fake_worker(
    id: &str,
    events: mpsc::Sender<FleetEvent>,
    fake: Fake,
) -> Vec<(Duration, Vec<u32>)> {
    let t0 = Instant::now();
    let (tx, mut rx) = mpsc::channel(64);
    let id = id.to_string();
    let joined = FleetEvent::Joined {
        id: id.clone(),
        session: 1,
        tx,
        running: Vec::new(),
        numbers: None,
    };
    let _ = events.send(joined).await;
    let send = |msg| {
        let events = events.clone();
        let id = id.clone();
        async move {
            let _ = events.send(FleetEvent::Message { id, msg }).await;
        }
    };
    let mut seen = Vec::new();
    let mut users = vec![0, 0];
    let mut seq = 0;
    let mut beat = tokio::time::interval(Duration::from_secs(1));
    loop {
        let msg = tokio::select! {
            m = rx.recv() => match m { Some(m) => m, None => break },
            _ = beat.tick(), if fake.alive => {
                let hb = Heartbeat { users: users.clone(), cpu_percent: 10.0, memory_bytes: 1 };
                send(FromWorker::Heartbeat(hb)).await;
                continue;
            }
        };
        seq += 1;
        match msg {
            ToWorker::Assign(a) => {
                seen.push((t0.elapsed(), a.users.clone()));
                users = a.users.clone();
                let report = Report {
                    seq,
                    users: a.users,
                    stats: stats_with(fake.per_assign),
                };
                send(FromWorker::Report(Box::new(report))).await;
            }
            ToWorker::Stop { .. } => {
                users = vec![0, 0];
                let report = Report {
                    seq,
                    users: vec![0, 0],
                    stats: stats_with(fake.last),
                };
                send(FromWorker::Report(Box::new(report))).await;
                send(FromWorker::Stopped).await;
            }
            ToWorker::ResetStats => send(FromWorker::StatsReset).await,
            ToWorker::SetHost(_) => {}
            ToWorker::Quit => break,
        }
    }
    seen
}

const ALIVE: Fake = Fake {
    per_assign: 0,
    last: 0,
    alive: true,
};

#[tokio::test(start_paused = true)]
async fn a_fast_ramp_starts_its_users_in_batches_at_most_one_assignment_per_step_interval() {
    let w = wires();
    let worker = tokio::spawn(fake_worker("w1", w.events.clone(), ALIVE));
    let mut cfg = config(1000, 10_000.0, Duration::from_secs(2));
    cfg.max_users = 1000;
    let outcome = run(cfg, w.inbox, &mut Quiet::default(), std::future::pending()).await;
    assert_eq!(outcome.reason, StopReason::TimeLimit);
    let seen = worker.await.unwrap();
    // 1000 users at 10,000/s: 100 ms of ramp, so about 11 assignments of ~100 users (one a
    // user, 1000, before the step interval), each on time within the interval.
    assert!(seen.len() <= 12, "{} assignments", seen.len());
    let last = seen.last().unwrap();
    assert_eq!(last.1.iter().sum::<u32>(), 1000);
    assert!(
        last.0 <= Duration::from_millis(100) + MIN_STEP_INTERVAL,
        "{:?}",
        last.0
    );
    for pair in seen.windows(2) {
        assert!(pair[1].0 - pair[0].0 >= MIN_STEP_INTERVAL, "{pair:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn users_start_one_by_one_at_the_spawn_rate_in_weight_order() {
    let w = wires();
    let worker = tokio::spawn(fake_worker("w1", w.events.clone(), ALIVE));
    let mut quiet = Quiet::default();
    let outcome = run(
        config(8, 4.0, Duration::from_secs(5)),
        w.inbox,
        &mut quiet,
        std::future::pending(),
    )
    .await;
    let seen = worker.await.unwrap();
    assert_eq!(outcome.reason, StopReason::TimeLimit);
    assert!(outcome.complete);
    assert_eq!(seen.len(), 8);
    for (k, (at, users)) in seen.iter().enumerate() {
        // User k is due k/4 s after the start; paused time makes this exact to the ms.
        let due = Duration::from_millis(250 * k as u64);
        assert!(
            at.abs_diff(due) < Duration::from_millis(2),
            "user {k} at {at:?}"
        );
        assert_eq!(users.iter().sum::<u32>(), k as u32 + 1);
    }
    assert_eq!(seen.last().unwrap().1, vec![6, 2]);
    assert!(quiet.events.contains(&Event::Spawned(
        [("A".to_string(), 6), ("B".to_string(), 2)]
            .into_iter()
            .collect()
    )));
}

#[tokio::test(start_paused = true)]
async fn the_final_report_is_merged_before_the_run_returns() {
    let w = wires();
    let fake = Fake {
        per_assign: 5,
        last: 7,
        alive: true,
    };
    tokio::spawn(fake_worker("w1", w.events.clone(), fake));
    let outcome = run(
        config(2, 100.0, Duration::from_secs(1)),
        w.inbox,
        &mut Quiet::default(),
        std::future::pending(),
    )
    .await;
    // Two assignments of 5 requests each, then the final 7.
    assert_eq!(outcome.stats.total().num_requests, 17);
}

#[tokio::test(start_paused = true)]
async fn reset_stats_drops_everything_reported_before_the_reset_answer() {
    let w = wires();
    let fake = Fake {
        per_assign: 5,
        last: 7,
        alive: true,
    };
    tokio::spawn(fake_worker("w1", w.events.clone(), fake));
    let mut cfg = config(2, 100.0, Duration::from_secs(1));
    cfg.reset_stats = true;
    let mut quiet = Quiet::default();
    let outcome = run(cfg, w.inbox, &mut quiet, std::future::pending()).await;
    assert_eq!(outcome.stats.total().num_requests, 7);
    assert!(quiet.events.contains(&Event::StatsReset));
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_signal_stops_the_run_early() {
    let w = wires();
    tokio::spawn(fake_worker("w1", w.events.clone(), ALIVE));
    let started = Instant::now();
    let outcome = run(
        config(1, 1.0, Duration::from_secs(3600)),
        w.inbox,
        &mut Quiet::default(),
        tokio::time::sleep(Duration::from_secs(2)),
    )
    .await;
    assert_eq!(outcome.reason, StopReason::Interrupted);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn the_last_worker_leaving_ends_a_standalone_run() {
    let w = wires();
    let events = w.events.clone();
    tokio::spawn(async move {
        let (tx, _rx) = mpsc::channel(8);
        let id = "local".to_string();
        let joined = FleetEvent::Joined {
            id: id.clone(),
            session: 0,
            tx,
            running: Vec::new(),
            numbers: None,
        };
        let _ = events.send(joined).await;
        let reason = "crashed".to_string();
        let _ = events
            .send(FleetEvent::Left {
                id,
                session: 0,
                reason,
            })
            .await;
    });
    let outcome = run(
        config(1, 1.0, Duration::from_secs(60)),
        w.inbox,
        &mut Quiet::default(),
        std::future::pending(),
    )
    .await;
    assert_eq!(outcome.reason, StopReason::WorkerLost);
    assert!(!outcome.complete);
}

#[tokio::test(start_paused = true)]
async fn the_run_starts_the_moment_the_last_expected_worker_joins() {
    let w = wires();
    let mut cfg = config(4, 1000.0, Duration::from_secs(2));
    cfg.expect_workers = 3;
    cfg.end_without_workers = false;
    let events = w.events.clone();
    let started = Instant::now();
    let workers = tokio::spawn(async move {
        let mut handles = Vec::new();
        for (i, delay) in [100u64, 700, 1300].into_iter().enumerate() {
            tokio::time::sleep_until(started + Duration::from_millis(delay)).await;
            let events = events.clone();
            handles.push(tokio::spawn(async move {
                fake_worker(&format!("w{i}"), events, ALIVE).await
            }));
        }
        let mut all = Vec::new();
        for h in handles {
            all.push(h.await.unwrap());
        }
        all
    });
    let outcome = run(cfg, w.inbox, &mut Quiet::default(), std::future::pending()).await;
    assert_eq!(outcome.reason, StopReason::TimeLimit);
    let seen = workers.await.unwrap();
    // The third worker joined at 1.3 s; the first worker (joined at 0.1 s) got its first user at
    // that same instant: the gate opens on the event, not on a poll.
    let first = seen[0].first().expect("the first worker got users").0;
    let due = Duration::from_millis(1200);
    assert!(
        first.abs_diff(due) < Duration::from_millis(1),
        "{first:?} after it joined"
    );
    // 4 users weighted 3:1 over 3 workers: [1,1], [1,0], [1,0] in some order.
    let mut finals: Vec<Vec<u32>> = seen.iter().map(|s| s.last().unwrap().1.clone()).collect();
    finals.sort();
    assert_eq!(finals, vec![vec![1, 0], vec![1, 0], vec![1, 1]]);
}

#[tokio::test(start_paused = true)]
async fn the_gate_gives_up_after_the_max_wait() {
    let w = wires();
    let mut cfg = config(4, 10.0, Duration::from_secs(60));
    cfg.expect_workers = 2;
    cfg.expect_workers_max_wait = Some(Duration::from_secs(5));
    tokio::spawn(fake_worker("w1", w.events.clone(), ALIVE));
    let started = Instant::now();
    let outcome = run(cfg, w.inbox, &mut Quiet::default(), std::future::pending()).await;
    assert_eq!(outcome.reason, StopReason::GateTimeout);
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(outcome.stats.total().num_requests, 0);
}

#[tokio::test(start_paused = true)]
async fn a_silent_workers_users_move_to_the_others_at_the_spawn_rate() {
    let w = wires();
    let mut cfg = config(6, 100.0, Duration::from_secs(10));
    cfg.expect_workers = 3;
    cfg.end_without_workers = false;
    let silent = Fake {
        alive: false,
        ..ALIVE
    };
    let a = tokio::spawn(fake_worker("a", w.events.clone(), ALIVE));
    let b = tokio::spawn(fake_worker("b", w.events.clone(), ALIVE));
    tokio::spawn(fake_worker("c", w.events.clone(), silent));
    let mut quiet = Quiet::default();
    let outcome = run(cfg, w.inbox, &mut quiet, std::future::pending()).await;
    assert_eq!(outcome.reason, StopReason::TimeLimit);
    let left = quiet.events.iter().find_map(|e| match e {
        Event::WorkerLeft { id, workers, .. } => Some((id.clone(), *workers)),
        _ => None,
    });
    assert_eq!(left, Some(("c".to_string(), 2)));
    let total = |seen: Vec<(Duration, Vec<u32>)>| -> u32 { seen.last().unwrap().1.iter().sum() };
    assert_eq!(total(a.await.unwrap()) + total(b.await.unwrap()), 6);
}

#[tokio::test(start_paused = true)]
async fn a_worker_joining_mid_run_gets_its_share() {
    let w = wires();
    let mut cfg = config(6, 100.0, Duration::from_secs(5));
    cfg.end_without_workers = false;
    let a = tokio::spawn(fake_worker("a", w.events.clone(), ALIVE));
    let events = w.events.clone();
    let b = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        fake_worker("b", events, ALIVE).await
    });
    let outcome = run(cfg, w.inbox, &mut Quiet::default(), std::future::pending()).await;
    assert_eq!(outcome.reason, StopReason::TimeLimit);
    let last = |seen: Vec<(Duration, Vec<u32>)>| -> Vec<u32> { seen.last().unwrap().1.clone() };
    let (a, b) = (last(a.await.unwrap()), last(b.await.unwrap()));
    assert_eq!(a.iter().sum::<u32>(), 3, "{a:?}");
    assert_eq!(b.iter().sum::<u32>(), 3, "{b:?}");
    assert_eq!(a[0] + b[0], 5, "class totals unchanged by the move");
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_command_answers_with_the_current_numbers() {
    let w = wires();
    let fake = Fake {
        per_assign: 3,
        ..ALIVE
    };
    tokio::spawn(fake_worker("w1", w.events.clone(), fake));
    let commands = w.commands.clone();
    let asker = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (tx, rx) = oneshot::channel();
        commands.send(Command::Snapshot(tx)).await.unwrap();
        rx.await.unwrap()
    });
    run(
        config(2, 100.0, Duration::from_secs(3)),
        w.inbox,
        &mut Quiet::default(),
        std::future::pending(),
    )
    .await;
    let snap = asker.await.unwrap();
    assert_eq!(snap.stats.total().num_requests, 6);
    assert_eq!(snap.user_count, 2);
    assert_eq!(snap.workers.len(), 1);
    assert_eq!(snap.state, State::Running);
}

#[tokio::test(start_paused = true)]
async fn workers_that_already_run_the_target_keep_their_users() {
    let w = wires();
    let mut cfg = config(4, 1.0, Duration::from_secs(3));
    cfg.expect_workers = 2;
    let events = w.events.clone();
    let (tx_a, mut rx_a) = mpsc::channel(64);
    let (tx_b, _rx_b) = mpsc::channel(64);
    let numbers = |ranges: [std::ops::Range<u32>; 2]| {
        let sets = ranges.map(|r| Numbers::from_ranges(vec![r]).unwrap_or_default());
        Some(sets.to_vec())
    };
    let a = ("a", tx_a, vec![2, 0], numbers([0..2, 0..0]));
    let b = ("b", tx_b, vec![1, 1], numbers([2..3, 3..4]));
    for (id, tx, running, numbers) in [a, b] {
        let joined = FleetEvent::Joined {
            id: id.to_string(),
            session: 1,
            tx,
            running,
            numbers,
        };
        events.send(joined).await.unwrap();
    }
    let mut quiet = Quiet::default();
    let outcome = run(cfg, w.inbox, &mut quiet, std::future::pending()).await;
    assert_eq!(outcome.reason, StopReason::TimeLimit);
    // Spawned at once, with no user started or stopped: the worker is told its place and the
    // numbers it has, then to stop.
    assert!(matches!(
        quiet.events.first(),
        Some(Event::WorkerJoined { .. })
    ));
    assert!(quiet.events.iter().any(|e| matches!(e, Event::Spawned(_))));
    match rx_a.recv().await {
        Some(ToWorker::Assign(a)) => {
            assert_eq!(a.users, [2, 0]);
            assert_eq!(a.numbers, numbers([0..2, 0..0]).unwrap());
            assert_eq!(a.place, Place { index: 0, count: 2 });
        }
        other => panic!("expected the same assignment again, got {other:?}"),
    }
    assert!(matches!(rx_a.recv().await, Some(ToWorker::Stop { .. })));
}

async fn ask(commands: &mpsc::Sender<Command>) -> Snapshot {
    let (tx, rx) = oneshot::channel();
    commands.send(Command::Snapshot(tx)).await.unwrap();
    rx.await.unwrap()
}

async fn swarm(commands: &mpsc::Sender<Command>, users: u64) -> Result<String, SwarmError> {
    let (tx, rx) = oneshot::channel();
    let s = Swarm {
        users,
        spawn_rate: 100.0,
        run_time: None,
        host: None,
    };
    commands.send(Command::Swarm(s, tx)).await.unwrap();
    rx.await.unwrap()
}

fn ui_config() -> RunConfig {
    let mut cfg = config(0, 1.0, Duration::from_secs(3600));
    cfg.autostart = false;
    cfg.quit_after = None;
    cfg.end_without_workers = false;
    cfg.run_time = None;
    cfg
}

#[tokio::test(start_paused = true)]
async fn with_a_ui_tests_start_change_and_stop_on_commands_while_the_master_serves_on() {
    let w = wires();
    let fake = Fake {
        per_assign: 1,
        last: 0,
        alive: true,
    };
    let commands = w.commands.clone();
    let events = w.events.clone();
    let driver = tokio::spawn(async move {
        assert!(swarm(&commands, 4).await.is_err(), "no worker yet");
        tokio::spawn(fake_worker("w1", events, fake));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(ask(&commands).await.state, State::Ready);
        swarm(&commands, 4).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let s = ask(&commands).await;
        assert_eq!((s.state, s.user_count), (State::Running, 4));
        // More than --max-users (1000 here) is refused, and the test goes on as it was.
        let refused = swarm(&commands, 1_000_000_000).await;
        assert!(
            matches!(
                refused,
                Err(SwarmError::Limit(LimitError::TooManyUsers {
                    max: 1000,
                    ..
                }))
            ),
            "{refused:?}"
        );
        assert_eq!(ask(&commands).await.user_count, 4);
        swarm(&commands, 2).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(ask(&commands).await.user_count, 2);
        commands.send(Command::Stop).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let s = ask(&commands).await;
        assert_eq!((s.state, s.user_count), (State::Stopped, 0));
        let counted = s.stats.total().num_requests;
        assert!(counted > 0);
        // A second test starts from zero.
        swarm(&commands, 1).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let s = ask(&commands).await;
        assert_eq!(s.state, State::Running);
        assert!(s.stats.total().num_requests < counted);
        let (tx, rx) = oneshot::channel();
        commands.send(Command::History(tx)).await.unwrap();
        assert!(!rx.await.unwrap().is_empty());
        commands.send(Command::Quit).await.unwrap();
    });
    let mut quiet = Quiet::default();
    let running = run(ui_config(), w.inbox, &mut quiet, std::future::pending());
    // Bounded, so a failed step in the driver fails the test instead of leaving it spinning.
    let outcome = tokio::time::timeout(Duration::from_secs(600), running)
        .await
        .expect("the run quits on command");
    driver.await.unwrap();
    assert_eq!(outcome.reason, StopReason::Interrupted);
}

#[tokio::test(start_paused = true)]
async fn autoquit_returns_after_the_test_ends() {
    let w = wires();
    let mut cfg = config(1, 10.0, Duration::from_secs(2));
    cfg.quit_after = Some(Duration::from_secs(5));
    tokio::spawn(fake_worker("w1", w.events.clone(), ALIVE));
    let started = Instant::now();
    let outcome = run(cfg, w.inbox, &mut Quiet::default(), std::future::pending()).await;
    assert_eq!(outcome.reason, StopReason::TimeLimit);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(7) && took < Duration::from_secs(8),
        "{took:?}"
    );
}

/// A worker that takes its assignments for `quiet_after`, falls silent for `silence` (a
/// partition: its users go on), then comes back on a new session with the users it runs and
/// the report it kept (`kept` requests). Returns the assignments of the second session.
async fn partitioned_worker(
    id: &str,
    events: mpsc::Sender<FleetEvent>,
    quiet_after: Duration,
    silence: Duration,
    kept: u64,
) -> Vec<Vec<u32>> {
    let (tx, mut rx) = mpsc::channel(64);
    let joined = FleetEvent::Joined {
        id: id.to_string(),
        session: 1,
        tx,
        running: Vec::new(),
        numbers: None,
    };
    events.send(joined).await.unwrap();
    let mut users = vec![0, 0];
    let quiet_at = Instant::now() + quiet_after;
    while let Ok(Some(msg)) = tokio::time::timeout_at(quiet_at, rx.recv()).await {
        if let ToWorker::Assign(a) = msg {
            users = a.users;
        }
    }
    tokio::time::sleep(silence).await;
    let (tx, mut rx) = mpsc::channel(64);
    let joined = FleetEvent::Joined {
        id: id.to_string(),
        session: 2,
        tx,
        running: users.clone(),
        numbers: None,
    };
    events.send(joined).await.unwrap();
    let report = Report {
        seq: 1,
        users: users.clone(),
        stats: stats_with(kept),
    };
    let msg = FromWorker::Report(Box::new(report));
    let id = id.to_string();
    let send = |msg| {
        events.send(FleetEvent::Message {
            id: id.clone(),
            msg,
        })
    };
    send(msg).await.unwrap();
    let mut seen = Vec::new();
    let mut beat = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Some(ToWorker::Assign(a)) => {
                    users = a.users.clone();
                    seen.push(a.users);
                }
                Some(ToWorker::Stop { .. }) => {
                    let _ = send(FromWorker::Stopped).await;
                }
                Some(ToWorker::Quit) | None => break,
                Some(_) => {}
            },
            _ = beat.tick() => {
                let hb = Heartbeat { users: users.clone(), cpu_percent: 1.0, memory_bytes: 1 };
                let _ = send(FromWorker::Heartbeat(hb)).await;
            }
        }
    }
    seen
}

#[tokio::test(start_paused = true)]
async fn a_worker_back_from_a_partition_keeps_its_users_its_kept_report_counts_and_the_excess_stops(
) {
    let w = wires();
    let mut cfg = config(4, 100.0, Duration::from_secs(20));
    cfg.expect_workers = 2;
    cfg.end_without_workers = false;
    let a = tokio::spawn(fake_worker("a", w.events.clone(), ALIVE));
    let c = tokio::spawn(partitioned_worker(
        "c",
        w.events.clone(),
        Duration::from_secs(1),
        Duration::from_secs(10),
        7,
    ));
    let mut quiet = Quiet::default();
    let outcome = run(cfg, w.inbox, &mut quiet, std::future::pending()).await;
    assert_eq!(outcome.reason, StopReason::TimeLimit);
    let c_events: Vec<&str> = quiet
        .events
        .iter()
        .filter_map(|e| match e {
            Event::WorkerLeft { id, .. } if id == "c" => Some("left"),
            Event::WorkerJoined { id, .. } if id == "c" => Some("joined"),
            _ => None,
        })
        .collect();
    assert_eq!(
        c_events,
        ["joined", "left", "joined"],
        "given up, then back"
    );
    // Back with its two users, taken as they are (a worker taken as new would be sent one user,
    // then two), and the two started on `a` meanwhile stop.
    let again = c.await.unwrap();
    assert!(
        again.iter().all(|u| u.iter().sum::<u32>() == 2),
        "{again:?}"
    );
    let a_last = a.await.unwrap().last().unwrap().1.clone();
    assert_eq!(a_last.iter().sum::<u32>(), 2, "{a_last:?}");
    // The report it kept through the silence is counted.
    assert_eq!(outcome.stats.total().num_requests, 7);
}

#[test]
fn the_state_machine_moves_only_along_its_diagram() {
    use Transition::*;
    let all = [
        State::Ready,
        State::Spawning,
        State::Running,
        State::Stopping,
        State::Stopped,
    ];
    let moves: Vec<(State, Transition, State)> = all
        .iter()
        .flat_map(|&s| [Start, Replan, Spawned, Stop, Stopped].map(|t| (s, t, s.after(t))))
        .filter(|(from, _, to)| from != to)
        .collect();
    // Exactly the arrows of docs/protocol.md's run state diagram.
    assert_eq!(
        moves,
        vec![
            (State::Ready, Start, State::Spawning),
            (State::Ready, Stopped, State::Stopped),
            (State::Spawning, Spawned, State::Running),
            (State::Spawning, Stop, State::Stopping),
            (State::Spawning, Stopped, State::Stopped),
            (State::Running, Replan, State::Spawning),
            (State::Running, Stop, State::Stopping),
            (State::Running, Stopped, State::Stopped),
            (State::Stopping, Stopped, State::Stopped),
            (State::Stopped, Start, State::Spawning),
        ]
    );
}
