//! Every request sent is accounted for. Users stopped at the deadline without waiting
//! (`--stop-timeout 0`, the default) abandon the request they have in flight, as in Locust;
//! those are in no row but counted as `abandoned_requests`, so the rows plus the abandoned
//! requests are exactly what the target served, standalone and distributed.

use std::path::Path;
use std::time::Duration;

use hatchery_e2e::{
    eventually, hatchery, stats, worker, Finished, Master, Running, Target, TempDir,
};

/// Half the tasks take 150 ms on the target, so nearly every user has a request in flight at
/// the deadline; the other half answer at once, so the counts are large.
const PLAN: &str = "users:
  - name: Mixed
    wait: {constant: 0s}
    tasks:
      - {get: /sleep/150, name: slow}
      - {get: /a, name: fast}
";

/// A standalone run of `plan` with `users` users for `time` against `target`, `--json`.
async fn standalone(plan: &Path, users: &str, time: &str, target: &Target) -> Finished {
    let out = hatchery(&[
        "-f",
        plan.to_str().unwrap(),
        "--headless",
        "-u",
        users,
        "-r",
        "1000",
        "-t",
        time,
        "--host",
        &target.url(),
        "--only-summary",
        "--json",
    ])
    .run()
    .await;
    out.expect_code(0);
    out
}

/// The rows plus the abandoned requests (`--json`) equal the target's count, to the request.
async fn assert_accounted(target: &Target, out: &Finished, what: &str) -> u64 {
    let served = target.total_when_idle(Duration::from_secs(20)).await;
    let doc: serde_json::Value = serde_json::from_str(&out.stdout())
        .unwrap_or_else(|e| panic!("--json prints JSON ({e}):\n{}", out.stdout()));
    let rows = hatchery_e2e::aggregated(&doc);
    let abandoned = doc["abandoned_requests"].as_u64();
    assert_eq!(
        rows + abandoned.unwrap_or(0),
        served,
        "{what}: {rows} in the rows + {abandoned:?} abandoned != {served} served\n--- stderr\n{}",
        out.stderr()
    );
    let abandoned = abandoned.expect("abandoned_requests is an integer");
    eprintln!("{what}: {rows} in the rows + {abandoned} abandoned = {served} served");
    abandoned
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_rows_plus_abandoned_requests_are_what_the_target_served() {
    let dir = TempDir::new("accounting");
    let plan = dir.write("plan.yaml", PLAN);
    for users in ["8", "24", "40"] {
        // A target per run, so each count starts from zero.
        let target = Target::start().await;
        let out = standalone(&plan, users, "1s", &target).await;
        let abandoned = assert_accounted(&target, &out, &format!("{users} users")).await;
        assert!(abandoned > 0, "requests were in flight at the deadline");
        // The summary (on stderr with --json) says so and what to do about it.
        let summary = out.stderr();
        assert!(
            summary.contains(&format!("{abandoned} requests were abandoned in flight"))
                && summary.contains("--stop-timeout"),
            "{summary}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_rows_plus_abandoned_requests_are_what_the_target_served() {
    let target = Target::start().await;
    let dir = TempDir::new("accounting-dist");
    let plan = dir.write("plan.yaml", PLAN);
    let m = Master::headless(&plan)
        .host(&target.url())
        .args(&[
            "-u",
            "30",
            "-r",
            "1000",
            "-t",
            "2s",
            "--expect-workers",
            "3",
            "--json",
        ])
        .spawn()
        .await;
    let workers: Vec<Running> = (0..3).map(|_| worker(m.grpc, &[]).spawn()).collect();
    // The field is in /stats/requests while the run goes on.
    let live = eventually("the run's stats", Duration::from_secs(20), || async {
        let s = stats(m.web).await?;
        (s["user_count"] == 30).then_some(s)
    })
    .await;
    assert!(live["abandoned_requests"].is_u64(), "{live}");
    let out = m.process.finish().await;
    out.expect_code(0);
    for w in workers {
        w.finish().await.expect_code(0);
    }
    let abandoned = assert_accounted(&target, &out, "3 workers, 30 users").await;
    assert!(abandoned > 0, "requests were in flight at the deadline");
}

/// The issue's case: 8 users hammering a target that answers at once, where a user is nearly
/// always in a request and the rows run to tens of thousands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_target_hammered_by_eight_users_served_the_rows_plus_the_abandoned_requests() {
    let dir = TempDir::new("accounting-fast");
    let plan = dir.write(
        "plan.yaml",
        "users:\n  - name: Fast\n    wait: {constant: 0s}\n    tasks: [{get: /a}]\n",
    );
    let target = Target::start().await;
    let out = standalone(&plan, "8", "2s", &target).await;
    assert_accounted(&target, &out, "8 users, fast target").await;
}
