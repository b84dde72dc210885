use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::*;
use crate::crd::LoadTest;
use crate::resources::Blueprint;

fn at(seconds: i64) -> Time {
    Time(Timestamp::from_second(1_800_000_000 + seconds).unwrap())
}

/// A headless test of 3 workers, first looked at, at t=0, with nothing answering yet.
fn observe() -> Observation {
    Observation {
        generation: Some(1),
        headless: true,
        workers: 3,
        expected_workers: 3,
        gate_timeout: None,
        master: None,
        master_pod: None,
        worker_pods: WorkerPods::default(),
        now: at(0),
    }
}

fn master(state: MasterState, workers: u32) -> MasterReport {
    MasterReport {
        ready: workers >= 3,
        state,
        workers,
        expected_workers: 3,
        users: 0,
        current_rps: 0.0,
        total_rps: 0.0,
        fail_ratio: 0.0,
        p95_ms: None,
        thresholds: Vec::new(),
    }
}

fn running(users: u32, rps: f64) -> MasterReport {
    MasterReport {
        users,
        current_rps: rps,
        total_rps: rps,
        p95_ms: Some(12.345),
        ..master(MasterState::Running, 3)
    }
}

fn stopped(total_rps: f64, fail_ratio: f64) -> MasterReport {
    MasterReport {
        total_rps,
        fail_ratio,
        p95_ms: Some(20.0),
        ..master(MasterState::Stopped, 3)
    }
}

fn with_master(m: MasterReport, now: Time) -> Observation {
    Observation {
        master: Some(m),
        now,
        ..observe()
    }
}

/// Derives statuses one observation after another.
fn walk(observations: impl IntoIterator<Item = Observation>) -> LoadTestStatus {
    observations
        .into_iter()
        .fold(None, |prev: Option<LoadTestStatus>, o| {
            Some(derive(prev.as_ref(), &o))
        })
        .expect("at least one observation")
}

fn condition<'s>(s: &'s LoadTestStatus, type_: &str) -> &'s Condition {
    find_condition(s, type_).unwrap_or_else(|| panic!("no {type_} condition in {s:?}"))
}

fn pod(status: serde_json::Value) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": "smoke-master-1"}, "status": status}))
        .unwrap()
}

fn waiting(reason: &str) -> Pod {
    waiting_with(reason, "no such image")
}

fn waiting_with(reason: &str, message: &str) -> Pod {
    pod(json!({"phase": "Pending", "containerStatuses": [{
        "name": "hatchery", "image": "hatchery:test", "imageID": "", "ready": false,
        "restartCount": 0, "state": {"waiting": {"reason": reason, "message": message}}
    }]}))
}

#[test]
fn a_secret_cache_not_yet_synced_is_a_problem_but_not_stuck_and_a_missing_secret_is() {
    let syncing = waiting_with(
        "CreateContainerConfigError",
        "failed to sync secret cache: timed out waiting for the condition",
    );
    let p = PodProblem::of(&syncing).expect("a problem");
    assert!(!p.stuck, "{p:?}");
    let missing = waiting_with("CreateContainerConfigError", "secret \"x-token\" not found");
    assert!(PodProblem::of(&missing).expect("a problem").stuck);
}

fn problem(reason: &str, stuck: bool) -> PodProblem {
    PodProblem {
        pod: "smoke-workers-0".to_string(),
        reason: reason.to_string(),
        message: "details".to_string(),
        stuck,
    }
}

#[test]
fn a_new_test_whose_master_does_not_answer_is_pending_with_no_workers() {
    let s = derive(None, &observe());
    assert_eq!(s.phase, Phase::Pending);
    assert_eq!(s.workers.as_deref(), Some("0/3"));
    assert_eq!(s.observed_generation, Some(1));
    assert_eq!(condition(&s, WORKERS_CONNECTED).status, "False");
    assert_eq!(
        condition(&s, WORKERS_CONNECTED).reason,
        "MasterNotReachable"
    );
    assert_eq!(condition(&s, SPEC_VALID).status, "True");
    assert_eq!(s.start_time, None);
}

#[test]
fn a_master_with_too_few_workers_means_waiting_for_workers() {
    let s = walk([observe(), with_master(master(MasterState::Ready, 2), at(5))]);
    assert_eq!(s.phase, Phase::WaitingForWorkers);
    assert_eq!(s.workers.as_deref(), Some("2/3"));
    assert_eq!(condition(&s, WORKERS_CONNECTED).reason, "Waiting");
}

#[test]
fn the_run_starting_makes_it_running_with_its_start_time_and_numbers() {
    let s = walk([
        observe(),
        with_master(master(MasterState::Ready, 2), at(5)),
        with_master(running(100, 41.234), at(10)),
    ]);
    assert_eq!(s.phase, Phase::Running);
    assert_eq!(s.start_time, Some(at(10)));
    assert_eq!(s.workers.as_deref(), Some("3/3"));
    assert_eq!(
        (s.workers_connected, s.workers_expected),
        (Some(3), Some(3))
    );
    assert_eq!(s.users, Some(100));
    assert_eq!(s.rps, Some(41.2));
    assert_eq!(s.p95, Some(12.3));
    assert_eq!((s.fail_ratio, s.fail_percent), (Some(0.0), Some(0.0)));
    assert_eq!(condition(&s, WORKERS_CONNECTED).status, "True");
    assert_eq!(s.verdict, None);
}

#[test]
fn spawning_is_running_and_stopping_is_stopping() {
    let spawning = with_master(master(MasterState::Spawning, 3), at(1));
    assert_eq!(derive(None, &spawning).phase, Phase::Running);
    let stopping = with_master(master(MasterState::Stopping, 3), at(1));
    assert_eq!(derive(None, &stopping).phase, Phase::Stopping);
}

#[test]
fn a_stopped_run_without_failures_succeeds_with_the_runs_average_rate() {
    let s = walk([
        with_master(running(100, 55.0), at(10)),
        with_master(stopped(48.27, 0.0), at(70)),
    ]);
    assert_eq!(s.phase, Phase::Succeeded);
    assert_eq!(s.verdict.as_deref(), Some("passed"));
    assert_eq!(s.rps, Some(48.3));
    assert_eq!(s.users, Some(100), "the last count seen while it ran");
    assert_eq!(s.p95, Some(20.0));
    assert_eq!(
        (s.start_time.clone(), s.completion_time.clone()),
        (Some(at(10)), Some(at(70)))
    );
    let finished = condition(&s, FINISHED);
    assert_eq!(
        (finished.status.as_str(), finished.reason.as_str()),
        ("True", "Passed")
    );
}

#[test]
fn a_stopped_run_with_failed_requests_fails_as_the_cli_exit_code_would() {
    let s = walk([
        with_master(running(10, 5.0), at(10)),
        with_master(stopped(5.0, 0.012345), at(70)),
    ]);
    assert_eq!(s.phase, Phase::Failed);
    assert_eq!(
        s.verdict.as_deref(),
        Some("failed: 1.23% of requests failed")
    );
    assert_eq!(s.fail_percent, Some(1.23));
    assert_eq!(s.fail_ratio, Some(0.0123));
    assert_eq!(condition(&s, FINISHED).reason, "RequestsFailed");
}

fn threshold(description: &str, measured: &str, passed: bool) -> ThresholdResult {
    ThresholdResult {
        description: description.into(),
        measured: Some(measured.into()),
        passed,
    }
}

#[test]
fn with_thresholds_failed_requests_within_them_pass() {
    let report = MasterReport {
        thresholds: vec![threshold("fail ratio <= 50%", "10.00%", true)],
        ..stopped(5.0, 0.1)
    };
    let s = walk([
        with_master(running(10, 5.0), at(10)),
        with_master(report, at(70)),
    ]);
    assert_eq!(s.phase, Phase::Succeeded);
    assert_eq!(s.verdict.as_deref(), Some("passed: the threshold held"));
    assert_eq!(s.fail_percent, Some(10.0));
    assert_eq!(condition(&s, FINISHED).reason, "Passed");
}

#[test]
fn a_failed_threshold_fails_the_run_naming_it_though_no_request_failed() {
    let report = MasterReport {
        thresholds: vec![
            threshold("fail ratio <= 1%", "0.00%", true),
            threshold("p95 <= 1 ms", "3.20 ms", false),
        ],
        ..stopped(5.0, 0.0)
    };
    let s = walk([
        with_master(running(10, 5.0), at(10)),
        with_master(report, at(70)),
    ]);
    assert_eq!(s.phase, Phase::Failed);
    assert_eq!(
        s.verdict.as_deref(),
        Some("failed: threshold p95 <= 1 ms (measured 3.20 ms)")
    );
    assert_eq!(condition(&s, FINISHED).reason, "ThresholdFailed");
}

#[test]
fn every_failed_threshold_is_named() {
    let report = MasterReport {
        thresholds: vec![
            threshold("fail ratio <= 1%", "4.00%", false),
            threshold("p95 <= 1 ms", "3.20 ms", false),
            threshold("rps >= 1/s", "5.00/s", true),
        ],
        ..stopped(5.0, 0.04)
    };
    let s = walk([with_master(report, at(70))]);
    assert_eq!(
        s.verdict.as_deref(),
        Some("failed: 2 thresholds: fail ratio <= 1% (measured 4.00%); p95 <= 1 ms (measured 3.20 ms)")
    );
}

#[test]
fn when_every_threshold_holds_the_verdict_says_how_many() {
    let report = MasterReport {
        thresholds: vec![
            threshold("fail ratio <= 1%", "0.00%", true),
            threshold("p95 <= 500 ms", "3.20 ms", true),
        ],
        ..stopped(5.0, 0.0)
    };
    let s = walk([with_master(report, at(70))]);
    assert_eq!(s.verdict.as_deref(), Some("passed: all 2 thresholds held"));
}

#[test]
fn a_run_that_ended_between_two_looks_still_gets_both_times() {
    let s = walk([observe(), with_master(stopped(9.0, 0.0), at(30))]);
    assert_eq!(s.phase, Phase::Succeeded);
    assert_eq!(
        (s.start_time.clone(), s.completion_time.clone()),
        (Some(at(30)), Some(at(30)))
    );
}

#[test]
fn succeeded_and_failed_are_final_whatever_comes_later() {
    let done = walk([
        with_master(running(10, 5.0), at(10)),
        with_master(stopped(5.0, 0.0), at(70)),
    ]);
    let later = Observation {
        generation: Some(2),
        ..with_master(master(MasterState::Ready, 0), at(500))
    };
    let s = derive(Some(&done), &later);
    assert_eq!(
        s,
        LoadTestStatus {
            observed_generation: Some(2),
            ..done.clone()
        }
    );
    let lost = derive(
        Some(&done),
        &Observation {
            now: at(600),
            ..observe()
        },
    );
    assert_eq!(lost.phase, Phase::Succeeded);
}

#[test]
fn the_gate_timeout_fails_a_test_whose_workers_never_came() {
    let limited = |o: Observation| Observation {
        gate_timeout: Some(Duration::from_secs(60)),
        ..o
    };
    let early = walk([
        limited(observe()),
        limited(with_master(master(MasterState::Ready, 1), at(59))),
    ]);
    assert_eq!(early.phase, Phase::WaitingForWorkers);
    let s = walk([
        limited(observe()),
        limited(with_master(master(MasterState::Ready, 1), at(30))),
        limited(with_master(master(MasterState::Ready, 1), at(60))),
    ]);
    assert_eq!(s.phase, Phase::Failed);
    assert_eq!(
        s.verdict.as_deref(),
        Some("failed: only 1 of 3 workers connected within 1m")
    );
    assert_eq!(condition(&s, FINISHED).reason, "GateTimeout");
    assert_eq!(s.completion_time, Some(at(60)));
}

#[test]
fn the_gate_timeout_also_covers_a_master_that_never_answers() {
    let limited = |now| Observation {
        gate_timeout: Some(Duration::from_secs(60)),
        now,
        ..observe()
    };
    let s = walk([limited(at(0)), limited(at(61))]);
    assert_eq!(s.phase, Phase::Failed);
    assert_eq!(condition(&s, FINISHED).reason, "GateTimeout");
}

#[test]
fn the_gate_timeout_no_longer_applies_once_the_run_started() {
    let limited = |o: Observation| Observation {
        gate_timeout: Some(Duration::from_secs(60)),
        ..o
    };
    let s = walk([
        limited(observe()),
        limited(with_master(running(10, 5.0), at(30))),
        limited(Observation {
            now: at(600),
            ..observe()
        }),
    ]);
    assert_eq!(s.phase, Phase::Running);
}

#[test]
fn a_master_stuck_pulling_its_image_fails_the_test() {
    let stuck = PodProblem::of(&waiting("ImagePullBackOff"));
    let s = derive(
        None,
        &Observation {
            master_pod: stuck,
            ..observe()
        },
    );
    assert_eq!(s.phase, Phase::Failed);
    assert_eq!(
        s.verdict.as_deref(),
        Some("failed: master pod smoke-master-1 ImagePullBackOff: no such image")
    );
    assert_eq!(condition(&s, FINISHED).reason, "ImagePullBackOff");
    assert_eq!(condition(&s, DEGRADED).status, "True");
}

#[test]
fn an_oom_killed_master_fails_the_test_because_its_restart_reruns_it() {
    let oom = Some(PodProblem {
        pod: "smoke-master-1".to_string(),
        ..problem("OOMKilled", false)
    });
    let s = walk([
        with_master(running(10, 5.0), at(10)),
        Observation {
            master_pod: oom,
            ..with_master(running(0, 0.0), at(20))
        },
    ]);
    assert_eq!(s.phase, Phase::Failed);
    assert_eq!(condition(&s, FINISHED).reason, "OOMKilled");
}

#[test]
fn an_unschedulable_worker_degrades_the_test_without_failing_it() {
    let worker_pods = WorkerPods {
        stuck: 0,
        problem: Some(problem("Unschedulable", false)),
    };
    let s = derive(
        None,
        &Observation {
            worker_pods,
            ..observe()
        },
    );
    assert_eq!(s.phase, Phase::Pending);
    let degraded = condition(&s, DEGRADED);
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "Unschedulable")
    );
}

#[test]
fn stuck_workers_fail_the_test_only_when_too_few_are_left_to_open_the_gate() {
    let one_stuck = WorkerPods {
        stuck: 1,
        problem: Some(problem("CrashLoopBackOff", true)),
    };
    let tolerant = Observation {
        expected_workers: 2,
        worker_pods: one_stuck.clone(),
        ..observe()
    };
    assert_eq!(derive(None, &tolerant).phase, Phase::Pending);
    let s = derive(
        None,
        &Observation {
            worker_pods: one_stuck,
            ..observe()
        },
    );
    assert_eq!(s.phase, Phase::Failed);
    assert_eq!(
        s.verdict.as_deref(),
        Some("failed: 1 of 3 worker pods cannot start (smoke-workers-0 CrashLoopBackOff: details), 3 needed")
    );
}

#[test]
fn a_worker_crashing_mid_run_degrades_the_test_without_failing_it() {
    let crashing = WorkerPods {
        stuck: 1,
        problem: Some(problem("CrashLoopBackOff", true)),
    };
    let s = walk([
        with_master(running(10, 5.0), at(10)),
        Observation {
            worker_pods: crashing,
            ..with_master(running(10, 5.0), at(20))
        },
    ]);
    assert_eq!(s.phase, Phase::Running);
    assert_eq!(condition(&s, DEGRADED).reason, "CrashLoopBackOff");
}

#[test]
fn a_master_lost_mid_run_keeps_the_phase_and_the_gate_and_marks_the_test_degraded() {
    let s = walk([
        with_master(running(10, 5.0), at(10)),
        Observation {
            now: at(20),
            ..observe()
        },
    ]);
    assert_eq!(s.phase, Phase::Running);
    assert_eq!(s.users, Some(10));
    assert_eq!(condition(&s, WORKERS_CONNECTED).status, "True");
    let degraded = condition(&s, DEGRADED);
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "MasterNotReachable")
    );
    let back = derive(Some(&s), &with_master(running(10, 5.0), at(30)));
    assert_eq!(condition(&back, DEGRADED).status, "False");
}

#[test]
fn without_headless_a_connected_fleet_is_running_and_a_stopped_test_does_not_finish() {
    let ui = |m: MasterReport, now| Observation {
        headless: false,
        ..with_master(m, now)
    };
    let idle = walk([ui(master(MasterState::Ready, 3), at(5))]);
    assert_eq!(
        (idle.phase, idle.start_time.clone()),
        (Phase::Running, None)
    );
    let waiting = walk([ui(master(MasterState::Ready, 1), at(5))]);
    assert_eq!(waiting.phase, Phase::WaitingForWorkers);
    let s = walk([
        ui(master(MasterState::Ready, 3), at(5)),
        ui(running(10, 5.0), at(10)),
        ui(stopped(5.0, 0.5), at(70)),
    ]);
    assert_eq!(s.phase, Phase::Running);
    assert_eq!(
        (s.verdict.clone(), s.start_time.clone()),
        (None, Some(at(10)))
    );
    // Stopped from the UI, the test runs no user: the status says so (a headless run that
    // ended keeps the last count it ran, as its result).
    assert_eq!(s.users, Some(0));
}

#[test]
fn the_gate_is_closed_until_the_expected_workers_are_in() {
    assert!(!gate_open(None));
    assert!(!gate_open(Some(&master(MasterState::Ready, 2))));
    assert!(gate_open(Some(&master(MasterState::Ready, 3))));
}

#[test]
fn the_gate_stays_open_once_a_run_started_even_if_a_worker_is_lost() {
    for state in [
        MasterState::Spawning,
        MasterState::Running,
        MasterState::Stopping,
        MasterState::Stopped,
    ] {
        assert!(gate_open(Some(&master(state, 1))), "{state:?}");
    }
}

#[test]
fn an_invalid_spec_fails_with_the_whole_message_in_the_spec_valid_condition() {
    let lt = LoadTest::test().inline_plan("users:\n  - name: A\n    wieght: 2\n");
    let error = Blueprint::new(&lt).unwrap_err();
    let s = invalid_spec(None, &error, Some(1), at(0));
    assert_eq!(s.phase, Phase::Failed);
    let valid = condition(&s, SPEC_VALID);
    assert_eq!(
        (valid.status.as_str(), valid.reason.as_str()),
        ("False", "InvalidPlan")
    );
    assert_eq!(valid.message, error.to_string());
    assert!(
        valid.message.contains("LoadTest smoke:"),
        "{}",
        valid.message
    );
    let verdict = s.verdict.unwrap();
    assert!(
        verdict.starts_with(
            "failed: invalid spec: spec.plan.inline is not a valid plan: LoadTest smoke:"
        ),
        "{verdict}"
    );
    assert!(!verdict.contains('\n'));
}

#[test]
fn an_edited_spec_after_an_invalid_one_starts_over() {
    let error = Blueprint::new(&LoadTest::test().workers(0)).unwrap_err();
    let failed = invalid_spec(None, &error, Some(1), at(0));
    let same = derive(Some(&failed), &observe());
    assert_eq!(
        same.phase,
        Phase::Failed,
        "the same generation is still invalid"
    );
    let edited = derive(
        Some(&failed),
        &Observation {
            generation: Some(2),
            now: at(9),
            ..observe()
        },
    );
    assert_eq!(edited.phase, Phase::Pending);
    assert_eq!(
        (edited.verdict.clone(), edited.completion_time.clone()),
        (None, None)
    );
    assert_eq!(condition(&edited, SPEC_VALID).status, "True");
    assert!(find_condition(&edited, FINISHED).is_none());
}

#[test]
fn an_invalid_spec_does_not_overwrite_a_finished_run() {
    let done = walk([with_master(stopped(5.0, 0.0), at(70))]);
    let error = Blueprint::new(&LoadTest::test().workers(0)).unwrap_err();
    assert_eq!(invalid_spec(Some(&done), &error, Some(2), at(80)), done);
}

#[test]
fn conditions_keep_their_transition_time_while_their_status_holds() {
    let s = walk([
        observe(),
        with_master(master(MasterState::Ready, 1), at(5)),
        with_master(master(MasterState::Ready, 2), at(9)),
    ]);
    let c = condition(&s, WORKERS_CONNECTED);
    assert_eq!(
        (c.last_transition_time.clone(), c.message.as_str()),
        (at(0), "2 of 3 workers connected")
    );
    let s = derive(Some(&s), &with_master(running(1, 1.0), at(12)));
    assert_eq!(
        condition(&s, WORKERS_CONNECTED).last_transition_time,
        at(12)
    );
}

#[test]
fn master_states_parse_from_the_api_names() {
    assert_eq!("running".parse(), Ok(MasterState::Running));
    assert_eq!("stopped".parse(), Ok(MasterState::Stopped));
    assert!("missing".parse::<MasterState>().is_err());
}

#[test]
fn pod_problems_name_stuck_waits_oom_kills_evictions_and_unschedulable_pods() {
    let of = |p: Pod| PodProblem::of(&p).map(|p| (p.reason, p.stuck));
    assert_eq!(
        of(waiting("ErrImageNeverPull")),
        Some(("ErrImageNeverPull".into(), true))
    );
    assert_eq!(of(waiting("ContainerCreating")), None);
    let oom = pod(json!({"phase": "Running", "containerStatuses": [{
        "name": "hatchery", "image": "h", "imageID": "", "ready": true, "restartCount": 1,
        "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}
    }]}));
    assert_eq!(of(oom), Some(("OOMKilled".into(), false)));
    let evicted = pod(json!({"phase": "Failed", "reason": "Evicted", "message": "low memory"}));
    assert_eq!(of(evicted), Some(("Evicted".into(), true)));
    let pending = pod(json!({"phase": "Pending", "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/1 nodes are available: 1 Insufficient cpu."
    }]}));
    assert_eq!(of(pending), Some(("Unschedulable".into(), false)));
    assert_eq!(of(pod(json!({"phase": "Running"}))), None);
}

#[test]
fn worker_pods_count_the_stuck_ones_and_name_a_stuck_one_first() {
    let unschedulable = pod(json!({"phase": "Pending", "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable"
    }]}));
    let pods = [
        unschedulable,
        waiting("CrashLoopBackOff"),
        waiting("CrashLoopBackOff"),
    ];
    let summary = WorkerPods::of(&pods);
    assert_eq!(summary.stuck, 2);
    assert_eq!(summary.problem.unwrap().reason, "CrashLoopBackOff");
}

fn empty_strings(value: &serde_json::Value, path: &str, found: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) if s.is_empty() => found.push(path.to_string()),
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                empty_strings(v, &format!("{path}[{i}]"), found);
            }
        }
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                empty_strings(v, &format!("{path}.{k}"), found);
            }
        }
        _ => {}
    }
}

#[test]
fn statuses_hold_no_empty_string_that_the_local_api_server_would_reject() {
    let oom = PodProblem {
        message: String::new(),
        ..problem("OOMKilled", false)
    };
    let statuses = [
        derive(None, &observe()),
        walk([
            with_master(running(10, 5.0), at(10)),
            with_master(stopped(5.0, 0.0), at(70)),
        ]),
        derive(
            None,
            &Observation {
                master_pod: Some(oom),
                ..observe()
            },
        ),
        invalid_spec(
            None,
            &Blueprint::new(&LoadTest::test().workers(0)).unwrap_err(),
            Some(1),
            at(0),
        ),
    ];
    for s in statuses {
        let mut found = vec![];
        empty_strings(&serde_json::to_value(&s).unwrap(), "status", &mut found);
        assert!(found.is_empty(), "empty strings at {found:?}");
    }
}
