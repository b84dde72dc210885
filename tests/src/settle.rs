//! Waiting for a [`Target`] to finish counting: once the client process is gone, each of its
//! connections still has to be read to its end by the target, which counts every request head
//! it gets. Tests that compare the target's count with a report to the request wait for that.

use std::sync::Arc;
use std::time::Duration;

use crate::{eventually, Target};

impl Target {
    /// Every request received, once no connection to the target is open any more (call it
    /// after the clients exited): each connection's task holds a clone of the counts, so when
    /// only the target and its accept loop hold them, every connection was read to its end and
    /// every request on it counted.
    pub async fn total_when_idle(&self, limit: Duration) -> u64 {
        eventually("the target closed every connection", limit, || async {
            (Arc::strong_count(&self.counts) <= 2).then_some(())
        })
        .await;
        self.total()
    }
}
