//! Writes the seed corpus of the `worker_message` target: one encoded `WorkerMessage` of each
//! kind a worker sends, as our own worker encodes it. Run from the repository root:
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds`.

use hatchery_core::protocol::{FromWorker, Heartbeat, Report};
use hatchery_core::stats::{Sample, Stats};
use hatchery_core::wire::{proto, proto::worker_message::Kind, PROTOCOL_VERSION};
use hatchery_core::Method;
use prost::Message;

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/worker_message");
    std::fs::create_dir_all(&dir).expect("corpus folder");
    let write = |name: &str, m: proto::WorkerMessage| {
        std::fs::write(dir.join(name), m.encode_to_vec()).expect("write seed");
    };

    write(
        "hello",
        Kind::Hello(proto::Hello {
            protocol_version: PROTOCOL_VERSION,
            worker_id: "host-1234-abcd".into(),
            hostname: "host".into(),
            cores: 8,
            plan_hash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
            last_seq: 3,
            users: vec![3, 1],
            numbers: vec![
                proto::Numbers {
                    bounds: vec![0, 2, 5, 6],
                },
                proto::Numbers { bounds: vec![2, 3] },
            ],
        })
        .into(),
    );
    let heartbeat = Heartbeat {
        users: vec![2, 1],
        cpu_percent: 37.5,
        memory_bytes: 48 << 20,
    };
    write("heartbeat", (&FromWorker::Heartbeat(heartbeat)).into());

    let mut stats = Stats::new();
    let ok = |us, at| Sample {
        response_time_us: us,
        content_length: 120,
        at_unix_s: at,
        error: None,
    };
    for (i, us) in [90, 1_500, 2_048, 70_000, 3_000_000]
        .into_iter()
        .enumerate()
    {
        stats.record(
            Method::Get,
            "/products/[id]",
            ok(us, 1_700_000_000 + i as u64),
        );
    }
    stats.record(Method::Post, "/checkout", ok(250_000, 1_700_000_003));
    stats.record(
        Method::Post,
        "/checkout",
        Sample {
            error: Some("HTTP 503: Service Unavailable"),
            ..ok(12_000, 1_700_000_004)
        },
    );
    stats.record_exception("capture token: no match for $.token", "host-1234-abcd");
    let report = Report {
        seq: 4,
        users: vec![3, 1],
        stats,
    };
    write("report", (&FromWorker::Report(Box::new(report))).into());
    write(
        "report-empty",
        (&FromWorker::Report(Box::new(Report {
            seq: 1,
            users: vec![],
            stats: Stats::new(),
        })))
            .into(),
    );
    write("stopped", (&FromWorker::Stopped).into());
    write("stats-reset", (&FromWorker::StatsReset).into());
    write(
        "rejected",
        Kind::Rejected(proto::Rejected {
            reason: "the plan arrived damaged".into(),
        })
        .into(),
    );
}
