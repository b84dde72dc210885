//! `Stats` on the wire. Decoding checks every entry before merging any, so a refused message
//! leaves nothing behind, and checks that the counts agree (a histogram holds `num_requests`
//! values, failures and per-second counts do not exceed requests) and that their sums fit in a
//! `u64`, so merging a decoded message cannot overflow.

use std::collections::BTreeSet;

use super::{
    check_count, check_len, proto, truncated, Error, MAX_ENTRIES, MAX_ERRORS_PER_ENTRY,
    MAX_EXCEPTIONS, MAX_EXCEPTION_NODES, MAX_HISTOGRAM_BUCKETS, MAX_SECONDS_PER_ENTRY,
};
use crate::histogram::Histogram;
use crate::stats::{Entry, ErrorStat, Exception, Second, Stats, OTHER_ENTRY, OTHER_ERRORS};
use crate::Method;

impl From<&Stats> for proto::Stats {
    fn from(stats: &Stats) -> Self {
        Self {
            entries: stats
                .entries()
                .map(|(method, name, e)| encode_entry(method, name, e))
                .collect(),
            exceptions: stats
                .exceptions()
                .map(|(message, e)| proto::Exception {
                    message: truncated(message),
                    count: e.count,
                    nodes: e
                        .nodes
                        .iter()
                        .take(MAX_EXCEPTION_NODES)
                        .map(|n| truncated(n))
                        .collect(),
                })
                .collect(),
            abandoned_requests: stats.abandoned_requests(),
        }
    }
}

impl TryFrom<proto::Stats> for Stats {
    type Error = Error;

    fn try_from(p: proto::Stats) -> Result<Self, Error> {
        check_count("Stats.entries", p.entries.len(), MAX_ENTRIES)?;
        check_count("Stats.exceptions", p.exceptions.len(), MAX_EXCEPTIONS)?;

        // Aggregated adds up every entry, and an error or a second never exceeds its entry's
        // requests, so these two sums bound everything the merge below adds.
        let mut requests = 0u64;
        let mut content_length = 0u64;
        let mut entries = Vec::with_capacity(p.entries.len());
        for e in p.entries {
            let (method, name, entry, other_errors) = decode_entry(e)?;
            requests = add(requests, entry.num_requests)?;
            content_length = add(content_length, entry.total_content_length)?;
            entries.push((method, name, entry, other_errors));
        }
        let mut exceptions = Vec::with_capacity(p.exceptions.len());
        let mut exception_count = 0u64;
        for e in p.exceptions {
            check_len("Exception.message", &e.message)?;
            check_count("Exception.nodes", e.nodes.len(), MAX_EXCEPTION_NODES)?;
            for node in &e.nodes {
                check_len("Exception.nodes", node)?;
            }
            exception_count = add(exception_count, e.count)?;
            let nodes: BTreeSet<String> = e.nodes.into_iter().collect();
            exceptions.push((
                e.message,
                Exception {
                    count: e.count,
                    nodes,
                },
            ));
        }

        // Stats fold rows and error messages past their bounds into `(other)` and
        // `(other errors)`, which count towards the bounds too; merging those last rebuilds a full
        // peer's stats exactly, whatever the order its rows were first seen in.
        entries.sort_by_key(|(_, name, _, _)| name == OTHER_ENTRY);
        let mut stats = Stats::new();
        for (method, name, entry, _) in &entries {
            stats.merge_entry(*method, name, entry);
        }
        for (method, name, _, other_errors) in &entries {
            if let Some(stat) = other_errors {
                let mut only_errors = Entry::default();
                only_errors.add_error(OTHER_ERRORS, *stat);
                stats.merge_entry(*method, name, &only_errors);
            }
        }
        for (message, e) in &exceptions {
            stats.add_exception(message, e);
        }
        stats.abandon(p.abandoned_requests);
        Ok(stats)
    }
}

fn encode_entry(method: Method, name: &str, e: &Entry) -> proto::Entry {
    proto::Entry {
        method: proto::Method::from(method).into(),
        name: truncated(name),
        num_requests: e.num_requests,
        num_failures: e.num_failures,
        total_content_length: e.total_content_length,
        first_request_s: e.first_request_s.unwrap_or(0),
        last_request_s: e.last_request_s.unwrap_or(0),
        histogram: Some(encode_histogram(&e.histogram)),
        corrected: e
            .corrected
            .as_deref()
            .filter(|h| !h.is_empty())
            .map(encode_histogram),
        seconds: e
            .recent_seconds()
            .map(|s| proto::Second {
                unix_s: s.at_unix_s,
                requests: s.requests,
                failures: s.failures,
            })
            .collect(),
        errors: e
            .errors()
            .map(|(message, stat)| proto::Error {
                message: truncated(message),
                occurrences: stat.occurrences,
                first_seen_s: stat.first_seen_s,
                last_seen_s: stat.last_seen_s,
            })
            .collect(),
    }
}

/// A row, with its `(other errors)` apart.
type Row = (Method, String, Entry, Option<ErrorStat>);

fn decode_entry(p: proto::Entry) -> Result<Row, Error> {
    let method = proto::Method::try_from(p.method)
        .map_err(|_| Error::UnknownMethod(p.method))
        .and_then(Method::try_from)?;
    check_len("Entry.name", &p.name)?;
    check_count("Entry.seconds", p.seconds.len(), MAX_SECONDS_PER_ENTRY)?;
    check_count("Entry.errors", p.errors.len(), MAX_ERRORS_PER_ENTRY)?;
    if p.num_failures > p.num_requests {
        return Err(Error::Inconsistent(
            "an entry has more failures than requests",
        ));
    }
    let histogram = match p.histogram {
        Some(h) => decode_histogram(h)?,
        None => Histogram::new(),
    };
    if histogram.count() != p.num_requests {
        return Err(Error::Inconsistent(
            "an entry's histogram does not hold one value per request",
        ));
    }

    let corrected = match p.corrected {
        Some(h) => Some(Box::new(decode_histogram(h)?)),
        None => None,
    };
    if corrected
        .as_ref()
        .is_some_and(|h| h.count() > p.num_requests)
    {
        return Err(Error::Inconsistent(
            "an entry's corrected histogram holds more values than requests",
        ));
    }

    let mut entry = Entry::default();
    entry.num_requests = p.num_requests;
    entry.num_failures = p.num_failures;
    entry.histogram = histogram;
    entry.corrected = corrected.filter(|h| !h.is_empty());
    entry.total_content_length = p.total_content_length;
    entry.first_request_s = nonzero(p.first_request_s);
    entry.last_request_s = nonzero(p.last_request_s);

    let (mut requests, mut failures) = (0u64, 0u64);
    for s in p.seconds {
        requests = add(requests, s.requests)?;
        failures = add(failures, s.failures)?;
        if s.failures > s.requests {
            return Err(Error::Inconsistent(
                "a second has more failures than requests",
            ));
        }
        entry.add_second(Second {
            at_unix_s: s.unix_s,
            requests: s.requests,
            failures: s.failures,
        });
    }
    if requests > p.num_requests || failures > p.num_failures {
        return Err(Error::Inconsistent(
            "an entry's seconds count more requests than the entry",
        ));
    }

    let mut occurrences = 0u64;
    let mut other_errors: Option<ErrorStat> = None;
    for e in p.errors {
        check_len("Error.message", &e.message)?;
        occurrences = add(occurrences, e.occurrences)?;
        let stat = ErrorStat {
            occurrences: e.occurrences,
            first_seen_s: e.first_seen_s,
            last_seen_s: e.last_seen_s,
        };
        if e.message == OTHER_ERRORS {
            match &mut other_errors {
                Some(o) => o.merge(&stat),
                None => other_errors = Some(stat),
            }
        } else {
            entry.add_error(&e.message, stat);
        }
    }
    if occurrences > p.num_failures {
        return Err(Error::Inconsistent(
            "an entry's errors count more failures than the entry",
        ));
    }
    Ok((method, p.name, entry, other_errors))
}

/// Buckets as index deltas (the first absolute) and counts: small varints, as the indexes of
/// non-empty buckets are close together.
fn encode_histogram(h: &Histogram) -> proto::Histogram {
    let mut prev = 0;
    let (index_deltas, counts) = h
        .buckets()
        .map(|(idx, n)| {
            let delta = idx - prev;
            prev = idx;
            (delta, n)
        })
        .unzip();
    proto::Histogram {
        index_deltas,
        counts,
        min_us: h.min(),
        max_us: h.max(),
        sum_us: h.sum(),
    }
}

fn decode_histogram(p: proto::Histogram) -> Result<Histogram, Error> {
    if p.index_deltas.len() != p.counts.len() {
        return Err(Error::Inconsistent(
            "a histogram has not as many index deltas as counts",
        ));
    }
    check_count("Histogram buckets", p.counts.len(), MAX_HISTOGRAM_BUCKETS)?;
    let mut idx = 0u32;
    let mut buckets = Vec::with_capacity(p.counts.len());
    for (&delta, &n) in p.index_deltas.iter().zip(&p.counts) {
        idx = idx
            .checked_add(delta)
            .ok_or(Error::Inconsistent("a histogram's bucket index overflows"))?;
        if n == 0 {
            return Err(Error::Inconsistent("a histogram lists an empty bucket"));
        }
        buckets.push((idx, n));
    }
    Histogram::from_parts(&buckets, p.min_us, p.max_us, p.sum_us).map_err(Error::InvalidHistogram)
}

impl From<Method> for proto::Method {
    fn from(m: Method) -> Self {
        match m {
            Method::Get => proto::Method::Get,
            Method::Post => proto::Method::Post,
            Method::Put => proto::Method::Put,
            Method::Patch => proto::Method::Patch,
            Method::Delete => proto::Method::Delete,
            Method::Head => proto::Method::Head,
            Method::Script => proto::Method::Script,
            Method::Call => proto::Method::Call,
        }
    }
}

impl TryFrom<proto::Method> for Method {
    type Error = Error;

    fn try_from(m: proto::Method) -> Result<Self, Error> {
        Ok(match m {
            proto::Method::Unspecified => return Err(Error::UnknownMethod(m.into())),
            proto::Method::Get => Method::Get,
            proto::Method::Post => Method::Post,
            proto::Method::Put => Method::Put,
            proto::Method::Patch => Method::Patch,
            proto::Method::Delete => Method::Delete,
            proto::Method::Head => Method::Head,
            proto::Method::Script => Method::Script,
            proto::Method::Call => Method::Call,
        })
    }
}

fn add(a: u64, b: u64) -> Result<u64, Error> {
    a.checked_add(b)
        .ok_or(Error::Inconsistent("counts overflow"))
}

/// The wire's "0 = none".
fn nonzero(s: u64) -> Option<u64> {
    (s != 0).then_some(s)
}
