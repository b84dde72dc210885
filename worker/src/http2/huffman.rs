//! HPACK's Huffman code (RFC 7541 Appendix B): decoding through a table of 4-bit steps built
//! once from the code itself, so the only data typed in is the RFC's table of codes.

use std::sync::OnceLock;

/// The code of each byte value (right-aligned), RFC 7541 Appendix B; EOS is [`EOS`].
const ENCODE_CODES: [u32; 256] = [
    0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7, 0xfffffe8,
    0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec, 0xfffffed,
    0xfffffee, 0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3, 0xffffff4,
    0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb, 0x14, 0x3f8,
    0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa, 0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18,
    0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb,
    0x3fc, 0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, 0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0,
    0x1ffc, 0x3ffc, 0x22, 0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25, 0x26, 0x27, 0x6, 0x74, 0x75,
    0x28, 0x29, 0x2a, 0x7, 0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78, 0x79, 0x7a, 0x7b, 0x7ffe,
    0x7fc, 0x3ffd, 0x1ffd, 0xffffffc, 0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4,
    0x3fffd5, 0x7fffd9, 0x3fffd6, 0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb,
    0x7fffdf, 0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3,
    0x7fffe4, 0x1fffdc, 0x3fffd8, 0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef, 0x3fffda,
    0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8, 0x7fffe9, 0x1fffde, 0x7fffea, 0x3fffdd,
    0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec, 0x1fffe0, 0x1fffe1, 0x3fffe0,
    0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef, 0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4,
    0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1, 0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7,
    0x7ffff2, 0x3fffe8, 0x1ffffec, 0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf,
    0x3ffffe5, 0xfffff1, 0x1ffffed, 0x7fff2, 0x1fffe3, 0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7,
    0x7ffffe2, 0xfffff2, 0x1fffe4, 0x1fffe5, 0x3ffffe8, 0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4,
    0x7ffffe5, 0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7, 0x1fffe8, 0x7ffff3,
    0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4, 0x3ffffeb,
    0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea, 0x7ffffeb,
    0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee,
];

const ENCODE_CODE_LENGTHS: [u8; 256] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
];

const _: [(); 1024] = [(); std::mem::size_of::<[u32; 256]>()];
const _: [(); 256] = [(); std::mem::size_of::<[u8; 256]>()];

// A branch has bit 15 set and its table index in bits 8..=14.
// A leaf stores the number of consumed bits in its high byte and the decoded byte in its low byte.

/// EOS: 30 one bits. Never decoded; its prefix pads the last byte.
const EOS: (u32, u8) = (0x3fff_ffff, 30);

/// A Huffman string that is not one: EOS inside, or padding longer than 7 bits or not all
/// ones (RFC 7541 5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid Huffman code")]
pub struct Invalid;

/// One 4-bit step from a node of the code tree: the node it ends at, and the byte it completed
/// (a code is 5 bits or more, so a step completes at most one).
#[derive(Debug, Clone, Copy, Default)]
struct Step {
    next: u8,
    byte: u8,
    flags: u8,
}

const EMITS: u8 = 1;
const FAILS: u8 = 2;

/// The steps from each of the tree's 256 inner nodes, and whether input may end at each.
struct Table {
    steps: Vec<[Step; 16]>,
    may_end: Vec<bool>,
}

/// A child in the code tree: an inner node's index, or a leaf (`LEAF | symbol`).
const LEAF: u16 = 0x8000;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(build)
}

fn build() -> Table {
    // children[node][bit]; 0 is "none yet" (the root is never anyone's child).
    let mut children: Vec<[u16; 2]> = vec![[0, 0]];
    let codes = ENCODE_CODES
        .iter()
        .zip(ENCODE_CODE_LENGTHS)
        .map(|(&c, l)| (c, l))
        .chain(std::iter::once(EOS));
    for (symbol, (code, len)) in codes.enumerate() {
        let mut node = 0usize;
        for i in (0..len).rev() {
            let bit = ((code >> i) & 1) as usize;
            if i == 0 {
                children[node][bit] = LEAF | symbol as u16;
            } else {
                if children[node][bit] == 0 {
                    children.push([0, 0]);
                    children[node][bit] = (children.len() - 1) as u16;
                }
                node = usize::from(children[node][bit]);
            }
        }
    }
    let steps = (0..children.len())
        .map(|start| {
            let mut row = [Step::default(); 16];
            for (nibble, step) in row.iter_mut().enumerate() {
                let mut node = start;
                for i in (0..4).rev() {
                    let child = children[node][(nibble >> i) & 1];
                    if child & LEAF == 0 {
                        node = usize::from(child);
                        continue;
                    }
                    let symbol = child & !LEAF;
                    if symbol == 256 {
                        step.flags |= FAILS;
                    } else {
                        step.flags |= EMITS;
                        step.byte = symbol as u8;
                    }
                    node = 0;
                }
                step.next = node as u8;
            }
            row
        })
        .collect();
    // Input may end at the root or after up to 7 one bits from it (a prefix of EOS).
    let mut may_end = vec![false; children.len()];
    let mut node = 0usize;
    may_end[0] = true;
    for _ in 0..7 {
        node = usize::from(children[node][1]);
        may_end[node] = true;
    }
    Table { steps, may_end }
}

/// Decodes `src`, handing each byte to `emit`.
#[inline]
fn walk(src: &[u8], mut emit: impl FnMut(u8)) -> Result<(), Invalid> {
    let t = table();
    let mut node = 0usize;
    for &b in src {
        for nibble in [b >> 4, b & 0x0f] {
            let step = t.steps[node][usize::from(nibble)];
            if step.flags & FAILS != 0 {
                return Err(Invalid);
            }
            if step.flags & EMITS != 0 {
                emit(step.byte);
            }
            node = usize::from(step.next);
        }
    }
    if t.may_end[node] {
        Ok(())
    } else {
        Err(Invalid)
    }
}

/// Appends the decoding of `src` to `out`.
pub fn decode(src: &[u8], out: &mut Vec<u8>) -> Result<(), Invalid> {
    // At most 8 bytes for 5 bits: a code is 5 bits or more.
    out.reserve(src.len() * 8 / 5);
    walk(src, |b| out.push(b))
}

/// How many bytes `src` decodes to, without keeping them.
pub fn decoded_len(src: &[u8]) -> Result<usize, Invalid> {
    let mut n = 0;
    walk(src, |_| n += 1)?;
    Ok(n)
}

/// Appends the Huffman encoding of `src` to `out` (padded with EOS's leading ones).
pub fn encode(src: &[u8], out: &mut Vec<u8>) {
    let mut bits: u64 = 0;
    let mut count = 0u32;
    for &b in src {
        let len = u32::from(ENCODE_CODE_LENGTHS[usize::from(b)]);
        bits = (bits << len) | u64::from(ENCODE_CODES[usize::from(b)]);
        count += len;
        while count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    if count > 0 {
        let pad = 8 - count;
        out.push(((bits << pad) | ((1 << pad) - 1)) as u8);
    }
}

/// The length of [`encode`]'s output for `src`.
pub fn encoded_len(src: &[u8]) -> usize {
    let bits: usize = src
        .iter()
        .map(|&b| usize::from(ENCODE_CODE_LENGTHS[usize::from(b)]))
        .sum();
    bits.div_ceil(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_string_decodes_back_to_itself() {
        let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        for len in [0, 1, 2, 3, 7, 100, all.len()] {
            let mut enc = Vec::new();
            encode(&all[..len], &mut enc);
            assert_eq!(enc.len(), encoded_len(&all[..len]));
            let mut dec = Vec::new();
            decode(&enc, &mut dec).unwrap();
            assert_eq!(dec, &all[..len]);
            assert_eq!(decoded_len(&enc), Ok(len));
        }
    }

    #[test]
    fn the_rfc_example_www_example_com_decodes() {
        let enc = [
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        let mut dec = Vec::new();
        decode(&enc, &mut dec).unwrap();
        assert_eq!(dec, b"www.example.com");
    }

    #[test]
    fn eos_padding_past_seven_bits_or_not_ones_is_refused() {
        // "0" is 00000 (5 bits): padded with 111 it is one byte.
        assert_eq!(decoded_len(&[0b0000_0111]), Ok(1));
        assert_eq!(decoded_len(&[0b0000_0110]), Err(Invalid));
        // A whole byte of padding after a complete code.
        assert_eq!(decoded_len(&[0b0000_0111, 0xff]), Err(Invalid));
        // EOS itself (30 ones), then padding.
        assert_eq!(decoded_len(&[0xff, 0xff, 0xff, 0xff]), Err(Invalid));
    }
}
