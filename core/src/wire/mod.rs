//! The master <-> worker protocol on the wire: gRPC over HTTP/2, one bidirectional stream per
//! worker session (`proto/hatchery.proto`, described in docs/protocol.md).
//!
//! [`proto`] is generated from the `.proto` file and committed (`gen/`), so building needs no
//! `protoc`; `tests/codegen.rs` fails when it drifts. The rest of this module converts between
//! the generated types and [`crate::protocol`] / [`crate::stats`]. Encoding never fails; decoding
//! checks everything a peer could get wrong or abuse (see the `MAX_*` limits), so a hostile
//! message is an [`Error`], never a panic, an overflow or an unbounded allocation.
//!
//! Encoding truncates strings to [`MAX_STRING_BYTES`] and exception nodes to
//! [`MAX_EXCEPTION_NODES`], so what we send always decodes; below those bounds a round trip
//! is exact.

mod stats;

use std::time::Duration;

use crate::histogram::InvalidParts;
use crate::numbers::Numbers;
use crate::protocol::{Assignment, FromWorker, Heartbeat, Place, Report, ToWorker};

/// The code generated from `proto/hatchery.proto` (package `hatchery.v1`).
#[allow(
    clippy::all,
    clippy::pedantic,
    missing_docs,
    missing_debug_implementations
)]
pub mod proto {
    include!("gen/hatchery.v1.rs");
}

pub use proto::coordinator_client::{self, CoordinatorClient};
pub use proto::coordinator_server::{self, Coordinator, CoordinatorServer};
/// The tonic this module was generated for, so master and worker build on the same one.
pub use tonic;

/// Sent in `Hello` and `Welcome`; a master refuses a worker that speaks another version.
pub const PROTOCOL_VERSION: u32 = 2;
/// Largest message either side encodes or accepts (tonic's codec limits; its default is 4 MiB).
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Rows of a `Stats`: [`crate::stats::MAX_ENTRIES`], plus the `(other)` row of each method that
/// the stats fold into once full.
pub const MAX_ENTRIES: usize = crate::stats::MAX_ENTRIES + crate::Method::TYPES.len();
/// Distinct error messages of one entry: [`crate::stats::MAX_ERRORS`] plus `(other errors)`.
pub const MAX_ERRORS_PER_ENTRY: usize = crate::stats::MAX_ERRORS + 1;
/// Non-empty buckets of one histogram (a real one has at most about 28 000).
pub const MAX_HISTOGRAM_BUCKETS: usize = 100_000;
/// Per-second counts of one entry (an entry keeps [`crate::stats::RECENT_SECONDS`]).
pub const MAX_SECONDS_PER_ENTRY: usize = 60;
/// Distinct exception messages: [`crate::stats::MAX_ERRORS`] plus `(other exceptions)`.
pub const MAX_EXCEPTIONS: usize = crate::stats::MAX_ERRORS + 1;
/// Nodes listed for one exception.
pub const MAX_EXCEPTION_NODES: usize = crate::stats::MAX_EXCEPTION_NODES;
/// User classes in an assignment, a report or a heartbeat.
pub const MAX_USER_CLASSES: usize = 10_000;
/// Any string a peer sends: names, messages, ids.
pub const MAX_STRING_BYTES: usize = 4 * 1024;

/// A message from a peer that we refuse: malformed, inconsistent or over a limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the peer speaks protocol version {theirs}, this side speaks version {ours}")]
    VersionMismatch { ours: u32, theirs: u32 },
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("unknown method {0}")]
    UnknownMethod(i32),
    #[error("{what}: {len} is more than the {max} allowed")]
    TooMany {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{what} is {len} bytes long, more than the {max} allowed")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("invalid histogram: {0}")]
    InvalidHistogram(#[source] InvalidParts),
    #[error("{0}")]
    Inconsistent(&'static str),
}

/// The status a session ends with when the peer sent something we refuse.
impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        match e {
            Error::VersionMismatch { .. } => tonic::Status::failed_precondition(e.to_string()),
            _ => tonic::Status::invalid_argument(e.to_string()),
        }
    }
}

/// Checks that a peer speaks our [`PROTOCOL_VERSION`].
pub fn check_version(theirs: u32) -> Result<(), Error> {
    if theirs == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(Error::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs,
        })
    }
}

/// Checks a worker's `Hello` before the master adopts it: version, and strings it will keep.
pub fn check_hello(hello: &proto::Hello) -> Result<(), Error> {
    check_version(hello.protocol_version)?;
    if hello.worker_id.is_empty() {
        return Err(Error::Missing("Hello.worker_id"));
    }
    check_len("Hello.worker_id", &hello.worker_id)?;
    check_len("Hello.hostname", &hello.hostname)?;
    check_count("Hello.users", hello.users.len(), MAX_USER_CLASSES)?;
    check_len("Hello.plan_hash", &hello.plan_hash)
}

/// The numbers of the users a worker says it runs (`Hello.users`), per class; `None` if it sent
/// none (a worker before its first assignment).
pub fn hello_numbers(hello: &proto::Hello) -> Result<Option<Vec<Numbers>>, Error> {
    if hello.numbers.is_empty() {
        return Ok(None);
    }
    numbers_per_class(
        "Hello.numbers must hold, per class, as many numbers as Hello.users",
        &hello.users,
        &hello.numbers,
    )
    .map(Some)
}

/// Per class, the set of `users[c]` numbers that `numbers[c]` must be.
fn numbers_per_class(
    what: &'static str,
    users: &[u32],
    numbers: &[proto::Numbers],
) -> Result<Vec<Numbers>, Error> {
    if numbers.len() != users.len() {
        return Err(Error::Inconsistent(what));
    }
    users
        .iter()
        .zip(numbers)
        .map(|(&n, p)| {
            // Each range is non-empty, so a set of n numbers has at most n ranges.
            if p.bounds.len() % 2 != 0 || p.bounds.len() / 2 > n as usize {
                return Err(Error::Inconsistent(what));
            }
            let ranges = p.bounds.chunks_exact(2).map(|b| b[0]..b[1]).collect();
            let set = Numbers::from_ranges(ranges).map_err(|_| Error::Inconsistent(what))?;
            if set.len() != u64::from(n) {
                return Err(Error::Inconsistent(what));
            }
            Ok(set)
        })
        .collect()
}

impl From<&Numbers> for proto::Numbers {
    fn from(n: &Numbers) -> Self {
        Self {
            bounds: n.ranges().iter().flat_map(|r| [r.start, r.end]).collect(),
        }
    }
}

impl proto::WorkerMessage {
    /// The message's one field; a message without it is malformed.
    pub fn into_kind(self) -> Result<proto::worker_message::Kind, Error> {
        self.kind.ok_or(Error::Missing("WorkerMessage.kind"))
    }
}

impl proto::MasterMessage {
    /// The message's one field; a message without it is malformed.
    pub fn into_kind(self) -> Result<proto::master_message::Kind, Error> {
        self.kind.ok_or(Error::Missing("MasterMessage.kind"))
    }
}

impl From<proto::worker_message::Kind> for proto::WorkerMessage {
    fn from(kind: proto::worker_message::Kind) -> Self {
        Self { kind: Some(kind) }
    }
}

impl From<proto::master_message::Kind> for proto::MasterMessage {
    fn from(kind: proto::master_message::Kind) -> Self {
        Self { kind: Some(kind) }
    }
}

impl From<&ToWorker> for proto::MasterMessage {
    fn from(m: &ToWorker) -> Self {
        use proto::master_message::Kind;
        let kind = match m {
            ToWorker::Assign(a) => Kind::Assign((&**a).into()),
            ToWorker::Stop { timeout } => Kind::Stop(proto::Stop {
                timeout_ms: millis(*timeout),
            }),
            ToWorker::ResetStats => Kind::ResetStats(proto::ResetStats {}),
            ToWorker::Quit => Kind::Quit(proto::Quit {}),
            ToWorker::SetHost(host) => Kind::Configure(proto::Configure { host: host.clone() }),
        };
        kind.into()
    }
}

impl From<&FromWorker> for proto::WorkerMessage {
    fn from(m: &FromWorker) -> Self {
        use proto::worker_message::Kind;
        let kind = match m {
            FromWorker::Report(r) => Kind::Report((&**r).into()),
            FromWorker::Stopped => Kind::Stopped(proto::Stopped {}),
            FromWorker::StatsReset => Kind::StatsReset(proto::StatsReset {}),
            FromWorker::Heartbeat(h) => Kind::Heartbeat(h.into()),
        };
        kind.into()
    }
}

impl From<&Assignment> for proto::Assign {
    fn from(a: &Assignment) -> Self {
        Self {
            users: a.users.clone(),
            stop_timeout_ms: millis(a.stop_timeout),
            numbers: a.numbers.iter().map(Into::into).collect(),
            worker_index: a.place.index,
            worker_count: a.place.count,
        }
    }
}

impl TryFrom<proto::Assign> for Assignment {
    type Error = Error;

    fn try_from(p: proto::Assign) -> Result<Self, Error> {
        check_count("Assign.users", p.users.len(), MAX_USER_CLASSES)?;
        let numbers = numbers_per_class(
            "Assign.numbers must hold, per class, as many numbers as Assign.users",
            &p.users,
            &p.numbers,
        )?;
        if p.worker_index >= p.worker_count {
            return Err(Error::Inconsistent(
                "Assign.worker_index is not below Assign.worker_count",
            ));
        }
        Ok(Self {
            users: p.users,
            numbers,
            stop_timeout: Duration::from_millis(p.stop_timeout_ms),
            place: Place {
                index: p.worker_index,
                count: p.worker_count,
            },
        })
    }
}

impl From<&Report> for proto::Report {
    fn from(r: &Report) -> Self {
        Self {
            seq: r.seq,
            users: r.users.clone(),
            stats: Some((&r.stats).into()),
        }
    }
}

impl TryFrom<proto::Report> for Report {
    type Error = Error;

    fn try_from(p: proto::Report) -> Result<Self, Error> {
        if p.seq == 0 {
            // 0 means "none" in Hello.last_seq and Welcome.acked_seq.
            return Err(Error::Inconsistent("Report.seq is 0"));
        }
        check_count("Report.users", p.users.len(), MAX_USER_CLASSES)?;
        let stats = p.stats.ok_or(Error::Missing("Report.stats"))?;
        Ok(Self {
            seq: p.seq,
            users: p.users,
            stats: stats.try_into()?,
        })
    }
}

impl From<&Heartbeat> for proto::Heartbeat {
    fn from(h: &Heartbeat) -> Self {
        Self {
            users: h.users.clone(),
            cpu_percent: h.cpu_percent,
            memory_bytes: h.memory_bytes,
        }
    }
}

impl TryFrom<proto::Heartbeat> for Heartbeat {
    type Error = Error;

    fn try_from(p: proto::Heartbeat) -> Result<Self, Error> {
        check_count("Heartbeat.users", p.users.len(), MAX_USER_CLASSES)?;
        if !p.cpu_percent.is_finite() || p.cpu_percent < 0.0 {
            return Err(Error::Inconsistent(
                "Heartbeat.cpu_percent is not a percentage",
            ));
        }
        Ok(Self {
            users: p.users,
            cpu_percent: p.cpu_percent,
            memory_bytes: p.memory_bytes,
        })
    }
}

/// Whole milliseconds, saturating (a `Duration` of more than 584 million years).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn check_count(what: &'static str, len: usize, max: usize) -> Result<(), Error> {
    if len > max {
        return Err(Error::TooMany { what, len, max });
    }
    Ok(())
}

fn check_len(what: &'static str, s: &str) -> Result<(), Error> {
    if s.len() > MAX_STRING_BYTES {
        return Err(Error::TooLong {
            what,
            len: s.len(),
            max: MAX_STRING_BYTES,
        });
    }
    Ok(())
}

/// `s` cut to at most [`MAX_STRING_BYTES`], at a character boundary.
fn truncated(s: &str) -> String {
    let mut end = s.len().min(MAX_STRING_BYTES);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests;
