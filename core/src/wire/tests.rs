#![allow(clippy::single_range_in_vec_init)] // sets of one range, on purpose

use std::time::Duration;

use proptest::prelude::*;
use prost::Message;

use super::*;
use crate::stats::{Sample, Stats};
use crate::Method;

/// (method, name, response time, second, error) as recorded by a user.
type Req = (Method, String, u64, u64, Option<&'static str>);

fn req() -> impl Strategy<Value = Req> {
    (
        prop::sample::select(Method::TYPES.to_vec()),
        prop::sample::select(vec!["/", "/a", "/b/{id}", "/ünïcode", ""]).prop_map(String::from),
        // Rarely far out: a histogram spanning many buckets is slow to build unoptimised.
        prop_oneof![
            20 => 0u64..3_000,
            20 => 0u64..300_000,
            2 => 0u64..100_000_000,
            1 => Just(u64::MAX),
        ],
        1_000u64..1_040,
        prop::sample::select(vec![None, Some("HTTP 500"), Some("timeout"), Some("")]),
    )
}

fn stats_of(reqs: &[Req], exceptions: &[(String, String)]) -> Stats {
    let mut stats = Stats::new();
    for (method, name, rt, at, error) in reqs {
        // Requests to "/a" come from a paced user on every other second, so rows with, without
        // and with some corrected times all travel.
        let paced = name == "/a" && at % 2 == 0;
        let sample = Sample {
            corrected_response_time_us: paced.then_some(rt.saturating_add(at * 1_000)),
            response_time_us: *rt,
            content_length: rt % 5_000,
            at_unix_s: *at,
            error: *error,
        };
        stats.record(*method, name, sample);
    }
    for (message, node) in exceptions {
        stats.record_exception(message, node);
    }
    stats
}

fn exception() -> impl Strategy<Value = (String, String)> {
    (
        prop::sample::select(vec!["KeyError: 'id'", "template failed"]).prop_map(String::from),
        prop::sample::select(vec!["worker-1", "worker-2"]).prop_map(String::from),
    )
}

fn arbitrary_stats() -> impl Strategy<Value = Stats> {
    (
        prop::collection::vec(req(), 0..200),
        prop::collection::vec(exception(), 0..5),
    )
        .prop_map(|(reqs, exceptions)| stats_of(&reqs, &exceptions))
}

/// Through the bytes a peer would send, and back.
fn round_trip(stats: &Stats) -> Result<Stats, Error> {
    let bytes = proto::Stats::from(stats).encode_to_vec();
    let decoded = proto::Stats::decode(&*bytes).expect("we decode what we encode");
    Stats::try_from(decoded)
}

fn get(name: &str, requests: u64) -> proto::Entry {
    let mut stats = Stats::new();
    for _ in 0..requests {
        stats.record(
            Method::Get,
            name,
            Sample {
                corrected_response_time_us: None,
                response_time_us: 1_000,
                content_length: 1,
                at_unix_s: 1_000,
                error: None,
            },
        );
    }
    match proto::Stats::from(&stats).entries.pop() {
        Some(entry) => entry,
        None => proto::Entry {
            method: proto::Method::Get.into(),
            name: name.to_owned(),
            ..Default::default()
        },
    }
}

fn decode_entries(entries: Vec<proto::Entry>) -> Result<Stats, Error> {
    Stats::try_from(proto::Stats {
        entries,
        ..Default::default()
    })
}

proptest! {
    #[test]
    fn stats_survive_the_wire_unchanged(stats in arbitrary_stats()) {
        prop_assert_eq!(round_trip(&stats), Ok(stats));
    }

    #[test]
    fn merging_after_the_wire_equals_merging_before(
        a in arbitrary_stats(),
        b in arbitrary_stats(),
    ) {
        let mut before = a.clone();
        before.merge(&b);
        let mut after = round_trip(&a).unwrap();
        after.merge(&round_trip(&b).unwrap());
        prop_assert_eq!(after, before);
    }

    #[test]
    fn assignments_survive_the_wire_unchanged(
        users in prop::collection::vec(0u32..10_000, 0..20),
        stop_timeout_ms in 0u64..10_000_000,
        count in 1u32..1000,
        index in 0u32..1000,
    ) {
        // Each class's numbers: a block with a hole, so sets of several ranges cross the wire.
        let mut taken = Numbers::new();
        let numbers = users
            .iter()
            .map(|&n| {
                taken.take_lowest_free(1);
                taken.take_lowest_free(u64::from(n))
            })
            .collect();
        let place = Place { index: index % count, count };
        let a = Assignment {
            users,
            numbers,
            stop_timeout: Duration::from_millis(stop_timeout_ms),
            place,
        };
        let bytes = proto::Assign::from(&a).encode_to_vec();
        let decoded = proto::Assign::decode(&*bytes).unwrap();
        prop_assert_eq!(Assignment::try_from(decoded), Ok(a));
    }
}

#[test]
fn reports_survive_the_wire_unchanged() {
    let stats = stats_of(
        &[(
            Method::Post,
            "/login".into(),
            1_234,
            1_000,
            Some("HTTP 401"),
        )],
        &[("boom".into(), "worker-1".into())],
    );
    let report = Report {
        seq: 7,
        users: vec![3, 0, 1],
        stats,
    };
    let message = proto::WorkerMessage::from(&FromWorker::Report(Box::new(report.clone())));
    let bytes = message.encode_to_vec();
    let kind = proto::WorkerMessage::decode(&*bytes)
        .unwrap()
        .into_kind()
        .unwrap();
    let proto::worker_message::Kind::Report(p) = kind else {
        panic!("not a report: {kind:?}");
    };
    let decoded = Report::try_from(p).unwrap();
    assert_eq!(
        (decoded.seq, decoded.users, decoded.stats),
        (report.seq, report.users, report.stats)
    );
}

#[test]
fn master_messages_carry_their_durations_in_milliseconds() {
    let stop = proto::MasterMessage::from(&ToWorker::Stop {
        timeout: Duration::from_millis(1_500),
    });
    assert_eq!(
        stop.into_kind(),
        Ok(proto::master_message::Kind::Stop(proto::Stop {
            timeout_ms: 1_500
        }))
    );
    let forever = Assignment {
        users: vec![1],
        numbers: vec![Numbers::from_ranges(vec![0..1]).unwrap()],
        stop_timeout: Duration::MAX,
        place: Place::default(),
    };
    assert_eq!(proto::Assign::from(&forever).stop_timeout_ms, u64::MAX);
}

#[test]
fn an_assignment_whose_numbers_disagree_with_its_users_is_refused() {
    let assign = |users: Vec<u32>, bounds: Vec<Vec<u32>>, index, count| proto::Assign {
        users,
        stop_timeout_ms: 0,
        numbers: bounds
            .into_iter()
            .map(|bounds| proto::Numbers { bounds })
            .collect(),
        worker_index: index,
        worker_count: count,
    };
    let ok = assign(vec![3, 0], vec![vec![0, 2, 5, 6], vec![]], 1, 2);
    assert!(Assignment::try_from(ok).is_ok());
    for (users, bounds, why) in [
        (vec![3], vec![vec![0, 2]], "too few numbers"),
        (vec![3], vec![vec![0, 4]], "too many numbers"),
        (vec![3, 1], vec![vec![0, 3]], "a class without numbers"),
        (vec![3], vec![vec![0, 2, 2, 3]], "touching ranges"),
        (vec![3], vec![vec![2, 3, 0, 2]], "unsorted ranges"),
        (vec![3], vec![vec![0, 3, 5]], "an odd number of bounds"),
        (
            vec![1],
            vec![vec![0, u32::MAX, 7, 6]],
            "a huge range, cut short",
        ),
        (
            vec![1_000_000],
            vec![vec![0, 1_000_000]],
            "ok, to check the next",
        ),
    ] {
        let result = Assignment::try_from(assign(users, bounds, 0, 1));
        assert_eq!(result.is_ok(), why.starts_with("ok"), "{why}");
    }
    let outside = assign(vec![1], vec![vec![0, 1]], 2, 2);
    assert!(
        Assignment::try_from(outside).is_err(),
        "index past the count"
    );
}

#[test]
fn a_message_without_its_kind_is_refused() {
    assert_eq!(
        proto::WorkerMessage { kind: None }.into_kind(),
        Err(Error::Missing("WorkerMessage.kind"))
    );
    assert_eq!(
        proto::MasterMessage { kind: None }.into_kind(),
        Err(Error::Missing("MasterMessage.kind"))
    );
    let report = proto::Report {
        seq: 1,
        users: vec![],
        stats: None,
    };
    assert_eq!(
        Report::try_from(report).err(),
        Some(Error::Missing("Report.stats"))
    );
}

#[test]
fn an_unknown_or_unspecified_method_is_refused() {
    for value in [0, 9, -1, i32::MAX] {
        let mut entry = get("/a", 1);
        entry.method = value;
        assert_eq!(
            decode_entries(vec![entry]),
            Err(Error::UnknownMethod(value))
        );
    }
}

#[test]
fn a_histogram_that_contradicts_itself_is_refused() {
    let mut entry = get("/a", 3);
    entry.histogram.as_mut().unwrap().min_us = 5_000_000;
    assert!(matches!(
        decode_entries(vec![entry]),
        Err(Error::InvalidHistogram(_))
    ));

    let mut entry = get("/a", 3);
    entry.histogram.as_mut().unwrap().index_deltas = vec![u32::MAX, 2];
    entry.histogram.as_mut().unwrap().counts = vec![1, 2];
    assert!(decode_entries(vec![entry]).is_err(), "index overflow");

    let mut entry = get("/a", 3);
    entry.histogram.as_mut().unwrap().counts.push(1);
    assert!(
        decode_entries(vec![entry]).is_err(),
        "deltas and counts differ"
    );

    let mut entry = get("/a", 3);
    entry.num_requests = 4;
    assert!(
        matches!(decode_entries(vec![entry]), Err(Error::Inconsistent(_))),
        "histogram count differs from num_requests"
    );

    let mut entry = get("/a", 1);
    let h = entry.histogram.as_mut().unwrap();
    h.index_deltas = vec![0; MAX_HISTOGRAM_BUCKETS + 1];
    h.counts = vec![1; MAX_HISTOGRAM_BUCKETS + 1];
    assert!(matches!(
        decode_entries(vec![entry]),
        Err(Error::TooMany { .. })
    ));
}

#[test]
fn corrected_times_travel_only_with_the_rows_that_have_them() {
    let mut stats = Stats::new();
    let mut s = Sample {
        corrected_response_time_us: None,
        response_time_us: 1_000,
        content_length: 1,
        at_unix_s: 1_000,
        error: None,
    };
    stats.record(Method::Get, "/unpaced", s);
    s.corrected_response_time_us = Some(70_000);
    stats.record(Method::Get, "/paced", s);
    let p = proto::Stats::from(&stats);
    let by_name = |n: &str| p.entries.iter().find(|e| e.name == n).unwrap();
    assert_eq!(by_name("/unpaced").corrected, None);
    assert_eq!(by_name("/paced").corrected.as_ref().unwrap().max_us, 70_000);

    let back = Stats::try_from(p).unwrap();
    assert_eq!(back, stats);
    assert_eq!(
        back.entry(Method::Get, "/paced")
            .unwrap()
            .corrected_percentile_ms(1.0),
        Some(70.0)
    );
}

#[test]
fn more_corrected_times_than_requests_are_refused() {
    let mut two = get("/a", 2);
    let mut one = get("/a", 1);
    one.corrected = two.histogram.take();
    assert_eq!(
        decode_entries(vec![one]),
        Err(Error::Inconsistent(
            "an entry's corrected histogram holds more values than requests"
        ))
    );
    // As many as requests (every request paced), or an empty one, is fine.
    let mut entry = get("/a", 2);
    entry.corrected = entry.histogram.clone();
    assert!(decode_entries(vec![entry]).is_ok());
    let mut entry = get("/a", 2);
    entry.corrected = Some(proto::Histogram::default());
    let stats = decode_entries(vec![entry]).unwrap();
    assert_eq!(stats.entry(Method::Get, "/a").unwrap().corrected, None);
}

#[test]
fn more_entries_than_the_limit_are_refused() {
    let entries: Vec<_> = (0..=MAX_ENTRIES)
        .map(|i| get(&format!("/{i}"), 0))
        .collect();
    assert_eq!(
        decode_entries(entries),
        Err(Error::TooMany {
            what: "Stats.entries",
            len: MAX_ENTRIES + 1,
            max: MAX_ENTRIES
        })
    );
}

#[test]
fn a_full_stats_including_its_folded_rows_passes_the_limits() {
    let mut stats = Stats::new();
    fn sample(error: Option<&str>) -> Sample<'_> {
        Sample {
            corrected_response_time_us: None,
            response_time_us: 10,
            content_length: 0,
            at_unix_s: 1,
            error,
        }
    }
    for i in 0..crate::stats::MAX_ENTRIES {
        stats.record(Method::Get, &format!("/{i}"), sample(None));
    }
    for method in Method::TYPES {
        stats.record(method, "/one-too-many", sample(None));
    }
    for i in 0..=crate::stats::MAX_ERRORS {
        let error = format!("error {i}");
        stats.record(Method::Get, "/0", sample(Some(&error)));
    }
    let p = proto::Stats::from(&stats);
    assert_eq!(p.entries.len(), MAX_ENTRIES);
    let errors = &p.entries.iter().find(|e| e.name == "/0").unwrap().errors;
    assert_eq!(errors.len(), MAX_ERRORS_PER_ENTRY);

    // Exact but for the folded counts, which the wire does not carry.
    let decoded = Stats::try_from(p).unwrap();
    assert!(decoded.entries().eq(stats.entries()));
    assert_eq!(decoded.total(), stats.total());
    assert_eq!((stats.folded_entries(), stats.folded_errors()), (8, 1));
    assert_eq!((decoded.folded_entries(), decoded.folded_errors()), (0, 0));
}

#[test]
fn oversized_strings_are_refused_and_never_sent() {
    let mut entry = get("/a", 1);
    entry.name = "x".repeat(MAX_STRING_BYTES + 1);
    assert_eq!(
        decode_entries(vec![entry]),
        Err(Error::TooLong {
            what: "Entry.name",
            len: MAX_STRING_BYTES + 1,
            max: MAX_STRING_BYTES
        })
    );

    // Multi-byte characters straddle the limit: we cut before them.
    let long = "é".repeat(MAX_STRING_BYTES);
    let stats = stats_of(
        &[(Method::Get, long.clone(), 1, 1_000, Some(long.leak()))],
        &[],
    );
    let p = proto::Stats::from(&stats);
    assert_eq!(p.entries[0].name.len(), MAX_STRING_BYTES);
    assert_eq!(p.entries[0].errors[0].message.len(), MAX_STRING_BYTES);
    assert!(Stats::try_from(p).is_ok());
}

#[test]
fn counts_that_would_overflow_when_merged_are_refused() {
    let huge = |name: &str| {
        let mut e = get(name, 1);
        e.num_requests = u64::MAX / 2 + 1;
        e.histogram.as_mut().unwrap().counts = vec![u64::MAX / 2 + 1];
        e
    };
    assert!(decode_entries(vec![huge("/a")]).is_ok());
    assert_eq!(
        decode_entries(vec![huge("/a"), huge("/b")]),
        Err(Error::Inconsistent("counts overflow"))
    );

    let mut entry = get("/a", 1);
    entry.num_failures = 2;
    assert!(decode_entries(vec![entry]).is_err(), "failures > requests");

    let mut entry = get("/a", 1);
    entry.seconds[0].requests = 2;
    assert!(decode_entries(vec![entry]).is_err(), "a second > requests");

    let mut entry = get("/a", 1);
    entry.num_failures = 1;
    entry.errors = vec![proto::Error {
        message: "boom".into(),
        occurrences: 2,
        first_seen_s: 1,
        last_seen_s: 1,
    }];
    assert!(decode_entries(vec![entry]).is_err(), "errors > failures");
}

#[test]
fn too_many_exceptions_or_nodes_are_refused() {
    let exception = |i: usize, nodes: usize| proto::Exception {
        message: format!("exception {i}"),
        count: 1,
        nodes: (0..nodes).map(|n| format!("node-{n}")).collect(),
    };
    let decode = |exceptions| {
        Stats::try_from(proto::Stats {
            exceptions,
            ..Default::default()
        })
    };
    assert!(decode((0..MAX_EXCEPTIONS).map(|i| exception(i, 1)).collect()).is_ok());
    assert!(matches!(
        decode((0..=MAX_EXCEPTIONS).map(|i| exception(i, 1)).collect()),
        Err(Error::TooMany { .. })
    ));
    assert!(matches!(
        decode(vec![exception(0, MAX_EXCEPTION_NODES + 1)]),
        Err(Error::TooMany { .. })
    ));
}

#[test]
fn another_protocol_version_fails_the_precondition_naming_both() {
    let hello = proto::Hello {
        protocol_version: PROTOCOL_VERSION + 1,
        worker_id: "w1".into(),
        ..Default::default()
    };
    let e = check_hello(&hello).unwrap_err();
    assert_eq!(
        e,
        Error::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: PROTOCOL_VERSION + 1
        }
    );
    let status = tonic::Status::from(e);
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    let (ours, theirs) = (PROTOCOL_VERSION, PROTOCOL_VERSION + 1);
    assert!(status.message().contains(&format!("version {ours}")));
    assert!(status.message().contains(&format!("version {theirs}")));

    let ok = proto::Hello {
        protocol_version: PROTOCOL_VERSION,
        ..hello
    };
    assert_eq!(check_hello(&ok), Ok(()));
    assert_eq!(
        tonic::Status::from(Error::Missing("x")).code(),
        tonic::Code::InvalidArgument
    );
}

#[test]
fn heartbeats_must_carry_a_percentage() {
    let mut h = proto::Heartbeat {
        users: vec![1, 2],
        cpu_percent: 150.0,
        memory_bytes: 1 << 20,
    };
    assert!(Heartbeat::try_from(h.clone()).is_ok());
    h.cpu_percent = f32::NAN;
    assert!(Heartbeat::try_from(h).is_err());
}

#[test]
fn abandoned_requests_cross_the_wire_and_a_peer_without_the_field_sent_none() {
    let mut stats = Stats::new();
    stats.abandon(7);
    assert_eq!(round_trip(&stats).map(|s| s.abandoned_requests()), Ok(7));
    // Encoded by a peer built before field 3: the field is absent.
    let old = proto::Stats {
        entries: vec![get("/a", 2)],
        exceptions: vec![],
        abandoned_requests: 0,
    };
    let bytes = old.encode_to_vec();
    let decoded = Stats::try_from(proto::Stats::decode(&*bytes).unwrap()).unwrap();
    assert_eq!(decoded.abandoned_requests(), 0);
    assert_eq!(decoded.total().num_requests, 2);
}
