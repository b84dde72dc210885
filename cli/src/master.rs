//! Master mode: the coordinator on the workers' port, the HTTP API on the web port, and the run.

use std::net::SocketAddr;
use std::time::Duration;

use hatchery_core::plan::Bundle;
use hatchery_core::Plan;
use hatchery_master::api::WebConfig;
use hatchery_master::run::{Outcome, RunConfig, StopReason};
use hatchery_master::server::{self, Coordinator, Offer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::args::RunArgs;
use crate::console::Console;
use crate::standalone::run_config;
use crate::wiring::{self, Wiring};
use crate::{exit, processes, setup};

/// How long sessions get to deliver the final `Quit` before the servers stop.
const QUIT_GRACE: Duration = Duration::from_secs(2);

pub fn run(args: &RunArgs, bundle: Bundle, mut plan: Plan) -> i32 {
    let title = bundle.origin.clone();
    let setup = match Setup::new(args, &mut plan, &title) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let runtime = match setup::runtime(None, "hatchery-master") {
        Ok(r) => r,
        Err(code) => return code,
    };
    let token = match setup::auth_token(args) {
        Ok(t) => t,
        Err(code) => return code,
    };
    warn_exposure(args, &setup, token.is_some());
    let offer = offer(args, bundle, token);
    let mut console = Console::new(args);
    let ended = match runtime.block_on(serve(args, &setup, offer, &mut console)) {
        Ok(e) => e,
        Err(e) => return setup::config_error(e),
    };
    if let Some(children) = ended.children {
        children.reap(QUIT_GRACE);
    }
    if ended.outcome.reason == StopReason::GateTimeout {
        eprintln!(
            "error: only {} of {} workers connected within --expect-workers-max-wait {}; check that they can reach this master on port {}",
            ended.connected,
            setup.config.expect_workers,
            args.expect_workers_max_wait
                .map(hatchery_core::duration::format)
                .unwrap_or_default(),
            ended.port
        );
        return exit::NO_WORKERS;
    }
    console.finish(args, &plan, &title, &ended.outcome)
}

/// What the flags make of a master.
struct Setup {
    web: WebConfig,
    config: RunConfig,
    /// Worker processes to start on this machine (`--processes`).
    local: Option<usize>,
    /// Standalone with `--processes`: a master only its own children dial, and a headless one
    /// serves no web UI, as a standalone run.
    standalone: bool,
    bind_host: String,
}

impl Setup {
    /// `Err` with the exit code, the problem printed.
    fn new(args: &RunArgs, plan: &mut Plan, title: &str) -> Result<Setup, i32> {
        let web = crate::web::config(args, title, plan).map_err(setup::config_error)?;
        crate::filter_tags(args, plan)?;
        let mut config = run_config(args, plan).map_err(setup::config_error)?;
        if args.expect_workers == 0 {
            return Err(setup::config_error("--expect-workers must be at least 1"));
        }
        let local = args
            .processes
            .map(processes::count)
            .transpose()
            .map_err(setup::config_error)?;
        let standalone = !args.master;
        config.expect_workers = match local {
            Some(n) if standalone => n,
            Some(n) => args.expect_workers.max(n),
            None => args.expect_workers,
        };
        config.expect_workers_max_wait = args.expect_workers_max_wait;
        config.heartbeat_liveness = Some(args.heartbeat_liveness.max(1));
        config.end_without_workers = false;
        let bind_host = if standalone {
            "127.0.0.1".to_string()
        } else {
            args.master_bind_host.clone()
        };
        Ok(Setup {
            web,
            config,
            local,
            standalone,
            bind_host,
        })
    }
}

/// A master reachable beyond loopback says what anyone who reaches it can do.
fn warn_exposure(args: &RunArgs, setup: &Setup, token: bool) {
    if is_loopback(&setup.bind_host) {
        return;
    }
    let bound = format!("{}:{}", setup.bind_host, args.master_bind_port);
    if !token {
        tracing::warn!(
            "no worker token: anyone who reaches {bound} can join as a worker; set --auth-token-file or HATCHERY_AUTH_TOKEN on the master and the workers"
        );
    } else if setup.web.tls.is_none() {
        tracing::warn!(
            "the worker token crosses the network in clear text to {bound}; add --tls-cert/--tls-key (and --tls-ca on the workers)"
        );
    }
}

/// What the master offers each worker that joins.
fn offer(args: &RunArgs, bundle: Bundle, token: Option<String>) -> Offer {
    Offer {
        token,
        plan_hash: bundle.hash(),
        bundle,
        request_timeout: args.request_timeout,
        tags: args.tags.clone(),
        exclude_tags: args.exclude_tags.clone(),
        heartbeat_interval: Duration::from_secs(1),
        heartbeat_liveness: args.heartbeat_liveness.max(1),
        max_workers: args.max_workers.max(1),
    }
}

/// How the run ended, and what ending it leaves to do.
struct Ended {
    outcome: Outcome,
    /// Workers connected at the end (the gate timeout's message names them).
    connected: usize,
    /// The workers' port as bound (the one asked for, or what port 0 got).
    port: u16,
    children: Option<processes::Children>,
}

/// Serves the workers' port and the web UI, starts the local workers, runs the test, then gives
/// the sessions [`QUIT_GRACE`] to deliver the final `Quit` before the servers stop.
async fn serve(
    args: &RunArgs,
    setup: &Setup,
    offer: Offer,
    console: &mut Console,
) -> Result<Ended, String> {
    let (workers, addr) = bind(&setup.bind_host, args.master_bind_port, "workers").await?;
    let children = match setup.local {
        Some(n) => Some(local_workers(args, addr, n)?),
        None => None,
    };
    let (wiring, events) = Wiring::new(setup.config.expect_workers, args.host.clone());
    let status = wiring.status();
    let (stop_servers, servers_stopped) = oneshot::channel::<()>();
    let coordinator = Coordinator::new(offer, events, status.clone());
    let tls = setup.web.tls.clone();
    let grpc = tokio::spawn(async move {
        let stopped = async {
            let _ = servers_stopped.await;
        };
        server::serve(workers, coordinator, tls.as_ref(), stopped).await
    });
    let serve_web = !(setup.standalone && args.headless);
    let web = wiring.web(args, &setup.web, serve_web).await?;
    tracing::info!(
        "master: workers connect to {addr}{}, web UI and API on {}; waiting for {} worker(s)",
        if setup.web.tls.is_some() {
            " (TLS)"
        } else {
            ""
        },
        web.as_ref()
            .map_or("none".to_string(), |w| crate::web::url(w.addr, &setup.web)),
        setup.config.expect_workers
    );
    let outcome = wiring.run(setup.config.clone(), console).await;
    let connected = status.borrow().workers;
    let _ = stop_servers.send(());
    let _ = tokio::time::timeout(QUIT_GRACE, grpc).await;
    wiring::stop(web).await;
    Ok(Ended {
        outcome,
        connected,
        port: addr.port(),
        children,
    })
}

/// Starts `n` worker processes that dial this master at `addr` (loopback when it listens on
/// every address); with TLS they trust exactly the master's own certificate.
fn local_workers(
    args: &RunArgs,
    addr: SocketAddr,
    n: usize,
) -> Result<processes::Children, String> {
    let host = match addr.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let mut child_args = processes::worker_args(args, &host, addr.port(), None, n);
    if let Some(cert) = &args.tls_cert {
        child_args.push(format!("--tls-ca={}", cert.display()));
    }
    processes::spawn(n, &child_args)
}

async fn bind(host: &str, port: u16, what: &str) -> Result<(TcpListener, SocketAddr), String> {
    let listener = crate::listen::listen(host, port)
        .await
        .map_err(|e| format!("cannot listen on {host}:{port} for {what}: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {host}:{port} for {what}: {e}"))?;
    Ok((listener, addr))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
