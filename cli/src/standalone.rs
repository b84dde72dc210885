//! Standalone mode: the coordinator and one worker in this process, joined by the same messages
//! that travel between a master and its workers.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use hatchery_core::apportion::Claim;
use hatchery_core::Plan;
use hatchery_master::local;
use hatchery_master::report::{console, csv::CsvWriter, json, thresholds};
use hatchery_master::run::{
    self, Event, Inbox, Observer, Outcome, RunConfig, State, Status, StopReason, View,
};
use tokio::sync::{mpsc, watch};

use crate::args::RunArgs;
use crate::exit;

/// How often the console table is printed (Locust's interval).
const PRINT_EVERY: Duration = Duration::from_secs(2);

/// Runs a headless test to its end and returns the process exit code.
pub fn run(args: &RunArgs, plan: Plan) -> i32 {
    let config = match run_config(args, &plan) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::CONFIG;
        }
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return exit::CONFIG;
        }
    };
    let plan = Arc::new(plan);
    let (to_worker, from_master) = mpsc::channel(64);
    let (to_master, from_worker) = mpsc::channel(64);
    let ca_certs = match &args.ca_cert {
        Some(path) => match hatchery_worker::http::load_ca_file(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::CONFIG;
            }
        },
        None => Vec::new(),
    };
    let worker_config = hatchery_worker::Config {
        host: args.host.clone(),
        default_timeout: args.request_timeout,
        shards: threads,
        ca_certs,
        ..Default::default()
    };
    let worker = match hatchery_worker::start(plan.clone(), worker_config, from_master, to_master) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::CONFIG;
        }
    };
    let mut console = Console::new(args);
    let outcome = runtime.block_on(async {
        let (events, events_rx) = mpsc::channel(64);
        let (_commands, commands_rx) = mpsc::channel(16);
        let (status, _) = watch::channel(Status {
            state: State::Ready,
            workers: 0,
            expected: 1,
        });
        let inbox = Inbox {
            events: events_rx,
            commands: commands_rx,
            status,
        };
        let worker = tokio::spawn(worker);
        let link = tokio::spawn(local::attach(events, to_worker, from_worker));
        let outcome = run::run(config, inbox, &mut console, shutdown_signal()).await;
        worker.abort();
        link.abort();
        outcome
    });
    console.finish(args, &plan, &outcome)
}

fn run_config(args: &RunArgs, plan: &Plan) -> Result<RunConfig, String> {
    let users = args.users.unwrap_or(1);
    let spawn_rate = args.spawn_rate.unwrap_or(1.0);
    if !(spawn_rate.is_finite() && spawn_rate > 0.0) {
        return Err(format!(
            "--spawn-rate must be a number above 0, got {spawn_rate}"
        ));
    }
    if plan.shape.is_some() && (args.users.is_some() || args.spawn_rate.is_some()) {
        tracing::warn!("the plan has a load shape: -u/--users and -r/--spawn-rate are ignored");
    }
    Ok(RunConfig {
        users,
        spawn_rate,
        run_time: args.run_time,
        stop_timeout: args.stop_timeout,
        shape: plan.shape.clone(),
        claims: plan
            .users
            .iter()
            .map(|c| Claim {
                weight: c.weight,
                fixed: c.fixed_count,
            })
            .collect(),
        class_names: plan.users.iter().map(|c| c.name.clone()).collect(),
        reset_stats: args.reset_stats,
        expect_workers: 1,
        expect_workers_max_wait: None,
        heartbeat_liveness: None,
        end_without_workers: true,
    })
}

/// Ctrl-C or SIGTERM: stop the run gracefully (users get the stop timeout, outputs are written).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("stopping: signal received");
}

/// Prints the table every 2 s and keeps the CSV files current.
struct Console {
    out: Box<dyn Write + Send>,
    print: bool,
    csv: Option<CsvWriter>,
    csv_failed: bool,
    since_print: Duration,
}

impl Console {
    fn new(args: &RunArgs) -> Console {
        // With --json, stdout carries the JSON document alone.
        let out: Box<dyn Write + Send> = if args.json {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        };
        Console {
            out,
            print: !args.only_summary,
            csv: args
                .csv
                .as_ref()
                .map(|prefix| CsvWriter::new(prefix.clone(), args.csv_full_history)),
            csv_failed: false,
            since_print: Duration::ZERO,
        }
    }

    fn write_csv(&mut self, view: &View<'_>) -> Result<(), String> {
        let Some(csv) = &mut self.csv else {
            return Ok(());
        };
        let secs = view.elapsed.as_secs_f64();
        csv.append_history(view.stats, view.window, view.user_count(), view.now_unix_s)
            .and_then(|()| csv.write_snapshot(view.stats, view.now_unix_s, secs))
            .map_err(|e| e.to_string())
    }

    /// Final outputs; returns the exit code.
    fn finish(mut self, args: &RunArgs, plan: &Plan, outcome: &Outcome) -> i32 {
        let now = unix_now();
        let secs = outcome.elapsed.as_secs_f64();
        let stats = &outcome.stats;
        let _ = writeln!(self.out, "{}", console::stats_table(stats, now));
        let _ = writeln!(self.out, "{}", console::percentiles_table(stats));
        if stats.errors().next().is_some() {
            let _ = writeln!(self.out, "{}", console::errors_table(stats));
        }
        let verdicts = thresholds::evaluate(&plan.thresholds, stats, secs);
        if !verdicts.is_empty() {
            let _ = writeln!(self.out, "{}", thresholds::verdict_table(&verdicts));
        }
        let mut code = exit::OK;
        if let Some(csv) = &mut self.csv {
            let history = csv.append_history(stats, &outcome.window, 0, now);
            if let Err(e) = history.and_then(|()| csv.write_snapshot(stats, now, secs)) {
                eprintln!("error: {e}");
                code = exit::FAILED;
            }
        }
        if args.json {
            let doc = json::requests_json(stats, &outcome.window, "stopped", 0, now, secs);
            println!("{doc:#}");
        }
        if !outcome.complete {
            tracing::warn!("the worker did not confirm its final report in time: totals may miss the last second");
        }
        if outcome.reason == StopReason::WorkerLost {
            tracing::error!("the worker stopped unexpectedly");
            code = exit::FAILED;
        }
        if stats.total().num_failures > 0 {
            code = args.exit_code_on_error;
        }
        if verdicts.iter().any(|v| !v.passed) && code == exit::OK {
            code = exit::FAILED;
        }
        code
    }
}

impl Observer for Console {
    fn tick(&mut self, view: &View<'_>) {
        if let Err(e) = self.write_csv(view) {
            // Keep running: the test matters more than one file; the final write reports again.
            if !self.csv_failed {
                tracing::error!("{e}");
                self.csv_failed = true;
            }
        }
        self.since_print += Duration::from_secs(1);
        if self.print && self.since_print >= PRINT_EVERY {
            self.since_print = Duration::ZERO;
            let _ = writeln!(
                self.out,
                "{}",
                console::stats_table(view.stats, view.now_unix_s)
            );
        }
    }

    fn event(&mut self, event: &Event, view: &View<'_>) {
        match event {
            Event::Spawned(per_class) => {
                let total: u32 = per_class.values().sum();
                let list: Vec<String> = per_class
                    .iter()
                    .map(|(k, v)| format!("\"{k}\": {v}"))
                    .collect();
                tracing::info!(
                    "All users spawned: {{{}}} ({total} total users)",
                    list.join(", ")
                );
            }
            Event::Stage { index, users } => {
                tracing::info!("shape stage {}: {users} users", index + 1)
            }
            Event::StatsReset => tracing::info!("statistics reset after spawning (--reset-stats)"),
            Event::WorkerJoined { id, workers } => {
                tracing::info!("worker {id} connected ({workers} connected)")
            }
            Event::WorkerLeft {
                id,
                reason,
                workers,
            } => tracing::warn!("worker {id} lost: {reason} ({workers} connected)"),
            Event::WorkerBusy { id, cpu_percent } => tracing::warn!(
                "worker {id} uses {cpu_percent:.0}% CPU: its response times are suspect; add workers"
            ),
            Event::Stopping(reason) => {
                let why = match reason {
                    StopReason::TimeLimit => "run time limit reached",
                    StopReason::ShapeEnded => "load shape ended",
                    StopReason::Interrupted => "interrupted",
                    StopReason::WorkerLost => "worker lost",
                    StopReason::GateTimeout => "the expected workers did not connect in time",
                };
                tracing::info!("{why}: stopping {} users", view.user_count());
            }
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
