//! Debian's nginx (/usr/sbin/nginx) as a target, in the foreground on a free loopback port with
//! every file in a temporary folder: static files, `gzip on` for every type, extra `location`
//! blocks given by the test, and an access log the test reads back. It listens in plain
//! HTTP/1.1, in cleartext HTTP/2 (h2c by prior knowledge), or over TLS with or without "h2"
//! offered by ALPN ([`Listen`]).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::{eventually, TempDir};

/// The access log's format: method, URI, status, body bytes sent, protocol, the request's
/// `accept-encoding` (`-` when absent).
const ACCESS_FORMAT: &str =
    "$request_method $uri $status $body_bytes_sent $server_protocol $http_accept_encoding";

/// About 40 KB of text that gzip shrinks twentyfold, ending in a needle ("the needle at the
/// end").
pub fn page() -> Vec<u8> {
    let mut text: String = (0..2000)
        .map(|i| format!("line {i} of the page\n"))
        .collect();
    text.push_str("the needle at the end\n");
    text.into_bytes()
}

/// How nginx listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// Cleartext HTTP/1.1.
    Http,
    /// Cleartext HTTP/2 only, by prior knowledge (nginx 1.22's `listen ... http2` without TLS).
    H2c,
    /// TLS (tests/fixtures' localhost certificate) offering HTTP/1.1 only.
    Tls,
    /// TLS offering "h2" and "http/1.1" by ALPN.
    TlsH2,
}

/// A running nginx; stopped when dropped.
#[derive(Debug)]
pub struct Nginx {
    pub port: u16,
    dir: TempDir,
    child: tokio::process::Child,
    listen: Listen,
}

/// One line of the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub method: String,
    pub uri: String,
    pub status: u16,
    pub body_bytes_sent: u64,
    /// "HTTP/1.1" or "HTTP/2.0".
    pub protocol: String,
    pub accept_encoding: String,
}

impl Nginx {
    /// Serves `files` (name, content) from its root, with `locations` (nginx `location` blocks)
    /// in its server block.
    pub async fn start(files: &[(&str, &[u8])], locations: &str) -> Nginx {
        Nginx::serve(Listen::Http, files, locations).await
    }

    /// [`Nginx::start`], listening as `listen` says.
    pub async fn serve(listen: Listen, files: &[(&str, &[u8])], locations: &str) -> Nginx {
        let dir = TempDir::new("nginx");
        let root = dir.path().join("www");
        std::fs::create_dir_all(&root).expect("www");
        for (name, content) in files {
            std::fs::write(root.join(name), content).expect("write a served file");
        }
        // A port the kernel just handed out and released: nginx binds it right after.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let d = dir.path().display();
        let (cert, key) = (
            crate::fixture("localhost.pem"),
            crate::fixture("localhost.key"),
        );
        let tls = format!(
            "ssl_certificate {};\n        ssl_certificate_key {};",
            cert.display(),
            key.display()
        );
        let (options, tls) = match listen {
            Listen::Http => ("", ""),
            Listen::H2c => (" http2", ""),
            Listen::Tls => (" ssl", tls.as_str()),
            Listen::TlsH2 => (" ssl http2", tls.as_str()),
        };
        let conf = format!(
            "worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format count '{ACCESS_FORMAT}';
    access_log {d}/access.log count;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port}{options};
        {tls}
        root {root};
        gzip on;
        gzip_types *;
        gzip_min_length 0;
{locations}
    }}
}}
",
            root = root.display()
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("nginx.conf");
        let child = tokio::process::Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start /usr/sbin/nginx");
        eventually("nginx accepts", Duration::from_secs(10), || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
        })
        .await;
        Nginx {
            port,
            dir,
            child,
            listen,
        }
    }

    /// `http://127.0.0.1:PORT`, or `https://localhost:PORT` (the certificate's name) over TLS.
    pub fn url(&self) -> String {
        match self.listen {
            Listen::Http | Listen::H2c => format!("http://127.0.0.1:{}", self.port),
            Listen::Tls | Listen::TlsH2 => format!("https://localhost:{}", self.port),
        }
    }

    /// Every request nginx logged, in order.
    pub fn access(&self) -> Vec<Access> {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let mut f = line.splitn(6, ' ');
                Some(Access {
                    method: f.next()?.to_string(),
                    uri: f.next()?.to_string(),
                    status: f.next()?.parse().ok()?,
                    body_bytes_sent: f.next()?.parse().ok()?,
                    protocol: f.next()?.to_string(),
                    accept_encoding: f.next()?.to_string(),
                })
            })
            .collect()
    }

    /// The requests logged for `uri`.
    pub fn access_to(&self, uri: &str) -> Vec<Access> {
        self.access().into_iter().filter(|a| a.uri == uri).collect()
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("access.log")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
