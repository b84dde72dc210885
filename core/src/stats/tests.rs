use proptest::prelude::*;

use super::*;

fn sample(response_time_us: u64, at_unix_s: u64, error: Option<&str>) -> Sample<'_> {
    Sample {
        corrected_response_time_us: None,
        response_time_us,
        content_length: 100,
        at_unix_s,
        error,
    }
}

/// (method, name, response time, second, error) as recorded by a user.
type Req = (Method, &'static str, u64, u64, Option<&'static str>);

/// `/b` is requested by a paced user only, `/c/{id}` by a paced and an unpaced one, `/a` by
/// unpaced users only.
fn record_all(stats: &mut Stats, reqs: &[Req]) {
    for &(m, name, rt, at, err) in reqs {
        let paced = name == "/b" || (name == "/c/{id}" && at % 2 == 0);
        let s = Sample {
            corrected_response_time_us: paced.then_some(rt + 1_000 * (at - 1_000)),
            ..sample(rt, at, err)
        };
        stats.record(m, name, s);
    }
}

fn req() -> impl Strategy<Value = Req> {
    (
        prop::sample::select(vec![Method::Get, Method::Post, Method::Delete]),
        prop::sample::select(vec!["/a", "/b", "/c/{id}"]),
        0u64..2_000_000,
        1_000u64..1_030,
        prop::sample::select(vec![
            None,
            Some("500 Internal Server Error"),
            Some("timeout"),
        ]),
    )
}

proptest! {
    #[test]
    fn merging_deltas_equals_recording_everything_into_one(
        reqs in prop::collection::vec(req(), 0..300),
        cuts in prop::collection::vec(0usize..300, 0..6),
    ) {
        let mut one = Stats::new();
        record_all(&mut one, &reqs);

        // Deltas cut at arbitrary points, merged in reverse (as reports from several workers
        // arrive in any order).
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(reqs.len())).collect();
        cuts.push(0);
        cuts.push(reqs.len());
        cuts.sort_unstable();
        let mut merged = Stats::new();
        for w in cuts.windows(2).rev() {
            let mut delta = Stats::new();
            record_all(&mut delta, &reqs[w[0]..w[1]]);
            merged.merge(&delta.take());
        }
        prop_assert_eq!(&merged, &one);
        prop_assert_eq!(merged.total().current_rps(1_030), one.total().current_rps(1_030));
    }

    #[test]
    fn aggregated_is_the_sum_of_the_rows(reqs in prop::collection::vec(req(), 0..200)) {
        let mut stats = Stats::new();
        record_all(&mut stats, &reqs);
        let mut sum = Entry::default();
        for (_, _, e) in stats.entries() {
            sum.merge_counts(e);
        }
        prop_assert_eq!(&sum, stats.total());
    }
}

#[test]
fn entries_are_sorted_by_name_then_method_name() {
    let mut stats = Stats::new();
    for (m, name) in [
        (Method::Post, "/b"),
        (Method::Get, "/b"),
        (Method::Put, "/a"),
        (Method::Delete, "/b"),
    ] {
        stats.record(m, name, sample(1, 1, None));
    }
    let order: Vec<String> = stats
        .entries()
        .map(|(m, n, _)| format!("{m} {n}"))
        .collect();
    assert_eq!(order, ["PUT /a", "DELETE /b", "GET /b", "POST /b"]);
}

#[test]
fn errors_are_grouped_by_method_name_and_message_with_first_and_last_seen() {
    let mut stats = Stats::new();
    stats.record(Method::Get, "/a", sample(1, 10, Some("timeout")));
    stats.record(Method::Get, "/a", sample(1, 12, Some("timeout")));
    stats.record(Method::Post, "/a", sample(1, 11, Some("timeout")));
    stats.record(Method::Get, "/a", sample(1, 11, None));
    let rows: Vec<_> = stats
        .errors()
        .map(|e| {
            (
                e.method,
                e.name,
                e.error,
                e.stat.occurrences,
                e.stat.first_seen_s,
                e.stat.last_seen_s,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (Method::Get, "/a", "timeout", 2, 10, 12),
            (Method::Post, "/a", "timeout", 1, 11, 11),
        ]
    );
    let get = stats.entry(Method::Get, "/a").unwrap();
    assert_eq!((get.num_requests, get.num_failures), (3, 2));
    assert_eq!(stats.total().num_failures, 3);
}

#[test]
fn exceptions_are_grouped_by_message_with_their_nodes() {
    let mut stats = Stats::new();
    stats.record_exception("template: no such variable", "w1");
    let mut other = Stats::new();
    other.record_exception("template: no such variable", "w2");
    other.record_exception("template: no such variable", "w1");
    stats.merge(&other);
    let (message, e) = stats.exceptions().next().unwrap();
    assert_eq!(message, "template: no such variable");
    assert_eq!(e.count, 3);
    assert_eq!(e.nodes.iter().collect::<Vec<_>>(), ["w1", "w2"]);
    assert!(!stats.is_empty());
}

#[test]
fn rows_past_the_bound_are_folded_into_other() {
    let mut stats = Stats::new();
    for i in 0..MAX_ENTRIES + 5 {
        stats.record(Method::Get, &format!("/item/{i}"), sample(1, 1, None));
    }
    assert_eq!(stats.entries().count(), MAX_ENTRIES + 1);
    assert_eq!(
        stats.entry(Method::Get, OTHER_ENTRY).unwrap().num_requests,
        5
    );
    assert_eq!(stats.folded_entries(), 5);
    assert_eq!(stats.total().num_requests, MAX_ENTRIES as u64 + 5);

    let mut master = Stats::new();
    master.merge(&stats);
    assert_eq!(master, stats);
}

#[test]
fn error_messages_past_the_bound_are_folded_into_other_errors() {
    let mut stats = Stats::new();
    for i in 0..MAX_ERRORS + 3 {
        stats.record(Method::Get, "/", sample(1, 1, Some(&format!("error {i}"))));
    }
    stats.record(Method::Get, "/", sample(1, 1, Some("error 0")));
    assert_eq!(stats.errors().count(), MAX_ERRORS + 1);
    let other = stats.errors().find(|e| e.error == OTHER_ERRORS).unwrap();
    assert_eq!(other.stat.occurrences, 3);
    assert_eq!(stats.folded_errors(), 3);
    assert_eq!(
        stats.entry(Method::Get, "/").unwrap().num_failures,
        MAX_ERRORS as u64 + 4
    );
}

fn paced(response_time_us: u64, corrected_us: u64) -> Sample<'static> {
    Sample {
        corrected_response_time_us: Some(corrected_us),
        ..sample(response_time_us, 1, None)
    }
}

#[test]
fn only_rows_with_paced_requests_carry_corrected_times() {
    let mut stats = Stats::new();
    stats.record(Method::Get, "/unpaced", sample(300_000, 1, None));
    for k in 0..10 {
        stats.record(Method::Get, "/paced", paced(300_000, 300_000 + k * 200_000));
    }
    stats.record(Method::Get, "/mixed", sample(5_000, 1, None));
    stats.record(Method::Get, "/mixed", paced(5_000, 900_000));

    let unpaced = stats.entry(Method::Get, "/unpaced").unwrap();
    assert_eq!(unpaced.corrected, None);
    assert_eq!(unpaced.corrected_percentile_ms(0.99), None);
    let paced_row = stats.entry(Method::Get, "/paced").unwrap();
    assert_eq!(paced_row.percentile_ms(1.0), 300.0);
    // Within the histogram's 0.1%; the maximum is exact.
    let p50 = paced_row.corrected_percentile_ms(0.5).unwrap();
    assert!((p50 - 1_100.0).abs() <= 1.1, "{p50}");
    assert_eq!(paced_row.corrected_percentile_ms(1.0), Some(2_100.0));
    let mixed = stats.entry(Method::Get, "/mixed").unwrap();
    assert_eq!(mixed.histogram.count(), 2);
    assert_eq!(mixed.corrected.as_ref().unwrap().count(), 1);
    assert_eq!(stats.total().corrected.as_ref().unwrap().count(), 11);
}

#[test]
fn corrected_times_merge_into_a_row_that_had_none() {
    let mut master = Stats::new();
    master.record(Method::Get, "/x", sample(1_000, 1, None));
    let mut delta = Stats::new();
    delta.record(Method::Get, "/x", paced(1_000, 50_000));
    master.merge(&delta);
    let row = master.entry(Method::Get, "/x").unwrap();
    assert_eq!(row.num_requests, 2);
    assert_eq!(row.corrected_percentile_ms(1.0), Some(50.0));
    assert_eq!(master.total().corrected_percentile_ms(1.0), Some(50.0));
    // And an unpaced delta leaves them as they are.
    master.merge(&{
        let mut d = Stats::new();
        d.record(Method::Get, "/x", sample(9_000, 1, None));
        d
    });
    let row = master.entry(Method::Get, "/x").unwrap();
    assert_eq!(row.corrected.as_ref().unwrap().count(), 1);
}

#[test]
fn reset_forgets_corrected_times() {
    let mut stats = Stats::new();
    stats.record(Method::Get, "/a", paced(1, 2));
    stats.reset();
    assert_eq!(stats.entry(Method::Get, "/a").unwrap().corrected, None);
    assert_eq!(stats.total().corrected, None);
}

#[test]
fn reset_zeroes_the_numbers_but_keeps_the_rows() {
    let mut stats = Stats::new();
    stats.record(Method::Get, "/a", sample(1, 1, Some("x")));
    stats.record_exception("boom", "w1");
    stats.reset();
    assert!(stats.is_empty());
    assert_eq!(stats.entries().count(), 1);
    assert_eq!(stats.entry(Method::Get, "/a"), Some(&Entry::default()));
    assert_eq!(stats.errors().count(), 0);
    assert_eq!(stats.exceptions().count(), 0);
}

#[test]
fn take_leaves_an_empty_stats_behind() {
    let mut stats = Stats::new();
    stats.record(Method::Get, "/a", sample(1, 1, None));
    let delta = stats.take();
    assert!(stats.is_empty());
    assert_eq!(stats.entries().count(), 0);
    assert_eq!(delta.total().num_requests, 1);
}

/// Not a benchmark (the machine is shared and noisy), only a tripwire for an accidental
/// allocation or a lookup gone quadratic on the per-request path.
#[test]
fn recording_into_an_existing_row_is_fast() {
    let mut stats = Stats::new();
    let names: Vec<String> = (0..50).map(|i| format!("/api/v1/things/{i}")).collect();
    for n in &names {
        stats.record(Method::Get, n, sample(1, 1, None));
    }
    let started = std::time::Instant::now();
    let rounds = 200_000u64;
    for i in 0..rounds {
        let name = &names[(i % 50) as usize];
        stats.record(Method::Get, name, sample(i % 100_000, 1 + i / 50_000, None));
    }
    let per_record = started.elapsed() / rounds as u32;
    assert_eq!(stats.total().num_requests, rounds + 50);
    assert!(
        per_record < std::time::Duration::from_micros(2),
        "{per_record:?} per record"
    );
}

#[test]
fn abandoned_requests_merge_by_adding_and_go_with_take_and_reset() {
    let mut worker = Stats::new();
    worker.abandon(2);
    assert!(
        !worker.is_empty(),
        "abandoned requests are something to report"
    );
    let mut master = Stats::new();
    master.merge(&worker.take());
    assert_eq!(worker.abandoned_requests(), 0);
    worker.abandon(3);
    master.merge(&worker);
    assert_eq!(master.abandoned_requests(), 5);
    master.abandon(u64::MAX);
    assert_eq!(master.abandoned_requests(), u64::MAX, "saturates");
    master.reset();
    assert_eq!(master.abandoned_requests(), 0);
}
