//! A plan's thresholds checked against the final statistics: one verdict each, and the table
//! printed at the end of a run (the exit code follows from the verdicts).

use std::borrow::Cow;
use std::fmt::Write as _;

use hatchery_core::plan::{Metric, Threshold};
use hatchery_core::stats::{Entry, Stats};
use serde_json::{json, Value};

/// The outcome of one threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The rule as a person reads it, e.g. `p95 of /checkout <= 800 ms`; says so when nothing
    /// it names ran.
    pub description: String,
    pub metric: Metric,
    /// The measured value in the metric's unit (ms, requests/s, ratio); `None` when no request
    /// in its scope ran, which fails the threshold (a rule about nothing proves nothing).
    pub actual: Option<f64>,
    pub passed: bool,
}

/// One verdict per threshold, in order. `run_seconds` is the run's length, for rates.
pub fn evaluate(thresholds: &[Threshold], stats: &Stats, run_seconds: f64) -> Vec<Verdict> {
    thresholds
        .iter()
        .map(|t| verdict(t, stats, run_seconds))
        .collect()
}

fn verdict(t: &Threshold, stats: &Stats, run_seconds: f64) -> Verdict {
    let scope = scope(stats, t.name.as_deref());
    let mut description = describe(t);
    let actual = (scope.num_requests > 0).then(|| measure(t.metric, &scope, run_seconds));
    let passed = match actual {
        Some(v) => t.max.is_none_or(|max| v <= max) && t.min.is_none_or(|min| v >= min),
        None => {
            match &t.name {
                Some(name) => {
                    let _ = write!(description, " (no request named {name} ran)");
                }
                None => description.push_str(" (no request ran)"),
            }
            false
        }
    };
    Verdict {
        description,
        metric: t.metric,
        actual,
        passed,
    }
}

/// Each threshold's result as the API reports it, live and at the end: `metric` (as the plan
/// writes it), `name` (`null`: Aggregated), `limit` (`min`/`max` in the metric's unit), `value`
/// (`null` while nothing in its scope ran), `passed` and `description`.
pub fn verdicts_json(thresholds: &[Threshold], stats: &Stats, run_seconds: f64) -> Value {
    let list = thresholds
        .iter()
        .map(|t| {
            let v = verdict(t, stats, run_seconds);
            json!({
                "metric": metric_name(t.metric),
                "name": t.name,
                "limit": {"min": t.min, "max": t.max},
                "value": v.actual,
                "measured": v.actual.map(|a| measured(t.metric, a)),
                "passed": v.passed,
                "description": v.description,
            })
        })
        .collect();
    Value::Array(list)
}

/// The metric as a plan names it: `fail_ratio`, `rps`, `avg`, `max`, `p95`, `p99.9`.
pub fn metric_name(metric: Metric) -> String {
    match metric {
        Metric::FailRatio => "fail_ratio".to_owned(),
        Metric::Rps => "rps".to_owned(),
        Metric::Percentile(q) => format!("p{}", number(q * 100.0)),
        Metric::AvgResponseTime => "avg".to_owned(),
        Metric::MaxResponseTime => "max".to_owned(),
    }
}

/// Aggregated, or every method's row of one name taken together.
fn scope<'a>(stats: &'a Stats, name: Option<&str>) -> Cow<'a, Entry> {
    let Some(name) = name else {
        return Cow::Borrowed(stats.total());
    };
    let mut rows = stats
        .entries()
        .filter(|(_, n, _)| *n == name)
        .map(|(_, _, e)| e);
    let Some(first) = rows.next() else {
        return Cow::Owned(Entry::default());
    };
    match rows.next() {
        None => Cow::Borrowed(first),
        Some(second) => {
            let mut all = first.clone();
            all.merge(second);
            rows.for_each(|e| all.merge(e));
            Cow::Owned(all)
        }
    }
}

fn measure(metric: Metric, e: &Entry, run_seconds: f64) -> f64 {
    match metric {
        Metric::FailRatio => e.fail_ratio(),
        Metric::Rps => e.total_rps(run_seconds),
        Metric::Percentile(q) => e.percentile_ms(q),
        Metric::AvgResponseTime => e.avg_response_time_ms(),
        Metric::MaxResponseTime => e.max_response_time_ms(),
    }
}

fn describe(t: &Threshold) -> String {
    let mut s = match t.metric {
        Metric::FailRatio => "fail ratio".to_owned(),
        Metric::AvgResponseTime => "avg response time".to_owned(),
        Metric::MaxResponseTime => "max response time".to_owned(),
        other => metric_name(other),
    };
    if let Some(name) = &t.name {
        let _ = write!(s, " of {name}");
    }
    let bounds = [(">=", t.min), ("<=", t.max)];
    let mut bounds = bounds
        .iter()
        .filter_map(|(op, v)| v.map(|v| (op, v)))
        .peekable();
    while let Some((op, v)) = bounds.next() {
        let _ = write!(s, " {op} {}", bound(t.metric, v));
        if bounds.peek().is_some() {
            s.push_str(" and");
        }
    }
    s
}

/// A limit in the unit people write it in: `800 ms`, `100/s`, `1%`.
fn bound(metric: Metric, v: f64) -> String {
    match metric {
        Metric::FailRatio => format!("{}%", number(v * 100.0)),
        Metric::Rps => format!("{}/s", number(v)),
        _ => format!("{} ms", number(v)),
    }
}

/// A measured value, to two decimals, in the same units as [`bound`].
fn measured(metric: Metric, v: f64) -> String {
    match metric {
        Metric::FailRatio => format!("{:.2}%", v * 100.0),
        Metric::Rps => format!("{v:.2}/s"),
        _ => format!("{v:.2} ms"),
    }
}

/// Up to six decimals without trailing zeros, so `0.07 * 100` reads `7`, not `7.000000000000001`.
fn number(v: f64) -> String {
    let s = format!("{v:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// `PASS`/`FAIL`, the rule and the measured value, one threshold a line; empty without any.
pub fn verdict_table(verdicts: &[Verdict]) -> String {
    let w = verdicts
        .iter()
        .map(|v| v.description.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    if !verdicts.is_empty() {
        out.push_str("Thresholds\n");
    }
    for v in verdicts {
        let status = if v.passed { "PASS" } else { "FAIL" };
        let actual = v
            .actual
            .map_or_else(|| "-".to_owned(), |a| measured(v.metric, a));
        let _ = writeln!(out, "  {status}  {:<w$}  {actual}", v.description);
    }
    out
}

#[cfg(test)]
mod tests {
    use hatchery_core::stats::Sample;
    use hatchery_core::Method;

    use super::*;

    fn stats() -> Stats {
        let mut s = Stats::new();
        let reqs = [
            (Method::Get, "/checkout", 300_000, None),
            (Method::Post, "/checkout", 900_000, None),
            (Method::Get, "/", 10_000, Some("HTTP 500")),
            (Method::Get, "/", 20_000, None),
        ];
        for (m, name, rt, error) in reqs {
            let sample = Sample {
                corrected_response_time_us: None,
                response_time_us: rt,
                content_length: 0,
                at_unix_s: 1,
                error,
            };
            s.record(m, name, sample);
        }
        s
    }

    fn threshold(
        metric: Metric,
        name: Option<&str>,
        min: Option<f64>,
        max: Option<f64>,
    ) -> Threshold {
        Threshold {
            metric,
            name: name.map(str::to_owned),
            min,
            max,
        }
    }

    #[test]
    fn a_percentile_of_a_name_covers_every_method() {
        let t = threshold(
            Metric::Percentile(0.95),
            Some("/checkout"),
            None,
            Some(800.0),
        );
        let v = &evaluate(&[t], &stats(), 2.0)[0];
        assert_eq!(v.description, "p95 of /checkout <= 800 ms");
        assert!(!v.passed);
        let actual = v.actual.unwrap();
        assert!((actual - 900.0).abs() <= 900.0 / 1024.0, "{actual}");
    }

    #[test]
    fn aggregated_thresholds_pass_and_fail_on_their_bounds() {
        let ts = [
            threshold(Metric::FailRatio, None, None, Some(0.25)),
            threshold(Metric::FailRatio, None, None, Some(0.01)),
            threshold(Metric::Rps, None, Some(1.5), Some(3.0)),
            threshold(Metric::AvgResponseTime, None, None, Some(300.0)),
            threshold(Metric::MaxResponseTime, Some("/"), None, Some(20.0)),
            threshold(Metric::Percentile(0.999), None, None, Some(1000.0)),
        ];
        let got: Vec<(String, Option<f64>, bool)> = evaluate(&ts, &stats(), 2.0)
            .into_iter()
            .map(|v| (v.description, v.actual, v.passed))
            .collect();
        assert_eq!(
            got,
            [
                ("fail ratio <= 25%".to_owned(), Some(0.25), true),
                ("fail ratio <= 1%".to_owned(), Some(0.25), false),
                ("rps >= 1.5/s and <= 3/s".to_owned(), Some(2.0), true),
                ("avg response time <= 300 ms".to_owned(), Some(307.5), false),
                (
                    "max response time of / <= 20 ms".to_owned(),
                    Some(20.0),
                    true
                ),
                ("p99.9 <= 1000 ms".to_owned(), Some(900.0), true),
            ]
        );
    }

    #[test]
    fn a_threshold_on_a_request_that_never_ran_fails_and_says_so() {
        let t = threshold(
            Metric::Percentile(0.95),
            Some("/missing"),
            None,
            Some(800.0),
        );
        let v = &evaluate(&[t], &stats(), 2.0)[0];
        assert_eq!(
            v.description,
            "p95 of /missing <= 800 ms (no request named /missing ran)"
        );
        assert_eq!((v.actual, v.passed), (None, false));

        let empty = &evaluate(
            &[threshold(Metric::FailRatio, None, None, Some(0.1))],
            &Stats::new(),
            0.0,
        )[0];
        assert_eq!(empty.description, "fail ratio <= 10% (no request ran)");
        assert!(!empty.passed);
    }

    #[test]
    fn the_verdict_table_aligns_rules_and_shows_measured_values() {
        let ts = [
            threshold(Metric::FailRatio, None, None, Some(0.01)),
            threshold(
                Metric::Percentile(0.95),
                Some("/missing"),
                None,
                Some(800.0),
            ),
        ];
        let want = "\
Thresholds
  FAIL  fail ratio <= 1%                                           25.00%
  FAIL  p95 of /missing <= 800 ms (no request named /missing ran)  -
";
        assert_eq!(verdict_table(&evaluate(&ts, &stats(), 2.0)), want);
        assert_eq!(verdict_table(&[]), "");
    }

    #[test]
    fn the_api_reports_each_threshold_with_its_limit_value_and_result() {
        let rules = [
            threshold(Metric::Percentile(0.95), None, None, Some(1.0)),
            threshold(Metric::FailRatio, None, None, Some(0.5)),
            threshold(Metric::Rps, Some("/nothing"), Some(1.0), None),
        ];
        let doc = verdicts_json(&rules, &stats(), 2.0);
        let list = doc.as_array().expect("a list");
        assert_eq!(list.len(), 3);
        assert_eq!(list[0]["metric"], "p95");
        assert_eq!(list[0]["name"], Value::Null);
        assert_eq!(list[0]["limit"], json!({"min": null, "max": 1.0}));
        assert_eq!(list[0]["passed"], false);
        assert!(list[0]["value"].as_f64().expect("a value") > 1.0);
        assert_eq!(list[0]["description"], "p95 <= 1 ms");
        assert_eq!(list[1]["metric"], "fail_ratio");
        assert_eq!(list[1]["value"], 0.25);
        assert_eq!(list[1]["measured"], "25.00%");
        assert_eq!(list[1]["passed"], true);
        assert_eq!(list[2]["name"], "/nothing");
        assert_eq!(list[2]["value"], Value::Null);
        assert_eq!(list[2]["passed"], false);
    }

    #[test]
    fn metrics_are_named_as_the_plan_writes_them() {
        let names: Vec<String> = [
            Metric::FailRatio,
            Metric::Rps,
            Metric::Percentile(0.999),
            Metric::AvgResponseTime,
            Metric::MaxResponseTime,
        ]
        .into_iter()
        .map(metric_name)
        .collect();
        assert_eq!(names, ["fail_ratio", "rps", "p99.9", "avg", "max"]);
    }
}
