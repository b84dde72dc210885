//! Human durations: `250ms`, `10s`, `1m30s`, `2h`, `1.5s`; a bare number means seconds.
//!
//! Parsing is exact (decimal digits are scaled as integers, not through `f64`), so
//! `parse(&format(d)) == Ok(d)` for every duration.

use std::time::Duration;

const NANOS_PER_UNIT: [(&str, u128); 4] = [
    ("ms", 1_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
];

/// Parses `250ms`, `10s`, `1m30s`, `2h`, `1.5s` or a bare number of seconds (`30`, `0.5`).
pub fn parse(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("a duration cannot be empty".to_string());
    }
    let invalid = || {
        format!(
            "invalid duration {s:?}: expected a number with a unit, like 250ms, 10s, 1m30s or 2h"
        )
    };
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return to_duration(decimal_nanos(text, 1_000_000_000).ok_or_else(invalid)?, s);
    }
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let (number, tail) = rest.split_at(digits);
        let (unit, nanos) = NANOS_PER_UNIT
            .iter()
            .find(|(u, _)| tail.starts_with(u))
            .ok_or_else(invalid)?;
        let part = decimal_nanos(number, *nanos).ok_or_else(invalid)?;
        total = total.checked_add(part).ok_or_else(|| too_long(s))?;
        rest = &tail[unit.len()..];
    }
    to_duration(total, s)
}

/// The shortest text [`parse`] reads back as `d`: `1m30s`, `250ms`, `1.5ms`, `0s`.
pub fn format(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_string();
    }
    let mut out = String::new();
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let nanos = d.subsec_nanos();
    for (value, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if value > 0 {
            out.push_str(&value.to_string());
            out.push_str(unit);
        }
    }
    if nanos > 0 {
        let (ms, sub) = (nanos / 1_000_000, nanos % 1_000_000);
        out.push_str(&ms.to_string());
        if sub > 0 {
            let frac = format!("{sub:06}");
            out.push('.');
            out.push_str(frac.trim_end_matches('0'));
        }
        out.push_str("ms");
    }
    out
}

/// `number` (digits with at most one `.`) times `unit` nanoseconds, truncated to whole nanoseconds.
fn decimal_nanos(number: &str, unit: u128) -> Option<u128> {
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return None;
    }
    let whole = if int.is_empty() {
        0
    } else {
        int.parse::<u128>().ok()?.checked_mul(unit)?
    };
    // Digits beyond the nanosecond cannot change the result; dropping them avoids overflow.
    let frac = &frac[..frac.len().min(24)];
    let mut scale: u128 = 1;
    let mut frac_value: u128 = 0;
    for b in frac.bytes() {
        frac_value = frac_value * 10 + u128::from(b - b'0');
        scale *= 10;
    }
    whole.checked_add(frac_value.checked_mul(unit)? / scale)
}

fn to_duration(nanos: u128, s: &str) -> Result<Duration, String> {
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| too_long(s))?;
    // The remainder of a division by 10^9 always fits.
    let sub = (nanos % 1_000_000_000) as u32;
    Ok(Duration::new(secs, sub))
}

fn too_long(s: &str) -> String {
    format!("duration {s:?} is too long")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn units_and_combinations_are_read() {
        assert_eq!(parse("250ms"), Ok(ms(250)));
        assert_eq!(parse("10s"), Ok(ms(10_000)));
        assert_eq!(parse("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse("2h"), Ok(ms(7_200_000)));
        assert_eq!(parse("1h2m3s4ms"), Ok(ms(3_723_004)));
        assert_eq!(parse(" 0s "), Ok(Duration::ZERO));
    }

    #[test]
    fn a_bare_number_means_seconds() {
        assert_eq!(parse("30"), Ok(ms(30_000)));
        assert_eq!(parse("0.5"), Ok(ms(500)));
    }

    #[test]
    fn decimals_are_exact() {
        assert_eq!(parse("1.5s"), Ok(ms(1500)));
        assert_eq!(parse("0.1s"), Ok(ms(100)));
        assert_eq!(parse("1.0005ms"), Ok(Duration::from_nanos(1_000_500)));
        assert_eq!(parse(".5s"), Ok(ms(500)));
    }

    #[test]
    fn malformed_durations_are_rejected() {
        for bad in ["", "s", "10x", "-1s", "1..5s", "1 s", "ms10", "1.s5", "."] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(parse("99999999999999999999999h").is_err());
    }

    #[test]
    fn format_writes_the_shortest_form() {
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(ms(250)), "250ms");
        assert_eq!(format(ms(90_000)), "1m30s");
        assert_eq!(format(ms(7_200_000)), "2h");
        assert_eq!(format(ms(3_723_004)), "1h2m3s4ms");
        assert_eq!(format(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(format(Duration::from_nanos(1)), "0.000001ms");
    }

    proptest! {
        #[test]
        fn format_then_parse_is_the_identity(secs in 0u64..10_000_000, nanos in 0u32..1_000_000_000) {
            let d = Duration::new(secs, nanos);
            prop_assert_eq!(parse(&format(d)), Ok(d));
        }

        #[test]
        fn parse_never_panics(s in ".{0,24}") {
            let _ = parse(&s);
        }
    }
}
