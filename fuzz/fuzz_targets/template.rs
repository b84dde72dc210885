//! The template engine on arbitrary input, compiled against a fixed set of names (variables, a
//! constant, a feeder) and rendered with a fixed user: no panic; every error points into the
//! source; a static template renders as itself; and when the input is a JSON document, its
//! compiled body renders as valid JSON.

#![no_main]

use std::sync::Arc;

use hatchery_core::template::{JsonTemplate, Resolver, Scope, Table, Template, TemplateError};
use libfuzzer_sys::fuzz_target;

fn check_errors(src: &str, errors: &[TemplateError]) {
    assert!(!errors.is_empty(), "a refused template says why");
    for e in errors {
        assert!(
            e.offset <= src.len(),
            "error offset {} past the end: {e:?}",
            e.offset
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let vars = ["token".to_string(), "order".to_string()];
    let constants = [("api".to_string(), "v2".to_string())];
    let feeders = [Table {
        name: "accounts".into(),
        columns: vec!["user".into(), "password".into()],
        rows: Arc::new(vec![
            vec!["alice".into(), "a\"1\\".into()],
            vec!["bob".into(), "b2".into()],
        ]),
    }];
    let resolver = Resolver {
        vars: &vars,
        constants: &constants,
        feeders: &feeders,
    };
    let values = [Some("t0k\n\"".to_string()), None];
    let rows = [1];
    let mut rng = fastrand::Rng::with_seed(7);
    let mut scope = Scope {
        vars: &values,
        rows: &rows,
        feeders: &feeders,
        user_id: 3,
        worker_index: 1,
        worker_count: 4,
        rng: &mut rng,
    };

    match Template::compile(src, &resolver) {
        Ok(t) => {
            let mut out = String::new();
            t.render(&mut scope, &mut out);
            if let Some(text) = t.as_static() {
                assert_eq!(out, text, "a static template renders as itself");
            }
        }
        Err(errors) => check_errors(src, &errors),
    }

    if let Ok(value) = serde_json::from_str::<serde_json::Value>(src) {
        match JsonTemplate::compile(&value, &resolver) {
            Ok(t) => {
                let mut out = Vec::new();
                t.render(&mut scope, &mut out);
                if let Err(e) = serde_json::from_slice::<serde_json::Value>(&out) {
                    panic!(
                        "rendered body is not JSON ({e}): {}",
                        String::from_utf8_lossy(&out)
                    );
                }
            }
            Err(errors) => assert!(!errors.is_empty(), "a refused body says why"),
        }
    }
});
