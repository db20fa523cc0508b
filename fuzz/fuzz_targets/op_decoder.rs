//! Arbitrary bytes as a log entry's data: the batch of replicated operations decoded, each
//! operation decoded and encoded back, and the entry applied to a fresh state twice (the
//! second time answered from the response cache). An error changes nothing; a state applied
//! to keeps its invariants: `coolbeans::fuzz_checks::op_decoder`, which `tests/fuzz_corpus.rs`
//! replays this target's corpus through on every `make test`.

#![no_main]

use coolbeans::fuzz_checks::{op_decoder, within_allocation_bound, WatchingAllocator};
use libfuzzer_sys::fuzz_target;

// Each input's largest allocation is bounded by its size (`allocation_bytes_max`).
#[global_allocator]
static ALLOCATOR: WatchingAllocator = WatchingAllocator;

fuzz_target!(|input: &[u8]| within_allocation_bound(input, op_decoder));
