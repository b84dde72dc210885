//! The plan keys of a user's HTTP session: cookies, redirects, forms and multipart bodies.

use std::collections::HashMap;

use super::*;

fn files() -> HashMap<String, String> {
    HashMap::from([("notes.txt".to_string(), "hello".to_string())])
}

fn parse(src: &str) -> Result<Plan, Diagnostics> {
    Plan::parse(src, "plan.yaml", &files())
}

fn body_of(request: &str) -> Body {
    let src = format!("host: http://h\nusers:\n  - name: A\n    tasks:\n      - {request}\n");
    let plan = parse(&src).unwrap_or_else(|e| panic!("{e}"));
    plan.users[0].tasks[0].steps[0]
        .request()
        .unwrap()
        .body
        .clone()
}

/// Every problem in `src` as (line, message).
fn problems(src: &str) -> Vec<(u32, String)> {
    match parse(src) {
        Ok(_) => panic!("expected problems in:\n{src}"),
        Err(d) => d.items.into_iter().map(|i| (i.line, i.message)).collect(),
    }
}

#[test]
fn cookies_are_on_unless_a_class_turns_them_off() {
    let plan = parse(
        "host: http://h\nusers:\n  - {name: A, tasks: [{get: /}]}\n  - {name: B, cookies: false, tasks: [{get: /}]}\n",
    )
    .unwrap();
    assert!(plan.users[0].cookies);
    assert!(!plan.users[1].cookies);
    assert_eq!(
        problems("users:\n  - name: A\n    cookies: no thanks\n    tasks: [{get: /}]\n"),
        [(
            3,
            "`cookies` must be true or false, found string \"no thanks\"".to_string()
        )]
    );
}

#[test]
fn http2_is_the_plans_unless_a_class_sets_its_own() {
    let plan = parse(
        "host: http://h\nhttp2: true\nusers:\n  - {name: A, tasks: [{get: /}]}\n  - {name: B, http2: false, tasks: [{get: /}]}\n",
    )
    .unwrap();
    assert!(plan.http2(&plan.users[0]));
    assert!(!plan.http2(&plan.users[1]));
    let plan = parse("host: http://h\nusers:\n  - {name: A, http2: true, tasks: [{get: /}]}\n  - {name: B, tasks: [{get: /}]}\n").unwrap();
    assert!(plan.http2(&plan.users[0]));
    assert!(!plan.http2(&plan.users[1]));
    assert_eq!(
        problems("http2: 2\nusers:\n  - name: A\n    tasks: [{get: /}]\n"),
        [(
            1,
            "`http2` must be true or false, found number 2".to_string()
        )]
    );
}

#[test]
fn redirects_are_followed_unless_a_request_says_not() {
    let plan = parse(
        "host: http://h\nusers:\n  - name: A\n    tasks:\n      - {get: /a}\n      - {get: /b, follow_redirects: false}\n",
    )
    .unwrap();
    let tasks = &plan.users[0].tasks;
    assert!(tasks[0].steps[0].request().unwrap().follow_redirects);
    assert!(!tasks[1].steps[0].request().unwrap().follow_redirects);
    assert_eq!(
        problems("host: http://h\nusers:\n  - name: A\n    tasks:\n      - {get: /b, follow_redirects: 3}\n"),
        [(5, "`follow_redirects` must be true or false, found number 3".to_string())]
    );
}

#[test]
fn form_values_are_templates() {
    let Body::Form(pairs) = body_of("{post: /f, form: {user: \"{{ user.id }}\", n: 2}}") else {
        panic!("not a form");
    };
    assert_eq!(pairs[0].0, "user");
    assert!(pairs[0].1.as_static().is_none());
    assert_eq!(pairs[1].1.as_static(), Some("2"));
}

#[test]
fn multipart_files_are_read_with_the_plan_and_named_by_their_last_component() {
    let Body::Multipart(m) = body_of(
        "{post: /u, multipart: {fields: {title: t}, files: {a: notes.txt, b: {path: notes.txt, content_type: text/plain}}}}",
    ) else {
        panic!("not multipart");
    };
    assert_eq!(m.fields.len(), 1);
    assert_eq!(m.files[0].filename, "notes.txt");
    assert_eq!(&*m.files[0].content, b"hello");
    assert_eq!(m.files[0].content_type, None);
    assert_eq!(m.files[1].content_type.as_deref(), Some("text/plain"));
}

#[test]
fn a_request_with_two_bodies_or_an_unreadable_file_is_refused_at_its_line() {
    let tasks = "host: http://h\nusers:\n  - name: A\n    tasks:\n";
    assert_eq!(
        problems(&format!(
            "{tasks}      - {{post: /a, json: {{a: 1}}, form: {{b: 2}}}}\n"
        )),
        [(
            5,
            "a request has one body, found `json` and `form`".to_string()
        )]
    );
    assert_eq!(
        problems(&format!(
            "{tasks}      - {{post: /a, multipart: {{files: {{f: notes.txt}}}}, body: x}}\n"
        )),
        [(
            5,
            "a request has one body, found `multipart` and `body`".to_string()
        )]
    );
    let missing = problems(&format!(
        "{tasks}      - {{post: /a, multipart: {{files: {{f: gone.bin}}}}}}\n"
    ));
    assert_eq!(missing.len(), 1);
    assert!(
        missing[0].1.starts_with("cannot read file `gone.bin`"),
        "{missing:?}"
    );
    assert_eq!(
        problems(&format!("{tasks}      - {{post: /a, multipart: {{}}}}\n")),
        [(5, "`multipart` needs `fields` or `files`".to_string())]
    );
}
