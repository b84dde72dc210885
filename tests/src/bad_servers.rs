//! Purpose-built HTTP/1.1 servers that misbehave in one named way each, on 127.0.0.1:0, for the
//! hardening tests of the worker's client. Each counts what it saw (connections, request heads),
//! so a test can hold the binary's report against the server's own count.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How the server answers the requests of one connection.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Every request gets these bytes; the connection stays open unless they say otherwise.
    Answer(Vec<u8>),
    /// Every request gets these bytes, then the server closes the connection.
    AnswerThenClose(Vec<u8>),
    /// The first request of a connection gets these bytes (a keep-alive response); the second is
    /// read whole and the connection closed without an answer, as a server's idle close racing
    /// a reused connection does.
    CloseOnSecond(Vec<u8>),
}

#[derive(Debug, Default)]
struct Seen {
    connections: usize,
    heads: Vec<String>,
}

/// A running bad server; stops when dropped.
#[derive(Debug)]
pub struct BadServer {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
}

impl BadServer {
    pub async fn start(behaviour: Behaviour) -> BadServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                shared.lock().unwrap().connections += 1;
                tokio::spawn(serve(stream, behaviour.clone(), shared.clone()));
            }
        });
        BadServer { addr, seen, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted.
    pub fn connections(&self) -> usize {
        self.seen.lock().unwrap().connections
    }

    /// Complete request heads received (request line and headers, as sent).
    pub fn heads(&self) -> Vec<String> {
        self.seen.lock().unwrap().heads.clone()
    }

    pub fn requests(&self) -> usize {
        self.seen.lock().unwrap().heads.len()
    }
}

impl Drop for BadServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, behaviour: Behaviour, seen: Arc<Mutex<Seen>>) {
    let mut buf = Vec::new();
    for n in 0.. {
        let Some(head) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        seen.lock().unwrap().heads.push(head);
        let answer = match &behaviour {
            Behaviour::Answer(a) | Behaviour::AnswerThenClose(a) => a,
            Behaviour::CloseOnSecond(_) if n > 0 => return,
            Behaviour::CloseOnSecond(a) => a,
        };
        if stream.write_all(answer).await.is_err() {
            return;
        }
        if matches!(behaviour, Behaviour::AnswerThenClose(_)) {
            return;
        }
    }
}

/// Reads one request (head and a content-length body); its head as text, `None` at the close.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 1 << 20 || !read_more(stream, buf).await {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let body: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < end + body {
        if !read_more(stream, buf).await {
            return None;
        }
    }
    buf.drain(..end + body);
    Some(head)
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}
