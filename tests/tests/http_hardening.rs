//! The worker's HTTP/1.1 client against servers that misbehave on purpose
//! ([`hatchery_e2e::bad_servers`]): the real binary, standalone, and its report held against
//! what each server saw.

use hatchery_e2e::bad_servers::{BadServer, Behaviour};
use hatchery_e2e::short::{check, failures, one_second, stats};
use hatchery_e2e::{csv_column, Finished, TempDir};

/// Runs `plan` for a second with one user against `server`.
async fn run(dir: &TempDir, plan: &str, server: &BadServer) -> Finished {
    one_second(dir, plan, &server.url(), 1)
        .command()
        .run()
        .await
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// One user sending `GET /a` (stats name `a`) every 20 ms for a second to a server that
/// behaves so; checks that the server saw requests and as many as the report counts.
async fn get_a(behaviour: Behaviour, tag: &str) -> (BadServer, TempDir) {
    let server = BadServer::start(behaviour).await;
    let dir = TempDir::new(tag);
    let plan = "users:\n  - name: U\n    wait: {constant: 20ms}\n    tasks: [{get: /a, name: a}]\n";
    let out = run(&dir, plan, &server).await;
    let requests = server.requests() as u64;
    assert!(requests > 1, "{}", out.stderr());
    assert_eq!(csv_column(&stats(&dir), "a", "Request Count"), requests);
    (server, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feeder_row_holding_crlf_fails_its_request_instead_of_adding_a_header() {
    let server = BadServer::start(Behaviour::Answer(OK.to_vec())).await;
    let dir = TempDir::new("inject");
    dir.write("evil.csv", "v\n\"a\r\nX-Evil: 1\"\n");
    let out = run(
        &dir,
        "data:
  evil: {csv: evil.csv}
users:
  - name: U
    wait: {constant: 20ms}
    tasks:
      - {get: \"/x/{{ row.evil.v }}\", name: path}
      - {get: /h, name: header, headers: {x-v: \"{{ row.evil.v }}\"}}
      - {get: /ok, name: ok}
",
        &server,
    )
    .await;
    let heads = server.heads();
    assert!(
        heads
            .iter()
            .all(|h| !h.to_ascii_lowercase().contains("x-evil")),
        "a header was injected: {heads:?}"
    );
    assert!(heads.iter().all(|h| h.starts_with("GET /ok ")), "{heads:?}");
    assert!(!heads.is_empty(), "{}", out.stderr());
    assert_eq!(
        csv_column(&stats(&dir), "ok", "Request Count"),
        heads.len() as u64
    );
    let exceptions = std::fs::read_to_string(dir.path().join("run_exceptions.csv")).unwrap();
    assert!(exceptions.contains("CR, LF"), "{exceptions}");
    assert!(exceptions.contains("invalid value"), "{exceptions}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_refuses_userinfo_in_urls_and_framing_headers_set_by_the_plan() {
    let dir = TempDir::new("check");
    for (plan, expected) in [
        (
            "users:\n  - name: U\n    tasks: [{get: \"http://user:pw@127.0.0.1:1/a\"}]\n",
            "user name or password",
        ),
        (
            "host: http://127.0.0.1:1\nusers:\n  - name: U\n    tasks: [{post: /a, body: x, headers: {Content-Length: \"1\"}}]\n",
            "content-length",
        ),
        (
            "host: http://127.0.0.1:1\nusers:\n  - name: U\n    tasks: [{get: /a, headers: {transfer-encoding: chunked}}]\n",
            "transfer-encoding",
        ),
        (
            "host: http://127.0.0.1:1\nusers:\n  - name: U\n    tasks: [{get: \"/a b\"}]\n",
            "CR, LF",
        ),
    ] {
        let path = dir.write("plan.yaml", plan);
        let out = check(&path).await;
        assert_eq!(out.code(), 2, "{plan}: {}", out.stdout());
        assert!(out.stderr().contains(expected), "{plan}: {}", out.stderr());
    }
    let ok = dir.write(
        "plan.yaml",
        "users:\n  - name: U\n    tasks: [{get: /a, headers: {host: example.com, connection: close}}]\n",
    );
    let out = check(&ok).await;
    assert_eq!(out.code(), 0, "{}", out.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_encoding_with_content_length_closes_the_connection_after_each_response() {
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
          2\r\nok\r\n0\r\n\r\n";
    let (server, dir) = get_a(Behaviour::Answer(answer.to_vec()), "te-cl").await;
    assert_eq!(csv_column(&stats(&dir), "a", "Failure Count"), 0);
    assert_eq!(
        server.connections(),
        server.requests(),
        "a connection was reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_coding_other_than_chunked_reads_to_the_close_whatever_the_header_order() {
    let answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nabcdef";
    let (_server, dir) = get_a(Behaviour::AnswerThenClose(answer.to_vec()), "te-close").await;
    assert_eq!(csv_column(&stats(&dir), "a", "Average Content Size"), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_that_meets_a_closed_keep_alive_connection_fails_and_is_not_resent() {
    let server = BadServer::start(Behaviour::CloseOnSecond(OK.to_vec())).await;
    let dir = TempDir::new("post-stale");
    let plan = "users:\n  - name: U\n    wait: {constant: 10ms}\n    tasks: [{post: /p, body: x, name: p}]\n";
    let out = run(&dir, plan, &server).await;
    let requests = server.requests() as u64;
    assert!(requests > 2, "{}", out.stderr());
    assert_eq!(csv_column(&stats(&dir), "p", "Request Count"), requests);
    assert!(csv_column(&stats(&dir), "p", "Failure Count") > 0);
    assert!(failures(&dir).contains("not resent"), "{}", failures(&dir));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_past_max_body_fails_the_request_that_keeps_it_and_only_that_one() {
    let mut big = b"HTTP/1.1 200 OK\r\ncontent-length: 2097152\r\n\r\n".to_vec();
    big.resize(big.len() + 2 * 1024 * 1024, b'x');
    let server = BadServer::start(Behaviour::Answer(big)).await;
    let dir = TempDir::new("max-body");
    let plan = "max_body: 1MiB
users:
  - name: U
    wait: {constant: 20ms}
    tasks:
      - {get: /kept, name: kept, check: {body_contains: x}}
      - {get: /counted, name: counted}
";
    let out = run(&dir, plan, &server).await;
    let kept = csv_column(&stats(&dir), "kept", "Request Count");
    let counted = csv_column(&stats(&dir), "counted", "Request Count");
    assert!(kept > 0, "{}", out.stderr());
    assert_eq!(kept + counted, server.requests() as u64);
    assert_eq!(csv_column(&stats(&dir), "kept", "Failure Count"), kept);
    assert_eq!(csv_column(&stats(&dir), "counted", "Failure Count"), 0);
    assert!(
        failures(&dir).contains("response body larger than 1048576 bytes"),
        "{}",
        failures(&dir)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_informational_responses_fail_the_request() {
    let hints = "HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n".repeat(1000);
    let (server, dir) = get_a(Behaviour::Answer(hints.into_bytes()), "1xx").await;
    assert_eq!(
        csv_column(&stats(&dir), "a", "Failure Count"),
        server.requests() as u64
    );
    assert!(
        failures(&dir).contains("too many informational"),
        "{}",
        failures(&dir)
    );
}
