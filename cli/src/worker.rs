//! Worker mode: connect to a master and run the users it assigns, or start several worker
//! processes (`--processes`).

use std::time::Duration;

use hatchery_core::plan::Bundle;
use hatchery_worker::dial::MasterTls;
use hatchery_worker::master_link::{self, LinkConfig, LinkError};

use crate::args::RunArgs;
use crate::standalone::shutdown_signal;
use crate::{exit, processes, setup};

pub fn run(args: &RunArgs) -> i32 {
    if let Some(n) = args.processes {
        return processes(args, n);
    }
    let local_plan = match &args.plan {
        Some(path) => match Bundle::load(path) {
            Ok((bundle, _)) => Some(bundle),
            Err(d) => {
                eprintln!("{d}");
                return exit::CONFIG;
            }
        },
        None => None,
    };
    let ca_certs = match setup::ca_certs(args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let threads = setup::threads(args);
    let users = match setup::runtime(Some(threads), "hatchery-users") {
        Ok(r) => r,
        Err(code) => return code,
    };
    // The session (heartbeats, reports) runs here, on its own thread, apart from the users.
    let control = match setup::current_thread() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let token = match setup::auth_token(args) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let master_tls = match &args.tls_ca {
        Some(path) => {
            match hatchery_worker::http::load_ca_file(path).and_then(|ca| MasterTls::new(&ca)) {
                Ok(t) => Some(t),
                Err(e) => return setup::config_error(format!("--tls-ca: {e}")),
            }
        }
        None => None,
    };
    let scheme = if master_tls.is_some() {
        "https"
    } else {
        "http"
    };
    let hostname = hostname();
    let cfg = LinkConfig {
        endpoint: format!("{scheme}://{}:{}", args.master_host, args.master_port),
        worker_id: format!(
            "{hostname}-{}-{:04x}",
            std::process::id(),
            fastrand::u16(..)
        ),
        hostname,
        local_plan,
        threads,
        ca_certs,
        master_timeout: args.master_timeout,
        token,
        master_tls,
        direct: args.master_address.map(|ip| {
            let at = std::net::SocketAddr::new(ip, args.master_port);
            format!("{scheme}://{at}")
        }),
        master_name: args.master_host.clone(),
    };
    tracing::info!(worker = %cfg.worker_id, "connecting to the master at {}", cfg.endpoint);
    let result = control.block_on(async {
        tokio::select! {
            r = master_link::run(cfg, users.handle().clone()) => Some(r),
            _ = shutdown_signal() => None,
        }
    });
    users.shutdown_timeout(Duration::from_secs(1));
    match result {
        None | Some(Ok(())) => exit::OK,
        Some(Err(
            e @ (LinkError::Refused(_)
            | LinkError::Plan(_)
            | LinkError::Config(_)
            | LinkError::Tls(_)),
        )) => {
            eprintln!("error: {e}");
            exit::CONFIG
        }
        Some(Err(e @ LinkError::MasterLost { .. })) => {
            eprintln!("error: {e}");
            exit::FAILED
        }
    }
}

/// Starts `n` worker processes of the same master and waits for them.
fn processes(args: &RunArgs, n: i32) -> i32 {
    let n = match processes::count(n) {
        Ok(n) => n,
        Err(e) => return setup::config_error(e),
    };
    let child_args = processes::worker_args(
        args,
        &args.master_host,
        args.master_port,
        args.plan.as_deref(),
        n,
    );
    match processes::spawn(n, &child_args) {
        Ok(children) => children.wait(),
        Err(e) => {
            eprintln!("error: {e}");
            exit::FAILED
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "worker".to_string())
}
