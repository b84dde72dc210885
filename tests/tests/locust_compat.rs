//! Locust's own flags, variables and config file with the real binary: what a Locust user's
//! command lines, Dockerfiles and Helm values do with Hatchery.

use std::time::Duration;

use hatchery_e2e::{eventually, hatchery, http, Port, Standalone, Target, TempDir};
use serde_json::Value;

/// Readers and Writers, each announcing its start; `host` is the target when given.
fn plan(dir: &TempDir, host: Option<&str>) -> std::path::PathBuf {
    let host = host.map(|h| format!("host: {h}\n")).unwrap_or_default();
    dir.write(
        "plan.yaml",
        &format!("{host}{}", hatchery_e2e::READER_WRITER_PLAN),
    )
}

fn starts(target: &Target) -> (u64, u64) {
    (
        target.count("GET", "/start/reader"),
        target.count("GET", "/start/writer"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locust_conf_and_locust_variables_are_read_after_hatcherys_own_settings() {
    let target = Target::start().await;
    let dir = TempDir::new("locust-conf");
    plan(&dir, None);
    dir.write(
        "locust.conf",
        "locustfile = plan.yaml\nheadless = true\nusers = 9\nhatch-rate = 100\nrun-time = 1s\nstop-timeout = 5s\n",
    );
    // hatchery.conf wins over LOCUST_USERS and locust.conf; LOCUST_HOST fills what none set.
    dir.write("hatchery.conf", "users = 2\n");
    let out = hatchery(&[])
        .current_dir(dir.path())
        .env("LOCUST_HOST", &target.url())
        .env("LOCUST_USERS", "7")
        .run()
        .await;
    out.expect_code(0);
    assert_eq!(starts(&target), (2, 0), "{}", out.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_load_with_locusts_old_flags_adds_users_step_by_step_into_a_logfile() {
    let target = Target::start().await;
    let dir = TempDir::new("step-load");
    let plan = plan(&dir, Some(&target.url()));
    let log = dir.path().join("run.log");
    let out = hatchery(&[
        "-f",
        plan.to_str().unwrap(),
        "--headless",
        "-u",
        "4",
        "--hatch-rate",
        "100",
        "--step-load",
        "--step-users",
        "2",
        "--step-time",
        "1s",
        "-t",
        "2500ms",
        "-s",
        "5s",
        "--print-stats",
        "--logfile",
        log.to_str().unwrap(),
    ])
    .run()
    .await;
    out.expect_code(0);
    let log = std::fs::read_to_string(&log).expect("the log file");
    assert!(log.contains("shape stage 1: 2 users"), "{log}");
    assert!(log.contains("shape stage 2: 4 users"), "{log}");
    assert!(!out.stderr().contains("shape stage"), "{}", out.stderr());
    let (r, w) = starts(&target);
    assert_eq!(r + w, 4);
}

/// `POST /swarm` with Locust's form, `user_classes` repeated as its class picker sends it.
async fn swarm(web: u16, classes: &[&str]) -> (u16, Value) {
    let mut form = "user_count=4&spawn_rate=100".to_string();
    for c in classes {
        form.push_str(&format!("&user_classes={c}"));
    }
    let (code, body) = http(web, "POST", "/swarm", Some(&form), &[])
        .await
        .expect("the UI answers");
    (code, serde_json::from_str(&body).expect("JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_named_on_the_command_line_runs_alone_and_the_class_picker_may_pick_only_it() {
    let target = Target::start().await;
    let dir = TempDir::new("classes");
    let plan = plan(&dir, Some(&target.url()));
    let mut ui = hatchery(&[
        "-f",
        plan.to_str().unwrap(),
        "Reader",
        "--class-picker",
        "--web-host",
        "127.0.0.1",
        "-P",
        "0",
        "-s",
        "5s",
    ])
    .spawn();
    let web = ui.listening(Port::Web).await;
    let (code, refused) = swarm(web, &["Reader", "Writer"]).await;
    assert_eq!(code, 400, "{refused}");
    assert!(refused["message"]
        .as_str()
        .unwrap()
        .contains("this run runs Reader"));
    let (code, started) = swarm(web, &["Reader"]).await;
    assert_eq!(code, 200, "{started}");
    assert_eq!(started["host"], target.url().as_str());
    eventually("four readers", Duration::from_secs(20), || async {
        (starts(&target) == (4, 0)).then_some(())
    })
    .await;
    assert_eq!(http(web, "GET", "/stop", None, &[]).await.unwrap().0, 200);
    assert_eq!(starts(&target), (4, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_users_sets_weights_and_an_unknown_class_is_refused_by_name() {
    let target = Target::start().await;
    let dir = TempDir::new("config-users");
    let plan = plan(&dir, Some(&target.url()));
    let run = |extra: &[&str]| {
        Standalone::headless(&plan)
            .users(4)
            .spawn_rate(100.0)
            .run_time("1s")
            .stop_timeout("5s")
            .args(extra)
            .command()
            .run()
    };
    let users = r#"[{"user_class_name": "Writer", "fixed_count": 3}]"#;
    run(&["--config-users", users]).await.expect_code(0);
    assert_eq!(starts(&target), (1, 3));
    let unknown = run(&["Raeder"]).await;
    unknown.expect_code(2);
    assert!(
        unknown.stderr().contains("did you mean Reader?"),
        "{}",
        unknown.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_reports_the_plans_host_as_the_host_in_use() {
    let target = Target::start().await;
    let dir = TempDir::new("plan-host");
    let plan = plan(&dir, Some(&target.url()));
    let mut ui = hatchery(&["-f", plan.to_str().unwrap(), "--web-port", "0"]).spawn();
    let web = ui.listening(Port::Web).await;
    let (code, body) = http(web, "GET", "/stats/requests", None, &[])
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let stats: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stats["host"], target.url().as_str(), "{body}");
    let (code, started) = swarm(web, &[]).await;
    assert_eq!(code, 200, "{started}");
    assert_eq!(started["host"], target.url().as_str());
}
