//! Dialling the master: plain TCP, or TLS that trusts only the certificates given with
//! `--tls-ca` (CAs, or the master's own self-signed certificate).
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
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_name, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::codegen::http::Uri;
use tonic::codegen::Service;
use tonic::transport::{Channel, Endpoint};

/// How a worker verifies its master: the certificates of `--tls-ca`, and nothing else.
#[derive(Debug, Clone)]
pub struct MasterTls {
    config: Arc<rustls::ClientConfig>,
}

impl MasterTls {
    /// Trusts `ca` (and no public root) for the master's certificate: as CAs that signed it, or
    /// as the very certificate the master serves (a self-signed one, see [`TrustFile`]).
    pub fn new(ca: &[CertificateDer<'static>]) -> Result<MasterTls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = TrustFile::new(ca, provider.clone())?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(MasterTls {
            config: Arc::new(config),
        })
    }
}

/// The certificates of a `--tls-ca` file, trusted two ways. A certificate the master presents
/// that is byte for byte one of them is trusted as it is (the self-signed certificate of
/// `openssl req -x509 ...`, which webpki refuses as a CA used as an end entity); its name and
/// the handshake signature are still verified, its dates are not (the file says which
/// certificate to trust; replace it to rotate). Any other certificate must chain to one of
/// them, as webpki verifies it.
#[derive(Debug)]
struct TrustFile {
    exact: Vec<CertificateDer<'static>>,
    chained: Arc<WebPkiServerVerifier>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl TrustFile {
    fn new(
        certs: &[CertificateDer<'static>],
        provider: Arc<CryptoProvider>,
    ) -> Result<TrustFile, String> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs {
            roots
                .add(cert.clone())
                .map_err(|e| format!("cannot use a --tls-ca certificate: {e}"))?;
        }
        let algorithms = provider.signature_verification_algorithms;
        let chained = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("cannot use the --tls-ca certificates: {e}"))?;
        Ok(TrustFile {
            exact: certs.to_vec(),
            chained,
            algorithms,
        })
    }
}

impl ServerCertVerifier for TrustFile {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.exact.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_name(&cert, server_name)?;
            return Ok(ServerCertVerified::assertion());
        }
        self.chained
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
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

/// Opens a channel to `endpoint` (`http://HOST:PORT`, or `https://` with `tls`), giving up on
/// the connection after `connect_timeout`. With TLS the master's certificate must name
/// `tls_name` when given (the master's name, when `endpoint` holds its address), else the
/// endpoint's host.
pub(crate) async fn channel(
    endpoint: &str,
    tls: Option<&MasterTls>,
    tls_name: Option<&str>,
    connect_timeout: Duration,
) -> Result<Channel, DialError> {
    let e = Endpoint::from_shared(endpoint.to_string())
        .map_err(|e| DialError::Fatal(format!("bad master address {endpoint}: {e}")))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true);
    let result = match tls {
        None => e.connect().await,
        Some(tls) => {
            e.connect_with_connector(Connector {
                config: tls.config.clone(),
                name: tls_name.map(str::to_string),
            })
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

/// TCP, then the TLS handshake, for tonic; the certificate must name `name`, or else the
/// host dialled.
struct Connector {
    config: Arc<rustls::ClientConfig>,
    name: Option<String>,
}

impl Service<Uri> for Connector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = DialError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, DialError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), DialError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        let named = self.name.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            let named = named.unwrap_or_else(|| host.clone());
            let name = ServerName::try_from(named.clone())
                .map_err(|e| DialError::Fatal(format!("bad master host {named}: {e}")))?;
            let tcp = TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| DialError::Unreachable(format!("{host}:{port}: {e}")))?;
            let _ = tcp.set_nodelay(true);
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| classify(&e, &host, port, &named))?;
            Ok(TokioIo::new(tls))
        })
    }
}

/// Sorts a failed handshake with `host:port`, whose certificate must name `name`, into what a
/// retry may fix and what it cannot.
fn classify(e: &std::io::Error, host: &str, port: u16, name: &str) -> DialError {
    let at = format!("the master at {host}:{port}");
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(_)) => DialError::Fatal(format!(
            "{at} is not trusted ({e}): --tls-ca must hold the CA that signed the master's --tls-cert (or that very certificate, when it is self-signed), and the certificate must name {name}"
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
            classify(&untrusted, "m", 5557, "m"),
            DialError::Fatal(m) if m.contains("--tls-ca must hold the CA")
        ));
        let not_tls = tls_error(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert!(matches!(
            classify(&not_tls, "m", 5557, "m"),
            DialError::Fatal(m) if m.contains("does not speak TLS")
        ));
        let cut = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert!(matches!(
            classify(&cut, "m", 5557, "m"),
            DialError::Unreachable(_)
        ));
    }
}
