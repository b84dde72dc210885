//! What the run's numbers look like outside.
//!
//! Everything here is a pure function of [`Stats`](hatchery_core::stats::Stats) (and a clock
//! reading passed in), so each format is tested byte for byte; only [`csv::CsvWriter`] touches
//! the disk.
//!
//! - [`console`]: Locust's headless console tables (stats, percentiles, errors).
//! - [`csv`]: Locust's four CSV files, byte-compatible so existing tooling reads them.
//! - [`json`]: Locust's `GET /stats/requests` document, also the `--json` final output.
//! - [`thresholds`]: pass/fail verdicts of a plan's thresholds.

pub mod console;
pub mod csv;
pub mod html;
pub mod json;
pub mod metrics;
pub mod thresholds;

use std::io;
use std::path::PathBuf;

/// A report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Names the file the user asked for, even when the temporary file beside it failed.
    #[error("cannot write {}: {error}", path.display())]
    Write { path: PathBuf, error: io::Error },
}

/// Milliseconds rounded to a whole number, for Locust's integer columns (median, percentiles).
fn whole_ms(us: u64) -> u64 {
    (us + 500) / 1000
}

/// Formats a float as Python's `repr` does, since Locust's CSV files hold `repr`s: the shortest
/// text that reads back as the same float, always with a `.0` or an exponent (`13.0`, `3.712`,
/// `1e-05`, `1e+16`).
fn py_float(x: f64) -> String {
    // Rust's `Debug` is the same shortest round-trip text, switching to exponents at the same
    // magnitudes; only the exponent is spelled differently (`1e-5`, `1e16`).
    let s = format!("{x:?}");
    match s.split_once('e') {
        None => s,
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
    }
}

/// A Locust time column that is a float once set but starts as the integer 0
/// (`min_response_time or 0`, `max_response_time = 0`).
fn py_float_or_zero(x: f64) -> String {
    if x == 0.0 {
        "0".to_owned()
    } else {
        py_float(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_formatted_as_python_repr() {
        let cases = [
            (13.0, "13.0"),
            (3.712, "3.712"),
            (0.0, "0.0"),
            (100.0 / 3.0, "33.333333333333336"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-10, "1.5e-10"),
            (1e16, "1e+16"),
            (123456789012345.6, "123456789012345.6"),
        ];
        for (x, want) in cases {
            assert_eq!(py_float(x), want, "{x}");
        }
    }

    #[test]
    fn whole_milliseconds_round_half_up() {
        assert_eq!(
            [499, 500, 1499, 1500].map(whole_ms),
            [0, 1, 1, 2],
            "microseconds to whole milliseconds"
        );
    }

    #[test]
    fn a_write_error_names_the_file_and_the_cause() {
        let e = Error::Write {
            path: "results/x_stats.csv".into(),
            error: io::Error::from_raw_os_error(28),
        };
        assert_eq!(
            e.to_string(),
            "cannot write results/x_stats.csv: No space left on device (os error 28)"
        );
    }
}
