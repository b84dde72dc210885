//! The command line: Locust's flag names and meanings where they exist, each also settable as an
//! environment variable `HATCHERY_<NAME>` and in a config file (`key = value` lines, Locust's
//! format). Precedence: command line, `HATCHERY_*`, the config file (`--config` or
//! `hatchery.conf`), then Locust's own `LOCUST_*` variables and `locust.conf` ([`crate::locust`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};

/// Hatchery: distributed load testing, exact and fast.
///
/// Runs the users described in a plan (YAML) against a target and reports Locust-compatible
/// statistics. See docs/plan.md for the plan format and docs/cli.md for every flag.
#[derive(Debug, Parser)]
#[command(
    name = "hatchery",
    version,
    args_override_self = true,
    max_term_width = 100
)]
#[command(after_help = "Examples:\n  \
    hatchery demo-target --port 8080 &\n  \
    hatchery -f examples/quickstart.yaml --headless -u 100 -r 10 -t 30s\n  \
    hatchery -f plan.yaml --check")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the demo target the examples use (loopback only by default).
    DemoTarget(DemoArgs),
    /// Start the demo target on a free loopback port and run a headless test against it
    /// (examples/quickstart.yaml unless -f is given; 20 users, 10/s, 20s unless told otherwise).
    Demo(Box<RunArgs>),
    /// Write a private CA (ca.pem) and a master certificate and key signed by it (master.pem,
    /// master.key) for the given names into DIR: the master serves them with --tls-cert and
    /// --tls-key, the workers trust ca.pem with --tls-ca.
    Certs(CertsArgs),
    /// Exit 0 when URL answers 2xx within the timeout, else 1 (a container health check: the
    /// images have no shell or curl). Plain http only.
    Probe(ProbeArgs),
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// e.g. http://127.0.0.1:8089/healthz
    pub url: String,
    /// Seconds to wait for the whole answer.
    #[arg(long, default_value_t = 3.0)]
    pub timeout: f64,
}

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Folder to write ca.pem, master.pem and master.key into (created if missing; existing
    /// files are never overwritten).
    pub dir: PathBuf,
    /// A name workers dial the master by: a DNS name or an IP address (repeat the flag, or
    /// separate with commas). The first is also the certificate's common name.
    #[arg(long, required = true, num_args = 1.., value_delimiter = ',', value_name = "NAME")]
    pub host: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[arg(long, default_value_t = 8080, env = "HATCHERY_DEMO_PORT")]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1", env = "HATCHERY_DEMO_BIND")]
    pub bind: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The plan file (YAML). `--locustfile` is accepted too.
    #[arg(
        short = 'f',
        long = "plan",
        alias = "locustfile",
        env = "HATCHERY_PLAN",
        value_name = "FILE"
    )]
    pub plan: Option<PathBuf>,

    /// Validate the plan, report every problem, and exit (0 when valid, 2 otherwise).
    #[arg(long, env = "HATCHERY_CHECK")]
    pub check: bool,

    /// Print the plan's user classes, one a line, and exit (Locust's --list).
    #[arg(short = 'l', long = "list")]
    pub list: bool,

    /// Peak number of concurrent users.
    #[arg(short = 'u', long, env = "HATCHERY_USERS", value_name = "N")]
    pub users: Option<u32>,

    /// Users started per second. `--hatch-rate` (Locust's old name) is accepted too.
    #[arg(
        short = 'r',
        long,
        alias = "hatch-rate",
        env = "HATCHERY_SPAWN_RATE",
        value_name = "RATE"
    )]
    pub spawn_rate: Option<f64>,

    /// The most users a test may ask for (-u, a load shape's stages, the web UI's /swarm).
    #[arg(long, env = "HATCHERY_MAX_USERS", value_name = "N", default_value_t = hatchery_core::limits::DEFAULT_MAX_USERS)]
    pub max_users: u32,

    /// Stop after this long, e.g. 300s, 20m, 1h30m.
    #[arg(short = 't', long, env = "HATCHERY_RUN_TIME", value_name = "TIME", value_parser = parse_duration)]
    pub run_time: Option<Duration>,

    /// Base URL for relative paths, overriding the plan's `host`.
    #[arg(short = 'H', long, env = "HATCHERY_HOST", value_name = "URL")]
    pub host: Option<String>,

    /// Run without the web UI and start at once.
    #[arg(long, env = "HATCHERY_HEADLESS")]
    pub headless: bool,

    /// Write Locust's CSV files: PREFIX_stats.csv, PREFIX_stats_history.csv, PREFIX_failures.csv,
    /// PREFIX_exceptions.csv.
    #[arg(long, env = "HATCHERY_CSV", value_name = "PREFIX")]
    pub csv: Option<PathBuf>,

    /// Add a row for every entry, not only Aggregated, to the history CSV each second.
    #[arg(long, env = "HATCHERY_CSV_FULL_HISTORY")]
    pub csv_full_history: bool,

    /// Print the final statistics as JSON on stdout (the console tables then go to stderr).
    #[arg(long, env = "HATCHERY_JSON")]
    pub json: bool,

    /// Print the table every 2 seconds also in web UI runs (Hatchery always does, unless
    /// --only-summary: accepted for Locust's command lines).
    #[arg(long, env = "HATCHERY_PRINT_STATS")]
    pub print_stats: bool,

    /// Print only the final summary, not the table every 2 seconds.
    #[arg(long, env = "HATCHERY_ONLY_SUMMARY")]
    pub only_summary: bool,

    /// Exit code when any request failed.
    #[arg(
        long,
        env = "HATCHERY_EXIT_CODE_ON_ERROR",
        default_value_t = 1,
        value_name = "CODE"
    )]
    pub exit_code_on_error: i32,

    /// How long stopping users may take to finish their current task (0 = stop at once).
    #[arg(short = 's', long, env = "HATCHERY_STOP_TIMEOUT", default_value = "0s", value_parser = parse_duration)]
    pub stop_timeout: Duration,

    /// Only run tasks with one of these tags (comma-separated or repeated).
    #[arg(short = 'T', long, env = "HATCHERY_TAGS", value_delimiter = ',', num_args = 1..)]
    pub tags: Vec<String>,

    /// Never run tasks with one of these tags.
    #[arg(short = 'E', long, env = "HATCHERY_EXCLUDE_TAGS", value_delimiter = ',', num_args = 1..)]
    pub exclude_tags: Vec<String>,

    /// Zero the statistics once every user has been spawned.
    #[arg(long, env = "HATCHERY_RESET_STATS")]
    pub reset_stats: bool,

    /// Timeout of requests whose plan sets none.
    #[arg(long, env = "HATCHERY_REQUEST_TIMEOUT", default_value = "60s", value_parser = parse_duration, value_name = "TIME")]
    pub request_timeout: Duration,

    /// Log level: trace, debug, info, warning, error.
    #[arg(
        short = 'L',
        long,
        env = "HATCHERY_LOGLEVEL",
        default_value = "info",
        value_name = "LEVEL"
    )]
    pub loglevel: String,

    /// Write the log to this file (appended) instead of stderr.
    #[arg(long, env = "HATCHERY_LOGFILE", value_name = "FILE")]
    pub logfile: Option<PathBuf>,

    /// Leave the log as a library would: warnings and errors only (Locust leaves logging to
    /// Python's defaults).
    #[arg(long, env = "HATCHERY_SKIP_LOG_SETUP")]
    pub skip_log_setup: bool,

    /// Locust's Step Load: from 0, add --step-users users (at --spawn-rate) every --step-time
    /// until --users, then hold until --run-time. A load shape of its own; not with a plan's
    /// `shape`.
    #[arg(
        long,
        env = "HATCHERY_STEP_LOAD",
        requires_all = ["step_users", "step_time"],
        help_heading = "Step load"
    )]
    pub step_load: bool,

    /// Users added at each step of --step-load.
    #[arg(
        long,
        env = "HATCHERY_STEP_USERS",
        value_name = "N",
        help_heading = "Step load"
    )]
    pub step_users: Option<u32>,

    /// How long each step of --step-load lasts, e.g. 30s.
    #[arg(long, env = "HATCHERY_STEP_TIME", value_parser = parse_duration, value_name = "TIME", help_heading = "Step load")]
    pub step_time: Option<Duration>,

    /// Weights and fixed counts of user classes as JSON (or a file holding it), overriding the
    /// plan's: '[{"user_class_name": "Reader", "weight": 2}, {"user_class_name": "Writer",
    /// "fixed_count": 1}]' (Locust's --config-users).
    #[arg(long, env = "HATCHERY_CONFIG_USERS", value_name = "JSON", num_args = 1..)]
    pub config_users: Vec<String>,

    /// Run only these user classes of the plan (the others get no user), as Locust's
    /// positional UserClass arguments: `hatchery -f plan.yaml Reader`.
    #[arg(value_name = "USER_CLASS")]
    pub user_classes: Vec<String>,

    /// PEM file of CA certificates to trust for https targets, besides the public roots.
    #[arg(long, env = "HATCHERY_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// Runtime threads for the users (default: one per core).
    #[arg(long, env = "HATCHERY_THREADS", value_name = "N")]
    pub threads: Option<usize>,

    /// Run as the master of a distributed test: workers connect to it.
    #[arg(
        long,
        env = "HATCHERY_MASTER",
        conflicts_with = "worker",
        help_heading = "Distributed"
    )]
    pub master: bool,

    /// Run as a worker: connect to the master and run the users it assigns.
    #[arg(long, env = "HATCHERY_WORKER", help_heading = "Distributed")]
    pub worker: bool,

    /// Address the master listens on for workers.
    #[arg(
        long,
        env = "HATCHERY_MASTER_BIND_HOST",
        default_value = "0.0.0.0",
        value_name = "ADDR",
        help_heading = "Distributed"
    )]
    pub master_bind_host: String,

    /// Port the master listens on for workers.
    #[arg(
        long,
        env = "HATCHERY_MASTER_BIND_PORT",
        default_value_t = 5557,
        value_name = "PORT",
        help_heading = "Distributed"
    )]
    pub master_bind_port: u16,

    /// The master a worker connects to.
    #[arg(
        long,
        env = "HATCHERY_MASTER_HOST",
        default_value = "127.0.0.1",
        value_name = "HOST",
        help_heading = "Distributed"
    )]
    pub master_host: String,

    /// The master's IP address, dialled in turn with --master-host until the first session
    /// (the name stays the one its TLS certificate must hold). The operator passes the master
    /// pod's IP, which workers reach before the cluster routes the master's Service.
    #[arg(
        long,
        env = "HATCHERY_MASTER_ADDRESS",
        value_name = "IP",
        help_heading = "Distributed"
    )]
    pub master_address: Option<std::net::IpAddr>,

    /// The master's port for workers.
    #[arg(
        long,
        env = "HATCHERY_MASTER_PORT",
        default_value_t = 5557,
        value_name = "PORT",
        help_heading = "Distributed"
    )]
    pub master_port: u16,

    /// Workers the master waits for before a headless run starts.
    #[arg(
        long,
        env = "HATCHERY_EXPECT_WORKERS",
        default_value_t = 1,
        value_name = "N",
        help_heading = "Distributed"
    )]
    pub expect_workers: usize,

    /// Give up (exit code 3) when the expected workers take longer than this to connect.
    #[arg(long, env = "HATCHERY_EXPECT_WORKERS_MAX_WAIT", value_parser = parse_duration, value_name = "TIME", help_heading = "Distributed")]
    pub expect_workers_max_wait: Option<Duration>,

    /// The most workers the master takes at once; one more is refused (it exits with code 2),
    /// so a token holder cannot open sessions without end.
    #[arg(
        long,
        env = "HATCHERY_MAX_WORKERS",
        default_value_t = 5000,
        value_name = "N",
        help_heading = "Distributed"
    )]
    pub max_workers: usize,

    /// Heartbeats (one a second) a worker or master may miss before the other side gives up on it.
    #[arg(
        long,
        env = "HATCHERY_HEARTBEAT_LIVENESS",
        default_value_t = 3,
        value_name = "N",
        help_heading = "Distributed"
    )]
    pub heartbeat_liveness: u32,

    /// A worker without a master this long stops its users and exits (code 1).
    #[arg(long, env = "HATCHERY_MASTER_TIMEOUT", default_value = "60s", value_parser = parse_duration, value_name = "TIME", help_heading = "Distributed")]
    pub master_timeout: Duration,

    /// File holding the token workers must present to the master (both sides need it). The
    /// token can also be given as HATCHERY_AUTH_TOKEN.
    #[arg(
        long,
        env = "HATCHERY_AUTH_TOKEN_FILE",
        value_name = "FILE",
        help_heading = "Distributed"
    )]
    pub auth_token_file: Option<PathBuf>,

    /// A worker dials its master with TLS and trusts the certificates in this PEM file for the
    /// master's: the CA that signed it, or the master's own self-signed certificate (the master
    /// needs --tls-cert and --tls-key; `hatchery certs` makes both).
    #[arg(
        long,
        env = "HATCHERY_TLS_CA",
        value_name = "FILE",
        help_heading = "Distributed"
    )]
    pub tls_ca: Option<PathBuf>,

    /// Worker processes to start on this machine (-1: one per core). With --worker, N workers;
    /// standalone or with --master, the master and N local workers (Locust's meaning).
    #[arg(
        long,
        env = "HATCHERY_PROCESSES",
        value_name = "N",
        allow_negative_numbers = true,
        help_heading = "Distributed"
    )]
    pub processes: Option<i32>,

    /// Address the master's HTTP API listens on.
    #[arg(
        long,
        env = "HATCHERY_WEB_HOST",
        default_value = "0.0.0.0",
        value_name = "ADDR",
        help_heading = "Web"
    )]
    pub web_host: String,

    /// Port of the master's HTTP API (/healthz, /readyz, /stats/requests).
    #[arg(
        short = 'P',
        long,
        env = "HATCHERY_WEB_PORT",
        default_value_t = 8089,
        value_name = "PORT",
        help_heading = "Web"
    )]
    pub web_port: u16,

    /// Let the web UI's start form choose among the user classes (Locust's class picker):
    /// `/swarm` takes Locust's `user_classes` fields.
    #[arg(long, env = "HATCHERY_CLASS_PICKER", help_heading = "Web")]
    pub class_picker: bool,

    /// Start the test from -u/-r/-t at once, as --headless does, but keep the web UI.
    #[arg(long, env = "HATCHERY_AUTOSTART", help_heading = "Web")]
    pub autostart: bool,

    /// Quit this many seconds after the test ends (with --autostart or the UI).
    #[arg(
        long,
        env = "HATCHERY_AUTOQUIT",
        value_name = "SECONDS",
        help_heading = "Web"
    )]
    pub autoquit: Option<u64>,

    /// HTTP basic auth for the web UI and API (health and readiness stay open).
    #[arg(
        long,
        env = "HATCHERY_WEB_AUTH",
        value_name = "USER:PASSWORD",
        help_heading = "Web"
    )]
    pub web_auth: Option<String>,

    /// Certificate chain (PEM) to serve the web UI and API over HTTPS with; a master also
    /// requires TLS from its workers with it (they need --tls-ca). Needs --tls-key.
    #[arg(
        long,
        env = "HATCHERY_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key",
        help_heading = "Web"
    )]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM) of --tls-cert.
    #[arg(
        long,
        env = "HATCHERY_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert",
        help_heading = "Web"
    )]
    pub tls_key: Option<PathBuf>,

    /// Serve the web UI and API under this path, e.g. /hatchery behind a proxy.
    #[arg(
        long,
        env = "HATCHERY_WEB_BASE_PATH",
        value_name = "PATH",
        default_value = "",
        help_heading = "Web"
    )]
    pub web_base_path: String,

    /// Write the HTML report to this file at the end.
    #[arg(long, env = "HATCHERY_HTML", value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Config file of `key = value` lines (keys are long flag names). `hatchery.conf` in the
    /// current folder is read when present.
    #[arg(long, env = "HATCHERY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    hatchery_core::duration::parse(s)
}

/// The file read when `--config` is not given.
const DEFAULT_CONFIG: &str = "hatchery.conf";

/// Parses the command line, after merging in the config file. Errors say file, line and what to
/// do; clap's own errors (and --help/--version) exit through clap.
pub fn parse(argv: Vec<String>) -> Result<Cli, String> {
    if crate::processes::is_child() {
        // The parent wrote every setting on our command line; nothing may turn us into a parent.
        let mut cli = Cli::parse_from(argv);
        cli.run.processes = None;
        return Ok(cli);
    }
    let cmd = Cli::command();
    let mut taken = taken_by(&cmd, &argv);
    let explicit = config_path_from(&argv);
    let (path, required) = match explicit {
        Some(p) => (PathBuf::from(p), true),
        None => (PathBuf::from(DEFAULT_CONFIG), false),
    };
    // Each source only fills what the ones before it left unset.
    let mut extra = Vec::new();
    if required || path.exists() {
        extra.extend(config_file(&cmd, &path, &mut taken)?);
    }
    extra.extend(crate::locust::env_args(&cmd, std::env::vars(), &mut taken)?);
    for path in crate::locust::config_files() {
        if path.exists() {
            extra.extend(config_file(&cmd, &path, &mut taken)?);
        }
    }
    let mut merged = argv;
    merged.splice(1..1, extra);
    Ok(Cli::parse_from(merged))
}

/// The flags of a config file.
fn config_file(
    cmd: &clap::Command,
    path: &Path,
    taken: &mut HashSet<String>,
) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    config_args(cmd, path, &text, taken)
}

/// Long names of the options set on the command line or by a `HATCHERY_*` variable: the
/// sources every other one falls back from.
fn taken_by(cmd: &clap::Command, argv: &[String]) -> HashSet<String> {
    let mut taken = HashSet::from(["config".to_string()]);
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else {
            continue;
        };
        let names: Vec<String> = std::iter::once(long)
            .chain(arg.get_all_aliases().unwrap_or_default())
            .map(|n| format!("--{n}"))
            .collect();
        let on_cli = argv.iter().any(|a| {
            names.iter().any(|n| {
                a == n
                    || a.strip_prefix(n.as_str())
                        .is_some_and(|r| r.starts_with('='))
            }) || arg
                .get_short()
                .is_some_and(|s| a.starts_with(&format!("-{s}")) && !a.starts_with("--"))
        });
        let in_env = arg.get_env().is_some_and(|e| std::env::var_os(e).is_some());
        if on_cli || in_env {
            taken.insert(long.to_string());
        }
    }
    taken
}

/// The flag that sets `arg` to `value` (`None` for a switch set to false); `Err` for a switch
/// given something else than true/false.
pub(crate) fn flag_for(arg: &clap::Arg, value: &str) -> Result<Option<String>, String> {
    let long = arg.get_long().unwrap_or_default();
    if !matches!(arg.get_action(), clap::ArgAction::SetTrue) {
        return Ok(Some(format!("--{long}={value}")));
    }
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Ok(Some(format!("--{long}"))),
        "false" | "no" | "0" | "off" => Ok(None),
        _ => Err(format!(
            "`{long}` is a switch: write `{long} = true` or `{long} = false`"
        )),
    }
}

/// `--config FILE`, `--config=FILE` or `HATCHERY_CONFIG`.
fn config_path_from(argv: &[String]) -> Option<String> {
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        if a == "--config" {
            return it.next().cloned();
        }
        if let Some(v) = a.strip_prefix("--config=") {
            return Some(v.to_string());
        }
    }
    std::env::var("HATCHERY_CONFIG").ok()
}

/// Turns config lines into flags, skipping any flag a source before it set (`taken`, which
/// then holds the file's too).
fn config_args(
    cmd: &clap::Command,
    path: &Path,
    text: &str,
    taken: &mut HashSet<String>,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty()
            || line.starts_with('#')
            || line.starts_with(';')
            || line.starts_with('[')
        {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (
                k.trim().replace('_', "-"),
                v.trim().trim_matches('"').to_string(),
            ),
            None => (line.replace('_', "-"), "true".to_string()),
        };
        let at = format!("{}:{}", path.display(), i + 1);
        let Some(arg) = cmd.get_arguments().find(|a| {
            a.get_long() == Some(key.as_str())
                || a.get_all_aliases()
                    .is_some_and(|al| al.contains(&key.as_str()))
        }) else {
            let known: Vec<&str> = cmd.get_arguments().filter_map(|a| a.get_long()).collect();
            let hint = closest(&key, &known)
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            problems.push(format!("{at}: unknown option `{key}`{hint}"));
            continue;
        };
        let long = arg.get_long().unwrap_or_default().to_string();
        if taken.contains(&long) {
            continue;
        }
        match flag_for(arg, &value) {
            Ok(flag) => {
                out.extend(flag);
                taken.insert(long);
            }
            Err(e) => problems.push(format!("{at}: {}", e.replace(&long, &key))),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems.join("\n"))
    }
}

pub(crate) fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (distance(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min()
        .map(|(_, k)| k)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    /// The flags a config file adds to the command line `cli`.
    fn config_args(path: &Path, text: &str, cli: &[String]) -> Result<Vec<String>, String> {
        let cmd = Cli::command();
        let mut taken = taken_by(&cmd, cli);
        super::config_args(&cmd, path, text, &mut taken)
    }

    #[test]
    fn config_file_values_become_flags() {
        let extra = config_args(
            Path::new("h.conf"),
            "# comment\nusers = 10\nspawn_rate = 2\nheadless = true\nreset-stats = false\n",
            &argv(&["hatchery"]),
        )
        .unwrap();
        assert_eq!(extra, argv(&["--users=10", "--spawn-rate=2", "--headless"]));
    }

    #[test]
    fn the_command_line_wins_over_the_config_file() {
        let extra = config_args(
            Path::new("h.conf"),
            "users = 10\nrun-time = 1m\n",
            &argv(&["hatchery", "-u", "5"]),
        )
        .unwrap();
        assert_eq!(extra, argv(&["--run-time=1m"]));
    }

    #[test]
    fn an_unknown_config_key_names_file_line_and_the_closest_option() {
        let err =
            config_args(Path::new("h.conf"), "\nuserz = 3\n", &argv(&["hatchery"])).unwrap_err();
        assert_eq!(
            err,
            "h.conf:2: unknown option `userz` (did you mean `users`?)"
        );
    }

    #[test]
    fn tls_flags_come_from_the_config_file_and_the_certificate_needs_its_key() {
        let extra = config_args(
            Path::new("h.conf"),
            "tls-ca = ca.pem\ntls_cert = m.pem\ntls-key = m.key\n",
            &argv(&["hatchery"]),
        )
        .unwrap();
        assert_eq!(
            extra,
            argv(&["--tls-ca=ca.pem", "--tls-cert=m.pem", "--tls-key=m.key"])
        );
        let cli = Cli::try_parse_from(argv(&["hatchery"]).into_iter().chain(extra)).unwrap();
        assert_eq!(cli.run.tls_ca, Some(PathBuf::from("ca.pem")));
        let err = Cli::try_parse_from(argv(&["hatchery", "--tls-cert", "m.pem"])).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
