//! Arbitrary bytes, cut into arbitrary reads, through the beanstalkd protocol decoder.
//!
//! The input's first byte picks the job body limit (small ones make JOB_TOO_BIG common), the
//! second how many cut points follow (2 bytes each); the rest is the stream. The check
//! asserts that the decoder never panics, never leaves more than `Decoder::buffered_bytes_max`
//! bytes buffered once it answers "need more" (under the line limit, or one job body plus its
//! `\r\n`), and decodes the stream cut into pieces exactly as in one piece.
//!
//! The same check runs on every `cargo test` as the proptests
//! `protocol::proptests::{any_stream_splits_alike, fuzz_inputs_keep_the_property}`.

#![no_main]

use coolbeans::fuzz_checks::{within_allocation_bound, WatchingAllocator};
use coolbeans::protocol::split_check::check_fuzz_input;
use libfuzzer_sys::fuzz_target;

// Each input's largest allocation is bounded by its size (`allocation_bytes_max`).
#[global_allocator]
static ALLOCATOR: WatchingAllocator = WatchingAllocator;

fuzz_target!(|input: &[u8]| within_allocation_bound(input, check_fuzz_input));
