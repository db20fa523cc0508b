//! The counts of a caller's calls to the cluster over gRPC: calls by kind, their retries, and
//! the write streams it opened. A proxy registers them among its own metrics
//! (`proxy::ProxyMetrics`); a job client keeps none.

use crate::metrics::Counter;

/// What a caller sends to the cluster over gRPC.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Call {
    Write = 0,
    Read = 1,
}

/// The counters of one caller's calls.
#[derive(Debug)]
pub struct ClientMetrics {
    /// Writes and reads sent to the cluster, by `Call` (each once, however often retried).
    pub(crate) forwarded: [Counter; 2],
    pub(crate) retries: Counter,
    /// Write streams opened to nodes (again after each break).
    pub(crate) streams_opened: Counter,
}

impl ClientMetrics {
    pub(crate) fn forwarded(&self, call: Call) {
        self.forwarded[call as usize].inc();
    }

    pub(crate) fn retried(&self) {
        self.retries.inc();
    }

    /// The counter of write streams opened, for each node's forwarder.
    pub(crate) fn streams_opened(&self) -> Counter {
        self.streams_opened.clone()
    }
}
