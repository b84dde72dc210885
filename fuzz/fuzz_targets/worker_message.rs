//! The master's side of the protocol on arbitrary bytes, as `master::server` takes a worker's
//! message: protobuf decoding (prost), the `oneof`, then the checks and conversions of
//! `hatchery_core::wire` (`check_hello`, `Report::try_from`, `Heartbeat::try_from`). No panic;
//! what passes is merged as the run merges reports (twice, as from two workers) and read as the
//! console and the API read it; and it survives our own encoding unchanged.

#![no_main]

use hatchery_core::protocol::{Heartbeat, Report};
use hatchery_core::stats::Stats;
use hatchery_core::wire::{self, proto, proto::worker_message::Kind};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = proto::WorkerMessage::decode(data) else {
        return;
    };
    let Ok(kind) = message.into_kind() else {
        return;
    };
    match kind {
        Kind::Hello(hello) => {
            let _ = wire::check_hello(&hello);
        }
        Kind::Heartbeat(h) => {
            let _ = Heartbeat::try_from(h);
        }
        Kind::Report(r) => {
            let Ok(report) = Report::try_from(r) else {
                return;
            };
            let mut run = Stats::new();
            run.merge(&report.stats);
            run.merge(&report.stats);
            for (_, _, entry) in run.entries() {
                let _ = (
                    entry.percentile_ms(0.95),
                    entry.avg_response_time_ms(),
                    entry.current_rps(u64::MAX),
                    entry.fail_ratio(),
                );
            }
            let _ = run.errors().count();
            let again = Report::try_from(proto::Report::from(&report))
                .expect("what the master accepted, encoded by us, is accepted again");
            assert!(again.stats == report.stats, "a round trip changes nothing");
            assert_eq!((again.seq, &again.users), (report.seq, &report.users));
        }
        Kind::Stopped(_) | Kind::StatsReset(_) | Kind::Rejected(_) => {}
    }
});
