//! Where users record their requests: one stats shard per runtime thread, so recording takes an
//! uncontended lock, and the reporter sweeps the shards once a second.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use hatchery_core::stats::{Sample, Stats};
use hatchery_core::Method;

#[derive(Debug)]
pub struct Recorder {
    shards: Box<[Mutex<Stats>]>,
    node: String,
}

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed);
}

impl Recorder {
    pub fn new(shards: usize, node: String) -> Recorder {
        Recorder {
            shards: (0..shards.max(1)).map(|_| Mutex::default()).collect(),
            node,
        }
    }

    fn shard(&self) -> std::sync::MutexGuard<'_, Stats> {
        let i = SHARD.with(|s| *s) % self.shards.len();
        // A panic while holding the lock leaves plain counters behind; they are still valid.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn record(&self, method: Method, name: &str, sample: Sample<'_>) {
        self.shard().record(method, name, sample);
    }

    /// `n` requests were abandoned in flight by a user stopped without waiting.
    pub fn abandon(&self, n: u64) {
        self.shard().abandon(n);
    }

    pub fn exception(&self, message: &str) {
        self.shard().record_exception(message, &self.node);
    }

    /// Everything recorded since the last call.
    pub fn take(&self) -> Stats {
        let mut out = Stats::new();
        for s in self.shards.iter() {
            let delta = s.lock().unwrap_or_else(|e| e.into_inner()).take();
            out.merge(&delta);
        }
        out
    }
}
