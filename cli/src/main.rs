//! `hatchery`: wiring only. Flags in `args`, standalone runs in `standalone`, the demo target in
//! `demo`.

mod args;
mod certs;
mod console;
mod demo;
mod listen;
mod locust;
mod master;
mod probe;
mod processes;
mod setup;
mod standalone;
mod web;
mod wiring;
mod worker;

use std::process::ExitCode;

use hatchery_core::plan::Bundle;
use hatchery_core::Plan;

use crate::args::{Command, RunArgs};

/// Process exit codes.
mod exit {
    pub const OK: i32 = 0;
    /// A request or a threshold failed, or an output could not be written.
    pub const FAILED: i32 = 1;
    /// Bad flags, plan or config.
    pub const CONFIG: i32 = 2;
    /// The expected workers did not connect within --expect-workers-max-wait.
    pub const NO_WORKERS: i32 = 3;
}

fn main() -> ExitCode {
    let cli = match args::parse(std::env::args().collect()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return code(exit::CONFIG);
        }
    };
    if let Err(e) = init_logging(&cli.run) {
        eprintln!("error: {e}");
        return code(exit::CONFIG);
    }
    let status = match cli.command {
        Some(Command::DemoTarget(d)) => demo_target(&d),
        Some(Command::Demo(args)) => demo::run_demo(*args),
        Some(Command::Probe(p)) => probe::run(&p),
        Some(Command::Certs(c)) => certs::run(&c),
        None => run(&cli.run),
    };
    code(status)
}

fn code(c: i32) -> ExitCode {
    ExitCode::from(u8::try_from(c).unwrap_or(1))
}

/// The log: stderr (or `--logfile`) at `--loglevel`; `--skip-log-setup` keeps warnings and
/// errors only.
fn init_logging(args: &RunArgs) -> Result<(), String> {
    let level = match args.loglevel.to_ascii_lowercase().as_str() {
        _ if args.skip_log_setup => "warn".to_string(),
        "warning" => "warn".to_string(),
        "critical" => "error".to_string(),
        other => other.to_string(),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match &args.logfile {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open --logfile {}: {e}", path.display()))?;
            log.with_writer(std::sync::Mutex::new(file))
                .with_ansi(false)
                .init();
        }
        None => log
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    Ok(())
}

fn run(args: &RunArgs) -> i32 {
    if args.worker {
        return worker::run(args);
    }
    let Some(path) = &args.plan else {
        eprintln!("error: no plan: pass -f/--plan FILE (see examples/ and docs/plan.md)");
        return exit::CONFIG;
    };
    match Bundle::load(path) {
        Ok((_, plan)) if args.list => {
            for class in &plan.users {
                println!("{}", class.name);
            }
            exit::OK
        }
        // Standalone with --processes is a master with local workers, as in Locust.
        Ok((bundle, plan)) if (args.master || args.processes.is_some()) && !args.check => {
            master::run(args, bundle, plan)
        }
        Ok((_, plan)) => run_plan(args, plan, &path.display().to_string()),
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            exit::CONFIG
        }
    }
}

/// Applies --tags/--exclude-tags; `Err` with the exit code when nothing is left to run.
fn filter_tags(args: &RunArgs, plan: &mut Plan) -> Result<(), i32> {
    let dropped = plan.filter_tags(&args.tags, &args.exclude_tags);
    for class in &dropped {
        tracing::warn!("user class {class} has no task left after tag filtering; it will not run");
    }
    if plan.users.is_empty() {
        eprintln!("error: no user class has a task left after --tags/--exclude-tags");
        return Err(exit::CONFIG);
    }
    Ok(())
}

/// Runs (or with --check, only validates) a loaded plan.
fn run_plan(args: &RunArgs, mut plan: Plan, origin: &str) -> i32 {
    if let Err(code) = filter_tags(args, &mut plan) {
        return code;
    }
    if args.check {
        match check_setup(args, &plan) {
            Ok(()) => {}
            // Script problems name their own place (the plan's line, or the script file's).
            Err(hatchery_worker::Error::Script(diagnostics)) => {
                for d in diagnostics {
                    eprintln!("{d}");
                }
                return exit::CONFIG;
            }
            Err(e) => {
                eprintln!("error: {origin}: {e}");
                return exit::CONFIG;
            }
        }
        let tasks: usize = plan.users.iter().map(|c| c.tasks.len()).sum();
        println!(
            "{origin}: ok ({} user classes, {tasks} tasks)",
            plan.users.len()
        );
        return exit::OK;
    }
    standalone::run(args, plan, origin)
}

/// What a worker checks before its first request (URLs, header names and values, framing
/// headers), so that "ok" from --check means the run will not fail on setup. A plan without a
/// host is checked against a stand-in one when the run can still be given a host (web UI or
/// workers of a master); a headless standalone run cannot, and fails like the run would.
fn check_setup(args: &RunArgs, plan: &Plan) -> Result<(), hatchery_worker::Error> {
    let mut plan = plan.clone();
    if args.host.is_none() && plan.host.is_none() && (args.master || !args.headless) {
        plan.host = Some("http://host.invalid".to_string());
    }
    hatchery_worker::prepare::Prepared::new(std::sync::Arc::new(plan), args.host.as_deref())
        .map(drop)
}

fn demo_target(d: &args::DemoArgs) -> i32 {
    let runtime = match setup::runtime(None, "hatchery-demo") {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let listener = match listen::listen(&d.bind, d.port).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {}:{}: {e}", d.bind, d.port);
                return exit::CONFIG;
            }
        };
        match listener.local_addr() {
            Ok(a) => tracing::info!("demo target listening on http://{a}"),
            Err(_) => tracing::info!("demo target listening"),
        }
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        match demo::serve(listener, stop).await {
            Ok(()) => exit::OK,
            Err(e) => {
                eprintln!("error: demo target: {e}");
                exit::FAILED
            }
        }
    })
}
