//! RFC 7541 Appendix C's examples, and the encoder read back by the decoder.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

fn fields(d: &mut Decoder, block: &str) -> Vec<(String, String)> {
    let mut sink = All::default();
    d.decode(&hex(block), usize::MAX, &mut sink).unwrap();
    sink.0
}

fn table(d: &Decoder) -> (Vec<(String, String)>, usize) {
    let entries = d
        .table
        .entries
        .iter()
        .map(|e| {
            (
                String::from_utf8(e.name().to_vec()).unwrap(),
                String::from_utf8(e.value().to_vec()).unwrap(),
            )
        })
        .collect();
    (entries, d.table.size)
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// C.3 (plain) and C.4 (Huffman): three requests on one connection.
#[test]
fn the_rfc_request_examples_decode_with_and_without_huffman() {
    let blocks = [
        (
            "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
            "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        ),
        (
            "8286 84be 5808 6e6f 2d63 6163 6865",
            "8286 84be 5886 a8eb 1064 9cbf",
        ),
        (
            "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
            "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
        ),
    ];
    let base = [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
    ];
    let mut second = base.to_vec();
    second.push(("cache-control", "no-cache"));
    let third = [
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/index.html"),
        (":authority", "www.example.com"),
        ("custom-key", "custom-value"),
    ];
    let want = [pairs(&base), pairs(&second), pairs(&third)];
    let tables = [
        (pairs(&[(":authority", "www.example.com")]), 57),
        (
            pairs(&[
                ("cache-control", "no-cache"),
                (":authority", "www.example.com"),
            ]),
            110,
        ),
        (
            pairs(&[
                ("custom-key", "custom-value"),
                ("cache-control", "no-cache"),
                (":authority", "www.example.com"),
            ]),
            164,
        ),
    ];
    for huffman in [false, true] {
        let mut d = Decoder::default();
        for (i, (plain, coded)) in blocks.iter().enumerate() {
            let block = if huffman { coded } else { plain };
            assert_eq!(fields(&mut d, block), want[i], "{huffman} {i}");
            assert_eq!(table(&d), tables[i], "{huffman} {i}");
        }
    }
}

/// C.5 (plain) and C.6 (Huffman): three responses with a 256-byte table, so entries are
/// evicted.
#[test]
fn the_rfc_response_examples_decode_and_evict_with_and_without_huffman() {
    let blocks = [
        (
            "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 \
             2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 \
             6c65 2e63 6f6d",
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 \
             2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        ),
        ("4803 3330 37c1 c0bf", "4883 640e ffc1 c0bf"),
        (
            "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d \
             54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 \
             5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e \
             3d31",
            "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab \
             77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f \
             9587 3160 65c0 03ed 4ee5 b106 3d50 07",
        ),
    ];
    let date1 = "Mon, 21 Oct 2013 20:13:21 GMT";
    let date2 = "Mon, 21 Oct 2013 20:13:22 GMT";
    let url = "https://www.example.com";
    let cookie = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
    let want = [
        pairs(&[
            (":status", "302"),
            ("cache-control", "private"),
            ("date", date1),
            ("location", url),
        ]),
        pairs(&[
            (":status", "307"),
            ("cache-control", "private"),
            ("date", date1),
            ("location", url),
        ]),
        pairs(&[
            (":status", "200"),
            ("cache-control", "private"),
            ("date", date2),
            ("location", url),
            ("content-encoding", "gzip"),
            ("set-cookie", cookie),
        ]),
    ];
    let tables = [
        (
            pairs(&[
                ("location", url),
                ("date", date1),
                ("cache-control", "private"),
                (":status", "302"),
            ]),
            222,
        ),
        (
            pairs(&[
                (":status", "307"),
                ("location", url),
                ("date", date1),
                ("cache-control", "private"),
            ]),
            222,
        ),
        (
            pairs(&[
                ("set-cookie", cookie),
                ("content-encoding", "gzip"),
                ("date", date2),
            ]),
            215,
        ),
    ];
    for huffman in [false, true] {
        let mut d = Decoder::default();
        d.table.max = 256;
        for (i, (plain, coded)) in blocks.iter().enumerate() {
            let block = if huffman { coded } else { plain };
            assert_eq!(fields(&mut d, block), want[i], "{huffman} {i}");
            assert_eq!(table(&d), tables[i], "{huffman} {i}");
        }
    }
}

/// Wants only `set-cookie`, as a session does.
#[derive(Default)]
struct Cookies(Vec<Vec<u8>>);

impl Sink for Cookies {
    fn wants(&mut self, name: &[u8]) -> bool {
        name == b"set-cookie"
    }
    fn field(&mut self, _: &[u8], value: &[u8]) {
        self.0.push(value.to_vec());
    }
}

#[test]
fn fields_nobody_wants_are_counted_and_the_table_still_follows_the_server() {
    let blocks = [
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 \
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab \
         77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f \
         9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ];
    let mut d = Decoder::default();
    d.table.max = 256;
    let mut sink = Cookies::default();
    let mut sizes = Vec::new();
    for b in blocks {
        sizes.push(d.decode(&hex(b), usize::MAX, &mut sink).unwrap());
    }
    assert_eq!(
        sink.0,
        [b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"]
    );
    // :status 302 (42) + cache-control (52) + date (65) + location (63).
    assert_eq!(sizes[0], 222);
    assert_eq!(table(&d).1, 215);
}

#[test]
fn past_the_limit_nothing_reaches_the_sink_but_the_block_is_decoded_to_its_end() {
    let mut d = Decoder::default();
    let mut sink = All::default();
    let block = hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d");
    let size = d.decode(&block, 90, &mut sink).unwrap();
    assert_eq!(size, 42 + 43 + 38 + 57);
    assert_eq!(sink.0.len(), 2);
    assert_eq!(table(&d).1, 57, "the authority was indexed all the same");
}

#[test]
fn broken_blocks_are_errors() {
    let mut d = Decoder::default();
    let mut sink = All::default();
    let mut decode = |b: &[u8]| d.decode(b, usize::MAX, &mut sink);
    assert_eq!(decode(&[0x80]), Err(Error::Index(0)));
    assert_eq!(decode(&[0xbe]), Err(Error::Index(62)));
    assert_eq!(decode(&[0x41, 0x05, b'a']), Err(Error::Truncated));
    assert_eq!(
        decode(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
        Err(Error::Integer)
    );
    assert_eq!(decode(&[0x3f, 0xe2, 0x1f]), Err(Error::TableSize(4097)));
    assert_eq!(decode(&[0x82, 0x20]), Err(Error::LateTableSize));
    assert_eq!(
        decode(&[0x41, 0x81, 0x00]),
        Err(Error::Huffman(huffman::Invalid))
    );
    assert_eq!(decode(&[0x20, 0x82]), Ok(42));
}

#[test]
fn encoded_fields_decode_to_themselves() {
    let fields = [
        (":method", "GET"),
        (":method", "PATCH"),
        (":scheme", "https"),
        (":authority", "127.0.0.1:8080"),
        (":path", "/a?b=1"),
        ("accept-encoding", "gzip, deflate"),
        ("user-agent", "hatchery"),
        ("x-long", &"v".repeat(300)),
    ];
    let mut block = Vec::new();
    for (n, v) in fields {
        encode_field(&mut block, n.as_bytes(), v.as_bytes());
    }
    let mut d = Decoder::default();
    let mut sink = All::default();
    d.decode(&block, usize::MAX, &mut sink).unwrap();
    assert_eq!(sink.0, pairs(&fields));
    assert_eq!(table(&d).1, 0, "nothing is indexed");
    // Whole static entries take one byte.
    let mut get = Vec::new();
    encode_field(&mut get, b":method", b"GET");
    assert_eq!(get, [0x82]);
}
