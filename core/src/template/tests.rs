use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;

use super::*;

fn feeders() -> Vec<Table> {
    vec![Table {
        name: "accounts".into(),
        columns: vec!["user".into(), "password".into()],
        rows: Arc::new(vec![
            vec!["alice".into(), "a1".into()],
            vec!["bob".into(), "b2".into()],
        ]),
    }]
}

struct Fixture {
    vars: Vec<String>,
    constants: Vec<(String, String)>,
    feeders: Vec<Table>,
    values: Vec<Option<String>>,
    rows: Vec<usize>,
    rng: fastrand::Rng,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            vars: vec!["token".into(), "order".into()],
            constants: vec![("api".into(), "v2".into())],
            feeders: feeders(),
            values: vec![Some("t0k".into()), None],
            rows: vec![1],
            rng: fastrand::Rng::with_seed(7),
        }
    }

    fn compile(&self, src: &str) -> Result<Template, Vec<TemplateError>> {
        let resolver = Resolver {
            vars: &self.vars,
            constants: &self.constants,
            feeders: &self.feeders,
        };
        Template::compile(src, &resolver)
    }

    fn render(&mut self, src: &str) -> String {
        let t = self.compile(src).unwrap_or_else(|e| panic!("{src}: {e:?}"));
        let mut out = String::new();
        t.render(&mut self.scope(), &mut out);
        out
    }

    fn scope(&mut self) -> Scope<'_> {
        Scope {
            vars: &self.values,
            rows: &self.rows,
            feeders: &self.feeders,
            user_id: 42,
            worker_index: 1,
            worker_count: 4,
            rng: &mut self.rng,
        }
    }

    fn json(&mut self, value: serde_json::Value) -> (JsonTemplate, Vec<u8>) {
        let resolver = Resolver {
            vars: &self.vars,
            constants: &self.constants,
            feeders: &self.feeders,
        };
        let t = JsonTemplate::compile(&value, &resolver).expect("compiles");
        let mut out = Vec::new();
        t.render(&mut self.scope(), &mut out);
        (t, out)
    }
}

fn error(src: &str) -> TemplateError {
    Fixture::new().compile(src).unwrap_err().remove(0)
}

#[test]
fn text_without_expressions_is_static() {
    let f = Fixture::new();
    assert_eq!(f.compile("/a/b?c=d").unwrap().as_static(), Some("/a/b?c=d"));
    assert_eq!(f.compile("").unwrap().as_static(), Some(""));
    assert_eq!(Template::literal("x").as_static(), Some("x"));
}

#[test]
fn plan_vars_and_string_literals_are_inlined_at_compile_time() {
    let f = Fixture::new();
    let t = f.compile("/{{api}}/{{ \"{{\" }}x{{ \"}}\" }}").unwrap();
    assert_eq!(t.as_static(), Some("/v2/{{x}}"));
}

#[test]
fn variables_render_their_captured_value_and_unset_ones_render_nothing() {
    let mut f = Fixture::new();
    assert_eq!(f.render("Bearer {{ token }}"), "Bearer t0k");
    assert_eq!(f.render("[{{order}}]"), "[]");
}

#[test]
fn feeder_columns_render_the_users_row() {
    let mut f = Fixture::new();
    assert_eq!(
        f.render("{{ row.accounts.user }}:{{ row.accounts.password }}"),
        "bob:b2"
    );
}

#[test]
fn user_id_renders_the_users_number() {
    assert_eq!(Fixture::new().render("u{{ user.id }}"), "u42");
}

#[test]
fn worker_index_and_count_render_the_workers_place() {
    let mut f = Fixture::new();
    assert_eq!(f.render("{{ worker.index }}/{{ worker.count }}"), "1/4");
}

#[test]
fn uuid_is_a_lowercase_hyphenated_version_4_uuid() {
    let mut f = Fixture::new();
    for _ in 0..50 {
        let u = f.render("{{ rand.uuid() }}");
        let groups: Vec<&str> = u.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12],
            "{u}"
        );
        assert!(u
            .chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)));
        assert!(groups[2].starts_with('4'), "{u}");
        assert!(
            matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "{u}"
        );
    }
}

#[test]
fn rand_string_and_choice_follow_their_arguments() {
    let mut f = Fixture::new();
    let s = f.render("{{ rand.string(12) }}");
    assert_eq!(s.len(), 12);
    assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
    for _ in 0..20 {
        let c = f.render("{{ rand.choice(\"red\", \"green\") }}");
        assert!(c == "red" || c == "green", "{c}");
    }
}

#[test]
fn the_same_seed_renders_the_same_text() {
    let src = "{{ rand.int(1, 1000000) }}-{{ rand.uuid() }}-{{ rand.string(8) }}";
    assert_eq!(Fixture::new().render(src), Fixture::new().render(src));
}

#[test]
fn now_renders_the_current_time() {
    let mut f = Fixture::new();
    let before = crate::timestamp::unix_now();
    let secs: u64 = f.render("{{ now.unix }}").parse().unwrap();
    let millis: u128 = f.render("{{now.unix_ms}}").parse().unwrap();
    assert!(secs >= before && secs <= before + 5);
    assert!(millis / 1000 >= u128::from(before));
    assert_eq!(
        f.render("{{ now.rfc3339 }}").len(),
        "2023-11-14T22:13:20Z".len()
    );
}

#[test]
fn unknown_variable_reports_its_offset_and_suggests_a_near_name() {
    let e = error("/x/{{ tokn }}");
    assert_eq!(e.offset, 6);
    assert_eq!(e.message, "unknown variable `tokn`");
    assert_eq!(e.hint.as_deref(), Some("did you mean `token`?"));
}

#[test]
fn unknown_feeder_and_column_are_reported_with_suggestions() {
    let e = error("{{ row.acounts.user }}");
    assert_eq!(
        (e.offset, e.message.as_str()),
        (7, "unknown feeder `acounts`")
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `accounts`?"));
    let e = error("{{ row.accounts.usr }}");
    assert_eq!(e.message, "feeder `accounts` has no column `usr`");
    assert_eq!(e.hint.as_deref(), Some("did you mean `user`?"));
}

#[test]
fn malformed_expressions_are_rejected() {
    for bad in [
        "{{ }}",
        "{{ a b }}",
        "{{ rand.int(5, 1) }}",
        "{{ rand.int(1) }}",
        "{{ rand.uuid }}",
        "{{ rand.uuid(1) }}",
        "{{ rand.dice() }}",
        "{{ rand.choice() }}",
        "{{ rand.string(-1) }}",
        "{{ now.today }}",
        "{{ row.accounts }}",
        "{{ user.name }}",
        "{{ token( }}",
        "{{ \"open }}",
        "{{ 99999999999999999999 }}",
        "{{ token",
        "{{ $x }}",
    ] {
        assert!(
            Fixture::new().compile(bad).is_err(),
            "{bad} should be rejected"
        );
    }
}

#[test]
fn every_bad_expression_in_a_template_is_reported() {
    let errors = Fixture::new()
        .compile("{{ a }}/{{ token }}/{{ b }}")
        .unwrap_err();
    let offsets: Vec<usize> = errors.iter().map(|e| e.offset).collect();
    assert_eq!(offsets, [3, 23]);
}

#[test]
fn static_json_is_serialized_once() {
    let mut f = Fixture::new();
    let (t, out) = f.json(json!({"x": 1, "s": "a\"b", "l": [true, null]}));
    assert_eq!(t.as_static(), Some(out.as_slice()));
    let back: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(back, json!({"x": 1, "s": "a\"b", "l": [true, null]}));
}

#[test]
fn json_strings_and_keys_render_escaped() {
    let mut f = Fixture::new();
    f.values[1] = Some("quote\" and\nnewline".into());
    let (t, out) = f.json(json!({"note": "{{ order }}", "k{{token}}": 1, "{{ api }}": "x"}));
    assert!(t.as_static().is_none());
    let back: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        back,
        json!({"note": "quote\" and\nnewline", "kt0k": 1, "v2": "x"})
    );
}

#[test]
fn json_with_only_plan_vars_is_static() {
    let (t, out) = Fixture::new().json(json!({"{{ api }}": ["{{api}}"]}));
    assert_eq!(t.as_static(), Some(br#"{"v2":["v2"]}"#.as_slice()));
    assert_eq!(out, br#"{"v2":["v2"]}"#);
}

#[test]
fn a_json_value_that_is_only_rand_int_renders_as_a_number() {
    let mut f = Fixture::new();
    let (_, out) = f.json(json!({"qty": "{{ rand.int(3, 3) }}", "id": "#{{ rand.int(3, 3) }}"}));
    let back: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(back, json!({"qty": 3, "id": "#3"}));
}

proptest! {
    #[test]
    fn rand_int_stays_within_its_inclusive_bounds(low in -1000i64..1000, span in 0i64..50, seed: u64) {
        let mut f = Fixture::new();
        f.rng = fastrand::Rng::with_seed(seed);
        let n: i64 = f.render(&format!("{{{{ rand.int({low}, {}) }}}}", low + span)).parse().unwrap();
        prop_assert!(n >= low && n <= low + span);
    }

    #[test]
    fn compile_never_panics(s in ".{0,40}") {
        let _ = Fixture::new().compile(&s);
    }

    #[test]
    fn compile_never_panics_on_expression_like_text(s in "[{} a-z.(),\"0-9-]{0,30}") {
        let _ = Fixture::new().compile(&format!("{{{{{s}}}}}"));
    }
}
