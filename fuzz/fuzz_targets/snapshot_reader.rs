//! Arbitrary bytes as a snapshot file, read by opening its data dir, and the state it holds
//! restored.
//!
//! Byte 0 (modulo 3) says what the rest is (`coolbeans::fuzz_checks::SNAPSHOT_*`): the file, its
//! record's payload, or the snapshot's data, the last two framed by the check so that the
//! fuzzer reaches past the checksum. Either is an error, or the state restored keeps its
//! invariants, round-trips through its own snapshot, and lets every timer fire:
//! `fuzz_checks::snapshot_reader`, which `tests/fuzz_corpus.rs` replays this target's corpus
//! through on every `make test`.

#![no_main]

use coolbeans::fuzz_checks::{snapshot_reader, within_allocation_bound, WatchingAllocator};
use libfuzzer_sys::fuzz_target;

// Each input's largest allocation is bounded by its size (`allocation_bytes_max`).
#[global_allocator]
static ALLOCATOR: WatchingAllocator = WatchingAllocator;

fuzz_target!(|input: &[u8]| within_allocation_bound(input, snapshot_reader));
