//! One user's HTTP/1.1 connections: a keep-alive connection per origin, opened on first use and
//! reopened when the server closed it, plain or TLS (rustls, one shared client config).

use std::sync::Arc;

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::HeaderValue;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
pub use rustls::pki_types::CertificateDer;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Where requests go: scheme, host and port (an origin in the web's sense).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The `Host` header value.
    pub authority: HeaderValue,
}

impl Origin {
    /// From an absolute URI's scheme and authority; `None` for schemes other than http(s).
    pub fn new(scheme: &Scheme, authority: &Authority) -> Option<Origin> {
        let tls = if scheme == &Scheme::HTTPS {
            true
        } else if scheme == &Scheme::HTTP {
            false
        } else {
            return None;
        };
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        Some(Origin {
            tls,
            host: host.to_string(),
            port,
            authority: HeaderValue::from_str(authority.as_str()).ok()?,
        })
    }
}

/// Why a connection could not be opened; becomes the failure message in the stats.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect error: {0}")]
    Tcp(std::io::Error),
    #[error("TLS error: {0}")]
    Tls(std::io::Error),
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    #[error("HTTP handshake error: {}", with_causes(.0))]
    Handshake(hyper::Error),
}

/// An error and its causes, `: `-separated. hyper's own text names only the kind of failure
/// ("connection error"); the cause says what happened ("Connection reset by peer (os error
/// 104)"), and that is what a failures table must show.
pub fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// Shared by every user of a worker: building a TLS config loads the root store, which is far too
/// costly to repeat per user (Goose's mistake).
#[derive(Clone)]
pub struct Connector {
    tls: TlsConnector,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").finish_non_exhaustive()
    }
}

impl Default for Connector {
    fn default() -> Self {
        Self::new(&[]).expect("the bundled roots are valid")
    }
}

/// Reads the PEM certificates in `path`, to trust besides the public roots (`--ca-cert`).
pub fn load_ca_file(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read CA certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

impl Connector {
    /// Trusts the public web roots and `extra` (a private CA for a test environment).
    pub fn new(extra: &[CertificateDer<'static>]) -> Result<Connector, String> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for cert in extra {
            roots
                .add(cert.clone())
                .map_err(|e| format!("unusable CA certificate: {e}"))?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Connector {
            tls: TlsConnector::from(Arc::new(config)),
        })
    }

    /// Opens a connection. Its driver runs as its own task and ends when the connection closes.
    pub async fn connect(&self, origin: &Origin) -> Result<Conn, ConnectError> {
        let tcp = TcpStream::connect((origin.host.as_str(), origin.port))
            .await
            .map_err(ConnectError::Tcp)?;
        // Requests are small and written in one go: never hold them back for Nagle.
        let _ = tcp.set_nodelay(true);
        let sender = if origin.tls {
            let name = ServerName::try_from(origin.host.clone())
                .map_err(|_| ConnectError::ServerName(origin.host.clone()))?;
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(ConnectError::Tls)?;
            handshake(TokioIo::new(tls)).await?
        } else {
            handshake(TokioIo::new(tcp)).await?
        };
        Ok(Conn { sender })
    }
}

async fn handshake<T>(io: T) -> Result<SendRequest<Full<Bytes>>, ConnectError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(io)
        .await
        .map_err(ConnectError::Handshake)?;
    tokio::spawn(async move {
        // An error here is the server closing or breaking the connection; the user notices it
        // on its next request and reconnects, so there is nothing to report from this task.
        let _ = conn.await;
    });
    Ok(sender)
}

/// An open keep-alive connection.
#[derive(Debug)]
pub struct Conn {
    pub sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    /// Whether the connection can take another request (the server has not closed it).
    pub async fn usable(&mut self) -> bool {
        !self.sender.is_closed() && self.sender.ready().await.is_ok()
    }
}

/// A user's connections, one per origin it talks to (nearly always one).
#[derive(Debug, Default)]
pub struct Pool {
    conns: Vec<(Origin, Conn)>,
}

impl Pool {
    /// A usable connection to `origin`, reusing the open one when the server kept it alive.
    pub async fn get(
        &mut self,
        connector: &Connector,
        origin: &Origin,
    ) -> Result<&mut Conn, ConnectError> {
        let at = self.conns.iter().position(|(o, _)| o == origin);
        let reusable = match at {
            Some(i) => self.conns[i].1.usable().await,
            None => false,
        };
        let i = match (at, reusable) {
            (Some(i), true) => i,
            (Some(i), false) => {
                self.conns[i].1 = connector.connect(origin).await?;
                i
            }
            (None, _) => {
                let conn = connector.connect(origin).await?;
                self.conns.push((origin.clone(), conn));
                self.conns.len() - 1
            }
        };
        Ok(&mut self.conns[i].1)
    }

    /// Forgets the connection to `origin`, e.g. after a timeout left it in an unknown state.
    pub fn discard(&mut self, origin: &Origin) {
        self.conns.retain(|(o, _)| o != origin);
    }
}

#[cfg(test)]
mod tests {
    use super::with_causes;

    #[derive(Debug, thiserror::Error)]
    #[error("connection error")]
    struct Kind(#[source] std::io::Error);

    #[test]
    fn an_error_is_described_with_its_causes() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let e = Kind(reset);
        assert_eq!(with_causes(&e), "connection error: connection reset");
        let plain = std::io::Error::other("boom");
        assert_eq!(with_causes(&plain), "boom");
    }
}
