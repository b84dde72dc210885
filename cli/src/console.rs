//! The console and output files of a run: Locust's table every 2 s, CSV files kept current,
//! and the final summary, JSON and exit code.

use std::io::Write;
use std::time::Duration;

use hatchery_core::timestamp::unix_now;
use hatchery_core::Plan;
use hatchery_master::report::{console, csv::CsvWriter, json, thresholds};
use hatchery_master::run::{Event, Observer, Outcome, State, StopReason, View};

use crate::args::RunArgs;
use crate::exit;

/// How often the console table is printed (Locust's interval).
const PRINT_EVERY: Duration = Duration::from_secs(2);

/// Prints the table every 2 s and keeps the CSV files current.
pub struct Console {
    out: Box<dyn Write + Send>,
    print: bool,
    csv: Option<CsvWriter>,
    csv_failed: bool,
    warned_folding: bool,
    since_print: Duration,
}

impl Console {
    pub fn new(args: &RunArgs) -> Console {
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
            warned_folding: false,
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
    pub fn finish(mut self, args: &RunArgs, plan: &Plan, title: &str, outcome: &Outcome) -> i32 {
        let now = unix_now();
        let secs = outcome.elapsed.as_secs_f64();
        let stats = &outcome.stats;
        let _ = writeln!(self.out, "{}", console::stats_table(stats, now));
        let _ = writeln!(self.out, "{}", console::percentiles_table(stats));
        if stats.errors().next().is_some() {
            let _ = writeln!(self.out, "{}", console::errors_table(stats));
        }
        if let Some(note) = console::abandoned_note(stats, args.stop_timeout) {
            let _ = writeln!(self.out, "{note}");
        }
        let verdicts = thresholds::evaluate(&plan.thresholds, stats, secs);
        if !verdicts.is_empty() {
            let _ = writeln!(self.out, "{}", thresholds::verdict_table(&verdicts));
        }
        let mut code = exit::OK;
        // Every output is tried, so a full disk that fails one file still gets the others.
        let mut lost_output = false;
        if let Some(csv) = &mut self.csv {
            let history = csv.append_history(stats, &outcome.window, 0, now);
            let snapshot = csv.write_snapshot(stats, now, secs);
            for e in [history.err(), snapshot.err()].into_iter().flatten() {
                eprintln!("error: {e}");
                lost_output = true;
            }
        }
        if let Some(path) = &args.html {
            let page =
                hatchery_master::api::report_html(title, &outcome.snapshot(), &outcome.history);
            if let Err(e) = std::fs::write(path, page) {
                eprintln!(
                    "error: cannot write the HTML report {}: {e}",
                    path.display()
                );
                lost_output = true;
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
        // A lost output is never hidden, not even by --exit-code-on-error 0.
        if lost_output && code == exit::OK {
            code = exit::FAILED;
        }
        code
    }
}

impl Observer for Console {
    fn tick(&mut self, view: &View<'_>) {
        if !self.warned_folding && view.stats.folded_entries() > 0 {
            // A name per id (`/products/17`, `/products/18`, ...) would grow without end.
            self.warned_folding = true;
            tracing::warn!(
                "more than {} distinct request names: the rest are counted as {:?}; give templated URLs a `name:` (e.g. name: /products/[id])",
                hatchery_core::stats::MAX_ENTRIES,
                hatchery_core::stats::OTHER_ENTRY
            );
        }
        // Between tests (a UI waiting for a swarm) there is nothing new to show or write.
        if !matches!(
            view.state,
            State::Spawning | State::Running | State::Stopping
        ) {
            return;
        }
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
                    StopReason::Requested => "stop requested",
                };
                tracing::info!("{why}: stopping {} users", view.user_count());
            }
        }
    }
}
