//! Session behaviour as Locust's HttpUser (a `requests.Session`) has it: cookies kept per user,
//! redirects followed, forms and compressed bodies; the real binary against targets that log
//! every request ([`hatchery_e2e::session`], nginx), with the report held against that log.

use std::path::Path;

use hatchery_e2e::bad_servers::{BadServer, Behaviour};
use hatchery_e2e::session::{Seen, SessionServer};
use hatchery_e2e::short::{check, failures, one_second, stats};
use hatchery_e2e::{csv_column, csv_row, worker, Finished, Master, TempDir};

/// Runs `plan` for a second with `users` users against `host`.
async fn run(dir: &TempDir, plan: &str, host: &str, users: u32) -> Finished {
    one_second(dir, plan, host, users).command().run().await
}

/// The method column of the stats row `name`.
fn method(path: &Path, name: &str) -> String {
    csv_row(path, name)[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_keeps_the_session_cookie_its_login_set_and_sends_it_on_every_request() {
    let server = SessionServer::start().await;
    let dir = TempDir::new("cookies");
    let plan = "users:
  - name: U
    wait: {constant: 20ms}
    on_start:
      - {post: /login, follow_redirects: false, check: {status: 302}}
    tasks:
      - {get: /home, check: {status: 200}}
";
    let out = run(&dir, plan, &server.url(), 3).await;
    let homes: Vec<_> = server
        .seen()
        .into_iter()
        .filter(|s| s.path == "/home")
        .collect();
    assert!(homes.len() > 3, "{}", out.stderr());
    let sessions = server.sessions();
    assert_eq!(sessions.len(), 3, "one login per user");
    for home in &homes {
        let cookie = home.cookie.as_deref().unwrap_or("");
        assert!(
            sessions.iter().any(|s| cookie == format!("sid={s}")),
            "a request without its user's session cookie: {cookie:?}"
        );
    }
    let mut used: Vec<_> = homes.iter().filter_map(|h| h.cookie.clone()).collect();
    used.sort();
    used.dedup();
    assert_eq!(used.len(), 3, "each user sends its own cookie: {used:?}");
    assert_eq!(
        csv_column(&stats(&dir), "/home", "Request Count"),
        homes.len() as u64
    );
    assert_eq!(csv_column(&stats(&dir), "/home", "Failure Count"), 0);
    assert_eq!(csv_column(&stats(&dir), "/login", "Request Count"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_with_cookies_off_sends_none() {
    let server = SessionServer::start().await;
    let dir = TempDir::new("nocookies");
    let plan = "users:
  - name: U
    cookies: false
    wait: {constant: 20ms}
    on_start:
      - {post: /login, follow_redirects: false}
    tasks:
      - {get: /home, check: {status: 401}}
";
    let out = run(&dir, plan, &server.url(), 2).await;
    let seen = server.seen();
    assert!(seen.len() > 3, "{}", out.stderr());
    assert!(seen.iter().all(|s| s.cookie.is_none()), "{seen:?}");
    let homes = server.count("GET", "/home");
    assert_eq!(csv_column(&stats(&dir), "/home", "Request Count"), homes);
    assert_eq!(csv_column(&stats(&dir), "/home", "Failure Count"), 0);
    assert_eq!(method(&stats(&dir), "/home"), "GET");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_that_redirects_counts_once_under_its_own_name_with_the_final_response() {
    let server = SessionServer::start().await;
    let dir = TempDir::new("login");
    let plan = "users:
  - name: U
    wait: {constant: 20ms}
    tasks:
      - {post: /login, check: {status: 200, body_contains: welcome}}
";
    let out = run(&dir, plan, &server.url(), 2).await;
    let logins = server.count("POST", "/login");
    assert!(logins > 2, "{}", out.stderr());
    let stats = stats(&dir);
    assert_eq!(method(&stats, "/login"), "POST");
    assert_eq!(csv_column(&stats, "/login", "Request Count"), logins);
    assert_eq!(csv_column(&stats, "/login", "Failure Count"), 0);
    // The size of the final response ("welcome"), as Locust reports len(response.content).
    assert_eq!(csv_column(&stats, "/login", "Average Content Size"), 7);
    assert_eq!(read_csv_names(&stats), ["/login", "Aggregated"]);
    let homes: Vec<_> = server
        .seen()
        .into_iter()
        .filter(|s| s.path == "/home")
        .collect();
    assert_eq!(
        homes.len() as u64,
        logins,
        "each login followed to /home once"
    );
    assert!(
        homes
            .iter()
            .all(|h| h.method == "GET" && h.cookie.is_some()),
        "{homes:?}"
    );
}

/// The names of a stats CSV's rows.
fn read_csv_names(path: &Path) -> Vec<String> {
    hatchery_e2e::read_csv(path)
        .into_iter()
        .skip(1)
        .map(|r| r[1].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_rewrite_methods_as_requests_does_and_a_loop_stops_at_thirty() {
    let server = SessionServer::start().await;
    let dir = TempDir::new("redirects");
    let plan = "users:
  - name: U
    wait: {constant: 10ms}
    tasks:
      - sequence:
          - {get: /chain/3, name: chain, check: {body_contains: end}}
          - {get: /loop, name: loop}
          - {post: \"/redirect/303?to=/seen-303\", name: see-other, body: data}
          - {post: \"/redirect/307?to=/seen-307\", name: temporary, body: data}
          - {get: /chain/1, name: kept, follow_redirects: false, check: {status: 302}}
";
    let out = run(&dir, plan, &server.url(), 1).await;
    let stats = stats(&dir);
    let chains = csv_column(&stats, "chain", "Request Count");
    assert!(chains > 1, "{}", out.stderr());
    assert_eq!(server.count("GET", "/chain/3"), chains);
    assert_eq!(
        server.count("GET", "/chain/0"),
        chains,
        "kept must not follow"
    );
    assert_eq!(csv_column(&stats, "chain", "Failure Count"), 0);

    let loops = csv_column(&stats, "loop", "Request Count");
    assert_eq!(csv_column(&stats, "loop", "Failure Count"), loops);
    assert_eq!(
        server.count("GET", "/loop"),
        31 * loops,
        "1 request and 30 redirects each"
    );
    assert!(
        failures(&dir).contains("too many redirects (30)"),
        "{}",
        failures(&dir)
    );

    let seen = server.seen();
    let see_other: Vec<_> = seen.iter().filter(|s| s.path == "/seen-303").collect();
    assert_eq!(
        see_other.len() as u64,
        server.count("POST", "/redirect/303")
    );
    assert!(see_other
        .iter()
        .all(|s| s.method == "GET" && s.body.is_empty()));
    let temporary: Vec<_> = seen.iter().filter(|s| s.path == "/seen-307").collect();
    assert_eq!(
        temporary.len() as u64,
        server.count("POST", "/redirect/307")
    );
    assert!(temporary
        .iter()
        .all(|s| s.method == "POST" && s.body == b"data"));
    // /chain/1 is also the third request of each followed chain.
    let kept = csv_column(&stats, "kept", "Request Count");
    assert_eq!(kept + chains, server.count("GET", "/chain/1"));
    assert_eq!(csv_column(&stats, "kept", "Failure Count"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_goes_along_a_redirect_on_its_origin_only() {
    let (home, other) = (SessionServer::start().await, SessionServer::start().await);
    let dir = TempDir::new("auth");
    let plan = format!(
        "users:
  - name: U
    wait: {{constant: 20ms}}
    tasks:
      - sequence:
          - {{get: \"/redirect/302?to=/same\", name: same, headers: {{authorization: Bearer t}}}}
          - {{get: \"/redirect/302?to={}/away\", name: away, headers: {{authorization: Bearer t}}}}
",
        other.url()
    );
    let out = run(&dir, &plan, &home.url(), 1).await;
    let same: Vec<_> = home
        .seen()
        .into_iter()
        .filter(|s| s.path == "/same")
        .collect();
    assert!(!same.is_empty(), "{}", out.stderr());
    assert!(same
        .iter()
        .all(|s| s.authorization.as_deref() == Some("Bearer t")));
    let away: Vec<_> = other
        .seen()
        .into_iter()
        .filter(|s| s.path == "/away")
        .collect();
    assert_eq!(
        away.len() as u64,
        csv_column(&stats(&dir), "away", "Request Count")
    );
    assert!(away.iter().all(|s| s.authorization.is_none()), "{away:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_location_with_a_folded_line_or_credentials_is_refused_not_followed() {
    let folded = BadServer::start(Behaviour::Answer(
        b"HTTP/1.1 302 Found\r\nLocation: /a\r\n X-Evil: 1\r\ncontent-length: 0\r\n\r\n".to_vec(),
    ))
    .await;
    let dir = TempDir::new("folded");
    let plan = "users:\n  - name: U\n    wait: {constant: 20ms}\n    tasks: [{get: /r, name: r}]\n";
    run(&dir, plan, &folded.url(), 1).await;
    let heads = folded.heads();
    assert!(heads.iter().all(|h| h.starts_with("GET /r ")), "{heads:?}");
    assert_eq!(
        csv_column(&stats(&dir), "r", "Failure Count"),
        heads.len() as u64
    );
    assert!(
        failures(&dir).contains("redirect refused"),
        "{}",
        failures(&dir)
    );

    let server = SessionServer::start().await;
    let dir = TempDir::new("userinfo");
    let plan = format!(
        "users:\n  - name: U\n    wait: {{constant: 20ms}}\n    tasks: [{{get: \"/redirect/302?to=http://u:p@{}/x\", name: r}}]\n",
        server.addr
    );
    run(&dir, &plan, &server.url(), 1).await;
    let seen = server.seen();
    assert!(seen.iter().all(|s| s.path == "/redirect/302"), "{seen:?}");
    assert_eq!(
        csv_column(&stats(&dir), "r", "Failure Count"),
        seen.len() as u64
    );
    assert!(
        failures(&dir).contains("user name or password"),
        "{}",
        failures(&dir)
    );
}

/// A file that is not UTF-8, so it travels in the plan's bundle as base64.
const PHOTO: &[u8] = &[0x89, b'P', b'N', b'G', 0, 0xff, b'\r', b'\n', 0x80];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_and_multipart_files_reach_the_target_from_a_worker_that_has_no_copy_of_them() {
    let server = SessionServer::start().await;
    let dir = TempDir::new("forms");
    std::fs::write(dir.path().join("photo.bin"), PHOTO).unwrap();
    let plan = dir.write(
        "plan.yaml",
        "users:
  - name: U
    wait: {constant: 20ms}
    tasks:
      - sequence:
          - {post: /form, form: {user: \"ann b&c\", id: \"{{ user.id }}\"}}
          - post: /upload
            multipart:
              fields: {title: \"t{{ user.id }}\"}
              files: {photo: {path: photo.bin, content_type: image/png}}
",
    );
    let prefix = dir.path().join("run");
    let m = Master::headless(&plan)
        .host(&server.url())
        .users(1)
        .spawn_rate(10.0)
        .run_time("1s")
        .stop_timeout("5s")
        .workers(1)
        .csv(&prefix)
        .spawn()
        .await;
    let elsewhere = TempDir::new("worker-cwd");
    let w = worker(m.grpc, &[]).current_dir(elsewhere.path()).spawn();
    m.process.finish().await.expect_code(0);
    w.finish().await.expect_code(0);

    let seen = server.seen();
    let forms: Vec<_> = seen.iter().filter(|s| s.path == "/form").collect();
    assert!(!forms.is_empty(), "{seen:?}");
    assert_eq!(
        csv_column(&stats(&dir), "/form", "Request Count"),
        forms.len() as u64
    );
    for f in &forms {
        assert_eq!(
            f.content_type.as_deref(),
            Some("application/x-www-form-urlencoded")
        );
        let body = String::from_utf8_lossy(&f.body);
        assert!(body.starts_with("user=ann+b%26c&id="), "{body}");
    }
    let uploads: Vec<_> = seen.iter().filter(|s| s.path == "/upload").collect();
    assert_eq!(
        csv_column(&stats(&dir), "/upload", "Request Count"),
        uploads.len() as u64
    );
    assert_eq!(csv_column(&stats(&dir), "/upload", "Failure Count"), 0);
    for u in &uploads {
        assert_eq!(u.body, upload(u, "photo.bin", PHOTO));
    }
}

/// The multipart body user 0 sends in the upload tests: the field `title = t0`, then the file
/// `photo` as `filename` holding `content`, between the boundary of `u`'s content type.
fn upload(u: &Seen, filename: &str, content: &[u8]) -> Vec<u8> {
    let content_type = u.content_type.as_deref().unwrap_or("");
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .unwrap_or_else(|| panic!("{content_type}"));
    let mut expected = format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"title\"\r\n\r\nt0\r\n\
         --{boundary}\r\ncontent-disposition: form-data; name=\"photo\"; filename=\"{filename}\"\r\n\
         content-type: image/png\r\n\r\n"
    )
    .into_bytes();
    expected.extend_from_slice(content);
    expected.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    expected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_the_line_of_a_request_with_two_bodies() {
    let dir = TempDir::new("twobodies");
    let plan = dir.write(
        "plan.yaml",
        "host: http://127.0.0.1:1\nusers:\n  - name: U\n    tasks:\n      - {post: /a, form: {a: 1}, json: {b: 2}}\n",
    );
    let out = check(&plan).await;
    assert_ne!(out.code(), 0);
    let err = out.stderr();
    assert!(err.contains("plan.yaml:5"), "{err}");
    assert!(
        err.contains("a request has one body, found `form` and `json`"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_user_keeps_its_cookies_and_follows_redirects_as_a_plan_request_does() {
    let server = SessionServer::start().await;
    let dir = TempDir::new("script-session");
    let plan = r#"users:
  - name: U
    wait: {constant: 20ms}
    script: |
      function visit(user)
        local login = user.http:post("/login", {follow_redirects = false})
        if login.status ~= 302 then login:failure("login answered " .. login.status) end
        local home = user.http:get("/home", {name = "home"})
        if home.body ~= "welcome" then home:failure("home said " .. home.body) end
        local chain = user.http:get("/chain/2", {name = "chain"})
        if chain.body ~= "end" then chain:failure("the chain ended at " .. chain.status) end
      end
    tasks:
      - {call: visit}
"#;
    let out = run(&dir, plan, &server.url(), 2).await;
    let stats = stats(&dir);
    let homes: Vec<_> = server
        .seen()
        .into_iter()
        .filter(|s| s.path == "/home")
        .collect();
    assert!(homes.len() > 2, "{}", out.stderr());
    let sessions = server.sessions();
    assert!(
        homes.iter().all(|h| h
            .cookie
            .as_deref()
            .is_some_and(|c| sessions.iter().any(|s| c == format!("sid={s}")))),
        "a scripted request without its user's session cookie: {homes:?}"
    );
    for name in ["/login", "home", "chain"] {
        assert_eq!(csv_column(&stats, name, "Failure Count"), 0, "{name}");
    }
    assert_eq!(
        csv_column(&stats, "home", "Request Count"),
        homes.len() as u64
    );
    // A chain is one entry, and each of its hops one request to the target.
    let chains = csv_column(&stats, "chain", "Request Count");
    assert_eq!(server.count("GET", "/chain/0"), chains);
    assert_eq!(server.count("GET", "/chain/1"), chains);
    let mut names = read_csv_names(&stats);
    names.sort();
    assert_eq!(names, ["/login", "Aggregated", "chain", "home"]);
}

/// The pairs of a `cookie` header.
fn cookie_pairs(header: Option<&str>) -> Vec<&str> {
    header.map_or(Vec::new(), |c| c.split("; ").collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_reads_the_cookie_its_host_set_and_sets_one_that_its_next_requests_carry() {
    let server = SessionServer::start().await;
    let dir = TempDir::new("script-cookies");
    let plan = r#"users:
  - name: U
    wait: {constant: 20ms}
    script: |
      function login(user)
        user.http:post("/login", {follow_redirects = false})
        user.http:get("/seen/" .. tostring(user.cookies:get("sid")), {name = "seen"})
        user.cookies:set("token", "t" .. user.id, {path = "/api"})
      end
      function visit(user)
        user.http:get("/api/items", {name = "api"})
        user.http:get("/other", {name = "other"})
      end
    on_start: [{call: login}]
    tasks:
      - {call: visit}
"#;
    let out = run(&dir, plan, &server.url(), 2).await;
    let seen = server.seen();
    let on = |path: &'static str| seen.iter().filter(move |s| s.path.starts_with(path));
    // What the script read is what the server set: each user's own session.
    let mut read: Vec<&str> = on("/seen/").map(|s| &s.path["/seen/".len()..]).collect();
    read.sort();
    assert_eq!(read, server.sessions(), "{}", out.stderr());
    // What the script set went out on the requests its path covers, and on no other.
    let api: Vec<_> = on("/api/items").collect();
    assert!(api.len() > 2, "{}", out.stderr());
    let mut tokens: Vec<&str> = api
        .iter()
        .map(|s| {
            let pairs = cookie_pairs(s.cookie.as_deref());
            assert!(pairs.iter().any(|p| p.starts_with("sid=s-")), "{s:?}");
            let token = pairs.iter().find(|p| p.starts_with("token=t"));
            *token.unwrap_or_else(|| panic!("no token: {s:?}"))
        })
        .collect();
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 2, "each user sends its own: {tokens:?}");
    assert!(on("/other").all(|s| !cookie_pairs(s.cookie.as_deref())
        .iter()
        .any(|p| p.starts_with("token="))));
    let stats = stats(&dir);
    assert_eq!(csv_column(&stats, "api", "Request Count"), api.len() as u64);
    for name in ["seen", "api", "other"] {
        assert_eq!(csv_column(&stats, name, "Failure Count"), 0, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_posts_a_form_and_a_multipart_body_as_a_plan_request_does() {
    let server = SessionServer::start().await;
    let dir = TempDir::new("script-forms");
    let plan = r#"users:
  - name: U
    wait: {constant: 20ms}
    script: |
      function send(user)
        user.http:post("/form", {form = {user = "ann b&c", id = user.id}})
        user.http:post("/upload", {multipart = {
          fields = {title = "t" .. user.id},
          files = {photo = {content = string.char(0, 255, 13, 10), filename = "p.bin", content_type = "image/png"}},
        }})
      end
    tasks:
      - {call: send}
"#;
    let out = run(&dir, plan, &server.url(), 1).await;
    let stats = stats(&dir);
    let seen = server.seen();
    let forms: Vec<_> = seen.iter().filter(|s| s.path == "/form").collect();
    assert!(!forms.is_empty(), "{}", out.stderr());
    for f in &forms {
        let content_type = f.content_type.as_deref();
        assert_eq!(content_type, Some("application/x-www-form-urlencoded"));
        assert_eq!(String::from_utf8_lossy(&f.body), "id=0&user=ann+b%26c");
    }
    let uploads: Vec<_> = seen.iter().filter(|s| s.path == "/upload").collect();
    assert!(!uploads.is_empty(), "{}", out.stderr());
    for u in &uploads {
        assert_eq!(u.body, upload(u, "p.bin", &[0, 255, b'\r', b'\n']));
    }
    for (name, count) in [("/form", forms.len()), ("/upload", uploads.len())] {
        assert_eq!(csv_column(&stats, name, "Request Count"), count as u64);
        assert_eq!(csv_column(&stats, name, "Failure Count"), 0, "{name}");
    }
}
