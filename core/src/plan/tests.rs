use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use proptest::prelude::*;

use super::*;

const MINIMAL: &str = "\
host: http://127.0.0.1:8080
users:
  - name: Reader
    weight: 3
    wait: {constant: 0s}
    tasks:
      - {get: /a, name: read-a}
  - name: Writer
    weight: 1
    wait: {between: [0s, 10ms]}
    tasks:
      - {post: /b, json: {x: 1}}
";

fn files() -> HashMap<String, String> {
    HashMap::from([
        (
            "accounts.csv".to_string(),
            "user,password\nalice,a1\nbob,b2\n".to_string(),
        ),
        (
            "ragged.csv".to_string(),
            "user,password\nalice,a1\nbob\n".to_string(),
        ),
        ("empty.csv".to_string(), String::new()),
    ])
}

fn parse(src: &str) -> Result<Plan, Diagnostics> {
    Plan::parse(src, "plan.yaml", &files())
}

fn plan(src: &str) -> Plan {
    parse(src).unwrap_or_else(|e| panic!("{e}"))
}

/// Step `i` of a list, which must be a request.
fn request(steps: &[Step], i: usize) -> &Request {
    steps[i].request().expect("a request")
}

fn problems(src: &str) -> Vec<Diagnostic> {
    match parse(src) {
        Ok(_) => panic!("expected problems in:\n{src}"),
        Err(d) => d.items,
    }
}

/// The only problem in `src`, as (line, column, message).
fn problem(src: &str) -> (u32, u32, String) {
    let all = problems(src);
    assert_eq!(all.len(), 1, "expected one problem, got {all:#?}");
    (all[0].line, all[0].column, all[0].message.clone())
}

fn hint(src: &str) -> String {
    problems(src)[0].hint.clone().unwrap_or_default()
}

/// A one-class plan around the given task lines (each indented by six spaces in the result).
fn with_tasks(tasks: &str) -> String {
    let mut src = String::from("users:\n  - name: U\n    tasks:\n");
    for line in tasks.lines() {
        src.push_str("      ");
        src.push_str(line);
        src.push('\n');
    }
    src
}

#[test]
fn the_minimal_plan_parses_into_the_expected_model() {
    let p = plan(MINIMAL);
    assert_eq!(p.host.as_deref(), Some("http://127.0.0.1:8080"));
    assert!(p.feeders.is_empty() && p.shape.is_none() && p.thresholds.is_empty());
    let [reader, writer] = p.users.as_slice() else {
        panic!("two classes")
    };
    assert_eq!(
        (reader.name.as_str(), reader.weight, reader.fixed_count),
        ("Reader", 3, None)
    );
    assert_eq!(reader.wait, Wait::Constant(Duration::ZERO));
    assert!(reader.on_start.is_empty() && reader.on_stop.is_empty() && reader.vars.is_empty());
    let [task] = reader.tasks.as_slice() else {
        panic!("one task")
    };
    assert_eq!((task.weight, task.tags.len(), task.steps.len()), (1, 0, 1));
    let get = &request(&task.steps, 0);
    assert_eq!(get.method, Method::Get);
    assert_eq!(get.url.as_static(), Some("/a"));
    assert_eq!(get.name.as_deref(), Some("read-a"));
    assert!(matches!(get.body, Body::Empty));
    assert_eq!((get.line, get.timeout), (7, None));

    assert_eq!((writer.name.as_str(), writer.weight), ("Writer", 1));
    assert_eq!(
        writer.wait,
        Wait::Between(Duration::ZERO, Duration::from_millis(10))
    );
    let post = &request(&writer.tasks[0].steps, 0);
    assert_eq!(
        (post.method, post.url.as_static(), post.line),
        (Method::Post, Some("/b"), 12)
    );
    let Body::Json(json) = &post.body else {
        panic!("a JSON body")
    };
    assert_eq!(json.as_static(), Some(br#"{"x":1}"#.as_slice()));
}

#[test]
fn the_design_sketch_parses_with_feeders_captures_shape_and_thresholds() {
    let src = r#"
host: http://127.0.0.1:8080
users:
  - name: Shopper
    weight: 3
    wait: {between: [1s, 3s]}
    on_start: [{post: /login, json: {user: "{{ row.accounts.user }}"}, capture: {token: {json: $.token}}}]
    tasks:
      - {weight: 5, get: "/products/{{ rand.int(1, 1000) }}", name: "/products/[id]"}
      - weight: 1
        tags: [checkout]
        sequence:
          - {post: /cart, headers: {authorization: "Bearer {{ token }}"}}
          - {post: /checkout, check: {status: [200, 201], body_contains: order_id, max_time: 2s}}
data: {accounts: {csv: accounts.csv}}
shape: {stages: [{duration: 1m, users: 100, spawn_rate: 10}, {duration: 5m, users: 500, spawn_rate: 50}]}
thresholds: [{metric: fail_ratio, max: 0.01}, {metric: p95, name: /checkout, max: 800ms}]
"#;
    let p = plan(src);
    assert_eq!(p.feeders.len(), 1);
    assert_eq!(p.feeders[0].columns, ["user", "password"]);
    let class = &p.users[0];
    assert_eq!(class.vars, ["token"]);
    assert_eq!(request(&class.on_start, 0).captures[0].var, VarId(0));
    assert!(
        matches!(&request(&class.on_start, 0).captures[0].from, CaptureSource::Json(p) if p.as_str() == "$.token")
    );
    assert!(request(&class.tasks[0].steps, 0).url.as_static().is_none());
    let checkout = &class.tasks[1];
    assert_eq!(
        (checkout.weight, checkout.tags.as_slice()),
        (1, ["checkout".to_string()].as_slice())
    );
    let check = &request(&checkout.steps, 1).check;
    assert_eq!(check.status, Some(vec![200, 201]));
    assert_eq!(check.body_contains, ["order_id"]);
    assert_eq!(check.max_time, Some(Duration::from_secs(2)));
    let stages = &p.shape.as_ref().unwrap().stages;
    assert_eq!(
        stages[1],
        Stage {
            duration: Duration::from_secs(300),
            users: 500,
            spawn_rate: 50.0
        }
    );
    assert_eq!(
        p.thresholds,
        [
            Threshold {
                metric: Metric::FailRatio,
                name: None,
                max: Some(0.01),
                min: None
            },
            Threshold {
                metric: Metric::Percentile(0.95),
                name: Some("/checkout".into()),
                max: Some(800.0),
                min: None
            },
        ]
    );
}

#[test]
fn unknown_key_suggests_the_closest_known_key() {
    let src = MINIMAL.replace("    weight: 3", "    wieght: 3");
    assert_eq!(
        problem(&src),
        (4, 5, "unknown key `wieght` in a user class".into())
    );
    assert_eq!(hint(&src), "did you mean `weight`?");
}

#[test]
fn an_unknown_key_far_from_every_known_key_lists_the_allowed_ones() {
    let src = "users: []\nzzzzzz: 1\n";
    let all = problems(src);
    let unknown = all.iter().find(|d| d.message.contains("zzzzzz")).unwrap();
    assert_eq!((unknown.line, unknown.column), (2, 1));
    assert!(unknown
        .hint
        .as_deref()
        .unwrap()
        .starts_with("expected one of: `host`, `users`"));
}

#[test]
fn a_wrong_type_names_what_was_found() {
    let src = MINIMAL.replace("weight: 3", "weight: x");
    assert_eq!(
        problem(&src),
        (
            4,
            13,
            "`weight` must be a whole number >= 1, found string \"x\"".into()
        )
    );
    let src = MINIMAL.replace("weight: 3", "weight: 0");
    assert_eq!(
        problem(&src).2,
        "`weight` must be a whole number >= 1, found number 0"
    );
    let src = MINIMAL.replace("weight: 3", "weight: 99999999999999999999999");
    assert!(problem(&src)
        .2
        .starts_with("`weight` must be a whole number >= 1, found number 1"));
}

#[test]
fn two_method_keys_are_reported_at_the_second() {
    let src = with_tasks("- {get: /a, post: /b}");
    assert_eq!(
        problem(&src),
        (
            4,
            19,
            "a request has one method, found `get` and `post`".into()
        )
    );
}

#[test]
fn a_request_without_a_method_is_reported_at_the_request() {
    let src = with_tasks("- {name: x}");
    assert_eq!(problem(&src), (4, 9, "a request needs a method key".into()));
    assert!(hint(&src).contains("sequence"));
}

#[test]
fn an_unknown_variable_is_reported_inside_the_scalar_with_a_suggestion() {
    let src = with_tasks(
        "- {post: /login, capture: {token: {json: $.token}}}\n- {get: /a, headers: {auth: \"Bearer {{ tokn }}\"}}",
    );
    assert_eq!(problem(&src), (5, 46, "unknown variable `tokn`".into()));
    assert_eq!(hint(&src), "did you mean `token`?");
    let plain = with_tasks("- get: /a/{{ nope }}");
    assert_eq!(problem(&plain), (4, 20, "unknown variable `nope`".into()));
}

#[test]
fn variables_captured_anywhere_in_the_class_and_plan_vars_are_known() {
    let src = "vars: {api: v2}\nusers:\n  - name: U\n    on_start: [{get: \"/{{ later }}\"}]\n    tasks:\n      - {get: \"/{{ api }}/{{ later }}\", capture: {later: {header: X-Id}}}\n";
    let p = plan(src);
    let class = &p.users[0];
    assert_eq!(class.vars, ["later"]);
    assert!(request(&class.tasks[0].steps, 0).url.as_static().is_none());
    assert!(
        matches!(&request(&class.tasks[0].steps, 0).captures[0].from, CaptureSource::Header(h) if h == "x-id")
    );
    let only_vars =
        plan("vars: {api: v2, n: 3}\nusers: [{name: U, tasks: [{get: \"/{{ api }}/{{n}}\"}]}]\n");
    assert_eq!(
        request(&only_vars.users[0].tasks[0].steps, 0)
            .url
            .as_static(),
        Some("/v2/3")
    );
}

#[test]
fn feeders_and_their_columns_are_checked_in_templates() {
    let src = "data: {accounts: {csv: accounts.csv}}\nusers: [{name: U, tasks: [{get: \"/{{ row.accounts.usr }}\"}]}]\n";
    assert_eq!(
        problem(src),
        (2, 51, "feeder `accounts` has no column `usr`".into())
    );
    let src = "users: [{name: U, tasks: [{get: \"/{{ row.people.name }}\"}]}]\n";
    assert_eq!(problem(src).2, "unknown feeder `people`");
}

#[test]
fn feeder_files_that_cannot_be_read_or_are_malformed_are_named() {
    let src = "data:\n  a: {csv: missing.csv}\n  b: {csv: ragged.csv}\n  c: {csv: empty.csv}\nusers: [{name: U, tasks: [{get: /}]}]\n";
    let all = problems(src);
    let found: Vec<(u32, u32, &str)> = all
        .iter()
        .map(|d| (d.line, d.column, d.message.as_str()))
        .collect();
    assert_eq!(found[0].0, 2);
    assert!(
        found[0]
            .2
            .starts_with("cannot read feeder file `missing.csv`"),
        "{found:?}"
    );
    assert_eq!(
        found[1],
        (
            3,
            12,
            "feeder file `ragged.csv`, line 3: this row has 1 fields but the header has 2"
        )
    );
    assert_eq!(
        found[2].2,
        "feeder file `empty.csv`: the file is empty; it needs a header row and at least one row"
    );
}

#[test]
fn bad_regexes_json_paths_and_capture_names_are_reported() {
    let src = with_tasks(
        "- get: /\n  capture:\n    a: {regex: \"(\"}\n    b: {json: token}\n    row: {header: x}",
    );
    let all = problems(&src);
    let found: Vec<(u32, &str)> = all.iter().map(|d| (d.line, d.message.as_str())).collect();
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found[0].0 == 6 && found[0].1.starts_with("invalid regex"),
        "{found:?}"
    );
    assert_eq!(found[1], (7, "JSON path \"token\" must start with `$`"));
    assert!(found[2]
        .1
        .starts_with("a captured variable cannot be named `row`"));
}

#[test]
fn unknown_threshold_metric_suggests_a_known_one() {
    let src = "users: [{name: U, tasks: [{get: /}]}]\nthresholds: [{metric: p59.9x, max: 1}, {metric: fail_rate, max: 0.1}]\n";
    let all = problems(src);
    assert_eq!(all[0].message, "unknown metric `p59.9x`");
    assert_eq!(all[1].message, "unknown metric `fail_rate`");
    assert_eq!(all[1].hint.as_deref(), Some("did you mean `fail_ratio`?"));
}

#[test]
fn threshold_times_take_durations_or_milliseconds() {
    let src = "users: [{name: U, tasks: [{get: /}]}]\nthresholds: [{metric: p99.9, max: 1.5s}, {metric: avg, max: 250}, {metric: rps, min: 10}]\n";
    let t = plan(src).thresholds;
    assert_eq!(t[0].metric, Metric::Percentile(0.999));
    assert_eq!(
        (t[0].max, t[1].max, t[2].min),
        (Some(1500.0), Some(250.0), Some(10.0))
    );
    let bad = "users: [{name: U, tasks: [{get: /}]}]\nthresholds: [{metric: rps}]\n";
    assert_eq!(problem(bad).2, "a threshold needs `max` or `min`");
}

#[test]
fn a_stage_with_users_needs_a_positive_spawn_rate() {
    let src = "users: [{name: U, tasks: [{get: /}]}]\nshape: {stages: [{duration: 1m, users: 5, spawn_rate: 0}]}\n";
    assert_eq!(
        problem(src),
        (2, 55, "`spawn_rate` must be greater than 0, found 0".into())
    );
    let missing = "users: [{name: U, tasks: [{get: /}]}]\nshape: {stages: [{duration: 1m}]}\n";
    let found: Vec<String> = problems(missing).into_iter().map(|d| d.message).collect();
    assert_eq!(
        found,
        ["a stage needs `users`", "a stage needs `spawn_rate`"]
    );
}

#[test]
fn a_host_needs_a_scheme_and_a_host_name() {
    assert_eq!(
        problem("host: 127.0.0.1:8080\nusers: [{name: U, tasks: [{get: /}]}]\n"),
        (1, 7, "`host` must start with http:// or https://".into())
    );
    assert_eq!(
        problem("host: http://\nusers: [{name: U, tasks: [{get: /}]}]\n").2,
        "`host` has no host name"
    );
}

#[test]
fn a_host_or_header_a_worker_cannot_send_is_refused_where_it_is_written() {
    // The headers loaded before and then failed on every worker; the host rule is the one the
    // worker, the master and the operator use too.
    let src = "host: http://h:99999\nusers: [{name: U, tasks: [{get: /}]}]\n";
    assert_eq!(
        problem(src).2,
        "`host` has an invalid port (expected a number from 0 to 65535)"
    );
    let src = with_tasks("- get: /\n  headers: {\"bad name\": x}");
    assert_eq!(problem(&src).2, "invalid header name \"bad name\"");
    let src = with_tasks("- get: /\n  headers: {x-a: \"a\\u007fb\"}");
    assert_eq!(problem(&src).2, "invalid value for header x-a");
    let src = with_tasks("- get: /\n  headers: {x-a: \"{{ rand.uuid() }}\"}");
    assert!(parse(&src).is_ok());
}

#[test]
fn every_duplicate_key_is_reported_along_with_other_problems() {
    let src = "users:\n  - name: A\n    name: B\n    tasks: [{get: /, get: /x}]\n    wieght: 2\n";
    let found: Vec<(u32, u32, String)> = problems(src)
        .into_iter()
        .map(|d| (d.line, d.column, d.message))
        .collect();
    assert_eq!(
        found,
        [
            (3, 5, "duplicate key `name`".to_string()),
            (4, 22, "duplicate key `get`".to_string()),
            (5, 5, "unknown key `wieght` in a user class".to_string()),
        ]
    );
}

#[test]
fn yaml_syntax_errors_carry_the_parsers_position() {
    let (line, column, message) = problem("users: [{name: U\nhost: x\n");
    assert!(message.starts_with("invalid YAML:"), "{message}");
    assert!(line >= 1 && column >= 1);
    assert_eq!(
        problem("a: b: c\n"),
        (
            1,
            5,
            "invalid YAML: mapping values are not allowed in this context".into()
        )
    );
}

#[test]
fn odd_documents_are_reported_not_panicked_on() {
    assert_eq!(problem("").2, "the plan is empty");
    assert_eq!(problem("# only a comment\n").2, "the plan is empty");
    assert_eq!(
        problem("- 1\n- 2\n"),
        (1, 1, "expected the plan (a mapping), found a list".into())
    );
    assert_eq!(
        problem("users: [{name: U, tasks: [{get: /}]}]\n---\nx: 1\n").2,
        "a plan is one YAML document"
    );
    assert_eq!(problem("host: http://h\n").2, "the plan has no `users`");
    assert_eq!(
        problem("users: []\n").2,
        "`users` needs at least one user class"
    );
}

#[test]
fn many_problems_are_reported_at_once_in_source_order() {
    let src = "host: ftp://x\nusers:\n  - name: A\n    weight: -1\n    wait: {between: [3s, 1s]}\n    tasks: []\n  - name: A\n    tasks: [{get: a}]\nthresholds: [{metric: p95, max: soon}]\n";
    let found: Vec<(u32, String)> = problems(src)
        .into_iter()
        .map(|d| (d.line, d.message))
        .collect();
    let lines: Vec<u32> = found.iter().map(|f| f.0).collect();
    assert_eq!(lines, [1, 4, 5, 6, 8, 9], "{found:#?}");
    assert!(found[4].1.starts_with("the URL `a` must be a path"));
}

#[test]
fn duplicate_class_names_are_rejected() {
    let src = "users:\n  - {name: A, tasks: [{get: /}]}\n  - {name: A, tasks: [{get: /}]}\n";
    assert_eq!(
        problem(src),
        (3, 12, "two user classes are named `A`".into())
    );
}

#[test]
fn json_and_body_are_mutually_exclusive() {
    let src = with_tasks("- {post: /b, json: {a: 1}, body: x}");
    assert_eq!(
        problem(&src).2,
        "a request has one body, found `json` and `body`"
    );
}

#[test]
fn a_sequence_cannot_carry_request_keys_of_its_own() {
    let src = with_tasks("- sequence: [{get: /}]\n  name: x");
    assert_eq!(
        problem(&src),
        (5, 9, "`name` cannot sit beside `sequence`".into())
    );
}

#[test]
fn wait_kinds_are_read_and_checked() {
    let class = |wait: &str| format!("users: [{{name: U, wait: {wait}, tasks: [{{get: /}}]}}]\n");
    assert_eq!(
        plan(&class("{pacing: 2s}")).users[0].wait,
        Wait::Pacing(Duration::from_secs(2))
    );
    assert_eq!(
        plan(&class("{throughput: 0.5}")).users[0].wait,
        Wait::Throughput(0.5)
    );
    assert_eq!(
        plan(&class("{constant: 1.5}")).users[0].wait,
        Wait::Constant(Duration::from_millis(1500))
    );
    assert!(problem(&class("{throughput: 0}"))
        .2
        .starts_with("`throughput` must be greater than 0"));
    assert!(problem(&class("{constant: 1s, pacing: 1s}"))
        .2
        .starts_with("`wait` takes exactly one"));
    assert_eq!(
        problem(&class("{between: [2s, 1s]}")).2,
        "`between` needs the shorter duration first"
    );
}

#[test]
fn request_options_are_read() {
    let src = with_tasks(
        "- delete: https://other.example/x\n  timeout: 2\n  query: {page: 2, q: \"{{ rand.choice(\\\"a\\\") }}\"}\n  body: \"id={{ user.id }}\"\n  check: {status: 204, json: {\"$.ok\": true}}",
    );
    let p = plan(&src);
    let r = &request(&p.users[0].tasks[0].steps, 0);
    assert_eq!(
        (r.method, r.timeout),
        (Method::Delete, Some(Duration::from_secs(2)))
    );
    assert_eq!(r.query[0].0, "page");
    assert_eq!(r.query[0].1.as_static(), Some("2"));
    assert!(r.query[1].1.as_static().is_none());
    assert!(matches!(&r.body, Body::Text(t) if t.as_static().is_none()));
    assert_eq!(r.check.status, Some(vec![204]));
    assert_eq!(r.check.json[0].0.as_str(), "$.ok");
    assert_eq!(r.check.json[0].1, serde_json::Value::Bool(true));
}

#[test]
fn every_example_plan_parses() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/ exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            Plan::load(&path).unwrap_or_else(|e| panic!("{e}"));
            count += 1;
        }
    }
    assert!(count >= 3, "found {count} examples");
}

fn example_sources() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
                .filter_map(|p| std::fs::read_to_string(p).ok())
                .collect()
        })
        .unwrap_or_default();
    out.push(MINIMAL.to_string());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parse_never_panics_on_arbitrary_text(src in "(?s).{0,200}") {
        let _ = parse(&src);
    }

    #[test]
    fn parse_never_panics_on_yaml_like_text(src in "[a-z:{}\\[\\],\"' \n-]{0,120}") {
        let _ = parse(&src);
    }

    #[test]
    fn parse_never_panics_on_templates_in_any_kind_of_scalar(t in "[{}a-zé ü\"'!.(),0-9\\\\]{0,30}") {
        for form in [format!("- get: /{t}"), format!("- get: \"/{t}\""), format!("- get: '/{t}'"), format!("- get: !x /{t}")] {
            let _ = parse(&with_tasks(&form));
        }
    }

    #[test]
    fn parse_never_panics_on_mutated_examples(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, "[ -~\n]{0,3}"), 1..6),
    ) {
        let sources = example_sources();
        let mut src: Vec<char> = pick.get(&sources).chars().collect();
        for (at, kind, text) in edits {
            let i = if src.is_empty() { 0 } else { at.index(src.len()) };
            match kind {
                0 => { src.splice(i..i, text.chars()); }
                1 => { src.drain(i..(i + 3).min(src.len())); }
                2 => if let Some(c) = src.get_mut(i) { *c = text.chars().next().unwrap_or('{'); },
                _ => { let tail: Vec<char> = src[i..].to_vec(); src.extend(tail.into_iter().take(40)); }
            }
        }
        let text: String = src.into_iter().collect();
        let _ = Plan::parse(&text, "mutant.yaml", &files());
    }
}
