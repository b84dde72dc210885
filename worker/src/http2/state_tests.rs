//! The state driven by frames as a server would send them.

use super::*;
use crate::http2::frame::{parse, put_data, put_headers, put_settings, Parsed};
use crate::http2::hpack::encode_field;

/// A state past the server's preface, with stream 1 open keeping every header and the body.
fn open() -> State {
    let mut s = State::default();
    let mut f = Vec::new();
    put_settings(&mut f, &[]);
    feed(&mut s, &f).unwrap();
    s.out.clear();
    assert_eq!(s.open(Wanted::All, true, 0, false), Some(1));
    s
}

fn feed(s: &mut State, mut bytes: &[u8]) -> Result<(), Violation> {
    while let Parsed::Frame(f, n) = parse(bytes)? {
        s.on_frame(f)?;
        bytes = &bytes[n..];
    }
    assert!(bytes.is_empty(), "a partial frame left");
    Ok(())
}

fn head(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (n, v) in fields {
        encode_field(&mut block, n.as_bytes(), v.as_bytes());
    }
    block
}

/// The frames `s` has queued to send, as (type, stream) pairs.
fn sent(s: &State) -> Vec<(u8, u32)> {
    let mut rest = &s.out[..];
    let mut got = Vec::new();
    while rest.len() >= frame::HEAD_LEN {
        let len = usize::from(rest[1]) << 8 | usize::from(rest[2]);
        let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]);
        got.push((rest[3], stream));
        rest = &rest[frame::HEAD_LEN + len..];
    }
    got
}

#[test]
fn a_response_in_headers_and_data_frames_is_kept_whole() {
    let mut s = open();
    let mut f = Vec::new();
    let block = head(&[
        (":status", "200"),
        ("content-encoding", "gzip"),
        ("x-a", "1"),
    ]);
    put_headers(&mut f, 1, &block, false, 16_384);
    put_data(&mut f, 1, b"hel", false);
    put_data(&mut f, 1, b"lo", true);
    feed(&mut s, &f).unwrap();
    assert!(matches!(s.rx.end, Some(Ok(()))));
    assert_eq!(s.rx.status, 200);
    assert_eq!(s.rx.coding, Coding::Gzip);
    assert_eq!(s.rx.headers["x-a"], "1");
    assert_eq!(s.rx.body.as_deref(), Some(&b"hello"[..]));
    assert_eq!(s.rx.tail, *b"ello");
}

#[test]
fn the_server_preface_must_be_settings_and_settings_and_pings_are_acknowledged() {
    let mut s = State::default();
    let mut f = Vec::new();
    frame::put_window_update(&mut f, 0, 10);
    assert!(feed(&mut s, &f).is_err());
    let mut s = State::default();
    f.clear();
    put_settings(&mut f, &[(frame::MAX_FRAME_SIZE, 20_000)]);
    f.extend_from_slice(&[0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    feed(&mut s, &f).unwrap();
    assert_eq!(s.max_frame, 20_000);
    assert_eq!(sent(&s), [(4, 0), (6, 0)]);
    assert!(s.out.ends_with(&[1, 2, 3, 4, 5, 6, 7, 8]));
}

#[test]
fn a_header_list_past_the_bound_resets_the_stream_and_the_connection_goes_on() {
    let mut s = open();
    let big = "a".repeat(1000);
    let fields: Vec<(String, &str)> = (0..70).map(|i| (format!("x-{i}"), big.as_str())).collect();
    let mut block = head(&[(":status", "200")]);
    for (n, v) in &fields {
        encode_field(&mut block, n.as_bytes(), v.as_bytes());
    }
    let mut f = Vec::new();
    put_headers(&mut f, 1, &block, true, 16_384);
    feed(&mut s, &f).unwrap();
    assert!(matches!(s.rx.end, Some(Err(Failure::Refused(TOO_LARGE)))));
    assert_eq!(sent(&s), [(3, 1)]);
    assert_eq!(s.open(Wanted::None, false, 0, false), Some(3));
}

#[test]
fn a_header_block_past_its_bound_in_continuations_is_a_connection_error() {
    let mut s = open();
    let mut f = Vec::new();
    put_headers(&mut f, 1, &vec![0x82; MAX_BLOCK + 1], false, 16_384);
    assert_eq!(
        feed(&mut s, &f).unwrap_err().reason,
        Reason::ENHANCE_YOUR_CALM
    );
}

#[test]
fn a_goaway_fails_a_stream_it_left_out_and_no_stream_opens_after_it() {
    let mut s = open();
    let mut f = Vec::new();
    frame::put_goaway(&mut f, 0, Reason::NO_ERROR);
    feed(&mut s, &f).unwrap();
    assert!(matches!(
        s.rx.end,
        Some(Err(Failure::NotProcessed(Reason::NO_ERROR)))
    ));
    assert!(!s.can_open());
    assert_eq!(s.open(Wanted::None, false, 0, false), None);
}

#[test]
fn a_reset_fails_the_stream_by_its_reason_and_push_is_a_connection_error() {
    let mut s = open();
    let mut f = Vec::new();
    frame::put_reset(&mut f, 1, Reason(2));
    feed(&mut s, &f).unwrap();
    assert!(matches!(s.rx.end, Some(Err(Failure::Reset(Reason(2))))));
    let push = [0, 0, 4, 5, 4, 0, 0, 0, 1, 0, 0, 0, 2];
    assert_eq!(
        feed(&mut s, &push).unwrap_err().reason,
        Reason::PROTOCOL_ERROR
    );
}

#[test]
fn windows_are_given_back_when_half_of_them_is_used() {
    let mut s = open();
    let mut f = Vec::new();
    put_headers(&mut f, 1, &head(&[(":status", "200")]), false, 16_384);
    let chunk = vec![0u8; frame::MAX_FRAME];
    for _ in 0..(WINDOW as usize / 2 / frame::MAX_FRAME) {
        put_data(&mut f, 1, &chunk, false);
    }
    s.rx.body = None;
    feed(&mut s, &f).unwrap();
    assert_eq!(sent(&s), [(8, 0), (8, 1)]);
    // The body is taken in as it comes, so the server never has more than a window out.
    assert_eq!(s.conn_recv, i64::from(WINDOW));
    assert_eq!(s.stream_recv, i64::from(WINDOW));
}

#[test]
fn frames_of_a_stream_given_up_are_decoded_for_the_table_and_dropped() {
    let mut s = open();
    s.abandon();
    assert_eq!(sent(&s), [(3, 1)]);
    let mut f = Vec::new();
    // Literal with incremental indexing: the table must follow it.
    let block = [0x48, 0x03, b'2', b'0', b'0'];
    put_headers(&mut f, 1, &block, false, 16_384);
    put_data(&mut f, 1, b"late", true);
    feed(&mut s, &f).unwrap();
    assert!(s.rx.end.is_none());
    assert_eq!(s.open(Wanted::None, false, 0, false), Some(3));
    f.clear();
    // Index 62: the entry the abandoned stream's block added.
    put_headers(&mut f, 3, &[0xbe], true, 16_384);
    feed(&mut s, &f).unwrap();
    assert!(matches!(s.rx.end, Some(Ok(()))));
    assert_eq!(s.rx.status, 200);
}

#[test]
fn a_request_body_waits_for_the_servers_windows() {
    let mut s = open();
    assert_eq!(s.send_capacity(), 16_384);
    s.sent(65_535);
    assert_eq!(s.send_capacity(), 0);
    let mut f = Vec::new();
    frame::put_window_update(&mut f, 0, 100);
    feed(&mut s, &f).unwrap();
    assert_eq!(s.send_capacity(), 0, "the stream's window is still empty");
    f.clear();
    frame::put_window_update(&mut f, 1, 50);
    feed(&mut s, &f).unwrap();
    assert_eq!(s.send_capacity(), 50);
}

#[test]
fn a_body_that_is_not_its_content_length_fails_the_request_but_a_head_or_204_need_not_have_one() {
    let answer = |is_head: bool, status: &str, length: &str, data: &[&[u8]]| {
        let mut s = State::default();
        let mut f = Vec::new();
        put_settings(&mut f, &[]);
        feed(&mut s, &f).unwrap();
        assert_eq!(s.open(Wanted::None, false, 0, is_head), Some(1));
        let mut f = Vec::new();
        let block = head(&[(":status", status), ("content-length", length)]);
        put_headers(&mut f, 1, &block, data.is_empty(), 16_384);
        for (i, d) in data.iter().enumerate() {
            put_data(&mut f, 1, d, i + 1 == data.len());
        }
        feed(&mut s, &f).unwrap();
        s.rx.end.take().expect("the stream ended")
    };
    assert!(answer(false, "200", "5", &[b"hel", b"lo"]).is_ok());
    let short = answer(false, "200", "5", &[b"hel"]).unwrap_err();
    assert!(format!("{short:?}").contains("content-length"), "{short:?}");
    assert!(
        answer(false, "200", "2", &[b"hel"]).is_err(),
        "longer than announced"
    );
    assert!(answer(false, "200", "5", &[]).is_err(), "no DATA at all");
    assert!(
        answer(false, "200", "x5", &[b"hel", b"lo"]).is_err(),
        "not a number"
    );
    // No content by definition: the length is what a GET would get.
    assert!(answer(true, "200", "5", &[]).is_ok());
    assert!(answer(false, "204", "5", &[]).is_ok());
    assert!(answer(false, "304", "5", &[]).is_ok());
}
