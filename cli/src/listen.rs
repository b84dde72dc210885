//! Listening sockets with a backlog sized for a fleet. `TcpListener::bind` (tokio, through mio)
//! listens with the standard library's backlog of 128: when 1,000 workers dial the master at
//! once (a fleet starting, or re-adopted after a master restart) the kernel's accept queue
//! overflows, the handshakes it drops are retried by the clients' TCP a second or more later,
//! and a client whose final ACK was dropped sees its first request cancelled. Measured with
//! master/examples/fleet.rs and 1,000 workers: 360-610 listen overflows per start and, in about
//! one start in five, up to 181 sessions cancelled. The demo target gets the same, so a test's
//! users that connect at once do not see a second of SYN retransmit counted as latency.

use std::io;

use tokio::net::{TcpListener, TcpSocket};

/// The accept queue asked for; the kernel caps it at `net.core.somaxconn` (4096 by default
/// since Linux 5.4).
pub const BACKLOG: u32 = 4096;

/// Binds `host:port` (the first of its addresses that binds) and listens with [`BACKLOG`].
pub async fn listen(host: &str, port: u16) -> io::Result<TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // As mio's bind does: a restarted master can take its port back at once.
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("{host} has no address"),
        )
    }))
}

#[cfg(test)]
mod tests {
    use std::net::TcpStream;
    use std::time::Duration;

    use super::*;

    /// Connections the kernel completes for a listener that accepts none fill its accept
    /// queue; with the standard backlog the 130th connect gets no answer (its SYN is dropped).
    #[tokio::test]
    async fn a_listener_queues_a_fleet_of_connections_before_it_accepts() {
        let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(4096);
        let want = 600.min(somaxconn);
        let listener = listen("127.0.0.1", 0).await.expect("listen");
        let addr = listener.local_addr().expect("addr");
        let opened = tokio::task::spawn_blocking(move || {
            let mut held = Vec::new();
            for i in 0..want {
                match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                    Ok(s) => held.push(s),
                    Err(e) => return Err(format!("connect {i} of {want}: {e}")),
                }
            }
            Ok(held.len())
        })
        .await
        .expect("join");
        assert_eq!(opened, Ok(want));
        drop(listener);
    }
}
