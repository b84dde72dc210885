//! Locust's CSV files (`--csv PREFIX`): `PREFIX_stats.csv`, `PREFIX_stats_history.csv`,
//! `PREFIX_failures.csv` and `PREFIX_exceptions.csv`.
//!
//! Byte-compatible with what Locust writes through Python's `csv` module, since dashboards and
//! scripts parse them: CRLF line ends, minimal quoting, floats as Python `repr`s, whole
//! milliseconds for the median and percentiles, `N/A` percentiles for rows without requests.

use std::fmt::Display;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use hatchery_core::stats::{Entry, Stats, Window, PERCENTILES};
use hatchery_core::Method;

use super::{py_float, py_float_or_zero, whole_ms, Error};

pub const STATS_HEADER: &str = "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%";
pub const HISTORY_HEADER: &str = "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,Total Min Response Time,Total Max Response Time,Total Average Content Size";
pub const FAILURES_HEADER: &str = "Method,Name,Error,Occurrences,First Seen,Last Seen";
pub const EXCEPTIONS_HEADER: &str = "Count,Message,Traceback,Nodes";

const AGGREGATED: &str = "Aggregated";

/// Rows being written, as Python's `csv.writer` with the default (`excel`) dialect writes them.
#[derive(Default)]
struct Csv {
    out: String,
    row_started: bool,
}

impl Csv {
    fn with_header(header: &str) -> Csv {
        Csv {
            out: format!("{header}\r\n"),
            row_started: false,
        }
    }

    fn field(&mut self, value: impl Display) -> &mut Csv {
        if self.row_started {
            self.out.push(',');
        }
        self.row_started = true;
        let value = value.to_string();
        if value.contains([',', '"', '\r', '\n']) {
            self.out.push('"');
            self.out.push_str(&value.replace('"', "\"\""));
            self.out.push('"');
        } else {
            self.out.push_str(&value);
        }
        self
    }

    fn end_row(&mut self) {
        self.out.push_str("\r\n");
        self.row_started = false;
    }

    /// Locust's columns from the median to the content size, shared by both stats files.
    fn totals(&mut self, e: &Entry) -> &mut Csv {
        let none = e.num_requests == 0;
        self.field(if none {
            0
        } else {
            whole_ms(e.histogram.quantile(0.5))
        })
        .field(py_float(e.avg_response_time_ms()))
        .field(py_float_or_zero(e.min_response_time_ms()))
        .field(py_float_or_zero(e.max_response_time_ms()))
        .field(if none {
            "0".to_owned()
        } else {
            py_float(e.avg_content_length())
        })
    }

    /// The percentile columns in whole milliseconds, or `N/A` when `values` is `None`.
    fn percentiles(&mut self, values: Option<Vec<u64>>) -> &mut Csv {
        match values {
            Some(us) => us.into_iter().for_each(|v| {
                self.field(whole_ms(v));
            }),
            None => PERCENTILES.iter().for_each(|_| {
                self.field("N/A");
            }),
        }
        self
    }
}

fn method_column(method: Option<Method>) -> &'static str {
    method.map_or("", Method::as_str)
}

fn cumulative_percentiles(e: &Entry) -> Option<Vec<u64>> {
    (e.num_requests > 0).then(|| e.histogram.quantiles(&PERCENTILES))
}

/// Each row and Aggregated: `(method, name, entry)`, Aggregated with no method.
fn rows_and_aggregated(stats: &Stats) -> impl Iterator<Item = (Option<Method>, &str, &Entry)> {
    stats
        .entries()
        .map(|(m, n, e)| (Some(m), n, e))
        .chain(std::iter::once((None, AGGREGATED, stats.total())))
}

/// `PREFIX_stats.csv`: one row per (method, name) sorted by name then method, then Aggregated;
/// rates are over the run's `run_seconds`. The file has no current (windowed) columns, so
/// `_now_unix_s` is unused; it keeps the signature in step with [`history_rows`].
pub fn stats_csv(stats: &Stats, _now_unix_s: u64, run_seconds: f64) -> String {
    let mut csv = Csv::with_header(STATS_HEADER);
    for (method, name, e) in rows_and_aggregated(stats) {
        csv.field(method_column(method))
            .field(name)
            .field(e.num_requests)
            .field(e.num_failures)
            .totals(e)
            .field(py_float(e.total_rps(run_seconds)))
            .field(py_float(e.total_fail_per_sec(run_seconds)))
            .percentiles(cumulative_percentiles(e))
            .end_row();
    }
    csv.out
}

/// `PREFIX_failures.csv`, sorted by name, method and error; first and last seen as Unix seconds.
pub fn failures_csv(stats: &Stats) -> String {
    let mut csv = Csv::with_header(FAILURES_HEADER);
    for e in stats.errors() {
        csv.field(e.method)
            .field(e.name)
            .field(e.error)
            .field(e.stat.occurrences)
            .field(e.stat.first_seen_s)
            .field(e.stat.last_seen_s)
            .end_row();
    }
    csv.out
}

/// `PREFIX_exceptions.csv`; there are no tracebacks to show, so that column is empty.
pub fn exceptions_csv(stats: &Stats) -> String {
    let mut csv = Csv::with_header(EXCEPTIONS_HEADER);
    for (message, e) in stats.exceptions() {
        let nodes: Vec<&str> = e.nodes.iter().map(String::as_str).collect();
        csv.field(e.count)
            .field(message)
            .field("")
            .field(nodes.join(", "))
            .end_row();
    }
    csv.out
}

/// The first line of `PREFIX_stats_history.csv`.
pub fn history_header() -> String {
    format!("{HISTORY_HEADER}\r\n")
}

/// The rows `PREFIX_stats_history.csv` gains at `now_unix_s`: Aggregated, preceded by every row
/// when `full_history`. Aggregated's percentiles are the current ones (the last seconds, from
/// `window`); per-row percentiles are cumulative, since only Aggregated keeps a window.
pub fn history_rows(
    stats: &Stats,
    window: &Window,
    user_count: u32,
    now_unix_s: u64,
    full_history: bool,
) -> String {
    let mut csv = Csv::default();
    let rows = full_history
        .then(|| stats.entries().map(|(m, n, e)| (Some(m), n, e)))
        .into_iter()
        .flatten();
    let total = stats.total();
    let current = (total.num_requests > 0).then(|| {
        window
            .quantiles(now_unix_s, &PERCENTILES)
            .unwrap_or_else(|| vec![0; PERCENTILES.len()])
    });
    for (method, name, e) in rows {
        history_row(&mut csv, now_unix_s, user_count, method, name, e)
            .percentiles(cumulative_percentiles(e))
            .field(e.num_requests)
            .field(e.num_failures)
            .totals(e)
            .end_row();
    }
    history_row(&mut csv, now_unix_s, user_count, None, AGGREGATED, total)
        .percentiles(current)
        .field(total.num_requests)
        .field(total.num_failures)
        .totals(total)
        .end_row();
    csv.out
}

fn history_row<'a>(
    csv: &'a mut Csv,
    now_unix_s: u64,
    user_count: u32,
    method: Option<Method>,
    name: &str,
    e: &Entry,
) -> &'a mut Csv {
    // Locust formats these two with `{:2f}`: six decimals.
    csv.field(now_unix_s)
        .field(user_count)
        .field(method_column(method))
        .field(name)
        .field(format!("{:.6}", e.current_rps(now_unix_s)))
        .field(format!("{:.6}", e.current_fail_per_sec(now_unix_s)))
}

/// Writes the CSV files under a prefix (`results/run` gives `results/run_stats.csv`, ...).
#[derive(Debug, Clone)]
pub struct CsvWriter {
    pub prefix: PathBuf,
    /// Every row in the history file, not only Aggregated (`--csv-full-history`).
    pub full_history: bool,
    history_started: bool,
}

impl CsvWriter {
    pub fn new(prefix: impl Into<PathBuf>, full_history: bool) -> CsvWriter {
        CsvWriter {
            prefix: prefix.into(),
            full_history,
            history_started: false,
        }
    }

    /// `PREFIX` followed by `suffix`, e.g. `_stats.csv`.
    pub fn path(&self, suffix: &str) -> PathBuf {
        let mut p = self.prefix.clone().into_os_string();
        p.push(suffix);
        PathBuf::from(p)
    }

    /// Replaces the stats, failures and exceptions files. Each is written beside its final name
    /// and renamed over it, so a reader (or a crash) never sees half a file.
    pub fn write_snapshot(
        &self,
        stats: &Stats,
        now_unix_s: u64,
        run_seconds: f64,
    ) -> Result<(), Error> {
        let stats_file = stats_csv(stats, now_unix_s, run_seconds);
        write_atomic(&self.path("_stats.csv"), &stats_file)?;
        write_atomic(&self.path("_failures.csv"), &failures_csv(stats))?;
        write_atomic(&self.path("_exceptions.csv"), &exceptions_csv(stats))
    }

    /// Appends to the history file; the first call of this writer starts the file afresh with
    /// its header (as Locust does), so a previous run's rows never mix in.
    pub fn append_history(
        &mut self,
        stats: &Stats,
        window: &Window,
        user_count: u32,
        now_unix_s: u64,
    ) -> Result<(), Error> {
        let path = self.path("_stats_history.csv");
        let mut text = if self.history_started {
            String::new()
        } else {
            history_header()
        };
        text.push_str(&history_rows(
            stats,
            window,
            user_count,
            now_unix_s,
            self.full_history,
        ));
        let first = !self.history_started;
        let written = create_parent(&path).and_then(|()| {
            let mut file = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(first)
                .append(!first)
                .open(&path)?;
            let before = file.metadata()?.len();
            file.write_all(text.as_bytes()).inspect_err(|_| {
                // A full disk takes part of the rows: cut them off, so the file holds whole
                // rows only and the next append starts on a row of its own.
                let _ = file.set_len(before);
            })
        });
        written.map_err(|error| Error::Write { path, error })?;
        self.history_started = true;
        Ok(())
    }
}

fn create_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => fs::create_dir_all(dir),
        _ => Ok(()),
    }
}

fn write_atomic(path: &Path, contents: &str) -> Result<(), Error> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = create_parent(path)
        .and_then(|()| fs::write(&tmp, contents))
        .and_then(|()| fs::rename(&tmp, path));
    written.map_err(|error| {
        let _ = fs::remove_file(&tmp);
        Error::Write {
            path: path.to_owned(),
            error,
        }
    })
}

#[cfg(test)]
mod tests;
