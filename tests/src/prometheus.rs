//! Debian's Prometheus (/usr/bin/prometheus) scraping a master, so a test can run the queries a
//! dashboard sends against what a real master serves. It listens on 127.0.0.1:0; the port it got
//! is read from the kernel (its listening socket), not from its log, which names the address
//! asked for.

use std::time::Duration;

use serde_json::Value;

use crate::{eventually, http, run_of, Running, TempDir};

const BINARY: &str = "/usr/bin/prometheus";

/// A Prometheus scraping one target every second, until dropped.
#[derive(Debug)]
pub struct Prometheus {
    _process: Running,
    pub port: u16,
    _dir: TempDir,
}

/// What to scrape: the target's port and path, basic auth, and labels added to every series
/// (as a PodMonitor's relabelings add `loadtest`).
#[derive(Debug, Clone, Copy)]
pub struct Scrape<'a> {
    pub port: u16,
    pub path: &'a str,
    pub basic_auth: Option<(&'a str, &'a str)>,
    pub labels: &'a [(&'a str, &'a str)],
}

impl Prometheus {
    /// Starts Prometheus on `scrape`; panics, saying how to install it, when it is not there.
    pub async fn start(scrape: Scrape<'_>) -> Prometheus {
        assert!(
            std::path::Path::new(BINARY).exists(),
            "{BINARY} is missing: apt-get install prometheus (.ci/run installs it)"
        );
        let dir = TempDir::new("prometheus");
        let auth = scrape.basic_auth.map_or(String::new(), |(u, p)| {
            format!("\n    basic_auth: {{username: \"{u}\", password: \"{p}\"}}")
        });
        let labels: Vec<String> = scrape
            .labels
            .iter()
            .map(|(k, v)| format!("{k}: \"{v}\""))
            .collect();
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: hatchery
    metrics_path: \"{}\"{auth}
    static_configs: [{{targets: [\"127.0.0.1:{}\"], labels: {{{}}}}}]
",
            scrape.path,
            scrape.port,
            labels.join(", ")
        );
        let config = dir.write("prometheus.yml", &config);
        let data = dir.path().join("data");
        let args = [
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", data.display()),
            "--web.listen-address=127.0.0.1:0".to_string(),
            "--log.level=warn".to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut process = run_of(tokio::process::Command::new(BINARY), &args).spawn();
        let pid = process.pid();
        let port = eventually("Prometheus listens", Duration::from_secs(30), || {
            let ended = process.exited();
            async move {
                assert!(ended.is_none(), "prometheus exited: {ended:?}");
                listening_ports(pid).first().copied()
            }
        })
        .await;
        let prometheus = Prometheus {
            _process: process,
            port,
            _dir: dir,
        };
        eventually("Prometheus is ready", Duration::from_secs(30), || async {
            let (code, _) = http(port, "GET", "/-/ready", None, &[]).await?;
            (code == 200).then_some(())
        })
        .await;
        prometheus
    }

    /// The result vector of an instant query, or Prometheus's error (a query it cannot parse).
    pub async fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let form = format!("query={}", form_encode(promql));
        let (code, body) = http(self.port, "POST", "/api/v1/query", Some(&form), &[])
            .await
            .ok_or("Prometheus does not answer")?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{code}: {e}: {body}"))?;
        if v["status"] != "success" {
            return Err(format!("{code}: {}: {}", v["errorType"], v["error"]));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// The values of `label` on the series `matcher` selects (Grafana's `label_values`).
    pub async fn label_values(&self, label: &str, matcher: &str) -> Vec<String> {
        let path = format!(
            "/api/v1/label/{label}/values?match[]={}",
            form_encode(matcher)
        );
        let Some((200, body)) = http(self.port, "GET", &path, None, &[]).await else {
            return Vec::new();
        };
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        v["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986), as a form value.
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The TCP ports process `pid` listens on: its socket inodes (/proc/PID/fd) found among the
/// listening sockets of /proc/net/tcp and tcp6 (state 0A).
pub fn listening_ports(pid: u32) -> Vec<u16> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let inodes: Vec<String> = fds
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(&"0A"), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            if inodes.iter().any(|i| i == inode) {
                if let Some(port) = local
                    .rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                {
                    ports.push(port);
                }
            }
        }
    }
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_value_is_percent_encoded() {
        assert_eq!(
            form_encode(r#"a{b=~"$x"}[1m] / 2"#),
            "a%7Bb%3D~%22%24x%22%7D%5B1m%5D%20%2F%202"
        );
    }

    #[tokio::test]
    async fn the_ports_a_process_listens_on_are_found() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        assert!(listening_ports(std::process::id()).contains(&port));
    }
}
