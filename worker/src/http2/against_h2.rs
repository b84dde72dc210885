//! The client against the h2 crate's server over a real socket: whatever h2's HPACK encoder
//! makes of a header list (indexed, incrementally indexed, evicted, never indexed, Huffman or
//! not, split into CONTINUATION frames), the client reads the same list back.

use super::*;
use ::http::uri::Scheme;
use ::http::{HeaderMap, Response as HttpResponse};
use tokio::net::{TcpListener, TcpStream};

/// The header list of response `i`: values that repeat (the encoder indexes them), long ones
/// that evict the table, a sensitive one (never indexed), and bytes Huffman codes long.
fn list(i: usize, rng: &mut fastrand::Rng) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.append("content-type", HeaderValue::from_static("text/plain"));
    h.append(
        "x-repeat",
        HeaderValue::from_str(&format!("v{}", i % 3)).unwrap(),
    );
    let long: String = (0..rng.usize(0..3000))
        .map(|_| {
            rng.choice(b"az09-_.~!%&".iter())
                .map_or('a', |&b| b as char)
        })
        .collect();
    h.append("x-long", HeaderValue::from_str(&long).unwrap());
    let mut secret = HeaderValue::from_str(&format!("s{i}")).unwrap();
    secret.set_sensitive(true);
    h.append("authorization", secret);
    for j in 0..rng.usize(0..20) {
        h.append(
            HeaderName::from_bytes(format!("x-{j}").as_bytes()).unwrap(),
            HeaderValue::from_str(&format!("{i}-{j}")).unwrap(),
        );
    }
    if i % 10 == 9 {
        // About 30 KiB: past one frame, so h2 sends CONTINUATION frames.
        for j in 0..30 {
            let name = HeaderName::from_bytes(format!("x-big-{j}").as_bytes()).unwrap();
            h.append(name, HeaderValue::from_str(&"b".repeat(1000)).unwrap());
        }
    }
    h.append("set-cookie", HeaderValue::from_static("a=1"));
    h.append("set-cookie", HeaderValue::from_static("b=2"));
    h
}

async fn serve(listener: TcpListener, lists: Vec<HeaderMap>) {
    let (socket, _) = listener.accept().await.unwrap();
    let mut conn = h2::server::handshake(socket).await.unwrap();
    for headers in lists {
        let Some(Ok((_, mut respond))) = conn.accept().await else {
            return;
        };
        let mut response = HttpResponse::new(());
        *response.headers_mut() = headers;
        let mut stream = respond.send_response(response, false).unwrap();
        stream.send_data(Bytes::from_static(b"body"), true).unwrap();
    }
    while conn.accept().await.is_some() {}
}

#[tokio::test]
async fn every_header_list_the_h2_crates_server_encodes_is_read_back_as_sent() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut rng = fastrand::Rng::with_seed(7);
    let lists: Vec<HeaderMap> = (0..60).map(|i| list(i, &mut rng)).collect();
    let server = tokio::spawn(serve(listener, lists.clone()));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut conn = handshake(Stream::Plain(tcp)).await.unwrap();
    let origin = Origin::new(&Scheme::HTTP, &addr.to_string().parse().unwrap()).unwrap();
    let bytes = format!("GET / HTTP/1.1\r\nhost: {addr}\r\n\r\n");
    let keep = Keep {
        headers: true,
        body: true,
        ..Keep::default()
    };
    for (i, want) in lists.iter().enumerate() {
        assert!(conn.check_open(), "{i}");
        let request = h1::Request {
            bytes: bytes.as_bytes(),
            is_head: false,
            idempotent: true,
            h2: None,
        };
        let got = conn.exchange(request, &origin, keep).await.unwrap();
        assert_eq!(got.status, 200);
        assert_eq!(&got.headers, want, "response {i}");
        assert_eq!(got.body, "body");
    }
    drop(conn);
    server.await.unwrap();
}

/// Answers each request with the length of its body, read to the end: h2 gives the window back
/// as the body is read, so a body past 64 KiB goes out only as WINDOW_UPDATEs come.
async fn count_bodies(listener: TcpListener) {
    let (socket, _) = listener.accept().await.unwrap();
    let mut conn = h2::server::handshake(socket).await.unwrap();
    while let Some(Ok((request, mut respond))) = conn.accept().await {
        tokio::spawn(async move {
            let mut body = request.into_body();
            let mut n = 0usize;
            while let Some(Ok(data)) = body.data().await {
                n += data.len();
                let _ = body.flow_control().release_capacity(data.len());
            }
            let mut stream = respond.send_response(HttpResponse::new(()), false).unwrap();
            stream.send_data(Bytes::from(n.to_string()), true).unwrap();
        });
    }
}

#[tokio::test]
async fn a_request_body_past_the_servers_windows_goes_out_whole_as_they_open() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(count_bodies(listener));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut conn = handshake(Stream::Plain(tcp)).await.unwrap();
    let origin = Origin::new(&Scheme::HTTP, &addr.to_string().parse().unwrap()).unwrap();
    let keep = Keep {
        body: true,
        ..Keep::default()
    };
    // Past the default 64 KiB windows of stream and connection, three times in a row.
    for len in [300_000usize, 70_000, 1] {
        let mut bytes = format!("POST / HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {len}\r\n\r\n")
            .into_bytes();
        bytes.resize(bytes.len() + len, b'x');
        let request = h1::Request {
            bytes: &bytes,
            is_head: false,
            idempotent: false,
            h2: None,
        };
        let got = conn.exchange(request, &origin, keep).await.unwrap();
        assert_eq!(got.body, len.to_string());
    }
    drop(conn);
    server.abort();
}

/// Answers requests; once idle for 3 ms after one, sends GOAWAY and closes.
async fn goaway_when_idle(listener: TcpListener) {
    loop {
        let (socket, _) = listener.accept().await.unwrap();
        let mut conn = h2::server::handshake(socket).await.unwrap();
        let mut seen = 0;
        loop {
            let next = if seen > 0 {
                tokio::time::timeout(std::time::Duration::from_millis(3), conn.accept()).await
            } else {
                Ok(conn.accept().await)
            };
            let Ok(Some(Ok((_, mut respond)))) = next else {
                conn.abrupt_shutdown(h2::Reason::NO_ERROR);
                while conn.accept().await.is_some() {}
                break;
            };
            seen += 1;
            let mut stream = respond.send_response(HttpResponse::new(()), false).unwrap();
            stream.send_data(Bytes::from_static(b"ok"), true).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goaway_sent_while_the_user_waited_is_seen_before_the_next_request() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(goaway_when_idle(listener));
    let origin = Origin::new(&Scheme::HTTP, &addr.to_string().parse().unwrap()).unwrap();
    let bytes = format!("GET / HTTP/1.1\r\nhost: {addr}\r\n\r\n");
    let mut missed = 0;
    for _ in 0..100 {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut conn = handshake(Stream::Plain(tcp)).await.unwrap();
        let request = h1::Request {
            bytes: bytes.as_bytes(),
            is_head: false,
            idempotent: true,
            h2: None,
        };
        conn.exchange(request, &origin, Keep::default())
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        if conn.check_open() {
            missed += 1;
        }
    }
    server.abort();
    assert_eq!(missed, 0);
}
