//! Locust's headless console tables: the periodic stats table, and at the end the response
//! time percentiles and the error report.
//!
//! The column layout is Locust's, so people who read Locust's output read ours. Two
//! differences: times below 100 ms keep their decimals (a loopback target answers in
//! microseconds, and Locust's whole milliseconds would show a wall of zeros), and the name column
//! is as wide as the longest name instead of cutting names off.

use std::fmt::Write as _;
use std::time::Duration;

use hatchery_core::stats::{Entry, Stats, PERCENTILES};
use hatchery_core::Method;

const TYPE_WIDTH: usize = 8;
/// Keeps a table of short names from looking cramped.
const MIN_NAME_WIDTH: usize = 24;
const AGGREGATED: &str = "Aggregated";

fn name_width(stats: &Stats) -> usize {
    stats
        .entries()
        .map(|(_, name, _)| name.chars().count())
        .chain([AGGREGATED.len(), MIN_NAME_WIDTH])
        .max()
        .unwrap_or(MIN_NAME_WIDTH)
}

/// `GET ` in a [`TYPE_WIDTH`] column; Aggregated has none.
fn type_column(method: Option<Method>) -> String {
    method.map_or(String::new(), |m| format!("{m} "))
}

/// The stats table with current rates (the last 10 seconds before `now_unix_s`).
pub fn stats_table(stats: &Stats, now_unix_s: u64) -> String {
    let w = name_width(stats);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<TYPE_WIDTH$} {:<w$} {:>7} {:>12} |{:>7} {:>7} {:>7}{:>7} | {:>7} {:>11}",
        "Type", "Name", "# reqs", "# fails", "Avg", "Min", "Max", "Med", "req/s", "failures/s"
    );
    let separator = format!(
        "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}\n",
        "-".repeat(TYPE_WIDTH),
        "-".repeat(w),
        "-".repeat(7),
        "-".repeat(13),
        "-".repeat(7),
        "-".repeat(7),
        "-".repeat(7),
        "-".repeat(7),
        "-".repeat(8),
        "-".repeat(11)
    );
    out.push_str(&separator);
    for (method, name, e) in stats.entries() {
        stats_row(&mut out, Some(method), name, e, w, now_unix_s);
    }
    out.push_str(&separator);
    stats_row(&mut out, None, AGGREGATED, stats.total(), w, now_unix_s);
    out
}

fn stats_row(out: &mut String, method: Option<Method>, name: &str, e: &Entry, w: usize, now: u64) {
    let fails = format!("{}({:.2}%)", e.num_failures, e.fail_ratio() * 100.0);
    let median = if e.num_requests == 0 {
        "0".to_string()
    } else {
        ms_us(e.histogram.quantile(0.5))
    };
    let _ = writeln!(
        out,
        "{:<TYPE_WIDTH$} {:<w$} {:>7} {:>12} |{:>7} {:>7} {:>7}{:>7} | {:>7.2} {:>11.2}",
        type_column(method),
        name,
        e.num_requests,
        fails,
        ms(e.avg_response_time_ms()),
        ms_us(e.histogram.min()),
        ms_us(e.histogram.max()),
        median,
        e.current_rps(now),
        e.current_fail_per_sec(now),
    );
}

/// "Response time percentiles (approximated)": rows with requests, then Aggregated.
pub fn percentiles_table(stats: &Stats) -> String {
    let w = name_width(stats);
    let mut out = String::from("Response time percentiles (ms, within 0.1%)\n");
    let _ = write!(out, "{:<TYPE_WIDTH$} {:<w$}", "Type", "Name");
    for (i, q) in PERCENTILES.iter().enumerate() {
        let width = if i == 0 { 8 } else { 6 };
        let _ = write!(out, " {:>width$}", percent_label(*q));
    }
    out.push_str(" # reqs\n");
    let separator = format!(
        "{}|{}|{}|{}\n",
        "-".repeat(TYPE_WIDTH),
        "-".repeat(w),
        "-".repeat(8),
        vec!["-".repeat(6); PERCENTILES.len()].join("|")
    );
    out.push_str(&separator);
    for (method, name, e) in stats.entries().filter(|(_, _, e)| e.num_requests > 0) {
        percentile_row(&mut out, Some(method), name, e, w);
    }
    out.push_str(&separator);
    if stats.total().num_requests > 0 {
        percentile_row(&mut out, None, AGGREGATED, stats.total(), w);
    }
    out.push_str(&intended_note(stats));
    out
}

/// One line on the response times from the intended send time, when paced users made any:
/// the table keeps Locust's columns, and the rows' own numbers are in `--json` and the HTML
/// report.
fn intended_note(stats: &Stats) -> String {
    let Some(h) = stats.total().corrected.as_deref().filter(|h| !h.is_empty()) else {
        return String::new();
    };
    let [p50, p95, p99] = [0.5, 0.95, 0.99].map(|q| ms_us(h.quantile(q)));
    format!(
        "From the intended send time (ms; paced users' {} requests, coordinated omission \
         corrected): 50% {p50}, 95% {p95}, 99% {p99}, 100% {}; per row in --json and --html\n",
        h.count(),
        ms_us(h.max()),
    )
}

fn percentile_row(out: &mut String, method: Option<Method>, name: &str, e: &Entry, w: usize) {
    let _ = write!(
        out,
        "{:<TYPE_WIDTH$} {:<w$}",
        method.map_or("", Method::as_str),
        name
    );
    for (i, us) in e.histogram.quantiles(&PERCENTILES).into_iter().enumerate() {
        let width = if i == 0 { 8 } else { 6 };
        let _ = write!(out, " {:>width$}", ms_us(us));
    }
    let _ = writeln!(out, " {:>6}", e.num_requests);
}

/// Milliseconds with two decimals below 10 ms, one below 100 ms, none above.
fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn ms_us(us: u64) -> String {
    ms(us as f64 / 1000.0)
}

/// `0.999` as `99.9%` (Locust's `get_readable_percentiles`).
fn percent_label(q: f64) -> String {
    let pct = format!("{:.6}", q * 100.0);
    format!("{}%", pct.trim_end_matches('0').trim_end_matches('.'))
}

/// "Error report": occurrences and `METHOD name: error`; empty when nothing failed.
pub fn errors_table(stats: &Stats) -> String {
    let lines: Vec<(u64, String)> = stats
        .errors()
        .map(|e| {
            (
                e.stat.occurrences,
                format!("{} {}: {}", e.method, e.name, e.error),
            )
        })
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let w = lines
        .iter()
        .map(|(_, l)| l.chars().count())
        .chain([MIN_NAME_WIDTH])
        .max()
        .unwrap_or(MIN_NAME_WIDTH);
    let separator = format!("{}|{}\n", "-".repeat(18), "-".repeat(w + 1));
    let mut out = format!("Error report\n{:<18} Error\n{separator}", "# occurrences");
    for (n, line) in &lines {
        let _ = writeln!(out, "{n:<18} {line}");
    }
    out.push_str(&separator);
    out
}

/// The summary's line about requests abandoned in flight, `None` when there were none. They are
/// in no row (as in Locust), so this line is what makes the table add up to what was sent.
pub fn abandoned_note(stats: &Stats, stop_timeout: Duration) -> Option<String> {
    let n = stats.abandoned_requests();
    if n == 0 {
        return None;
    }
    let requests = if n == 1 {
        "request was"
    } else {
        "requests were"
    };
    let hint = if stop_timeout.is_zero() {
        "give users time to finish them with --stop-timeout (e.g. -s 10s)".to_owned()
    } else {
        format!(
            "a --stop-timeout longer than {} s lets users finish them",
            stop_timeout.as_secs_f64()
        )
    };
    Some(format!(
        "{n} {requests} abandoned in flight when users stopped (sent, not in the table above); {hint}"
    ))
}

#[cfg(test)]
mod tests {
    use hatchery_core::stats::Sample;

    use super::*;

    fn stats() -> Stats {
        let mut s = Stats::new();
        for (rt, at, error) in [
            (1500, 100, None),
            (3700, 101, None),
            (12_345, 101, Some("HTTP 500")),
        ] {
            let sample = Sample {
                corrected_response_time_us: None,
                response_time_us: rt,
                content_length: 0,
                at_unix_s: at,
                error,
            };
            s.record(Method::Get, "/checkout", sample);
        }
        s
    }

    #[test]
    fn the_stats_table_matches_locusts_layout() {
        let want = "\
Type     Name                      # reqs      # fails |    Avg     Min     Max    Med |   req/s  failures/s
--------|------------------------|-------|-------------|-------|-------|-------|-------|--------|-----------
GET      /checkout                      3    1(33.33%) |   5.85    1.50    12.3   3.70 |    1.50        0.50
--------|------------------------|-------|-------------|-------|-------|-------|-------|--------|-----------
         Aggregated                     3    1(33.33%) |   5.85    1.50    12.3   3.70 |    1.50        0.50
";
        assert_eq!(stats_table(&stats(), 103), want);
    }

    #[test]
    fn the_name_column_widens_to_fit_long_names() {
        let mut s = Stats::new();
        let long = "/a/rather/long/path/that/locust/would/have/cut/off";
        let sample = Sample {
            corrected_response_time_us: None,
            response_time_us: 1,
            content_length: 0,
            at_unix_s: 1,
            error: None,
        };
        s.record(Method::Post, long, sample);
        let table = stats_table(&s, 1);
        assert!(table.contains(&format!("POST     {long} ")), "{table}");
    }

    #[test]
    fn the_percentiles_table_lists_rows_with_requests() {
        let want = "\
Response time percentiles (ms, within 0.1%)
Type     Name                          50%    66%    75%    80%    90%    95%    98%    99%  99.9% 99.99%   100% # reqs
--------|------------------------|--------|------|------|------|------|------|------|------|------|------|------|------
GET      /checkout                    3.70   3.70   12.3   12.3   12.3   12.3   12.3   12.3   12.3   12.3   12.3      3
--------|------------------------|--------|------|------|------|------|------|------|------|------|------|------|------
         Aggregated                   3.70   3.70   12.3   12.3   12.3   12.3   12.3   12.3   12.3   12.3   12.3      3
";
        assert_eq!(percentiles_table(&stats()), want);
    }

    #[test]
    fn paced_requests_add_a_line_on_times_from_the_intended_send_time() {
        let mut s = stats();
        let sample = Sample {
            corrected_response_time_us: Some(250_000),
            response_time_us: 50_000,
            content_length: 0,
            at_unix_s: 101,
            error: None,
        };
        s.record(Method::Get, "/paced", sample);
        let table = percentiles_table(&s);
        assert!(
            table.ends_with(
                "From the intended send time (ms; paced users' 1 requests, coordinated omission \
             corrected): 50% 250, 95% 250, 99% 250, 100% 250; per row in --json and --html\n"
            ),
            "{table}"
        );
        assert!(!percentiles_table(&stats()).contains("intended"));
    }

    #[test]
    fn the_error_report_lists_each_error_once_with_its_count() {
        let want = "\
Error report
# occurrences      Error
------------------|-------------------------
1                  GET /checkout: HTTP 500
------------------|-------------------------
";
        assert_eq!(errors_table(&stats()), want);
        assert_eq!(errors_table(&Stats::new()), "");
    }

    #[test]
    fn the_summary_counts_abandoned_requests_and_suggests_a_stop_timeout() {
        let mut s = stats();
        assert_eq!(abandoned_note(&s, Duration::ZERO), None);
        s.abandon(6);
        assert_eq!(
            abandoned_note(&s, Duration::ZERO).as_deref(),
            Some("6 requests were abandoned in flight when users stopped (sent, not in the table above); give users time to finish them with --stop-timeout (e.g. -s 10s)")
        );
        s.reset();
        s.abandon(1);
        assert_eq!(
            abandoned_note(&s, Duration::from_millis(1500)).as_deref(),
            Some("1 request was abandoned in flight when users stopped (sent, not in the table above); a --stop-timeout longer than 1.5 s lets users finish them")
        );
    }
}
