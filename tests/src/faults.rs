//! Faults to inject: a network namespace whose link to the master can be cut, and targets that
//! stall or reset every connection.
//!
//! [`Netns`] needs root and iproute2 (`ip netns`, veth). It fails loudly, saying so, when they
//! are missing: a fault test that skips itself would pass without testing anything.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::{binary, run_of, Run};

/// Namespace names start with this, so a test killed before its cleanup leaves names that the
/// next run recognises (and removes once their process is gone).
const PREFIX: &str = "hatchery-e2e-";

/// A network namespace for a worker, with two veth links to the test's own namespace:
///
/// ```text
///  test's namespace                         the Netns
///  master listens on master_ip  ── ctl ──   worker_ip       (cut and healed by the test)
///  target listens on target_ip  ── data ──  worker_data_ip  (never cut)
/// ```
///
/// Addresses are two /30s in 10.213.0.0/16, unique on this machine. Dropping it removes the
/// namespace and both links, also when the test panics.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
    /// The test-side end of the master link (the one [`Netns::cut`] takes down).
    ctl: String,
    data: String,
    pub master_ip: IpAddr,
    pub worker_ip: IpAddr,
    pub target_ip: IpAddr,
    pub worker_data_ip: IpAddr,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Netns {
    /// Creates the namespace and its links. Panics, naming what is needed, without root or
    /// iproute2.
    pub fn create() -> Netns {
        remove_stale();
        let pid = std::process::id();
        for _ in 0..64 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let slot = (pid.wrapping_mul(31).wrapping_add(n)) % 8192;
            let (third, base) = ((slot / 32) as u8, ((slot % 32) * 8) as u8);
            let ip = |last: u8| IpAddr::V4(Ipv4Addr::new(10, 213, third, base + last));
            if address_in_use(third, base) {
                continue;
            }
            let ns = Netns {
                name: format!("{PREFIX}{pid}-{n}"),
                ctl: format!("hfc{slot}"),
                data: format!("hfd{slot}"),
                master_ip: ip(1),
                worker_ip: ip(2),
                target_ip: ip(5),
                worker_data_ip: ip(6),
            };
            match ns.build() {
                Ok(()) => return ns,
                // Another run took the slot between the check and the build: try the next.
                Err(e) if e.contains("File exists") => continue,
                Err(e) => panic!(
                    "this fault test needs root and iproute2 (`ip netns`, veth links); CI runs it \
                     as root with iproute2 installed. Run it as root (e.g. `sudo -E cargo test -p \
                     hatchery-cli --test faults`). The set-up failed: {e}"
                ),
            }
        }
        panic!("no free 10.213.x.y/29 for a test namespace after 64 tries");
    }

    fn build(&self) -> Result<(), String> {
        let (ns, ctl, data) = (self.name.as_str(), self.ctl.as_str(), self.data.as_str());
        ip(&["netns", "add", ns])?;
        let cidr = |a: IpAddr| format!("{a}/30");
        let steps = [
            args(&[
                "link", "add", ctl, "type", "veth", "peer", "name", "ctl0", "netns", ns,
            ]),
            args(&[
                "link", "add", data, "type", "veth", "peer", "name", "data0", "netns", ns,
            ]),
            args(&["addr", "add", &cidr(self.master_ip), "dev", ctl]),
            args(&["addr", "add", &cidr(self.target_ip), "dev", data]),
            args(&[
                "-n",
                ns,
                "addr",
                "add",
                &cidr(self.worker_ip),
                "dev",
                "ctl0",
            ]),
            args(&[
                "-n",
                ns,
                "addr",
                "add",
                &cidr(self.worker_data_ip),
                "dev",
                "data0",
            ]),
            args(&["link", "set", ctl, "up"]),
            args(&["link", "set", data, "up"]),
            args(&["-n", ns, "link", "set", "lo", "up"]),
            args(&["-n", ns, "link", "set", "ctl0", "up"]),
            args(&["-n", ns, "link", "set", "data0", "up"]),
        ];
        for step in &steps {
            let step: Vec<&str> = step.iter().map(String::as_str).collect();
            if let Err(e) = ip(&step) {
                self.remove();
                return Err(e);
            }
        }
        Ok(())
    }

    /// The `hatchery` binary run inside the namespace (`ip netns exec` execs it, so the
    /// process id is hatchery's own).
    pub fn hatchery(&self, args: &[&str]) -> Run {
        let mut cmd = tokio::process::Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(binary());
        run_of(cmd, args)
    }

    /// Cuts the master link: from now on nothing passes between the worker and the master
    /// (the target link stays up).
    pub fn cut(&self) {
        ip(&["link", "set", &self.ctl, "down"]).expect("take the master link down");
    }

    /// Restores the master link.
    pub fn heal(&self) {
        ip(&["link", "set", &self.ctl, "up"]).expect("bring the master link up");
    }

    fn remove(&self) {
        let _ = ip(&["netns", "del", &self.name]);
        // Each veth pair goes with its end inside the namespace; these are for a namespace
        // still kept alive by a process.
        let _ = ip(&["link", "del", &self.ctl]);
        let _ = ip(&["link", "del", &self.data]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.remove();
    }
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// Runs `ip ARGS`; `Err` with what it said.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| {
        format!("cannot run `ip` ({e}): install iproute2 (Debian: apt-get install iproute2)")
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether an address in 10.213.third.base/29 is on some interface of this namespace.
fn address_in_use(third: u8, base: u8) -> bool {
    let Ok(out) = Command::new("ip").args(["-4", "-o", "addr"]).output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    (0..8).any(|i| text.contains(&format!(" 10.213.{third}.{}/", base + i)))
}

/// Removes namespaces left by test processes that no longer exist.
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// How a [`BadTarget`] treats each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Accepts, reads the request, and never answers (the connection stays open).
    Stall,
    /// Accepts, reads the request, and resets the connection (RST, no response).
    Reset,
}

/// A TCP server on 127.0.0.1:0 that misbehaves on every connection; counts connections.
#[derive(Debug)]
pub struct BadTarget {
    pub addr: SocketAddr,
    accepted: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl BadTarget {
    pub async fn start(how: Misbehaviour) -> BadTarget {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            // Dropped with this task (when the target drops): stalled connections close then.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                connections.spawn(async move {
                    let mut buf = [0u8; 4096];
                    // A GET's request line and headers arrive in one segment on loopback.
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await;
                    match how {
                        Misbehaviour::Stall => std::future::pending::<()>().await,
                        Misbehaviour::Reset => {
                            let _ = stream.set_zero_linger();
                        }
                    }
                });
                // Reap finished connections so a long test does not hold them all.
                while connections.try_join_next().is_some() {}
            }
        });
        BadTarget {
            addr,
            accepted,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for BadTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A small tmpfs mounted by the test (needs root), to fill up: a disk full for real.
/// Unmounted and removed on drop, also when the test panics.
#[derive(Debug)]
pub struct Tmpfs {
    pub path: std::path::PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it, e.g. `64k`) on a fresh folder.
    pub fn mount(size: &str) -> Tmpfs {
        let path = std::env::temp_dir().join(format!(
            "hatchery-e2e-tmpfs-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create the mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "hatchery-e2e"])
            .arg(&path)
            .output();
        let failed = match out {
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(String::from_utf8_lossy(&o.stderr).trim().to_string()),
            Err(e) => Some(format!("cannot run `mount`: {e}")),
        };
        if let Some(why) = failed {
            let _ = std::fs::remove_dir(&path);
            panic!(
                "this fault test needs root to mount a small tmpfs (a real full disk); CI runs \
                 it as root. Run it as root (e.g. `sudo -E cargo test -p hatchery-cli --test \
                 faults`). `mount -t tmpfs` failed: {why}"
            );
        }
        Tmpfs { path }
    }

    /// Writes a file named `name` until the file system is full; returns the bytes written.
    pub fn fill(&self, name: &str) -> u64 {
        use std::io::Write;
        let mut file = std::fs::File::create(self.path.join(name)).expect("create the filler");
        let chunk = [0u8; 512];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling {}: {e}", self.path.display()),
            }
        }
        written
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy, so a process that still has a file open there cannot keep the mount.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = std::fs::remove_dir(&self.path);
    }
}
