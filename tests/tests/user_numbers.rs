//! Fleet-wide user numbers with real processes: a master, four workers dialling it, and a real
//! HTTP target whose own log tells which feeder row each user logged in with.

use std::collections::BTreeMap;
use std::time::Duration;

use hatchery_e2e::{eventually, http_get, stats, worker, Master, Running, Target, TempDir};

/// Each user logs in once with its feeder row, saying its number and its worker's place.
const PLAN: &str = "data:
  acc: {csv: acc.csv}
users:
  - name: Member
    wait: {constant: 50ms}
    on_start:
      - get: '/login/{{ row.acc.user }}/{{ user.id }}/{{ worker.index }}of{{ worker.count }}'
        name: login
    tasks: [{get: /a}]
";

/// One login as the target saw it: `/login/ROW/ID/INDEXofCOUNT`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Login {
    row: String,
    id: u32,
    index: u32,
    count: u32,
}

/// Every login the target received, with how often.
fn logins(target: &Target) -> BTreeMap<Login, u64> {
    let mut out = BTreeMap::new();
    for (key, n) in target.counts() {
        let Some(path) = key.strip_prefix("GET /login/") else {
            continue;
        };
        let parts: Vec<&str> = path.split('/').collect();
        let (index, count) = parts[2].split_once("of").expect("INDEXofCOUNT");
        let login = Login {
            row: parts[0].to_string(),
            id: parts[1].parse().expect("a user number"),
            index: index.parse().expect("an index"),
            count: count.parse().expect("a count"),
        };
        out.insert(login, n);
    }
    out
}

/// Logins per feeder row.
fn per_row(logins: &BTreeMap<Login, u64>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (l, n) in logins {
        *out.entry(l.row.clone()).or_default() += n;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_user_of_the_fleet_has_its_own_row_also_after_a_worker_is_killed() {
    const WORKERS: u32 = 4;
    const USERS: u32 = 8;
    let target = Target::start().await;
    let dir = TempDir::new("numbers");
    let rows: String = (0..USERS).map(|i| format!("u{i}\n")).collect();
    dir.write("acc.csv", &format!("user\n{rows}"));
    let plan = dir.write("plan.yaml", PLAN);
    let m = Master::headless(&plan)
        .host(&target.url())
        .users(USERS)
        .spawn_rate(100.0)
        .run_time("60s")
        .stop_timeout("5s")
        .workers(WORKERS as usize)
        .spawn()
        .await;
    let mut workers: Vec<Running> = (0..WORKERS).map(|_| worker(m.grpc, &[]).spawn()).collect();
    let first = eventually("every user logged in", Duration::from_secs(30), || async {
        let l = logins(&target);
        (l.values().sum::<u64>() == u64::from(USERS)).then_some(l)
    })
    .await;
    // Every row once, by the user of that number (row n of 8 is user n's), and two users on
    // each of the four places.
    let expected: BTreeMap<String, u64> = (0..USERS).map(|i| (format!("u{i}"), 1)).collect();
    assert_eq!(per_row(&first), expected, "{first:?}");
    for l in first.keys() {
        assert_eq!(l.row, format!("u{}", l.id), "{l:?}");
        assert_eq!(l.count, WORKERS, "{l:?}");
    }
    let mut per_place = BTreeMap::new();
    for l in first.keys() {
        *per_place.entry(l.index).or_insert(0) += 1;
    }
    let two_each: BTreeMap<u32, u32> = (0..WORKERS).map(|i| (i, USERS / WORKERS)).collect();
    assert_eq!(per_place, two_each);

    // A worker dies: its two users move to the others and log in again with its rows.
    workers.remove(0).kill().await;
    let after = eventually(
        "the moved users logged in",
        Duration::from_secs(30),
        || async {
            let s = stats(m.web).await?;
            let l = logins(&target);
            let done = s["worker_count"] == WORKERS - 1
                && s["user_count"] == USERS
                && l.values().sum::<u64>() == u64::from(USERS + 2);
            done.then_some(l)
        },
    )
    .await;
    let again: Vec<&Login> = after.keys().filter(|l| !first.contains_key(l)).collect();
    assert_eq!(again.len(), 2, "{after:?}");
    // The two rows logged in again were both the killed worker's, and nobody else's.
    let before: Vec<&Login> = first
        .keys()
        .filter(|l| again.iter().any(|a| a.row == l.row))
        .collect();
    assert_eq!(before.len(), 2, "{before:?}");
    let killed = before[0].index;
    assert!(before.iter().all(|l| l.index == killed), "{before:?}");
    for l in &again {
        assert_ne!(l.index, killed, "{l:?}");
        assert_eq!(l.row, format!("u{}", l.id), "{l:?}");
    }
    // Still every row exactly once among the live users: the killed worker's two, and six.
    let twice: Vec<String> = per_row(&after)
        .into_iter()
        .filter(|(_, n)| *n == 2)
        .map(|(row, _)| row)
        .collect();
    assert_eq!(twice.len(), 2);

    assert_eq!(http_get(m.web, "/stop").await.map(|r| r.0), Some(200));
    m.process.finish().await.expect_code(0);
    for w in workers {
        w.finish().await.expect_code(0);
    }
}
