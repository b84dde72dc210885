//! TLS on the master's two ports with one certificate (`--tls-cert`, `--tls-key`): the workers'
//! port (gRPC over HTTP/2) and the web port (HTTP/1.1).
//!
//! We accept TCP ourselves and look at the peer's first byte before any handshake (a TLS
//! connection opens with a handshake record), so a peer speaking the other protocol is told why
//! it is refused instead of meeting a closed connection.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::gate::{Gate, Guarded, HANDSHAKE_TIMEOUT, MAX_WEB_CONNECTIONS, WEB_IDLE_TIMEOUT};

/// The master's certificate chain and private key, for both ports.
#[derive(Debug, Clone)]
pub struct Identity {
    config: Arc<ServerConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read a certificate chain (PEM) from {path}: {reason}")]
    Certificate { path: String, reason: String },
    #[error("cannot read a private key (PEM) from {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("cannot use the certificate in {cert} with the key in {key}: {reason}")]
    Pair {
        cert: String,
        key: String,
        reason: String,
    },
}

impl Identity {
    /// Reads a PEM certificate chain (the server's certificate first) and its PEM private key.
    pub fn load(cert: &Path, key: &Path) -> Result<Identity, Error> {
        let certificate = |reason: String| Error::Certificate {
            path: cert.display().to_string(),
            reason,
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| certificate(e.to_string()))?;
        if chain.is_empty() {
            return Err(certificate("no CERTIFICATE block in it".to_string()));
        }
        let private = PrivateKeyDer::from_pem_file(key).map_err(|e| Error::Key {
            path: key.display().to_string(),
            reason: e.to_string(),
        })?;
        let config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private))
                .map_err(|e| Error::Pair {
                    cert: cert.display().to_string(),
                    key: key.display().to_string(),
                    reason: e.to_string(),
                })?;
        Ok(Identity {
            config: Arc::new(config),
        })
    }

    /// An acceptor that offers one application protocol (ALPN).
    pub(crate) fn acceptor(&self, alpn: &[u8]) -> TlsAcceptor {
        let mut config = (*self.config).clone();
        config.alpn_protocols = vec![alpn.to_vec()];
        TlsAcceptor::from(Arc::new(config))
    }
}

/// What a new connection opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opening {
    /// A TLS handshake record (a ClientHello).
    Tls,
    /// Anything else: HTTP/2's preface, an HTTP/1.1 request line, garbage.
    Plain,
    /// Nothing within the timeout, or the peer closed.
    Nothing,
}

/// The content type byte of a TLS record that carries a handshake message.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Waits for the peer's first byte, without consuming it, until `deadline`.
pub(crate) async fn opening(stream: &TcpStream, deadline: Instant) -> Opening {
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == TLS_HANDSHAKE_RECORD => Opening::Tls,
        Ok(Ok(1)) => Opening::Plain,
        _ => Opening::Nothing,
    }
}

/// Completes the server side of a TLS handshake by `deadline`. `Err` says why it failed, with
/// a hint when the peer refused our certificate.
pub(crate) async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    deadline: Instant,
) -> Result<TlsStream<TcpStream>, String> {
    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err(format!(
            "no TLS handshake within {} s of connecting",
            HANDSHAKE_TIMEOUT.as_secs()
        )),
    }
}

fn describe(e: &io::Error) -> String {
    use rustls::AlertDescription as A;
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::AlertReceived(
            A::UnknownCA | A::BadCertificate | A::CertificateUnknown,
        )) => format!(
            "{e}: the peer does not trust this master's certificate (a worker's --tls-ca must hold the CA that signed --tls-cert)"
        ),
        _ => e.to_string(),
    }
}

/// A connection the coordinator serves: plain TCP, or TLS over it.
#[derive(Debug)]
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        match self {
            Conn::Plain(s) => s.connect_info(),
            Conn::Tls(s) => s.get_ref().0.connect_info(),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Accepts TCP connections, waiting a little before retrying when accepting fails (out of file
/// descriptors, say) rather than spinning.
pub(crate) async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                return (stream, peer);
            }
            Err(e) => {
                tracing::warn!("cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The web port over TLS, as an axum listener, under its gate ([`crate::gate`]). Handshakes
/// run in tasks of their own, so a slow or silent client never holds up the others; a plain
/// HTTP request is answered with a 400 that says to use https.
#[derive(Debug)]
pub(crate) struct HttpsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(Guarded<TlsStream<TcpStream>>, SocketAddr)>,
    task: JoinHandle<()>,
}

/// What a plain HTTP request to the HTTPS port gets.
const USE_HTTPS: &str = "this port serves HTTPS: use an https:// URL\n";

impl HttpsListener {
    pub(crate) fn new(listener: TcpListener, identity: &Identity) -> io::Result<HttpsListener> {
        let local = listener.local_addr()?;
        let acceptor = identity.acceptor(b"http/1.1");
        let (tx, ready) = mpsc::channel(64);
        let mut gate = Gate::new("web", MAX_WEB_CONNECTIONS).idle_after(WEB_IDLE_TIMEOUT);
        let task = tokio::spawn(async move {
            loop {
                let (stream, peer) = accept(&listener).await;
                let Some(pass) = gate.pass(peer) else {
                    continue;
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match opening(&stream, pass.deadline()).await {
                        Opening::Tls => match handshake(&acceptor, stream, pass.deadline()).await {
                            Ok(tls) => {
                                let _ = tx.send((pass.wrap(tls), peer)).await;
                            }
                            Err(e) => tracing::debug!(%peer, "web: TLS handshake failed: {e}"),
                        },
                        Opening::Plain => {
                            let _ = tokio::time::timeout_at(pass.deadline(), answer_plain(stream))
                                .await;
                        }
                        Opening::Nothing => {}
                    }
                });
            }
        });
        Ok(HttpsListener { local, ready, task })
    }
}

/// Reads the request's first bytes (so closing does not reset the connection before the
/// answer is read), then answers 400.
async fn answer_plain(mut stream: TcpStream) {
    let mut request = [0u8; 4096];
    let _ = stream.read(&mut request).await;
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{USE_HTTPS}",
        USE_HTTPS.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

impl Drop for HttpsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl axum::serve::Listener for HttpsListener {
    type Io = Guarded<TlsStream<TcpStream>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accepting task ended (it never does on its own): serve nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}
