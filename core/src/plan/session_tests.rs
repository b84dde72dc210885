//! The plan keys of a user's HTTP session: cookies, redirects, forms and multipart bodies.

use std::collections::HashMap;

use super::*;

fn parse(src: &str) -> Result<Plan, Diagnostics> {
    Plan::parse(src, "plan.yaml", &HashMap::<String, String>::new())
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
fn redirects_are_followed_unless_a_request_says_not() {
    let plan = parse(
        "host: http://h\nusers:\n  - name: A\n    tasks:\n      - {get: /a}\n      - {get: /b, follow_redirects: false}\n",
    )
    .unwrap();
    let tasks = &plan.users[0].tasks;
    assert!(tasks[0].steps[0].follow_redirects);
    assert!(!tasks[1].steps[0].follow_redirects);
    assert_eq!(
        problems("host: http://h\nusers:\n  - name: A\n    tasks:\n      - {get: /b, follow_redirects: 3}\n"),
        [(5, "`follow_redirects` must be true or false, found number 3".to_string())]
    );
}
