//! Standalone mode: the coordinator and one worker in this process, joined by the same messages
//! that travel between a master and its workers.

use std::sync::Arc;
use std::time::Duration;

use hatchery_core::limits::{self, LimitError};
use hatchery_core::plan::Shape;
use hatchery_core::protocol::{FromWorker, ToWorker};
use hatchery_core::Plan;
use hatchery_master::local;
use hatchery_master::run::RunConfig;
use tokio::sync::mpsc;

use crate::args::RunArgs;
use crate::setup;
use crate::wiring::{self, Wiring};

/// Runs until the test (headless) or the UI session is over; returns the exit code.
pub fn run(args: &RunArgs, plan: Plan, title: &str) -> i32 {
    let config = match run_config(args, &plan) {
        Ok(c) => c,
        Err(e) => return setup::config_error(e),
    };
    let web = match crate::web::config(args, title, &plan) {
        Ok(w) => w,
        Err(e) => return setup::config_error(e),
    };
    if args.headless && web.tls.is_some() {
        tracing::warn!(
            "--tls-cert/--tls-key secure the web UI, which a headless run does not serve"
        );
    }
    let threads = setup::threads(args);
    let runtime = match setup::runtime(Some(threads), "hatchery-users") {
        Ok(r) => r,
        Err(code) => return code,
    };
    let plan = Arc::new(plan);
    let (to_worker, from_master) = mpsc::channel(64);
    let (to_master, from_worker) = mpsc::channel(64);
    let worker = match worker(args, threads, plan.clone(), from_master, to_master) {
        Ok(w) => w,
        Err(code) => return code,
    };
    let mut console = crate::console::Console::new(args);
    let outcome = runtime.block_on(async {
        let (wiring, events) = Wiring::new(1, args.host.clone());
        // Without --headless the web UI serves, as Locust's does in standalone mode.
        let server = wiring.web(args, &web, !args.headless).await?;
        if let Some(s) = &server {
            tracing::info!("web UI on {}", crate::web::url(s.addr, &web));
        }
        let worker = tokio::spawn(worker);
        let link = tokio::spawn(local::attach(events, to_worker, from_worker));
        let outcome = wiring.run(config, &mut console).await;
        worker.abort();
        link.abort();
        wiring::stop(server).await;
        Ok::<_, String>(outcome)
    });
    match outcome {
        Ok(outcome) => console.finish(args, &plan, title, &outcome),
        Err(e) => setup::config_error(e),
    }
}

/// The in-process worker, joined to the run by channels as a remote one is by gRPC.
fn worker(
    args: &RunArgs,
    threads: usize,
    plan: Arc<Plan>,
    from_master: mpsc::Receiver<ToWorker>,
    to_master: mpsc::Sender<FromWorker>,
) -> Result<impl std::future::Future<Output = ()> + Send + 'static, i32> {
    let config = hatchery_worker::Config {
        host: args.host.clone(),
        default_timeout: args.request_timeout,
        shards: threads,
        ca_certs: setup::ca_certs(args)?,
        ..Default::default()
    };
    hatchery_worker::start(plan, config, from_master, to_master).map_err(setup::config_error)
}

/// Headless: one test at once, then quit. --autostart: the test at once, the UI stays (until
/// --autoquit). Otherwise the UI starts tests.
fn lifecycle(args: &RunArgs) -> (bool, Option<Duration>) {
    let autoquit = args.autoquit.map(Duration::from_secs);
    if args.headless {
        (true, Some(Duration::ZERO))
    } else {
        (args.autostart, autoquit)
    }
}

pub(crate) fn run_config(args: &RunArgs, plan: &Plan) -> Result<RunConfig, String> {
    let users = args.users.unwrap_or(1);
    let spawn_rate = args.spawn_rate.unwrap_or(1.0);
    limits::check_spawn_rate(spawn_rate).map_err(|e| e.to_string())?;
    let shape = match (&plan.shape, args.step_load) {
        (Some(_), true) => {
            return Err("the plan has a load shape and --step-load makes one: use either".into())
        }
        (None, true) => Some(crate::locust::step_shape(
            users,
            spawn_rate,
            args.step_users.unwrap_or(0),
            args.step_time.unwrap_or_default(),
        )?),
        (shape, false) => shape.clone(),
    };
    check_limits(args, shape.as_ref(), users, spawn_rate).map_err(|e| e.to_string())?;
    if plan.shape.is_some() && (args.users.is_some() || args.spawn_rate.is_some()) {
        tracing::warn!("the plan has a load shape: -u/--users and -r/--spawn-rate are ignored");
    }
    let (autostart, quit_after) = lifecycle(args);
    Ok(RunConfig {
        host: args.host.clone(),
        users,
        max_users: args.max_users,
        spawn_rate,
        run_time: args.run_time,
        stop_timeout: args.stop_timeout,
        shape,
        claims: crate::locust::claims(plan, &args.user_classes, &args.config_users)?,
        class_names: plan.users.iter().map(|c| c.name.clone()).collect(),
        reset_stats: args.reset_stats,
        expect_workers: 1,
        expect_workers_max_wait: None,
        heartbeat_liveness: None,
        end_without_workers: true,
        autostart,
        quit_after,
    })
}

/// Users, spawn rate and run time, of the flags and of every stage of a load shape, within
/// bounds (`--max-users`).
fn check_limits(
    args: &RunArgs,
    shape: Option<&Shape>,
    users: u32,
    rate: f64,
) -> Result<(), LimitError> {
    limits::check_users(u64::from(users), args.max_users)?;
    limits::check_spawn_rate(rate)?;
    if let Some(t) = args.run_time {
        limits::check_run_time(t)?;
    }
    for stage in shape.iter().flat_map(|s| &s.stages) {
        limits::check_users(u64::from(stage.users), args.max_users)?;
        limits::check_spawn_rate(stage.spawn_rate)?;
    }
    Ok(())
}

/// Ctrl-C or SIGTERM: stop the run gracefully (users get the stop timeout, outputs are written).
pub(crate) async fn shutdown_signal() {
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
