//! `hatchery probe URL`: the container health check. The images hold no shell and no curl, so
//! the binary asks itself: one HTTP/1.0 GET over a plain socket, success on a 2xx status line.
//! The body goes to stdout (a health log, or `/_stats` of the demo target read from a script).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::args::ProbeArgs;

pub fn run(args: &ProbeArgs) -> i32 {
    let timeout = Duration::try_from_secs_f64(args.timeout).unwrap_or(Duration::from_secs(3));
    match get(&args.url, timeout) {
        Ok((status, body)) if (200..300).contains(&status) => {
            println!("{}", body.trim_end());
            0
        }
        Ok((status, _)) => {
            eprintln!("probe: {} answered {status}", args.url);
            1
        }
        Err(e) => {
            eprintln!("probe: {}: {e}", args.url);
            1
        }
    }
}

/// The status code and body of `GET url` (http://host[:port][/path]).
fn get(url: &str, timeout: Duration) -> Result<(u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs can be probed")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let target = if authority.contains(':') && !authority.ends_with(']') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let deadline = Instant::now() + timeout;
    let addr = target
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {target}: {e}"))?
        .next()
        .ok_or_else(|| format!("{target} resolves to nothing"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    stream
        .set_read_timeout(Some(left))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(left))
        .map_err(|e| e.to_string())?;
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: hatchery-probe\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    // HTTP/1.0 without keep-alive: the server closes after the answer. At most 64 KiB is kept.
    let mut answer = Vec::new();
    (&mut stream)
        .take(64 * 1024)
        .read_to_end(&mut answer)
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .strip_prefix("HTTP/1.")
        .and_then(|l| l.get(2..5))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| {
            let start: String = text.chars().take(40).collect();
            format!("not an HTTP answer: {start:?}")
        })?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn serve_once(answer: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            let _ = s.write_all(answer.as_bytes());
        });
        format!("http://{addr}/healthz")
    }

    #[test]
    fn status_of_a_real_server() {
        let t = Duration::from_secs(5);
        let ok = get(&serve_once("HTTP/1.1 200 OK\r\nx: y\r\n\r\nok"), t);
        assert_eq!(ok, Ok((200, "ok".to_string())));
        let unavailable = get(&serve_once("HTTP/1.0 503 No\r\n\r\n"), t);
        assert_eq!(unavailable, Ok((503, String::new())));
        assert!(get(&serve_once("garbage"), t)
            .unwrap_err()
            .contains("not an HTTP"));
        assert!(get("https://127.0.0.1:1/", t)
            .unwrap_err()
            .contains("http://"));
    }

    #[test]
    fn refused_is_an_error() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(get(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(2)).is_err());
    }
}
