use hatchery_core::histogram::Histogram;
use hatchery_core::stats::Sample;

use super::*;

fn sample(
    response_time_us: u64,
    content_length: u64,
    at_unix_s: u64,
    error: Option<&str>,
) -> Sample<'_> {
    Sample {
        corrected_response_time_us: None,
        response_time_us,
        content_length,
        at_unix_s,
        error,
    }
}

const ERROR: &str = "connection refused, \"retry\"";

/// GET /a: 1 ms and 3 ms; POST /b: one 2.5 ms failure; GET /z: seen before a reset, no requests.
fn known_stats() -> Stats {
    let mut stats = Stats::new();
    stats.record(Method::Get, "/z", sample(9, 9, 90, None));
    stats.reset();
    stats.record(Method::Get, "/a", sample(1000, 10, 100, None));
    stats.record(Method::Post, "/b", sample(2500, 0, 101, Some(ERROR)));
    stats.record(Method::Get, "/a", sample(3000, 20, 101, None));
    stats
}

#[test]
fn headers_are_byte_for_byte_locusts() {
    assert_eq!(
        STATS_HEADER,
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
    );
    assert_eq!(
        history_header(),
        "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,Total Min Response Time,Total Max Response Time,Total Average Content Size\r\n"
    );
    assert_eq!(
        failures_csv(&Stats::new()),
        "Method,Name,Error,Occurrences,First Seen,Last Seen\r\n"
    );
    assert_eq!(
        exceptions_csv(&Stats::new()),
        "Count,Message,Traceback,Nodes\r\n"
    );
}

#[test]
fn the_stats_file_lists_rows_by_name_then_aggregated() {
    let want = [
        STATS_HEADER,
        "GET,/a,2,0,1,2.0,1.0,3.0,15.0,1.0,0.0,1,3,3,3,3,3,3,3,3,3,3",
        "POST,/b,1,1,3,2.5,2.5,2.5,0.0,0.5,0.5,3,3,3,3,3,3,3,3,3,3,3",
        "GET,/z,0,0,0,0.0,0,0,0,0.0,0.0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A",
        ",Aggregated,3,1,3,2.1666666666666665,1.0,3.0,10.0,1.5,0.5,3,3,3,3,3,3,3,3,3,3,3",
        "",
    ]
    .join("\r\n");
    assert_eq!(stats_csv(&known_stats(), 103, 2.0), want);
}

#[test]
fn the_stats_file_of_an_empty_run_has_only_aggregated() {
    let want = format!(
        "{STATS_HEADER}\r\n,Aggregated,0,0,0,0.0,0,0,0,0.0,0.0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A\r\n"
    );
    assert_eq!(stats_csv(&Stats::new(), 0, 0.0), want);
}

#[test]
fn the_failures_file_quotes_what_needs_quoting() {
    assert_eq!(
        failures_csv(&known_stats()),
        format!("{FAILURES_HEADER}\r\nPOST,/b,\"connection refused, \"\"retry\"\"\",1,101,101\r\n")
    );
}

#[test]
fn the_exceptions_file_lists_the_nodes_that_raised() {
    let mut stats = Stats::new();
    stats.record_exception("boom", "w2");
    stats.record_exception("boom", "w1");
    assert_eq!(
        exceptions_csv(&stats),
        format!("{EXCEPTIONS_HEADER}\r\n2,boom,,\"w1, w2\"\r\n")
    );
}

fn window_of_first_second() -> Window {
    let mut h = Histogram::new();
    h.record(1000);
    let mut w = Window::new();
    w.push(100, &h);
    w
}

#[test]
fn a_history_row_shows_current_rates_and_percentiles_with_cumulative_totals() {
    let rows = history_rows(&known_stats(), &window_of_first_second(), 5, 103, false);
    assert_eq!(
        rows,
        "103,5,,Aggregated,1.500000,0.500000,1,1,1,1,1,1,1,1,1,1,1,3,1,3,2.1666666666666665,1.0,3.0,10.0\r\n"
    );
}

#[test]
fn full_history_adds_every_row_before_aggregated() {
    let rows = history_rows(&known_stats(), &window_of_first_second(), 5, 103, true);
    let want = [
        "103,5,GET,/a,1.000000,0.000000,1,3,3,3,3,3,3,3,3,3,3,2,0,1,2.0,1.0,3.0,15.0",
        "103,5,POST,/b,1.000000,1.000000,3,3,3,3,3,3,3,3,3,3,3,1,1,3,2.5,2.5,2.5,0.0",
        "103,5,GET,/z,0.000000,0.000000,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,0,0,0,0.0,0,0,0",
        "103,5,,Aggregated,1.500000,0.500000,1,1,1,1,1,1,1,1,1,1,1,3,1,3,2.1666666666666665,1.0,3.0,10.0",
        "",
    ]
    .join("\r\n");
    assert_eq!(rows, want);
}

#[test]
fn history_of_an_idle_run_has_na_percentiles() {
    let rows = history_rows(&Stats::new(), &Window::new(), 0, 7, false);
    assert_eq!(
        rows,
        "7,0,,Aggregated,0.000000,0.000000,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,0,0,0,0.0,0,0,0\r\n"
    );
}

/// A fresh folder under the system's temporary folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("hatchery-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_writer_replaces_snapshots_and_starts_history_afresh() {
    let dir = TempDir::new("csv-writer");
    let stats = known_stats();
    let window = window_of_first_second();
    let mut writer = CsvWriter::new(dir.0.join("results/run"), false);
    writer.write_snapshot(&stats, 103, 2.0).unwrap();
    writer.write_snapshot(&stats, 103, 2.0).unwrap();
    let read =
        |suffix: &str| fs::read_to_string(dir.0.join(format!("results/run{suffix}"))).unwrap();
    assert_eq!(read("_stats.csv"), stats_csv(&stats, 103, 2.0));
    assert_eq!(read("_failures.csv"), failures_csv(&stats));
    assert_eq!(read("_exceptions.csv"), exceptions_csv(&stats));
    assert!(!dir.0.join("results/run_stats.csv.tmp").exists());

    writer.append_history(&stats, &window, 5, 103).unwrap();
    writer.append_history(&stats, &window, 5, 104).unwrap();
    let history = read("_stats_history.csv");
    assert!(history.starts_with(&history_header()));
    assert_eq!(history.lines().count(), 3);

    let mut rerun = CsvWriter::new(dir.0.join("results/run"), false);
    rerun.append_history(&stats, &window, 5, 200).unwrap();
    assert_eq!(read("_stats_history.csv").lines().count(), 2);
}

#[test]
fn a_failed_write_names_the_file() {
    let dir = TempDir::new("csv-error");
    fs::create_dir_all(&dir.0).unwrap();
    fs::write(dir.0.join("file"), "").unwrap();
    let writer = CsvWriter::new(dir.0.join("file/run"), false);
    let err = writer
        .write_snapshot(&Stats::new(), 1, 1.0)
        .unwrap_err()
        .to_string();
    let path = dir.0.join("file/run_stats.csv");
    assert!(
        err.starts_with(&format!("cannot write {}: ", path.display())),
        "{err}"
    );
}
