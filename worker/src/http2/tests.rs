//! Requests read back into header blocks.

use super::*;
use hpack::All;
use http::uri::Scheme;

fn origin() -> Origin {
    let authority: Authority = "127.0.0.1:8080".parse().unwrap();
    Origin::new(&Scheme::HTTP, &authority).unwrap()
}

fn request(bytes: &[u8]) -> h1::Request<'_> {
    h1::Request {
        bytes,
        is_head: false,
        idempotent: false,
        h2: None,
    }
}

fn fields(p: &Prepared) -> Vec<(String, String)> {
    let mut sink = All::default();
    hpack::Decoder::default()
        .decode(&p.block, usize::MAX, &mut sink)
        .unwrap();
    sink.0
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_request_line_and_host_become_pseudo_headers_and_connection_headers_stay_behind() {
    let bytes = b"POST /a?b=1 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nconnection: keep-alive\r\n\
        keep-alive: 5\r\nupgrade: h2c\r\nte: gzip\r\nX-A: 1\r\ncontent-length: 2\r\n\r\nhi";
    let p = parts(request(bytes), &origin()).unwrap();
    assert_eq!(
        fields(&p),
        pairs(&[
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", "127.0.0.1:8080"),
            (":path", "/a?b=1"),
            ("x-a", "1"),
            ("content-length", "2"),
        ])
    );
    assert_eq!(p.body, "hi");
}

#[test]
fn a_plans_host_is_the_authority_and_te_trailers_is_kept() {
    let bytes = b"GET / HTTP/1.1\r\nhost: example.test\r\nte: trailers\r\n\r\n";
    let p = parts(request(bytes), &origin()).unwrap();
    let f = fields(&p);
    assert_eq!(f[2], pairs(&[(":authority", "example.test")])[0]);
    assert_eq!(f[4], pairs(&[("te", "trailers")])[0]);
    assert!(p.body.is_empty());
}

#[test]
fn what_http2_cannot_carry_is_refused_by_name() {
    let cases: [(&[u8], &str); 3] = [
        (
            b"GET / HTTP/1.1\r\nhost: a b\r\n\r\n",
            "host is no authority",
        ),
        (b"G(T / HTTP/1.1\r\n\r\n", "bad method"),
        (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", "bad header line"),
    ];
    for (bytes, why) in cases {
        match parts(request(bytes), &origin()) {
            Err(Error::Request(w)) => assert_eq!(w, why),
            other => panic!("{other:?}"),
        }
    }
}
