//! Master mode: the coordinator on the workers' port, the HTTP API on the web port, and the run.

use std::net::SocketAddr;
use std::time::Duration;

use hatchery_core::plan::Bundle;
use hatchery_core::Plan;
use hatchery_master::api::RunHandle;
use hatchery_master::run::{self, Inbox, State, Status, StopReason};
use hatchery_master::server::{self, Coordinator, Offer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::args::RunArgs;
use crate::console::Console;
use crate::standalone::{run_config, shutdown_signal};
use crate::{exit, processes, setup};

/// How long sessions get to deliver the final `Quit` before the servers stop.
const QUIT_GRACE: Duration = Duration::from_secs(2);

pub fn run(args: &RunArgs, bundle: Bundle, mut plan: Plan) -> i32 {
    let title = bundle.origin.clone();
    let web_config = match crate::web::config(args, &title, &plan) {
        Ok(w) => w,
        Err(e) => return setup::config_error(e),
    };
    if let Err(code) = crate::filter_tags(args, &mut plan) {
        return code;
    }
    let mut config = match run_config(args, &plan) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::CONFIG;
        }
    };
    if args.expect_workers == 0 {
        eprintln!("error: --expect-workers must be at least 1");
        return exit::CONFIG;
    }
    let local = match args.processes.map(processes::count).transpose() {
        Ok(n) => n,
        Err(e) => return setup::config_error(e),
    };
    // Standalone with --processes: a master only its own children dial.
    let standalone = !args.master;
    let bind_host = if standalone {
        "127.0.0.1"
    } else {
        args.master_bind_host.as_str()
    };
    config.expect_workers = match local {
        Some(n) if standalone => n,
        Some(n) => args.expect_workers.max(n),
        None => args.expect_workers,
    };
    config.expect_workers_max_wait = args.expect_workers_max_wait;
    config.heartbeat_liveness = Some(args.heartbeat_liveness.max(1));
    config.end_without_workers = false;
    let runtime = match setup::runtime(None, "hatchery-master") {
        Ok(r) => r,
        Err(code) => return code,
    };
    let token = match setup::auth_token(args) {
        Ok(t) => t,
        Err(code) => return code,
    };
    if !is_loopback(bind_host) {
        let bound = format!("{bind_host}:{}", args.master_bind_port);
        if token.is_none() {
            tracing::warn!(
                "no worker token: anyone who reaches {bound} can join as a worker; set --auth-token-file or HATCHERY_AUTH_TOKEN on the master and the workers"
            );
        } else if web_config.tls.is_none() {
            tracing::warn!(
                "the worker token crosses the network in clear text to {bound}; add --tls-cert/--tls-key (and --tls-ca on the workers)"
            );
        }
    }
    let offer = Offer {
        token,
        plan_hash: bundle.hash(),
        bundle,
        request_timeout: args.request_timeout,
        tags: args.tags.clone(),
        exclude_tags: args.exclude_tags.clone(),
        heartbeat_interval: Duration::from_secs(1),
        heartbeat_liveness: args.heartbeat_liveness.max(1),
        max_workers: args.max_workers.max(1),
    };
    let mut console = Console::new(args);
    let result = runtime.block_on(async {
        let (workers, workers_addr) = bind(bind_host, args.master_bind_port, "workers").await?;
        let children = match local {
            Some(n) => Some(local_workers(args, workers_addr, n)?),
            None => None,
        };
        let (events, events_rx) = mpsc::channel(1024);
        let (commands, commands_rx) = mpsc::channel(64);
        let (status, status_rx) = watch::channel(Status {
            state: State::Ready,
            workers: 0,
            expected: config.expect_workers,
            host: args.host.clone(),
        });
        let inbox = Inbox {
            events: events_rx,
            commands: commands_rx,
            status,
        };
        let (stop_servers, servers_stopped) = oneshot::channel::<()>();
        let stopped = async {
            let _ = servers_stopped.await;
        };
        let coordinator = Coordinator::new(offer, events, status_rx.clone());
        let tls = web_config.tls.clone();
        let grpc = tokio::spawn(async move {
            server::serve(workers, coordinator, tls.as_ref(), stopped).await
        });
        let handle = RunHandle {
            commands,
            status: status_rx.clone(),
        };
        // A standalone headless run serves no web UI, with or without --processes.
        let web = if standalone && args.headless {
            None
        } else {
            Some(crate::web::start(args, handle, web_config.clone()).await?)
        };
        tracing::info!(
            "master: workers connect to {}{}, web UI and API on {}; waiting for {} worker(s)",
            workers_addr,
            if web_config.tls.is_some() {
                " (TLS)"
            } else {
                ""
            },
            web.as_ref()
                .map_or("none".to_string(), |w| crate::web::url(w.addr, &web_config)),
            config.expect_workers
        );
        let expected = config.expect_workers;
        let outcome = run::run(config, inbox, &mut console, shutdown_signal()).await;
        let connected = status_rx.borrow().workers;
        let _ = stop_servers.send(());
        let _ = tokio::time::timeout(QUIT_GRACE, grpc).await;
        if let Some(web) = web {
            web.stop().await;
        }
        Ok::<_, String>((outcome, connected, expected, children))
    });
    let (outcome, connected, expected, children) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::CONFIG;
        }
    };
    if let Some(children) = children {
        children.reap(QUIT_GRACE);
    }
    if outcome.reason == StopReason::GateTimeout {
        eprintln!(
            "error: only {connected} of {expected} workers connected within --expect-workers-max-wait {}; check that they can reach this master on port {}",
            args.expect_workers_max_wait
                .map(hatchery_core::duration::format)
                .unwrap_or_default(),
            args.master_bind_port
        );
        return exit::NO_WORKERS;
    }
    console.finish(args, &plan, &title, &outcome)
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
    let listener = TcpListener::bind((host, port))
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
