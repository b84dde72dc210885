//! Dialling the master: plain TCP, or TLS that trusts only the CA given with `--tls-ca`.
//!
//! We do the TLS handshake ourselves (tonic's TLS features are off), so a failure comes back as
//! rustls reported it and can be sorted: a certificate the CA did not sign, or a master that
//! does not speak TLS, cannot be fixed by retrying and ends the worker with a line saying so.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::codegen::http::Uri;
use tonic::codegen::Service;
use tonic::transport::{Channel, Endpoint};

/// How a worker verifies its master: the CA certificates of `--tls-ca`, and nothing else.
#[derive(Debug, Clone)]
pub struct MasterTls {
    config: Arc<rustls::ClientConfig>,
}

impl MasterTls {
    /// Trusts `ca` (and no public root) for the master's certificate.
    pub fn new(ca: &[CertificateDer<'static>]) -> Result<MasterTls, String> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in ca {
            roots
                .add(cert.clone())
                .map_err(|e| format!("cannot use a --tls-ca certificate: {e}"))?;
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(MasterTls {
            config: Arc::new(config),
        })
    }
}

/// Why the master could not be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DialError {
    /// Worth retrying: nothing listens yet, the network is down, the handshake was cut.
    Unreachable(String),
    /// Retrying cannot help: the master's certificate is not trusted, or it does not speak TLS.
    Fatal(String),
}

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DialError::Unreachable(m) | DialError::Fatal(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for DialError {}

/// Opens a channel to `endpoint` (`http://HOST:PORT`, or `https://` with `tls`).
pub(crate) async fn channel(endpoint: &str, tls: Option<&MasterTls>) -> Result<Channel, DialError> {
    let e = Endpoint::from_shared(endpoint.to_string())
        .map_err(|e| DialError::Fatal(format!("bad master address {endpoint}: {e}")))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    let result = match tls {
        None => e.connect().await,
        Some(tls) => {
            e.connect_with_connector(Connector(tls.config.clone()))
                .await
        }
    };
    result.map_err(|err| {
        // Our own error travels inside tonic's; find it to know whether to retry.
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(s) = source {
            if let Some(d) = s.downcast_ref::<DialError>() {
                return d.clone();
            }
            source = s.source();
        }
        DialError::Unreachable(err.to_string())
    })
}

/// TCP, then the TLS handshake, for tonic.
struct Connector(Arc<rustls::ClientConfig>);

impl Service<Uri> for Connector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = DialError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, DialError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), DialError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.0.clone());
        Box::pin(async move {
            let host = uri
                .host()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            let name = ServerName::try_from(host.clone())
                .map_err(|e| DialError::Fatal(format!("bad master host {host}: {e}")))?;
            let tcp = TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| DialError::Unreachable(format!("{host}:{port}: {e}")))?;
            let _ = tcp.set_nodelay(true);
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| classify(&e, &host, port))?;
            Ok(TokioIo::new(tls))
        })
    }
}

/// Sorts a failed handshake into what a retry may fix and what it cannot.
fn classify(e: &std::io::Error, host: &str, port: u16) -> DialError {
    let at = format!("the master at {host}:{port}");
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(_)) => DialError::Fatal(format!(
            "{at} is not trusted ({e}): --tls-ca must hold the CA that signed the master's --tls-cert, and the certificate must name {host}"
        )),
        Some(rustls::Error::InvalidMessage(_)) => DialError::Fatal(format!(
            "{at} does not speak TLS: start the worker without --tls-ca, or the master with --tls-cert and --tls-key"
        )),
        Some(rustls::Error::AlertReceived(alert)) => DialError::Fatal(format!(
            "{at} refused the TLS handshake ({alert:?})"
        )),
        _ => DialError::Unreachable(format!("TLS handshake with {at}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls_error(e: rustls::Error) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn an_untrusted_certificate_or_a_peer_without_tls_is_final_and_a_cut_handshake_is_retried() {
        let untrusted = tls_error(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        assert!(matches!(
            classify(&untrusted, "m", 5557),
            DialError::Fatal(m) if m.contains("--tls-ca must hold the CA")
        ));
        let not_tls = tls_error(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert!(matches!(
            classify(&not_tls, "m", 5557),
            DialError::Fatal(m) if m.contains("does not speak TLS")
        ));
        let cut = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert!(matches!(
            classify(&cut, "m", 5557),
            DialError::Unreachable(_)
        ));
    }
}
