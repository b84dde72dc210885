//! YAML (with positions) -> validated [`Plan`]: the top level, `vars`, feeders, the load shape
//! and thresholds. User classes and requests are walked in `request.rs`.
//!
//! Every accessor reports what is wrong and returns `None`, and callers keep going, so one pass
//! finds every problem.

use std::sync::Arc;

use saphyr::{LoadableYamlNode, MarkedYaml};

use super::yaml::{self, Ctx, Node};
use super::{csv, request, script};
use super::{Diagnostic, Diagnostics, FileSource, Metric, Plan, Shape, Stage, Threshold};
use crate::duration;
use crate::suggest;
use crate::template::{Resolver, Table};
use crate::validate;

const TOP_KEYS: [&str; 8] = [
    "host",
    "users",
    "data",
    "shape",
    "thresholds",
    "vars",
    "max_body",
    "http2",
];
const METRICS: [&str; 8] = [
    "fail_ratio",
    "rps",
    "p50",
    "p95",
    "p99",
    "p99.9",
    "avg",
    "max",
];
/// Names with a meaning of their own in templates, so no variable or feeder may take them.
pub(super) const RESERVED: [&str; 4] = ["row", "rand", "user", "now"];

pub(super) fn parse(src: &str, origin: &str, files: &dyn FileSource) -> Result<Plan, Diagnostics> {
    let mut diags = Vec::new();
    let Some(source) = yaml::prepare(src, &mut diags) else {
        return Err(finish(origin, diags));
    };
    let docs = match MarkedYaml::load_from_str(&source.text) {
        Ok(docs) => docs,
        Err(e) => {
            let (line, column) = (e.marker().line() as u32, e.marker().col() as u32 + 1);
            diags.push(Diagnostic::new(
                line,
                column,
                format!("invalid YAML: {}", e.info()),
            ));
            return Err(finish(origin, diags));
        }
    };
    let mut cx = Ctx::new(&source, files, diags);
    let plan = match docs.as_slice() {
        [doc] if !yaml::is_null(doc) => plan(&mut cx, doc).map(|mut plan| {
            script::name_origins(&mut plan, origin);
            plan
        }),
        [_, second, ..] => {
            cx.error_hint(
                second,
                "a plan is one YAML document",
                "remove the `---` and what follows",
            );
            None
        }
        _ => {
            cx.diags.push(
                Diagnostic::new(0, 0, "the plan is empty").with_hint(
                    "a plan needs at least `users:` with one user class; see docs/plan.md",
                ),
            );
            None
        }
    };
    match plan {
        Some(plan) if cx.diags.is_empty() => Ok(plan),
        _ => Err(finish(origin, cx.diags)),
    }
}

/// Problems in source order; positionless ones (files, the whole plan) first.
fn finish(origin: &str, mut items: Vec<Diagnostic>) -> Diagnostics {
    items.sort_by_key(|d| (d.line, d.column));
    items.dedup();
    if items.is_empty() {
        items.push(Diagnostic::new(0, 0, "the plan is not valid"));
    }
    Diagnostics {
        origin: origin.to_string(),
        items,
    }
}

fn plan(cx: &mut Ctx<'_>, doc: &Node<'_>) -> Option<Plan> {
    let top = cx.fields(doc, "the plan", &TOP_KEYS)?;
    let host = top.get("host").and_then(|n| host(cx, n));
    let constants = top.get("vars").map(|n| vars(cx, n)).unwrap_or_default();
    let feeders = top.get("data").map(|n| feeders(cx, n)).unwrap_or_default();
    let resolver = Resolver {
        vars: &[],
        constants: &constants,
        feeders: &feeders,
    };
    let users = match top.get("users") {
        Some(n) => request::user_classes(cx, n, &resolver),
        None => {
            cx.error_hint(
                doc,
                "the plan has no `users`",
                "add `users:` with at least one user class",
            );
            Vec::new()
        }
    };
    let shape = top.get("shape").and_then(|n| shape(cx, n));
    let thresholds = top
        .get("thresholds")
        .map(|n| thresholds(cx, n))
        .unwrap_or_default();
    let max_body = top.get("max_body").and_then(|n| max_body(cx, n));
    let http2 = top
        .get("http2")
        .and_then(|n| cx.boolean(n, "`http2`"))
        .unwrap_or(false);
    Some(Plan {
        host,
        max_body,
        http2,
        users,
        feeders,
        shape,
        thresholds,
    })
}

/// Largest `max_body` a plan may set: a worker holds one kept body per user in flight.
const MAX_BODY_LIMIT: u64 = 1 << 30;

/// `max_body`: bytes as a whole number or with a KiB / MiB / GiB suffix, at most 1 GiB.
fn max_body(cx: &mut Ctx<'_>, node: &Node<'_>) -> Option<u64> {
    let text = cx.text(node, "`max_body`")?;
    match parse_size(&text) {
        Some(n) if (1..=MAX_BODY_LIMIT).contains(&n) => Some(n),
        _ => {
            cx.error_hint(
                node,
                format!("`max_body` must be a size from 1 byte to 1GiB, found {text:?}"),
                "write e.g. 16MiB, 512KiB or 100000",
            );
            None
        }
    }
}

pub(super) fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let unit = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

/// A base URL: `http(s)://host[:port][/path]`, kept without a trailing `/`.
pub(super) fn host(cx: &mut Ctx<'_>, node: &Node<'_>) -> Option<String> {
    let text = cx.string(node, "`host`")?;
    match validate::host_url(&text) {
        Ok(_) => Some(text.trim_end_matches('/').to_string()),
        Err(problem) => {
            cx.error_hint(
                node,
                format!("`host` {problem}"),
                "write e.g. http://127.0.0.1:8080",
            );
            None
        }
    }
}

/// True when `name` can be written in a template (`{{ name }}`, `row.name.column`).
pub(super) fn check_name(cx: &mut Ctx<'_>, node: &Node<'_>, name: &str, what: &str) -> bool {
    let mut chars = name.chars();
    let identifier = chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    if !identifier {
        cx.error_hint(
            node,
            format!("{what} `{name}` is not a valid name"),
            "use letters, digits, `_` and `-`, starting with a letter or `_`",
        );
        false
    } else if RESERVED.contains(&name) {
        cx.error(
            node,
            format!(
                "{what} cannot be named `{name}`: {} are reserved",
                suggest::list(&RESERVED)
            ),
        );
        false
    } else {
        true
    }
}

fn vars(cx: &mut Ctx<'_>, node: &Node<'_>) -> Vec<(String, String)> {
    let Some(fields) = cx.mapping(node, "`vars`") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, key, value) in &fields.entries {
        let valid = check_name(cx, key, name, "a variable");
        if let (true, Some(text)) = (valid, cx.text(value, &format!("the value of `{name}`"))) {
            out.push((name.clone(), text));
        }
    }
    out
}

fn feeders(cx: &mut Ctx<'_>, node: &Node<'_>) -> Vec<Table> {
    let Some(fields) = cx.mapping(node, "`data`") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, key, value) in &fields.entries {
        let valid = check_name(cx, key, name, "a feeder");
        let Some(spec) = cx.fields(value, "a feeder", &["csv"]) else {
            continue;
        };
        let Some(path_node) = spec.get("csv") else {
            cx.error_hint(
                value,
                format!("feeder `{name}` needs `csv`"),
                "e.g. accounts: {csv: accounts.csv}",
            );
            continue;
        };
        let Some(path) = cx.string(path_node, "`csv`") else {
            continue;
        };
        let table = match cx.files.read(&path) {
            Ok(text) => csv::parse(&text).map_err(|e| match e.line {
                0 => format!("feeder file `{path}`: {}", e.message),
                n => format!("feeder file `{path}`, line {n}: {}", e.message),
            }),
            Err(e) => Err(format!("cannot read feeder file `{path}`: {e}")),
        };
        match table {
            Ok(t) if valid => out.push(Table {
                name: name.clone(),
                columns: t.columns,
                rows: Arc::new(t.rows),
            }),
            Ok(_) => {}
            Err(message) => cx.error_hint(
                path_node,
                message,
                "feeder paths are relative to the plan's folder",
            ),
        }
    }
    out
}

fn shape(cx: &mut Ctx<'_>, node: &Node<'_>) -> Option<Shape> {
    let fields = cx.fields(node, "`shape`", &["stages"])?;
    let Some(stages_node) = fields.get("stages") else {
        cx.error_hint(
            node,
            "`shape` needs `stages`",
            "e.g. stages: [{duration: 1m, users: 10, spawn_rate: 2}]",
        );
        return None;
    };
    let items = cx.list(stages_node, "`stages`")?;
    if items.is_empty() {
        cx.error(stages_node, "`stages` needs at least one stage");
        return None;
    }
    let stages: Vec<Option<Stage>> = items.iter().map(|item| stage(cx, item)).collect();
    Some(Shape {
        stages: stages.into_iter().collect::<Option<_>>()?,
    })
}

fn stage(cx: &mut Ctx<'_>, node: &Node<'_>) -> Option<Stage> {
    let fields = cx.fields(node, "a stage", &["duration", "users", "spawn_rate"])?;
    for key in ["duration", "users", "spawn_rate"] {
        if !fields.has(key) {
            cx.error(node, format!("a stage needs `{key}`"));
        }
    }
    let duration = fields
        .get("duration")
        .and_then(|n| cx.duration(n, "`duration`"));
    if let (Some(d), Some(n)) = (duration, fields.get("duration")) {
        if d.is_zero() {
            cx.error(n, "a stage's `duration` must be longer than 0s");
        }
    }
    let users = fields.get("users").and_then(|n| cx.uint(n, "`users`", 0));
    let spawn_rate = fields.get("spawn_rate").and_then(|n| {
        let rate = cx.number(n, "`spawn_rate`")?;
        if rate <= 0.0 {
            cx.error_hint(
                n,
                format!("`spawn_rate` must be greater than 0, found {rate}"),
                "it is how many users start (or stop) per second",
            );
            return None;
        }
        Some(rate)
    });
    Some(Stage {
        duration: duration.filter(|d| !d.is_zero())?,
        users: users?,
        spawn_rate: spawn_rate?,
    })
}

fn thresholds(cx: &mut Ctx<'_>, node: &Node<'_>) -> Vec<Threshold> {
    let Some(items) = cx.list(node, "`thresholds`") else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| threshold(cx, item))
        .collect()
}

fn threshold(cx: &mut Ctx<'_>, node: &Node<'_>) -> Option<Threshold> {
    let fields = cx.fields(node, "a threshold", &["metric", "name", "max", "min"])?;
    let Some(metric_node) = fields.get("metric") else {
        cx.error_hint(
            node,
            "a threshold needs `metric`",
            format!("one of {}", suggest::list(&METRICS)),
        );
        return None;
    };
    let metric = cx.string(metric_node, "`metric`").and_then(|m| {
        let parsed = metric(&m);
        if parsed.is_none() {
            cx.error_hint(
                metric_node,
                format!("unknown metric `{m}`"),
                suggest::hint(&m, &METRICS),
            );
        }
        parsed
    });
    let name = fields.get("name").map(|n| cx.text(n, "`name`"));
    let is_time = matches!(
        metric,
        Some(Metric::Percentile(_) | Metric::AvgResponseTime | Metric::MaxResponseTime)
    );
    let max = fields.get("max").map(|n| limit(cx, n, "`max`", is_time));
    let min = fields.get("min").map(|n| limit(cx, n, "`min`", is_time));
    if max.is_none() && min.is_none() {
        cx.error(node, "a threshold needs `max` or `min`");
    }
    if let (Some(Some(hi)), Some(Some(lo))) = (max, min) {
        if lo > hi {
            cx.error(
                node,
                format!("a threshold's `min` ({lo}) is above its `max` ({hi})"),
            );
        }
    }
    let invalid = [max, min].iter().any(|v| matches!(v, Some(None))) || matches!(name, Some(None));
    if invalid || (max.is_none() && min.is_none()) {
        return None;
    }
    Some(Threshold {
        metric: metric?,
        name: name.flatten(),
        max: max.flatten(),
        min: min.flatten(),
    })
}

/// A threshold bound: a time metric takes a duration (`800ms`) or a bare number of
/// milliseconds; the others take a number.
fn limit(cx: &mut Ctx<'_>, node: &Node<'_>, label: &str, is_time: bool) -> Option<f64> {
    if let (true, Some(text)) = (
        is_time,
        yaml::scalar_text(node).filter(|_| !yaml_is_number(node)),
    ) {
        return match duration::parse(&text) {
            Ok(d) => Some(d.as_secs_f64() * 1000.0),
            Err(e) => {
                cx.error_hint(
                    node,
                    format!("{label} must be a time: {e}"),
                    "write e.g. 800ms, 1.5s, or a number of milliseconds",
                );
                None
            }
        };
    }
    cx.number(node, label)
}

fn yaml_is_number(node: &Node<'_>) -> bool {
    matches!(
        yaml::data(node),
        saphyr::YamlData::Value(saphyr::Scalar::Integer(_) | saphyr::Scalar::FloatingPoint(_))
    )
}

/// `fail_ratio`, `rps`, `avg`, `max` or `p<percent>` with 0 < percent <= 100.
fn metric(name: &str) -> Option<Metric> {
    match name {
        "fail_ratio" => return Some(Metric::FailRatio),
        "rps" => return Some(Metric::Rps),
        "avg" => return Some(Metric::AvgResponseTime),
        "max" => return Some(Metric::MaxResponseTime),
        _ => {}
    }
    let percent = name.strip_prefix('p')?;
    let (int, frac) = percent.split_once('.').unwrap_or((percent, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || frac.len() > 6 || int.len() > 3 || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    // Scaling the digits as one integer keeps `p99.9` exactly 0.999 (99.9 / 100.0 is not).
    let digits: u64 = format!("{int}{frac}").parse().ok()?;
    let quantile = digits as f64 / 10f64.powi(frac.len() as i32 + 2);
    (quantile > 0.0 && quantile <= 1.0).then_some(Metric::Percentile(quantile))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_metrics_are_exact_quantiles() {
        assert_eq!(metric("p50"), Some(Metric::Percentile(0.5)));
        assert_eq!(metric("p95"), Some(Metric::Percentile(0.95)));
        assert_eq!(metric("p99.9"), Some(Metric::Percentile(0.999)));
        assert_eq!(metric("p100"), Some(Metric::Percentile(1.0)));
        for bad in ["p0", "p101", "p", "p.5", "p9x", "P95", "p-1", "mean"] {
            assert_eq!(metric(bad), None, "{bad}");
        }
    }

    fn host_problem(url: &str) -> Option<validate::HostProblem> {
        validate::host_url(url).err()
    }

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("16MiB"), Some(16 << 20));
        assert_eq!(parse_size("512 KiB"), Some(512 << 10));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("1MB"), None);
        assert_eq!(parse_size("MiB"), None);
    }

    #[test]
    fn hosts_need_a_scheme_and_a_host_name() {
        assert_eq!(host_problem("http://127.0.0.1:8080"), None);
        assert_eq!(host_problem("https://example.com/base/"), None);
        assert_eq!(host_problem("http://[::1]:80"), None);
        assert!(host_problem("127.0.0.1:8080").is_some());
        assert!(host_problem("ftp://x").is_some());
        assert!(host_problem("http://").is_some());
        assert!(host_problem("http://:80").is_some());
        assert!(host_problem("http://h:99999").is_some());
        assert!(host_problem("http://h x").is_some());
    }
}
