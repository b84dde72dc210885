use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Framed {
    Length,
    /// Chunk sizes (the body is cut into these), an extension on each size line, trailers.
    Chunked(Vec<usize>, bool, Vec<(String, String)>),
    Close,
}

#[derive(Debug, Clone)]
struct Case {
    informational: Vec<u16>,
    status: u16,
    headers: Vec<(String, String)>,
    /// Index of a header whose value is folded over two lines (obs-fold).
    folded: Option<usize>,
    body: Vec<u8>,
    framed: Framed,
    is_head: bool,
    piece: usize,
}

impl Case {
    /// No body on the wire: a response to HEAD, a 204 or a 304.
    fn bodiless(&self) -> bool {
        self.is_head || matches!(self.status, 204 | 304)
    }

    fn wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for s in &self.informational {
            out.extend_from_slice(format!("HTTP/1.1 {s} Info\r\nx-info: 1\r\n\r\n").as_bytes());
        }
        out.extend_from_slice(format!("HTTP/1.1 {} Whatever\r\n", self.status).as_bytes());
        for (i, (k, v)) in self.headers.iter().enumerate() {
            if self.folded == Some(i) {
                out.extend_from_slice(format!("{k}: {v}\r\n  folded\r\n").as_bytes());
            } else {
                out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
            }
        }
        match &self.framed {
            Framed::Length => {
                out.extend_from_slice(format!("content-length: {}\r\n", self.body.len()).as_bytes())
            }
            Framed::Chunked(..) => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
            Framed::Close => out.extend_from_slice(b"connection: close\r\n"),
        }
        out.extend_from_slice(b"\r\n");
        if self.bodiless() {
            return out;
        }
        match &self.framed {
            Framed::Length | Framed::Close => out.extend_from_slice(&self.body),
            Framed::Chunked(sizes, ext, trailers) => {
                let mut rest = &self.body[..];
                for &size in sizes {
                    let size = size.min(rest.len());
                    if size == 0 {
                        continue;
                    }
                    let e = if *ext { ";name=\"v\"" } else { "" };
                    out.extend_from_slice(format!("{size:x}{e}\r\n").as_bytes());
                    out.extend_from_slice(&rest[..size]);
                    out.extend_from_slice(b"\r\n");
                    rest = &rest[size..];
                }
                if !rest.is_empty() {
                    out.extend_from_slice(format!("{:X}\r\n", rest.len()).as_bytes());
                    out.extend_from_slice(rest);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n");
                for (k, v) in trailers {
                    out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
            }
        }
        out
    }
}

fn header() -> impl Strategy<Value = (String, String)> {
    ("x-[a-z]{1,8}", "[!-~]{1,5}( [!-~]{1,5}){0,2}")
}

fn case() -> impl Strategy<Value = Case> {
    let framed = prop_oneof![
        Just(Framed::Length),
        (
            prop::collection::vec(1usize..40, 0..6),
            any::<bool>(),
            prop::collection::vec(header(), 0..3)
        )
            .prop_map(|(s, e, t)| Framed::Chunked(s, e, t)),
        Just(Framed::Close),
    ];
    (
        prop::collection::vec(prop_oneof![Just(100u16), Just(102), Just(103)], 0..3),
        prop_oneof![
            Just(200u16),
            Just(201),
            Just(204),
            Just(304),
            Just(404),
            Just(503)
        ],
        prop::collection::vec(header(), 0..5),
        any::<prop::sample::Index>(),
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..200),
        framed,
        any::<bool>(),
        1usize..64,
    )
        .prop_map(
            |(informational, status, headers, at, fold, body, framed, is_head, piece)| Case {
                folded: (fold && !headers.is_empty()).then(|| at.index(headers.len())),
                informational,
                status,
                headers,
                body,
                framed,
                is_head,
                piece,
            },
        )
}

/// The final head as httparse reads it (informational heads skipped): status and headers.
fn httparse_final(wire: &[u8]) -> (u16, Vec<(String, Vec<u8>)>) {
    let mut at = 0;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut headers);
        let n = match httparse::ParserConfig::default()
            .allow_obsolete_multiline_headers_in_responses(true)
            .parse_response(&mut r, &wire[at..])
            .unwrap()
        {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("partial"),
        };
        let code = r.code.unwrap();
        if (100..200).contains(&code) {
            at += n;
            continue;
        }
        let hs = r
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
            .collect();
        return (code, hs);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_responses_decode_as_httparse_reads_them_in_any_split(case in case()) {
        let wire = case.wire();
        let (head, body, used, reusable) = decode_all(&wire, case.is_head, case.piece).unwrap();
        let (status, headers) = httparse_final(&wire);
        prop_assert_eq!(head.status, status);
        for (name, value) in &headers {
            let ours: Vec<&[u8]> = head.headers.get_all(name.as_str()).iter().map(|v| v.as_bytes()).collect();
            let unfolded: Vec<u8> = value.iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }).collect();
            prop_assert!(ours.contains(&&unfolded[..]), "{} {:?} not in {:?}", name, unfolded, ours);
        }
        let expected: &[u8] = if case.bodiless() { b"" } else { &case.body };
        prop_assert_eq!(&body[..], expected);
        prop_assert_eq!(used, wire.len());
        let by_close = matches!(case.framed, Framed::Close);
        prop_assert_eq!(reusable, !by_close);
    }

    #[test]
    fn any_bytes_decode_the_same_in_any_split_without_panicking(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        piece in 1usize..32,
        is_head in any::<bool>(),
    ) {
        let whole = decode_all(&bytes, is_head, bytes.len());
        let split = decode_all(&bytes, is_head, piece);
        match (whole, split) {
            (Ok(a), Ok(b)) => {
                prop_assert_eq!((a.0.status, a.1, a.2, a.3), (b.0.status, b.1, b.2, b.3));
            }
            (Err(_), Err(_)) => {}
            (a, b) => prop_assert!(false, "{:?} vs {:?}", a.map(|r| r.0.status), b.map(|r| r.0.status)),
        }
    }
}

#[test]
fn an_oversized_head_is_refused_before_it_completes() {
    let mut head = b"HTTP/1.1 200 OK\r\nx-a: ".to_vec();
    head.resize(MAX_HEAD + 10, b'a');
    let mut d = Decoder::new(false, false);
    assert!(matches!(d.decode(&head), Err(Error::Invalid(_))));
}
