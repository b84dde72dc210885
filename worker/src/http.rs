//! One user's connections: a keep-alive connection per origin, opened on first use and reopened
//! when the server closed it, plain or TLS (rustls, one shared client config). The protocols
//! themselves are in [`crate::h1`] and [`crate::http2`]; a user of an `http2: true` class opens
//! HTTP/2 by prior knowledge on http:// and offers it by ALPN on https://, keeping HTTP/1.1 when
//! the server does not choose it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::uri::{Authority, Scheme};
use http::HeaderValue;
use rustls::pki_types::pem::PemObject;
pub use rustls::pki_types::CertificateDer;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::h1;

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
    #[error("HTTP/2 connection error: {0}")]
    Http2(std::io::Error),
}

/// Shared by every user of a worker: building a TLS config loads the root store, which is far too
/// costly to repeat per user (Goose's mistake).
#[derive(Clone)]
pub struct Connector {
    tls: TlsConnector,
    /// The same, offering "h2" then "http/1.1" by ALPN.
    tls_h2: TlsConnector,
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
        let mut h2 = config.clone();
        h2.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Connector {
            tls: TlsConnector::from(Arc::new(config)),
            tls_h2: TlsConnector::from(Arc::new(h2)),
        })
    }

    /// Opens a connection; HTTP/2 when `http2` and the server speaks it.
    pub async fn connect(&self, origin: &Origin, http2: bool) -> Result<Link, ConnectError> {
        let tcp = TcpStream::connect((origin.host.as_str(), origin.port))
            .await
            .map_err(ConnectError::Tcp)?;
        // Requests are small and written in one go: never hold them back for Nagle.
        let _ = tcp.set_nodelay(true);
        let stream = if origin.tls {
            let name = ServerName::try_from(origin.host.clone())
                .map_err(|_| ConnectError::ServerName(origin.host.clone()))?;
            let connector = if http2 { &self.tls_h2 } else { &self.tls };
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(ConnectError::Tls)?;
            if http2 && tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                return Ok(Link::H1(Conn::new(Stream::Tls(Box::new(tls)))));
            }
            Stream::Tls(Box::new(tls))
        } else {
            Stream::Plain(tcp)
        };
        if http2 {
            let conn = crate::http2::handshake(stream)
                .await
                .map_err(ConnectError::Http2)?;
            return Ok(Link::H2(Box::new(conn)));
        }
        Ok(Link::H1(Conn::new(stream)))
    }
}

/// A connection's byte stream. TLS state is boxed: most users speak plain HTTP and should not
/// carry its size.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// An open keep-alive connection.
pub type Conn = h1::Conn<Stream>;

/// A connection in the protocol it speaks.
#[derive(Debug)]
pub enum Link {
    H1(Conn),
    /// Boxed: HTTP/2's state is large, and most users speak HTTP/1.1.
    H2(Box<crate::http2::Conn>),
}

/// Why an exchange failed, in either protocol.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error(transparent)]
    H1(#[from] h1::Error),
    #[error(transparent)]
    H2(#[from] crate::http2::Error),
}

impl ExchangeError {
    /// The server closed the connection before answering (see [`h1::Error::is_stale`]).
    pub fn is_stale(&self) -> bool {
        match self {
            ExchangeError::H1(e) => e.is_stale(),
            ExchangeError::H2(e) => e.is_stale(),
        }
    }

    /// The failure was the request's alone and the connection is still usable: over HTTP/2, a
    /// stream reset by either side. Over HTTP/1.1 a connection that failed a request is out of
    /// step.
    pub fn keeps_connection(&self) -> bool {
        match self {
            ExchangeError::H1(_) => false,
            ExchangeError::H2(e) => e.keeps_connection(),
        }
    }
}

impl Link {
    /// Sends `request` to `origin` and reads the response, keeping what `keep` asks for.
    pub async fn exchange(
        &mut self,
        request: h1::Request<'_>,
        origin: &Origin,
        keep: h1::Keep,
    ) -> Result<h1::Response, ExchangeError> {
        match self {
            Link::H1(c) => Ok(c.exchange(request, keep).await?),
            // Boxed: the user's task is as large as its largest state, for every user.
            Link::H2(c) => Ok(Box::pin(c.exchange(request, origin, keep)).await?),
        }
    }

    /// Whether a previous exchange on this connection completed.
    pub fn served(&self) -> bool {
        match self {
            Link::H1(c) => c.served(),
            Link::H2(c) => c.served(),
        }
    }

    /// Whether another request can go out on it now (see [`h1::Conn::check_open`]).
    pub fn check_open(&mut self) -> bool {
        match self {
            Link::H1(c) => c.check_open(),
            Link::H2(c) => c.check_open(),
        }
    }

    /// Whether the last exchange left it usable. HTTP/2 is checked before the next request.
    pub fn is_open(&self) -> bool {
        match self {
            Link::H1(c) => c.is_open(),
            Link::H2(_) => true,
        }
    }

    /// Whether an exchange on it was abandoned midway.
    pub fn in_flight(&self) -> bool {
        match self {
            Link::H1(c) => c.in_flight(),
            Link::H2(c) => c.in_flight(),
        }
    }

    fn release(&mut self) {
        match self {
            Link::H1(c) => c.release(),
            Link::H2(c) => c.release(),
        }
    }
}

/// Connections one user keeps open at most: a plan whose rendered URLs reach ever new origins
/// closes the least recently opened instead of holding a socket per origin.
pub const MAX_CONNS_PER_USER: usize = 8;

/// A user's connections, one per origin it talks to (nearly always one).
#[derive(Debug, Default)]
pub struct Pool {
    conns: Vec<(Arc<Origin>, Link)>,
    /// Open HTTP/2 where the server speaks it (the class's `http2`).
    http2: bool,
}

impl Pool {
    /// A pool that opens HTTP/2 connections when `http2`.
    pub fn new(http2: bool) -> Pool {
        Pool {
            conns: Vec::new(),
            http2,
        }
    }

    /// A usable connection to `origin`, reusing the open one when the server kept it alive.
    pub async fn get(
        &mut self,
        connector: &Connector,
        origin: &Arc<Origin>,
    ) -> Result<&mut Link, ConnectError> {
        let at = self
            .conns
            .iter()
            .position(|(o, _)| Arc::ptr_eq(o, origin) || **o == **origin);
        // Checked before every reuse, not only after a wait: bytes nobody asked for may arrive
        // just after a response (a poll that costs no syscall while the socket is quiet).
        let i = match at {
            Some(i) if self.conns[i].1.check_open() => i,
            Some(i) => {
                self.conns[i].1 = connector.connect(origin, self.http2).await?;
                i
            }
            None => {
                let conn = connector.connect(origin, self.http2).await?;
                if self.conns.len() >= MAX_CONNS_PER_USER {
                    self.conns.remove(0);
                }
                self.conns.push((origin.clone(), conn));
                self.conns.len() - 1
            }
        };
        Ok(&mut self.conns[i].1)
    }

    /// Replaces the connection to `origin` by a new one (after a stale keep-alive connection).
    pub async fn reconnect(
        &mut self,
        connector: &Connector,
        origin: &Arc<Origin>,
    ) -> Result<&mut Link, ConnectError> {
        self.discard(origin);
        self.get(connector, origin).await
    }

    /// Forgets the connection to `origin`, e.g. after a timeout left it in an unknown state.
    pub fn discard(&mut self, origin: &Origin) {
        self.conns.retain(|(o, _)| **o != *origin);
    }

    /// Forgets the connections whose exchange was dropped midway (a timeout ran out): they may
    /// still carry its late response.
    pub fn discard_in_flight(&mut self) {
        self.conns.retain(|(_, c)| !c.in_flight());
    }

    /// Requests sent on these connections whose exchange was dropped before it ended.
    pub fn in_flight(&self) -> u64 {
        self.conns.iter().filter(|(_, c)| c.in_flight()).count() as u64
    }

    /// How many connections the user holds.
    pub fn count(&self) -> usize {
        self.conns.len()
    }

    /// The user is about to wait: read buffers go back.
    pub fn idle(&mut self) {
        for (_, c) in &mut self.conns {
            c.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn origin_of(listener: &TcpListener) -> Arc<Origin> {
        let port = listener.local_addr().unwrap().port();
        let authority: Authority = format!("127.0.0.1:{port}").parse().unwrap();
        Arc::new(Origin::new(&Scheme::HTTP, &authority).unwrap())
    }

    #[tokio::test]
    async fn a_user_holds_a_bounded_number_of_connections_however_many_origins_it_meets() {
        let connector = Connector::default();
        let mut pool = Pool::default();
        let mut listeners = Vec::new();
        for _ in 0..MAX_CONNS_PER_USER + 3 {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            pool.get(&connector, &origin_of(&listener).await)
                .await
                .unwrap();
            listeners.push(listener);
        }
        assert_eq!(pool.count(), MAX_CONNS_PER_USER);
    }

    #[tokio::test]
    async fn bytes_after_a_response_stop_the_reuse_of_its_connection_without_a_wait() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = origin_of(&listener).await;
        let (sent_extra, extra_sent) = tokio::sync::oneshot::channel();
        let (read_response, response_read) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            // Only once the client has the whole response: these bytes come unasked.
            response_read.await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            let _ = sent_extra.send(());
            let (_second, _) = listener.accept().await.unwrap();
        });
        let connector = Connector::default();
        let mut pool = Pool::default();
        let request = h1::Request {
            bytes: b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
            is_head: false,
            idempotent: true,
            h2: None,
        };
        let conn = pool.get(&connector, &origin).await.unwrap();
        conn.exchange(request, &origin, h1::Keep::default())
            .await
            .unwrap();
        assert!(conn.is_open());
        read_response.send(()).unwrap();
        extra_sent.await.unwrap();
        let conn = pool.get(&connector, &origin).await.unwrap();
        assert!(
            !conn.served(),
            "the connection with unread bytes was reused"
        );
        server.await.unwrap();
    }
}
