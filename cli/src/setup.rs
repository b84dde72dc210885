//! Process set-up shared by the modes: runtimes, trusted certificates. Each helper prints what
//! went wrong and returns the exit code to end with.

use hatchery_worker::http::CertificateDer;
use tokio::runtime::{Builder, Runtime};

use crate::args::RunArgs;
use crate::exit;

/// Prints `error: {message}` and gives the config-error exit code.
pub fn config_error(message: impl std::fmt::Display) -> i32 {
    eprintln!("error: {message}");
    exit::CONFIG
}

/// Threads for the users: `--threads`, else one per core.
pub fn threads(args: &RunArgs) -> usize {
    args.threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

/// A multi-thread runtime with `threads` workers (tokio's default when `None`).
pub fn runtime(threads: Option<usize>, name: &str) -> Result<Runtime, i32> {
    let mut b = Builder::new_multi_thread();
    if let Some(n) = threads {
        b.worker_threads(n);
    }
    b.thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| config_error(format!("cannot start the runtime: {e}")))
}

/// A runtime on the calling thread.
pub fn current_thread() -> Result<Runtime, i32> {
    Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| config_error(format!("cannot start the runtime: {e}")))
}

/// The certificates of `--ca-cert`, if given.
pub fn ca_certs(args: &RunArgs) -> Result<Vec<CertificateDer<'static>>, i32> {
    match &args.ca_cert {
        Some(path) => hatchery_worker::http::load_ca_file(path).map_err(config_error),
        None => Ok(Vec::new()),
    }
}

/// The worker token: `--auth-token-file`, else `HATCHERY_AUTH_TOKEN`, else none.
pub fn auth_token(args: &RunArgs) -> Result<Option<String>, i32> {
    let token = match &args.auth_token_file {
        Some(path) => std::fs::read_to_string(path)
            .map(|t| t.trim().to_string())
            .map_err(|e| {
                config_error(format!(
                    "cannot read --auth-token-file {}: {e}",
                    path.display()
                ))
            })?,
        None => match std::env::var("HATCHERY_AUTH_TOKEN") {
            Ok(t) => t.trim().to_string(),
            Err(_) => return Ok(None),
        },
    };
    if token.is_empty() {
        return Err(config_error("the worker token is empty"));
    }
    Ok(Some(token))
}
