//! Arbitrary bytes as a data dir's log (and snapshot) files, opened by the write-ahead log.
//!
//! Byte 0 holds flags (`coolbeans::fuzz_checks::WAL_*`): the mark of unsynced batches, records
//! to be framed by the check (past the checksums), a snapshot file first; the rest is the
//! files, apart by `FILE_SEPARATOR`. Opening is an error or cuts the last segment's end only,
//! a second open finds the same, and an append after it is kept: `fuzz_checks::wal_reader`,
//! which `tests/fuzz_corpus.rs` replays this target's corpus through on every `make test`.

#![no_main]

use coolbeans::fuzz_checks::{wal_reader, within_allocation_bound, WatchingAllocator};
use libfuzzer_sys::fuzz_target;

// Each input's largest allocation is bounded by its size (`allocation_bytes_max`).
#[global_allocator]
static ALLOCATOR: WatchingAllocator = WatchingAllocator;

fuzz_target!(|input: &[u8]| within_allocation_bound(input, wal_reader));
