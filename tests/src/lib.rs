//! End-to-end test kit: a real HTTP target on 127.0.0.1 that counts what it receives, and the
//! real `hatchery` binary run as a child process. [`faults`] holds what the fault tests inject:
//! a network namespace whose link to the master can be cut, targets that stall or reset, a small
//! tmpfs to fill.
//!
//! ```no_run
//! # async fn f() {
//! let target = hatchery_e2e::Target::start().await;
//! let out = hatchery_e2e::hatchery(&["--version"]).run().await;
//! assert_eq!(target.count("GET", "/a"), 0);
//! # drop(out); }
//! ```

pub mod bad_h2;
pub mod bad_servers;
pub mod faults;
pub mod nginx;
pub mod prometheus;
pub mod session;
mod settle;
pub mod short;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// An HTTP/1.1 server on 127.0.0.1:0 counting requests per "METHOD path" (and per
/// "authorization VALUE" when that header is sent), and per client address.
///
/// Paths starting with `/status/NNN` answer with that status; `/sleep/MS` answers after MS
/// milliseconds (at most 10 s); `/json/...` answers `{"token":"t-1","ok":true}`; everything
/// else answers `200 ok`.
#[derive(Debug)]
pub struct Target {
    pub addr: SocketAddr,
    counts: Arc<Mutex<HashMap<String, u64>>>,
    peers: Arc<Mutex<HashMap<IpAddr, u64>>>,
    task: JoinHandle<()>,
    tls: bool,
}

/// The CA that signed the TLS target's certificate (a PEM file).
pub fn test_ca() -> PathBuf {
    fixture("ca.pem")
}

/// A CA that signed nothing the tests serve.
pub fn other_ca() -> PathBuf {
    fixture("other-ca.pem")
}

/// A file in tests/fixtures: `localhost.pem` and `localhost.key` are a certificate for
/// `localhost` and `127.0.0.1` signed by [`test_ca`], and its key.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

impl Target {
    pub async fn start() -> Target {
        Target::serve(Ipv4Addr::LOCALHOST.into(), None).await
    }

    /// The same target on another local address (one end of a veth pair a test made).
    pub async fn start_on(ip: IpAddr) -> Target {
        Target::serve(ip, None).await
    }

    /// The same target over TLS, with the certificate in tests/fixtures (signed by
    /// [`test_ca`] for `localhost` and `127.0.0.1`).
    pub async fn start_tls() -> Target {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let certs = CertificateDer::pem_file_iter(fixtures.join("localhost.pem"))
            .expect("read fixture cert")
            .collect::<Result<Vec<_>, _>>()
            .expect("parse fixture cert");
        let key =
            PrivateKeyDer::from_pem_file(fixtures.join("localhost.key")).expect("fixture key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
        Target::serve(
            Ipv4Addr::LOCALHOST.into(),
            Some(TlsAcceptor::from(Arc::new(config))),
        )
        .await
    }

    async fn serve(ip: IpAddr, tls: Option<TlsAcceptor>) -> Target {
        let listener = TcpListener::bind((ip, 0))
            .await
            .unwrap_or_else(|e| panic!("bind {ip}: {e}"));
        let addr = listener.local_addr().expect("local addr");
        let counts: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
        let peers: Arc<Mutex<HashMap<IpAddr, u64>>> = Arc::default();
        let (c, p) = (counts.clone(), peers.clone());
        let tls_enabled = tls.is_some();
        let task = tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                let (c, p) = (c.clone(), p.clone());
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        // Counted as the head arrives, not in `answer`: hyper drops a handler
                        // it has not polled yet when the client closes right after sending.
                        count(&c, &p, peer.ip(), &req);
                        answer(req)
                    });
                    let http = http1::Builder::new();
                    let _ = match tls {
                        Some(tls) => match tls.accept(stream).await {
                            Ok(s) => http.serve_connection(TokioIo::new(s), svc).await,
                            Err(_) => return,
                        },
                        None => http.serve_connection(TokioIo::new(stream), svc).await,
                    };
                });
            }
        });
        Target {
            addr,
            counts,
            peers,
            task,
            tls: tls_enabled,
        }
    }

    /// `http://127.0.0.1:PORT`, or `https://localhost:PORT` for a TLS target.
    pub fn url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.addr.port())
        } else {
            format!("http://{}", self.addr)
        }
    }

    /// Requests received for `method` and `path` (path without the query).
    pub fn count(&self, method: &str, path: &str) -> u64 {
        let counts = self.counts.lock().expect("counts lock");
        counts
            .get(&format!("{method} {path}"))
            .copied()
            .unwrap_or(0)
    }

    pub fn counts(&self) -> HashMap<String, u64> {
        self.counts.lock().expect("counts lock").clone()
    }

    /// Every request received, whatever its path (the `authorization` tallies aside).
    pub fn total(&self) -> u64 {
        let counts = self.counts.lock().expect("counts lock");
        counts
            .iter()
            .filter(|(k, _)| !k.starts_with("authorization "))
            .map(|(_, v)| v)
            .sum()
    }

    /// Requests received from the client address `ip`.
    pub fn count_from(&self, ip: IpAddr) -> u64 {
        let peers = self.peers.lock().expect("peers lock");
        peers.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Counts a request whose head was received.
fn count(
    counts: &Mutex<HashMap<String, u64>>,
    peers: &Mutex<HashMap<IpAddr, u64>>,
    peer: IpAddr,
    req: &Request<Incoming>,
) {
    let key = format!("{} {}", req.method(), req.uri().path());
    let auth = req
        .headers()
        .get("authorization")
        .map(|v| format!("authorization {}", v.to_str().unwrap_or("?")));
    let mut counts = counts.lock().expect("counts lock");
    *counts.entry(key).or_default() += 1;
    if let Some(auth) = auth {
        *counts.entry(auth).or_default() += 1;
    }
    *peers.lock().expect("peers lock").entry(peer).or_default() += 1;
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let _ = req.into_body().collect().await;
    let (status, body): (StatusCode, &'static str) =
        if let Some(code) = path.strip_prefix("/status/") {
            (
                code.parse::<u16>()
                    .ok()
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    .unwrap_or(StatusCode::BAD_REQUEST),
                "status",
            )
        } else if let Some(ms) = path.strip_prefix("/sleep/") {
            let ms = ms.parse::<u64>().unwrap_or(0).min(10_000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            (StatusCode::OK, "slept")
        } else if path.starts_with("/json/") {
            (StatusCode::OK, r#"{"token":"t-1","ok":true}"#)
        } else {
            (StatusCode::OK, "ok")
        };
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    Ok(r)
}

/// The `hatchery` binary built next to this test (target/<profile>/hatchery). Refuses a binary
/// older than the sources it is built from, so a test never passes against stale code.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let bin = dir.join(format!("hatchery{}", std::env::consts::EXE_SUFFIX));
    let build = "build it with `cargo build -p hatchery-cli` (`cargo test --workspace` does)";
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is missing: {build}", bin.display()));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let newest = ["core/src", "worker/src", "master/src", "cli/src"]
        .iter()
        .filter_map(|d| newest_mtime(&root.join(d)))
        .max();
    if let Some(newest) = newest {
        assert!(
            built >= newest,
            "{} is older than its sources: {build}",
            bin.display()
        );
    }
    bin
}

/// Newest modification time of the sources a binary is built from; unit-test files
/// (`tests.rs`, `tests/`) are compiled only into tests, so they do not count.
fn newest_mtime(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "tests.rs" || name == "tests" {
            continue;
        }
        let t = if path.is_dir() {
            newest_mtime(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        newest = newest.max(t);
    }
    newest
}

/// A `hatchery` command line to run.
#[derive(Debug)]
pub struct Run {
    cmd: tokio::process::Command,
    limit: Duration,
}

/// Starts describing a run of the real binary with these arguments.
pub fn hatchery(args: &[&str]) -> Run {
    run_of(tokio::process::Command::new(binary()), args)
}

/// A run of `cmd` (the binary itself, or a wrapper that execs it) with these arguments.
pub(crate) fn run_of(mut cmd: tokio::process::Command, args: &[&str]) -> Run {
    cmd.args(args).kill_on_drop(true);
    // The tests' environment must not leak settings into the child.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("HATCHERY_") {
            cmd.env_remove(k);
        }
    }
    Run {
        cmd,
        limit: Duration::from_secs(60),
    }
}

impl Run {
    /// Starts the process without waiting for it (killed when the handle drops). Its stderr is
    /// read as it comes, so a test can wait for a line ([`Running::listening`]).
    pub fn spawn(mut self) -> Running {
        self.cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = self.cmd.spawn().expect("spawn hatchery");
        let stderr = child.stderr.take().expect("piped stderr");
        let log: Arc<Mutex<String>> = Arc::default();
        let sink = log.clone();
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = sink.lock().expect("log lock");
                log.push_str(&line);
                log.push('\n');
            }
        });
        Running {
            child: Some(child),
            log,
            reader: Some(reader),
        }
    }

    pub fn env(mut self, k: &str, v: &str) -> Run {
        self.cmd.env(k, v);
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Run {
        self.cmd.current_dir(dir);
        self
    }

    /// Runs the process in a process group of its own (its id is the group's), so a test can
    /// count and kill everything it starts: see [`ProcessGroup`].
    pub fn own_group(mut self) -> Run {
        self.cmd.process_group(0);
        self
    }

    /// Runs to completion (killed after a generous limit, so a hang fails instead of blocking).
    pub async fn run(mut self) -> Finished {
        let out = tokio::time::timeout(self.limit, self.cmd.output())
            .await
            .expect("hatchery did not finish within the limit")
            .expect("spawn hatchery");
        Finished(out)
    }
}

/// A process started with [`Run::spawn`].
#[derive(Debug)]
pub struct Running {
    child: Option<tokio::process::Child>,
    /// Its stderr so far.
    log: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

/// What a `hatchery` process listens on, as its log says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// The master's port for workers: "workers connect to ADDR".
    Workers,
    /// The web UI and API: "web UI and API on URL" (a master), "web UI on URL" (standalone).
    Web,
    /// `hatchery demo-target`: "demo target listening on URL".
    DemoTarget,
}

impl Port {
    /// The address in one log line, if the line announces this port.
    fn find(self, line: &str) -> Option<SocketAddr> {
        let (marks, url): (&[&str], bool) = match self {
            Port::Workers => (&["workers connect to "], false),
            Port::Web => (&["web UI and API on ", "web UI on "], true),
            Port::DemoTarget => (&["demo target listening on "], true),
        };
        let rest = marks
            .iter()
            .find_map(|m| line.split_once(m).map(|(_, rest)| rest))?;
        let rest = if url { rest.split_once("://")?.1 } else { rest };
        let end = rest.find(['/', ',', ' ', ';']).unwrap_or(rest.len());
        rest[..end].parse().ok()
    }
}

impl Running {
    /// The port the process bound for `what` (start it with port 0): read from its log, which
    /// says so at the info level. Panics with the log when the process ends first or says
    /// nothing within 30 s.
    pub async fn listening(&mut self, what: Port) -> u16 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let found = self.stderr_so_far().lines().find_map(|l| what.find(l));
            if let Some(addr) = found {
                return addr.port();
            }
            if self.exited().is_some() || tokio::time::Instant::now() > deadline {
                panic!(
                    "no {what:?} port announced; stderr:\n{}",
                    self.stderr_so_far()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What the process wrote on stderr so far.
    pub fn stderr_so_far(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().and_then(|c| c.id()).expect("running")
    }

    /// The exit code once the process has ended, `None` while it runs.
    pub fn exited(&mut self) -> Option<i32> {
        let child = self.child.as_mut()?;
        let status = child.try_wait().ok()??;
        Some(status.code().unwrap_or(-1))
    }

    /// SIGKILL, as `kill -9` does.
    pub async fn kill(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill().await;
        }
    }

    /// SIGTERM, as `kill` and Kubernetes send it.
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {}", self.pid());
    }

    /// Waits for the exit (bounded) and collects the output.
    pub async fn finish(mut self) -> Finished {
        let child = self.child.take().expect("running");
        let Ok(waited) =
            tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await
        else {
            panic!(
                "hatchery did not finish within 60 s; its stderr so far:\n{}",
                self.stderr_so_far()
            );
        };
        let mut out = waited.expect("wait for hatchery");
        if let Some(reader) = self.reader.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), reader).await;
        }
        out.stderr = self.stderr_so_far().into_bytes();
        Finished(out)
    }
}

/// The processes of a process group (a process started with [`Run::own_group`] and whatever it
/// starts), killed together when this drops: a test that fails cannot leave a swarm behind.
#[derive(Debug)]
pub struct ProcessGroup(pub u32);

impl ProcessGroup {
    /// How many processes the group has now (read from /proc).
    pub fn size(&self) -> usize {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return 0;
        };
        entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
            .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
            .filter(|stat| group_of(stat) == Some(self.0))
            .count()
    }

    /// SIGKILL to every process of the group, until none is left (a process forking while the
    /// signal goes out could otherwise leave a child behind).
    pub fn kill(&self) {
        for _ in 0..100 {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.0)])
                .stderr(std::process::Stdio::null())
                .status();
            if self.size() == 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The process group in a /proc/PID/stat line (the fifth field; the second, the name, may hold
/// spaces and parentheses, so fields are counted after the last `)`). Zombies are not counted.
fn group_of(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let group = fields.nth(1)?.parse().ok()?;
    (state != "Z").then_some(group)
}

/// A master process and the ports it bound.
#[derive(Debug)]
pub struct Master {
    pub process: Running,
    /// The workers' port (Locust's 5557).
    pub grpc: u16,
    /// The HTTP API's port, on 127.0.0.1.
    pub web: u16,
}

impl Master {
    /// A headless master of `plan`: the workers' port and the API on 127.0.0.1, each on a port
    /// the master picks (port 0) and announces. Add flags with the builder's methods.
    pub fn headless(plan: &Path) -> Builder<Master> {
        Builder::new(plan, &["--master", "--headless", "--web-host", "127.0.0.1"])
    }

    /// [`Master::headless`] without `--headless`: the web UI starts tests.
    pub fn ui(plan: &Path) -> Builder<Master> {
        Builder::new(plan, &["--master", "--web-host", "127.0.0.1"])
    }
}

/// A standalone run (no `--master`, no `--worker`), described with a [`Builder`].
#[derive(Debug)]
pub struct Standalone;

impl Standalone {
    /// `hatchery -f plan --headless` and the builder's flags.
    pub fn headless(plan: &Path) -> Builder<Standalone> {
        Builder::new(plan, &["--headless"])
    }
}

/// The command line of a master or a standalone run: the flags tests repeat, by name.
#[derive(Debug)]
pub struct Builder<Kind> {
    args: Vec<String>,
    env: Vec<(String, String)>,
    bind: String,
    ports: (u16, u16),
    kind: std::marker::PhantomData<Kind>,
}

impl<Kind> Builder<Kind> {
    fn new(plan: &Path, mode: &[&str]) -> Builder<Kind> {
        let mut args = vec![
            "-f".to_string(),
            plan.to_str().expect("a UTF-8 plan path").to_string(),
        ];
        args.extend(mode.iter().map(|a| a.to_string()));
        Builder {
            args,
            env: Vec::new(),
            bind: "127.0.0.1".into(),
            ports: (0, 0),
            kind: std::marker::PhantomData,
        }
    }

    fn flag(mut self, name: &str, value: impl ToString) -> Self {
        self.args.push(name.into());
        self.args.push(value.to_string());
        self
    }

    /// `-H`: the target.
    pub fn host(self, url: &str) -> Self {
        self.flag("-H", url)
    }

    /// `-u`.
    pub fn users(self, n: u32) -> Self {
        self.flag("-u", n)
    }

    /// `-r`.
    pub fn spawn_rate(self, r: f64) -> Self {
        self.flag("-r", r)
    }

    /// `-t`, e.g. "3s".
    pub fn run_time(self, t: &str) -> Self {
        self.flag("-t", t)
    }

    /// `-s`, e.g. "5s": users finish their request in flight, so counts match the target's.
    pub fn stop_timeout(self, t: &str) -> Self {
        self.flag("-s", t)
    }

    /// `--expect-workers`.
    pub fn workers(self, n: usize) -> Self {
        self.flag("--expect-workers", n)
    }

    /// `--csv PREFIX`.
    pub fn csv(self, prefix: &Path) -> Self {
        self.flag("--csv", prefix.to_str().expect("a UTF-8 path"))
    }

    /// Any other flags.
    pub fn args(mut self, extra: &[&str]) -> Self {
        self.args.extend(extra.iter().map(|a| a.to_string()));
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// The command, to run or spawn.
    pub fn command(self) -> Run {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let mut run = hatchery(&args);
        for (k, v) in &self.env {
            run = run.env(k, v);
        }
        run
    }
}

impl Builder<Master> {
    /// The address the workers' port listens on (127.0.0.1 unless told).
    pub fn bind(mut self, ip: &str) -> Self {
        self.bind = ip.into();
        self
    }

    /// Fixed (workers, web) ports instead of port 0: a restarted master taking over its
    /// predecessor's ports.
    pub fn ports(mut self, grpc: u16, web: u16) -> Self {
        self.ports = (grpc, web);
        self
    }

    /// Starts the master and waits until it says which ports it bound.
    pub async fn spawn(self) -> Master {
        let (grpc, web) = (self.ports.0.to_string(), self.ports.1.to_string());
        let bind = self.bind.clone();
        let ports = [
            "--master-bind-host",
            &bind,
            "--master-bind-port",
            &grpc,
            "--web-port",
            &web,
        ];
        let mut process = self.args(&ports).command().spawn();
        let grpc = process.listening(Port::Workers).await;
        let web = process.listening(Port::Web).await;
        Master { process, grpc, web }
    }
}

/// `GET http://127.0.0.1:port/path` with a fresh connection: status and body, or `None` when
/// nothing listens yet.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http(port, "GET", path, None, &[]).await
}

/// One request with a fresh connection: `body` is sent as an urlencoded form; `headers` are
/// added as given. Status and body, or `None` when nothing listens.
pub async fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Option<(u16, String)> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        request(stream, port, method, path, body, headers).await
    };
    // Bounded: a connection the kernel completed with a SYN cookie while the server's accept
    // queue was full (a flood test) can wait minutes for retransmits; a test retries instead.
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .ok()
        .flatten()
}

/// How long [`http`] waits for a whole exchange before it gives up (`None`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// [`http`] over TLS to `https://127.0.0.1:port`, trusting only `ca`. `None` when nothing
/// listens or the handshake fails.
pub async fn https(
    port: u16,
    method: &str,
    path: &str,
    ca: &Path,
    headers: &[(&str, &str)],
) -> Option<(u16, String)> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("read CA") {
        roots.add(cert.expect("parse CA")).expect("add CA");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("server name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
        .ok()?;
    request(tls, port, method, path, None, headers).await
}

async fn request<IO>(
    io: IO,
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Option<(u16, String)>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .ok()?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", format!("127.0.0.1:{port}"));
    if body.is_some() {
        req = req.header("content-type", "application/x-www-form-urlencoded");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default().to_string())))
        .ok()?;
    let resp = sender.send_request(req).await.ok()?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Retries `check` every 20 ms until it returns `Some` or `limit` passes (then panics with
/// `what`): for conditions another process makes true, never a fixed sleep.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A finished process, with helpers that show its output when an assertion fails.
#[derive(Debug)]
pub struct Finished(pub Output);

impl Finished {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    /// Panics with both streams unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Finished {
        assert_eq!(
            self.code(),
            code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

#[cfg(test)]
mod tests {
    use super::Port;

    #[test]
    fn the_ports_come_from_the_lines_the_binary_logs() {
        let master = "2026-12-06T18:40:26.160351Z  INFO master: workers connect to 127.0.0.1:41234 (TLS), web UI and API on https://127.0.0.1:40000/base/; waiting for 2 worker(s)";
        assert_eq!(Port::Workers.find(master).map(|a| a.port()), Some(41234));
        assert_eq!(Port::Web.find(master).map(|a| a.port()), Some(40000));
        let standalone = "2026-12-06T18:40:26Z  INFO web UI on http://0.0.0.0:8089/";
        assert_eq!(Port::Web.find(standalone).map(|a| a.port()), Some(8089));
        assert_eq!(Port::Workers.find(standalone), None);
        let demo = "2026-12-06T18:40:26Z  INFO demo target listening on http://127.0.0.1:5000";
        assert_eq!(Port::DemoTarget.find(demo).map(|a| a.port()), Some(5000));
        let headless =
            "INFO master: workers connect to 127.0.0.1:5557, web UI and API on none; waiting";
        assert_eq!(Port::Web.find(headless), None);
    }
}

/// Reads a CSV file into rows of fields (the files Hatchery writes have no quoted commas in the
/// columns tests read).
pub fn read_csv(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

/// The distributed and fault tests' plan: Readers and Writers 3:1, each user's `on_start`
/// announcing it to the target (`/start/reader`, `/start/writer`), then a request every 20 ms.
pub const READER_WRITER_PLAN: &str = "users:
  - name: Reader
    weight: 3
    wait: {constant: 20ms}
    on_start: [{get: /start/reader}]
    tasks: [{get: /a, name: read-a}]
  - name: Writer
    weight: 1
    wait: {constant: 20ms}
    on_start: [{get: /start/writer}]
    tasks: [{post: /b}]
";

/// The row named `name` (second column) of a Locust CSV (stats or failures).
pub fn csv_row(path: &Path, name: &str) -> Vec<String> {
    let rows = read_csv(path);
    rows.iter()
        .find(|r| r.get(1).map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in {}: {rows:?}", path.display()))
        .clone()
}

/// The "Request Count" of the row named `name` in a stats CSV.
pub fn csv_count(path: &Path, name: &str) -> u64 {
    csv_row(path, name)[2].parse().expect("a count")
}

/// A column of the row named `name` in a stats CSV, by its header ("Failure Count").
pub fn csv_column(path: &Path, name: &str, header: &str) -> u64 {
    let at = read_csv(path)[0]
        .iter()
        .position(|h| h == header)
        .unwrap_or_else(|| panic!("no column {header} in {}", path.display()));
    csv_row(path, name)[at]
        .parse::<f64>()
        .unwrap_or_else(|e| panic!("{header} of {name}: {e}")) as u64
}

/// A worker of the master whose workers' port is `grpc` on 127.0.0.1, with extra flags.
pub fn worker(grpc: u16, extra: &[&str]) -> Run {
    let port = grpc.to_string();
    let mut args = vec!["--worker", "--master-port", &port];
    args.extend_from_slice(extra);
    hatchery(&args)
}

/// The master's `/stats/requests` document, or `None` while it does not answer 200.
pub async fn stats(web: u16) -> Option<serde_json::Value> {
    let (code, body) = http_get(web, "/stats/requests").await?;
    (code == 200).then(|| serde_json::from_str(&body).ok())?
}

/// The Aggregated request count of a `/stats/requests` document.
pub fn aggregated(s: &serde_json::Value) -> u64 {
    s["stats"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == "Aggregated"))
        .and_then(|r| r["num_requests"].as_u64())
        .unwrap_or(0)
}

/// A fresh temporary folder removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "hatchery-e2e-{tag}-{}-{}",
            std::process::id(),
            fastrand_suffix()
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fastrand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
