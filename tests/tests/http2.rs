//! HTTP/2 for users with `http2: true`: the real binary against Debian's nginx in cleartext
//! HTTP/2 (h2c, prior knowledge) and over TLS with "h2" by ALPN, held against nginx's access log
//! (which names each request's protocol), and against a purpose-built bad HTTP/2 server
//! ([`hatchery_e2e::bad_h2`]) for what a target may send to turn a user against its tester.

use hatchery_e2e::bad_h2::{BadH2, Misbehaviour};
use hatchery_e2e::nginx::{page, Access, Listen, Nginx};
use hatchery_e2e::short::{check, failures, one_second, stats};
use hatchery_e2e::{csv_column, test_ca, Finished, TempDir};

/// Runs `plan` headless for about a second with `users` users against `host`, trusting the test
/// CA; the CSV prefix is `dir/run`.
async fn run(dir: &TempDir, plan: &str, host: &str, users: u32) -> Finished {
    let ca = test_ca();
    one_second(dir, plan, host, users)
        .args(&["--ca-cert", ca.to_str().expect("a UTF-8 path")])
        .command()
        .run()
        .await
}

fn count(dir: &TempDir, name: &str) -> u64 {
    csv_column(&stats(dir), name, "Request Count")
}

fn failed(dir: &TempDir, name: &str) -> u64 {
    csv_column(&stats(dir), name, "Failure Count")
}

fn all_in(log: &[Access], protocol: &str) -> bool {
    !log.is_empty() && log.iter().all(|a| a.protocol == protocol)
}

/// A login that sets a cookie and redirects to a page that answers 403 without it.
const SESSION: &str = r#"
        location = /login { add_header Set-Cookie "session=s3cret; Path=/"; return 302 /home; }
        location = /home { if ($cookie_session != "s3cret") { return 403; } return 200 "home"; }
        location = /form { return 200 "$request_method"; }
"#;

const SESSION_PLAN: &str = "http2: true
users:
  - name: U
    wait: {constant: 10ms}
    on_start:
      - {post: /login, name: login, form: {user: '{{ user.id }}'}, check: {body_contains: home}}
    tasks:
      - sequence:
          - {get: /home, name: home, check: {body_contains: home}}
          - {get: /big.txt, name: gzip, check: {body_contains: the needle at the end}}
          - {post: /form, name: form, form: {a: '1', b: x y}}
          - post: /form
            name: multipart
            multipart: {fields: {a: '1'}}
";

/// Every request of the session plan reached nginx once, as HTTP/2, and the cookie set by the
/// login came back after its redirect.
async fn session_over_http2(listen: Listen, protocol: &str) {
    let page = page();
    let nginx = Nginx::serve(listen, &[("big.txt", &page)], SESSION).await;
    let dir = TempDir::new("h2-session");
    let out = run(&dir, SESSION_PLAN, &nginx.url(), 3).await;
    assert!(count(&dir, "home") > 3, "{}", out.stderr());
    assert_eq!(count(&dir, "login"), 3, "{}", failures(&dir));
    assert_eq!(failed(&dir, "Aggregated"), 0, "{}", failures(&dir));
    let log = nginx.access();
    assert!(all_in(&log, protocol), "{log:?}");
    // The login's redirect is followed and counted as the login (Locust's way).
    assert_eq!(nginx.access_to("/login").len(), 3);
    assert_eq!(
        nginx.access_to("/home").len() as u64,
        count(&dir, "home") + 3
    );
    assert!(nginx.access_to("/home").iter().all(|a| a.status == 200));
    let forms = nginx.access_to("/form");
    assert_eq!(
        forms.len() as u64,
        count(&dir, "form") + count(&dir, "multipart")
    );
    assert!(forms.iter().all(|a| a.method == "POST" && a.status == 200));
    let gzipped = nginx.access_to("/big.txt");
    assert_eq!(gzipped.len() as u64, count(&dir, "gzip"));
    assert!(
        gzipped
            .iter()
            .all(|a| a.accept_encoding == "gzip, deflate"
                && a.body_bytes_sent < page.len() as u64 / 5)
    );
    assert_eq!(
        csv_column(&stats(&dir), "gzip", "Average Content Size"),
        page.len() as u64,
        "the decoded size, as over HTTP/1.1"
    );
    assert_eq!(log.len() as u64, count(&dir, "Aggregated") + 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleartext_http2_by_prior_knowledge_carries_cookies_redirects_forms_and_gzip() {
    session_over_http2(Listen::H2c, "HTTP/2.0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_h2_by_alpn_carries_cookies_redirects_forms_and_gzip() {
    session_over_http2(Listen::TlsH2, "HTTP/2.0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_server_that_does_not_choose_h2_is_spoken_to_in_http_1_1() {
    session_over_http2(Listen::Tls, "HTTP/1.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_request_goes_out_over_the_users_http2_connection() {
    let nginx = Nginx::serve(Listen::H2c, &[("a.txt", b"hello")], "").await;
    let dir = TempDir::new("h2-script");
    let plan = r#"http2: true
users:
  - name: U
    wait: {constant: 10ms}
    script: |
      function read(user)
        local r = user.http:get("/a.txt", {name = "scripted"})
        if r.body ~= "hello" then r:failure("got " .. r.body) end
      end
    tasks:
      - {call: read}
"#;
    let out = run(&dir, plan, &nginx.url(), 2).await;
    assert!(count(&dir, "scripted") > 2, "{}", out.stderr());
    assert_eq!(failed(&dir, "scripted"), 0, "{}", failures(&dir));
    let log = nginx.access_to("/a.txt");
    assert!(all_in(&log, "HTTP/2.0"), "{log:?}");
    assert_eq!(log.len() as u64, count(&dir, "scripted"));
}

/// A plan for the bad server: GETs and POSTs in turn, each named for its path.
const BAD_PLAN: &str = "http2: true
max_body: 64KiB
users:
  - name: U
    wait: {constant: 10ms}
    tasks:
      - sequence:
          - {get: /get, name: get, check: {body_contains: ok}}
          - {post: /post, name: post, body: hi}
";

async fn against(misbehaviour: Misbehaviour) -> (BadH2, TempDir, Finished) {
    let server = BadH2::start(misbehaviour).await;
    let dir = TempDir::new("bad-h2");
    let out = run(&dir, BAD_PLAN, &server.url(), 1).await;
    (server, dir, out)
}

/// Runs the bad plan against `misbehaviour`, which spoils every GET: each GET fails naming
/// `message`, each POST passes, on one connection (only the stream was reset). Returns how many
/// requests the server answered, the report counted, and of those how many were POSTs.
async fn every_get_fails(misbehaviour: Misbehaviour, message: &str) -> (u64, u64, u64) {
    let (server, dir, out) = against(misbehaviour).await;
    assert!(count(&dir, "get") > 1, "{}", out.stderr());
    assert_eq!(failed(&dir, "get"), count(&dir, "get"));
    assert_eq!(failed(&dir, "post"), 0, "{}", failures(&dir));
    assert!(failures(&dir).contains(message), "{}", failures(&dir));
    assert_eq!(server.connections(), 1);
    (
        server.answered(),
        count(&dir, "Aggregated"),
        count(&dir, "post"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_list_past_the_bound_fails_the_request_and_the_user_goes_on() {
    let (answered, counted, _) = every_get_fails(
        Misbehaviour::HugeHeaders,
        "invalid response, stream reset by the client",
    )
    .await;
    assert_eq!(answered, counted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_past_max_body_fails_its_request_over_http2() {
    let (answered, counted, _) = every_get_fails(
        Misbehaviour::HugeBody,
        "response body larger than 65536 bytes (max_body)",
    )
    .await;
    assert_eq!(answered, counted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_stream_fails_its_request_by_name_and_the_connection_goes_on() {
    let (answered, _, posts) =
        every_get_fails(Misbehaviour::ResetGets, "stream reset by the server").await;
    assert_eq!(answered, posts, "only POSTs are answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_times_out_fails_and_its_connection_is_not_reused() {
    let server = BadH2::start(Misbehaviour::StallGets).await;
    let dir = TempDir::new("h2-timeout");
    let plan = BAD_PLAN.replace("check: {body_contains: ok}}", "timeout: 200ms}");
    let out = run(&dir, &plan, &server.url(), 1).await;
    assert!(count(&dir, "get") > 1, "{}", out.stderr());
    assert_eq!(failed(&dir, "get"), count(&dir, "get"));
    assert_eq!(failed(&dir, "post"), 0, "{}", failures(&dir));
    assert!(
        failures(&dir).contains("timeout after 200ms"),
        "{}",
        failures(&dir)
    );
    // A connection that may still carry the late response is never reused: each POST after a
    // timed-out GET opens a new one.
    assert_eq!(server.connections(), count(&dir, "get") + 1);
    assert_eq!(server.answered(), count(&dir, "post"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goaway_resends_a_get_on_a_new_connection_and_fails_a_post_by_name() {
    let (server, dir, out) = against(Misbehaviour::GoAwayAfterConnectionNumber).await;
    assert!(count(&dir, "get") > 3, "{}", out.stderr());
    assert_eq!(failed(&dir, "get"), 0, "{}", failures(&dir));
    assert!(failed(&dir, "post") > 0, "{}", failures(&dir));
    assert!(
        failures(&dir).contains("not resent (the method is not idempotent)"),
        "{}",
        failures(&dir)
    );
    assert!(server.connections() > 1);
    // Every request the report counts as answered, the server answered; no POST twice.
    assert_eq!(
        server.answered(),
        count(&dir, "Aggregated") - failed(&dir, "post")
    );
    assert_eq!(
        server.answered_posts(),
        count(&dir, "post") - failed(&dir, "post")
    );
}

/// The GOAWAY of a server that closes idle connections comes while the user waits (10 ms, past
/// the server's idle timeout): it is seen before the next POST, which goes on a new connection
/// instead of failing as a request that met a closed connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goaway_that_came_while_the_user_waited_sends_the_next_post_on_a_new_connection() {
    let server = BadH2::start(Misbehaviour::GoAwayWhenIdle).await;
    let dir = TempDir::new("h2-idle-goaway");
    // The server says GOAWAY 3 ms into the wait: 97 ms before the next POST, so that a loaded
    // machine's scheduling cannot make the two cross (with a 10 ms wait, 2 runs in 40 failed:
    // a POST sent before the GOAWAY that was already on its way, which no client can help).
    let plan = "http2: true
users:
  - name: U
    wait: {constant: 100ms}
    tasks:
      - {post: /post, name: post, body: hi}
";
    let out = run(&dir, plan, &server.url(), 1).await;
    assert!(count(&dir, "post") > 3, "{}", out.stderr());
    assert_eq!(failed(&dir, "post"), 0, "{}", failures(&dir));
    assert_eq!(server.answered_posts(), count(&dir, "post"));
    // One connection per POST (the last may have opened one as the run ended).
    let conns = server.connections();
    assert!(
        (count(&dir, "post")..=count(&dir, "post") + 1).contains(&conns),
        "{conns}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_refuses_what_http2_cannot_carry_in_a_class_that_speaks_it() {
    let dir = TempDir::new("h2-check");
    let specific = "connection-specific and HTTP/2 has no place for it";
    for (header, expected) in [
        ("connection: close", specific),
        ("Keep-Alive: 5", specific),
        ("upgrade: websocket", specific),
        ("te: gzip", specific),
        ("host: a b", "cannot send over HTTP/2: host is no authority"),
    ] {
        let plan = format!(
            "host: http://127.0.0.1:1\nhttp2: true\nusers:\n  - name: U\n    tasks: [{{get: /a, headers: {{{header}}}}}]\n"
        );
        let path = dir.write("plan.yaml", &plan);
        let out = check(&path).await;
        assert_eq!(out.code(), 2, "{plan}: {}", out.stdout());
        assert!(out.stderr().contains(expected), "{plan}: {}", out.stderr());
    }
    let ok = dir.write(
        "plan.yaml",
        "host: http://127.0.0.1:1\nhttp2: true\nusers:\n  - {name: A, tasks: [{get: /a, headers: {te: trailers}}]}\n  - {name: B, http2: false, tasks: [{get: /a, headers: {connection: close}}]}\n",
    );
    let out = check(&ok).await;
    assert_eq!(out.code(), 0, "{}", out.stderr());
}
