//! The worker's HTTP/1.1 response decoder on arbitrary bytes, as a server could send them: no
//! panic, no allocation beyond the input's own size, and the same outcome however the bytes are
//! split across reads (the first byte picks the split and whether the request was HEAD).

#![no_main]

use hatchery_worker::h1::decode_all;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let is_head = control & 0x80 != 0;
    let piece = usize::from(control & 0x7f).max(1);
    let whole = decode_all(input, is_head, input.len());
    let split = decode_all(input, is_head, piece);
    match (whole, split) {
        (Ok((h1, b1, u1, r1)), Ok((h2, b2, u2, r2))) => {
            assert_eq!((h1.status, &b1, u1, r1), (h2.status, &b2, u2, r2));
            assert!(u1 <= input.len());
            assert!(b1.len() <= input.len());
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!(
            "whole and split disagree: {:?} / {:?}",
            a.map(|r| r.0.status),
            b.map(|r| r.0.status)
        ),
    }
});
