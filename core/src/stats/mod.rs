//! Per-(method, name) statistics, errors and exceptions.
//!
//! [`Stats`] is a mergeable value: a worker records into one and ships it as a delta every
//! second ([`Stats::take`]); the master merges the deltas into its own. Everything in it is
//! bounded, whatever the plan does: the number of rows ([`MAX_ENTRIES`]), of distinct error and
//! exception messages ([`MAX_ERRORS`]), and each row's histogram and per-second counts.
//!
//! - [`entry`]: one row ([`Entry`]) and its per-second counts and errors.
//! - [`window`]: the last seconds' response times, for "current" percentiles.

mod entry;
mod window;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

pub use entry::{Entry, ErrorStat, Second, RECENT_SECONDS};
pub use window::{Window, WINDOW_SECONDS};

use crate::Method;

/// Locust's percentile columns.
pub const PERCENTILES: [f64; 11] = [
    0.5, 0.66, 0.75, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0,
];

/// Distinct (method, name) rows kept; later ones are folded into [`OTHER_ENTRY`].
pub const MAX_ENTRIES: usize = 10_000;
/// Distinct error messages (over all rows), and distinct exception messages, kept.
pub const MAX_ERRORS: usize = 1_000;
/// The row that takes requests once [`MAX_ENTRIES`] is reached.
pub const OTHER_ENTRY: &str = "(other)";
/// The error that takes failures once [`MAX_ERRORS`] is reached.
pub const OTHER_ERRORS: &str = "(other errors)";
/// The exception that takes exceptions once [`MAX_ERRORS`] is reached.
pub const OTHER_EXCEPTIONS: &str = "(other exceptions)";

/// Where no row is: `u32` keeps the per-name index small.
const NO_SLOT: u32 = u32::MAX;

/// Hashes row names a word at a time (the multiply-rotate scheme of rustc's FxHash). SipHash,
/// the default, cost about as much as the rest of recording a request. Its resistance to
/// crafted collisions buys nothing here: rows are capped at [`MAX_ENTRIES`], which bounds the
/// worst case.
#[derive(Debug, Default, Clone, Copy)]
struct NameHasher(u64);

const NAME_HASH_K: u64 = 0xf135_7aea_2e62_a9c5;

impl NameHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(26) ^ word).wrapping_mul(NAME_HASH_K);
    }
}

impl Hasher for NameHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// One finished request.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    pub response_time_us: u64,
    /// For a request of a paced user (`wait: {pacing}` or `{throughput}`): the response time
    /// measured from when the request was meant to go out, had its task started on schedule
    /// (wrk2's correction for coordinated omission). `None` for every other request.
    pub corrected_response_time_us: Option<u64>,
    pub content_length: u64,
    /// Unix second in which the request finished.
    pub at_unix_s: u64,
    /// `Some(message)` when the request failed.
    pub error: Option<&'a str>,
}

/// One error of one (method, name), as reports list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorRow<'a> {
    pub method: Method,
    pub name: &'a str,
    pub error: &'a str,
    pub stat: ErrorStat,
}

/// Nodes listed per exception; more would only repeat that it happens everywhere.
pub const MAX_EXCEPTION_NODES: usize = 64;

/// An exception raised while running users (not a failed request): how often, and on which nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exception {
    pub count: u64,
    pub nodes: BTreeSet<String>,
}

#[derive(Debug, Clone)]
struct Row {
    method: Method,
    name: Box<str>,
    entry: Entry,
}

/// Statistics of a run, or of a worker's last second.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Rows in the order they were first seen; [`Stats::entries`] sorts.
    rows: Vec<Row>,
    /// Row index by name, then by method, so recording looks a `&str` up without allocating.
    index: HashMap<Box<str>, [u32; Method::TYPES.len()], BuildHasherDefault<NameHasher>>,
    /// Boxed to keep `Stats` (and the protocol messages carrying one) small.
    total: Box<Entry>,
    num_error_kinds: usize,
    exceptions: BTreeMap<Box<str>, Exception>,
    folded_entries: u64,
    folded_errors: u64,
    /// Requests sent (at least a byte written) whose user was aborted before the response was
    /// recorded: in no row, but the server may well have served them.
    abandoned: u64,
}

impl Stats {
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    pub fn record(&mut self, method: Method, name: &str, s: Sample<'_>) {
        self.total.record(&s);
        let i = match self.index.get(name).map(|slots| slots[method as usize]) {
            Some(i) if i != NO_SLOT => i as usize,
            _ => self.new_row(method, name, 1),
        };
        let entry = &mut self.rows[i].entry;
        entry.record(&s);
        if let Some(message) = s.error {
            let stat = ErrorStat {
                occurrences: 1,
                first_seen_s: s.at_unix_s,
                last_seen_s: s.at_unix_s,
            };
            add_error(
                entry,
                message,
                stat,
                &mut self.num_error_kinds,
                &mut self.folded_errors,
            );
        }
    }

    /// The row for a (method, name) not seen yet, or the [`OTHER_ENTRY`] row of `method` when
    /// there are too many rows (counting `requests` as folded).
    #[cold]
    fn new_row(&mut self, method: Method, name: &str, requests: u64) -> usize {
        let name = if self.rows.len() >= MAX_ENTRIES && name != OTHER_ENTRY {
            self.folded_entries += requests;
            OTHER_ENTRY
        } else {
            name
        };
        // Looked up before inserting: once folding, every request of a new name lands here, and
        // `entry` would allocate the key each time.
        if !self.index.contains_key(name) {
            self.index
                .insert(name.into(), [NO_SLOT; Method::TYPES.len()]);
        }
        let slots = self.index.get_mut(name).expect("inserted above");
        if slots[method as usize] == NO_SLOT {
            slots[method as usize] = self.rows.len() as u32;
            self.rows.push(Row {
                method,
                name: name.into(),
                entry: Entry::default(),
            });
        }
        slots[method as usize] as usize
    }

    pub fn record_exception(&mut self, message: &str, node: &str) {
        let mut nodes = BTreeSet::new();
        nodes.insert(node.to_owned());
        self.add_exception(message, &Exception { count: 1, nodes });
    }

    /// Adds exceptions (a peer's report), folding new messages past [`MAX_ERRORS`].
    pub fn add_exception(&mut self, message: &str, e: &Exception) {
        let message =
            if self.exceptions.len() >= MAX_ERRORS && !self.exceptions.contains_key(message) {
                OTHER_EXCEPTIONS
            } else {
                message
            };
        let mine = match self.exceptions.get_mut(message) {
            Some(mine) => mine,
            None => self.exceptions.entry(message.into()).or_default(),
        };
        mine.count = mine.count.saturating_add(e.count);
        for node in &e.nodes {
            if mine.nodes.len() >= MAX_EXCEPTION_NODES {
                break;
            }
            mine.nodes.insert(node.clone());
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        for row in &other.rows {
            self.merge_entry(row.method, &row.name, &row.entry);
        }
        for (message, e) in &other.exceptions {
            self.add_exception(message, e);
        }
        self.folded_entries += other.folded_entries;
        self.folded_errors += other.folded_errors;
        self.abandon(other.abandoned);
    }

    /// Counts `n` requests abandoned in flight (see [`Stats::abandoned_requests`]).
    pub fn abandon(&mut self, n: u64) {
        self.abandoned = self.abandoned.saturating_add(n);
    }

    /// Requests that were sent but never finished because their user was stopped without
    /// waiting (Locust drops them too): in no row, so the rows plus these add up to every request
    /// sent.
    pub fn abandoned_requests(&self) -> u64 {
        self.abandoned
    }

    /// Merges one row (from [`Stats::merge`], or a row rebuilt from the wire) into its row and
    /// into Aggregated, under the bounds on rows and error messages.
    pub fn merge_entry(&mut self, method: Method, name: &str, entry: &Entry) {
        self.total.merge_counts(entry);
        let i = match self.index.get(name).map(|slots| slots[method as usize]) {
            Some(i) if i != NO_SLOT => i as usize,
            _ => self.new_row(method, name, entry.num_requests),
        };
        let mine = &mut self.rows[i].entry;
        mine.merge_counts(entry);
        for (message, stat) in entry.errors() {
            add_error(
                mine,
                message,
                *stat,
                &mut self.num_error_kinds,
                &mut self.folded_errors,
            );
        }
    }

    /// Moves the recorded data out, leaving `self` empty (a worker's per-interval delta).
    pub fn take(&mut self) -> Stats {
        std::mem::take(self)
    }

    /// Zeroes every number and forgets errors and exceptions, keeping the rows (as Locust's
    /// reset does, so the table keeps its shape).
    pub fn reset(&mut self) {
        for row in &mut self.rows {
            row.entry.reset();
        }
        self.total.reset();
        self.num_error_kinds = 0;
        self.exceptions.clear();
        self.folded_entries = 0;
        self.folded_errors = 0;
        self.abandoned = 0;
    }

    /// No request, no abandoned request and no exception recorded.
    pub fn is_empty(&self) -> bool {
        self.total.num_requests == 0 && self.exceptions.is_empty() && self.abandoned == 0
    }

    /// The Aggregated entry.
    pub fn total(&self) -> &Entry {
        &self.total
    }

    pub fn entry(&self, method: Method, name: &str) -> Option<&Entry> {
        let i = self.index.get(name)?[method as usize];
        (i != NO_SLOT).then(|| &self.rows[i as usize].entry)
    }

    /// Rows sorted by name, then method name (Locust's order).
    pub fn entries(&self) -> impl Iterator<Item = (Method, &str, &Entry)> {
        let mut rows: Vec<&Row> = self.rows.iter().collect();
        rows.sort_unstable_by(|a, b| {
            (&*a.name, a.method.as_str()).cmp(&(&*b.name, b.method.as_str()))
        });
        rows.into_iter().map(|r| (r.method, &*r.name, &r.entry))
    }

    /// Errors sorted by name, method, then message.
    pub fn errors(&self) -> impl Iterator<Item = ErrorRow<'_>> {
        self.entries().flat_map(|(method, name, entry)| {
            entry.errors().map(move |(error, stat)| ErrorRow {
                method,
                name,
                error,
                stat: *stat,
            })
        })
    }

    /// Exceptions sorted by message.
    pub fn exceptions(&self) -> impl Iterator<Item = (&str, &Exception)> {
        self.exceptions.iter().map(|(m, e)| (&**m, e))
    }

    /// Requests counted in [`OTHER_ENTRY`] because there were too many distinct rows; nonzero
    /// means the plan names requests by something unbounded (an id in the URL), worth a warning.
    pub fn folded_entries(&self) -> u64 {
        self.folded_entries
    }

    /// Failures counted as [`OTHER_ERRORS`] because there were too many distinct messages.
    pub fn folded_errors(&self) -> u64 {
        self.folded_errors
    }
}

/// Adds to an error of `entry`, or to its [`OTHER_ERRORS`] once `kinds` (over all rows) reached
/// [`MAX_ERRORS`].
fn add_error(
    entry: &mut Entry,
    message: &str,
    stat: ErrorStat,
    kinds: &mut usize,
    folded: &mut u64,
) {
    let message = if entry.has_error(message) {
        message
    } else if *kinds < MAX_ERRORS || message == OTHER_ERRORS {
        *kinds += 1;
        message
    } else {
        *folded += stat.occurrences;
        if !entry.has_error(OTHER_ERRORS) {
            *kinds += 1;
        }
        OTHER_ERRORS
    };
    entry.add_error(message, stat);
}

/// Equal when they hold the same rows, whatever order the rows were first seen in.
impl PartialEq for Stats {
    fn eq(&self, other: &Self) -> bool {
        self.total == other.total
            && self.rows.len() == other.rows.len()
            && self.entries().eq(other.entries())
            && self.exceptions == other.exceptions
            && self.folded_entries == other.folded_entries
            && self.folded_errors == other.folded_errors
            && self.abandoned == other.abandoned
    }
}

#[cfg(test)]
mod tests;
