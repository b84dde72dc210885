//! The worker's HTTP/2 client on arbitrary bytes, as a server could send them: Huffman codes
//! decode to what was encoded, any HPACK block decodes or fails without a panic, and any frames
//! after the server's SETTINGS are taken in by the connection's state without a panic, with
//! what it answers bounded by what it was sent.

#![no_main]

use hatchery_worker::h1::{Wanted, MAX_HEAD};
use hatchery_worker::http2::frame::{self, Parsed};
use hatchery_worker::http2::hpack::{Decoder, Sink};
use hatchery_worker::http2::huffman;
use hatchery_worker::http2::state::State;
use libfuzzer_sys::fuzz_target;

struct Count(usize);

impl Sink for Count {
    fn wants(&mut self, _: &[u8]) -> bool {
        true
    }
    fn field(&mut self, name: &[u8], value: &[u8]) {
        self.0 += name.len() + value.len();
    }
}

fuzz_target!(|data: &[u8]| {
    let mut coded = Vec::new();
    huffman::encode(data, &mut coded);
    assert_eq!(coded.len(), huffman::encoded_len(data));
    let mut decoded = Vec::new();
    huffman::decode(&coded, &mut decoded).expect("an encoding decodes");
    assert_eq!(decoded, data);

    let mut count = Count(0);
    if let Ok(size) = Decoder::default().decode(data, MAX_HEAD, &mut count) {
        assert!(count.0 <= size.min(MAX_HEAD));
    }

    let mut state = State::default();
    let mut preface = Vec::new();
    frame::put_settings(&mut preface, &[]);
    let Ok(Parsed::Frame(settings, _)) = frame::parse(&preface) else {
        panic!("SETTINGS does not parse");
    };
    state.on_frame(settings).expect("SETTINGS is taken");
    state.out.clear();
    // A HEAD request's response now and then (its content-length is not DATA's).
    let is_head = data.first().is_some_and(|b| b & 1 == 1);
    let _ = state.open(Wanted::All, true, 1 << 16, is_head);
    let mut rest = data;
    while let Ok(Parsed::Frame(f, n)) = frame::parse(rest) {
        rest = &rest[n..];
        if state.on_frame(f).is_err() {
            break;
        }
        if state.rx.end.is_some() {
            let _ = state.open(Wanted::Session, false, 0, false);
        }
    }
    assert!(state.out.len() <= 2 * data.len() + 64, "answers out of bounds");
});
