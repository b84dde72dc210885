//! Session behaviour as Locust's HttpUser (a `requests.Session`) has it: cookies kept per user,
//! redirects followed, forms and compressed bodies; the real binary against targets that log
//! every request ([`hatchery_e2e::session`], nginx), with the report held against that log.

use std::path::{Path, PathBuf};

use hatchery_e2e::session::SessionServer;
use hatchery_e2e::{csv_column, csv_row, Finished, Standalone, TempDir};

/// Runs `plan` headless for `secs` seconds with `users` users against `host`, letting the last
/// task finish; the CSV prefix is `dir/run`.
async fn run(dir: &TempDir, plan: &str, host: &str, users: u32) -> Finished {
    let plan = dir.write("plan.yaml", plan);
    let prefix = dir.path().join("run");
    Standalone::headless(&plan)
        .users(users)
        .spawn_rate(100.0)
        .run_time("1s")
        .stop_timeout("5s")
        .host(host)
        .csv(&prefix)
        .command()
        .run()
        .await
}

fn stats(dir: &TempDir) -> PathBuf {
    dir.path().join("run_stats.csv")
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
      - {post: /login, check: {status: 302}}
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
      - {post: /login}
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
