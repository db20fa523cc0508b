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

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| coolbeans::fuzz_checks::snapshot_reader(input));
