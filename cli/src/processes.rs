//! `--processes N`: worker processes on this machine, as Locust's `--processes` forks them. With
//! `--worker` the process starts N workers of the same master; standalone or with `--master` it
//! runs the master and N local workers that dial it.
//!
//! A child never starts children. It gets its whole command line from the parent, the
//! [`CHILD_MARKER`] in its environment and no `HATCHERY_*`/`LOCUST_*` settings; with the marker
//! the config files are not read and `--processes` is forced off, whatever a file, a variable
//! or a flag says.

use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::args::RunArgs;
use crate::exit;

/// Set by the parent in each child's environment.
pub const CHILD_MARKER: &str = "HATCHERY_PROCESSES_CHILD";

/// The most worker processes one command starts: each is a full runtime, and a typo must not
/// fill the machine.
pub const MAX_PROCESSES: usize = 1024;

/// True in a process started by `--processes`.
pub fn is_child() -> bool {
    std::env::var_os(CHILD_MARKER).is_some()
}

/// How many processes `--processes n` means: -1 is one per core.
pub fn count(n: i32) -> Result<usize, String> {
    let n = match n {
        -1 => std::thread::available_parallelism().map_or(1, |c| c.get()),
        n if n >= 1 => n as usize,
        _ => {
            return Err(format!(
                "--processes must be -1 (one per core) or at least 1, got {n}"
            ))
        }
    };
    if n > MAX_PROCESSES {
        return Err(format!(
            "--processes {n} is more than {MAX_PROCESSES} worker processes on one machine"
        ));
    }
    Ok(n)
}

/// The command line of a child worker of the master at `host:port`: every setting a worker uses,
/// explicit, so the child needs no config file or environment.
pub fn worker_args(
    args: &RunArgs,
    host: &str,
    port: u16,
    plan: Option<&Path>,
    n: usize,
) -> Vec<String> {
    let mut out: Vec<String> = vec![
        "--worker".into(),
        format!("--master-host={host}"),
        format!("--master-port={port}"),
        format!("--loglevel={}", args.loglevel),
        format!(
            "--master-timeout={}",
            hatchery_core::duration::format(args.master_timeout)
        ),
        format!("--heartbeat-liveness={}", args.heartbeat_liveness),
    ];
    // The machine's cores are shared among the children unless --threads says otherwise.
    let threads = args.threads.unwrap_or_else(|| {
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        (cores / n).max(1)
    });
    out.push(format!("--threads={threads}"));
    let files = [
        ("--plan", plan),
        ("--tls-ca", args.tls_ca.as_deref()),
        ("--auth-token-file", args.auth_token_file.as_deref()),
        ("--ca-cert", args.ca_cert.as_deref()),
    ];
    for (flag, path) in files {
        if let Some(p) = path {
            out.push(format!("{flag}={}", p.display()));
        }
    }
    out
}

/// Started children; killed if dropped before they are waited for.
#[derive(Debug)]
pub struct Children(Vec<Child>);

/// Starts `n` copies of this program with `args` as children.
pub fn spawn(n: usize, args: &[String]) -> Result<Children, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find this program to start workers: {e}"))?;
    let mut children = Children(Vec::with_capacity(n));
    for _ in 0..n {
        let mut cmd = Command::new(&exe);
        cmd.args(args).env(CHILD_MARKER, "1");
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            let setting = k.starts_with("HATCHERY_") || k.starts_with("LOCUST_");
            // The token is a secret kept out of command lines; it travels as it came.
            if setting && k != "HATCHERY_AUTH_TOKEN" {
                cmd.env_remove(k.as_ref());
            }
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start a worker process: {e}"))?;
        children.0.push(child);
    }
    tracing::info!("started {n} worker processes");
    Ok(children)
}

impl Children {
    /// Waits for every child; the exit code is the first that is not 0 (0 when all are). A
    /// SIGTERM to this process goes on to every child still running (as Locust's does), so
    /// `kill PARENT` stops the workers instead of leaving them behind without it.
    pub fn wait(mut self) -> i32 {
        let running: Arc<Mutex<Vec<u32>>> =
            Arc::new(Mutex::new(self.0.iter().map(Child::id).collect()));
        forward_sigterm(running.clone());
        let mut code = exit::OK;
        for c in &mut self.0 {
            let this = c
                .wait()
                .map_or(exit::FAILED, |s| s.code().unwrap_or(exit::FAILED));
            // Reaped: its pid may be reused, so it gets no signal from now on.
            running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|&pid| pid != c.id());
            if code == exit::OK {
                code = this;
            }
        }
        self.0.clear();
        code
    }

    /// Waits up to `grace` for the children to end (the master told them to quit), then kills
    /// the rest.
    pub fn reap(mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            self.0.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
            if self.0.is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// From now on, a SIGTERM to this process is sent to each of `running` (the children not yet
/// reaped) instead of ending it. The handler is in place before this returns.
fn forward_sigterm(running: Arc<Mutex<Vec<u32>>>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    else {
        return;
    };
    let term = {
        let _in_runtime = rt.enter();
        signal(SignalKind::terminate())
    };
    let Ok(mut term) = term else {
        return;
    };
    std::thread::spawn(move || {
        rt.block_on(async move {
            while term.recv().await.is_some() {
                let pids = running.lock().unwrap_or_else(|e| e.into_inner()).clone();
                tracing::info!("SIGTERM: passing it on to {} worker processes", pids.len());
                for pid in pids {
                    // A child not yet reaped: the pid still names it.
                    let pid = i32::try_from(pid)
                        .ok()
                        .and_then(rustix::process::Pid::from_raw);
                    if let Some(pid) = pid {
                        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                    }
                }
            }
        });
    });
}

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_is_minus_one_or_a_bounded_positive_number() {
        assert_eq!(count(3), Ok(3));
        assert!(count(-1).is_ok_and(|n| n >= 1));
        assert!(count(0).is_err());
        assert!(count(-2).is_err());
        assert!(count(100_000).unwrap_err().contains("1024"));
    }
}
