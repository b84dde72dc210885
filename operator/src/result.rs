//! The result of a finished test, kept in a ConfigMap `<name>-result` owned by the LoadTest, so
//! the master's statistics outlive its pods (the TTL's scale-down, a lost node): Locust's stats,
//! failures and exceptions CSVs, the `/stats/requests` JSON and the HTML report, within what a
//! ConfigMap may hold. Packing is a pure function, tested here; the controller does the reads.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use crate::resources::Blueprint;

/// The most bytes of data the ConfigMap gets: a ConfigMap holds at most 1 MiB, and the rest is
/// room for its metadata and the notes.
pub const MAX_BYTES: usize = 900 * 1024;

/// What is read from the master, as (key, path), in the order it is kept when space runs out:
/// the summary and the statistics first, the report (the largest, and rebuilt from them) last.
pub const PARTS: [(&str, &str); 5] = [
    ("summary.json", "/stats/requests"),
    ("stats.csv", "/stats/requests/csv"),
    ("failures.csv", "/stats/failures/csv"),
    ("exceptions.csv", "/exceptions/csv"),
    ("report.html", "/stats/report"),
];

/// The key that says what was cut or could not be read (only when something was).
pub const NOTES: &str = "notes.txt";

/// One part as read from the master: its text, or why it could not be read.
pub type Read = Result<String, String>;

/// The ConfigMap's data: each part in [`PARTS`] order while it fits in `max` bytes. A CSV that
/// does not fit is cut after its last whole line that does (its header and first rows are
/// still a CSV); JSON and HTML are kept whole or left out (cut, they would not parse). Every
/// cut, left-out or unreadable part is named in [`NOTES`].
pub fn pack(parts: Vec<(&str, Read)>, max: usize) -> BTreeMap<String, String> {
    let mut data = BTreeMap::new();
    let mut notes = Vec::new();
    let mut left = max;
    for (key, read) in parts {
        let text = match read {
            Ok(t) => t,
            Err(why) => {
                notes.push(format!("{key}: not read from the master: {why}"));
                continue;
            }
        };
        if text.len() <= left {
            left -= text.len();
            data.insert(key.to_string(), text);
            continue;
        }
        let whole = text.len();
        let kept = if key.ends_with(".csv") {
            text[..floor_char(&text, left)]
                .rfind('\n')
                .map_or(0, |i| i + 1)
        } else {
            0
        };
        if kept == 0 {
            notes.push(format!(
                "{key}: left out: {whole} bytes do not fit in the {max} bytes a result holds"
            ));
            continue;
        }
        left -= kept;
        notes.push(format!(
            "{key}: cut to its first {kept} of {whole} bytes (whole lines) to fit in {max} bytes"
        ));
        data.insert(key.to_string(), text[..kept].to_string());
    }
    if !notes.is_empty() {
        notes.push(
            "The master served every part whole until ttlSecondsAfterFinished scaled it down."
                .to_string(),
        );
        data.insert(NOTES.to_string(), notes.join("\n") + "\n");
    }
    data
}

/// The largest index at most `i` that is a character boundary of `s`.
fn floor_char(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The ConfigMap `<name>-result`, owned by the LoadTest, labelled like its other children.
pub fn config_map(bp: &Blueprint<'_>, data: BTreeMap<String, String>) -> ConfigMap {
    ConfigMap {
        metadata: bp.result_meta(),
        data: Some(data),
        ..ConfigMap::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Read {
        Ok(s.to_string())
    }

    #[test]
    fn everything_that_fits_is_kept_whole_without_a_note() {
        let data = pack(
            vec![("summary.json", ok("{}")), ("stats.csv", ok("a,b\n1,2\n"))],
            100,
        );
        assert_eq!(data.len(), 2);
        assert_eq!(data["stats.csv"], "a,b\n1,2\n");
        assert!(!data.contains_key(NOTES));
    }

    #[test]
    fn a_csv_is_cut_at_a_line_and_html_is_left_out_both_named_in_the_notes() {
        let csv = "Type,Name\nGET,/a\nGET,/b\nGET,/c\n";
        let data = pack(
            vec![
                ("summary.json", ok("{\"x\":1}")),
                ("stats.csv", ok(csv)),
                ("report.html", ok("<html>...</html>")),
                ("failures.csv", Err("503 Service Unavailable".to_string())),
            ],
            7 + 20,
        );
        assert_eq!(data["summary.json"], "{\"x\":1}");
        assert_eq!(
            data["stats.csv"], "Type,Name\nGET,/a\n",
            "whole lines within 20 bytes"
        );
        assert!(!data.contains_key("report.html"));
        let notes = &data[NOTES];
        assert!(
            notes.contains("stats.csv: cut to its first 17 of 31 bytes"),
            "{notes}"
        );
        assert!(notes.contains("report.html: left out: 16 bytes"), "{notes}");
        assert!(
            notes.contains("failures.csv: not read from the master: 503"),
            "{notes}"
        );
        let total: usize = data
            .iter()
            .filter(|(k, _)| *k != NOTES)
            .map(|(_, v)| v.len())
            .sum();
        assert!(total <= 27);
    }

    #[test]
    fn a_cut_never_splits_a_character_and_a_first_line_too_long_leaves_the_csv_out() {
        let data = pack(vec![("stats.csv", ok("é,ü\nxx\n"))], 6);
        assert_eq!(data["stats.csv"], "é,ü\n");
        let data = pack(vec![("stats.csv", ok("ééééé\n"))], 3);
        assert!(!data.contains_key("stats.csv"));
        assert!(data[NOTES].contains("stats.csv: left out"));
    }
}
