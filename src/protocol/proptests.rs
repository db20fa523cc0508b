//! Property tests of the decoder: random valid commands survive encoding and any cutting into
//! reads, and any bytes at all keep the decoder's promises (the fuzz target's property).

use bytes::Bytes;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::strategy::Union;

use crate::limits::JOB_BODY_BYTES_MAX_DEFAULT;

use super::split_check::{check_fuzz_input, check_split_decoding, decode_pieces, pieces_at};
use super::{Command, Decoded, RESERVE_TIMEOUT_SECS_MAX};

/// Cases per property, or PROPTEST_CASES when set. No regression files in the source tree: a
/// failure prints its input, which is what a unit test is written from.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

// ---- generators ----

fn tube_name() -> impl Strategy<Value = String> {
    prop_oneof![select(vec!["default", "a", "b-c", "(x)$_;./+"]).prop_map(str::to_owned), "[A-Za-z0-9+/;.$_()][A-Za-z0-9+/;.$_()-]{0,199}",]
}

/// Bodies with plenty of `\r` and `\n`, so a body that looks like lines is common.
fn body() -> impl Strategy<Value = Bytes> {
    let byte = prop_oneof![4 => any::<u8>(), 1 => Just(b'\r'), 1 => Just(b'\n')];
    prop::collection::vec(byte, 0..300).prop_map(Bytes::from)
}

fn command() -> impl Strategy<Value = Command> {
    let id = any::<u64>;
    let arms: Vec<BoxedStrategy<Command>> = vec![
        (any::<u32>(), any::<u32>(), any::<u32>(), body())
            .prop_map(|(pri, delay_secs, ttr_secs, body)| Command::Put { pri, delay_secs, ttr_secs, body })
            .boxed(),
        tube_name().prop_map(|tube| Command::Use { tube }).boxed(),
        Just(Command::Reserve).boxed(),
        (0..=RESERVE_TIMEOUT_SECS_MAX).prop_map(|timeout_secs| Command::ReserveWithTimeout { timeout_secs }).boxed(),
        id().prop_map(|id| Command::ReserveJob { id }).boxed(),
        id().prop_map(|id| Command::Delete { id }).boxed(),
        (id(), any::<u32>(), any::<u32>()).prop_map(|(id, pri, delay_secs)| Command::Release { id, pri, delay_secs }).boxed(),
        (id(), any::<u32>()).prop_map(|(id, pri)| Command::Bury { id, pri }).boxed(),
        id().prop_map(|id| Command::Touch { id }).boxed(),
        tube_name().prop_map(|tube| Command::Watch { tube }).boxed(),
        tube_name().prop_map(|tube| Command::Ignore { tube }).boxed(),
        id().prop_map(|id| Command::Peek { id }).boxed(),
        Just(Command::PeekReady).boxed(),
        Just(Command::PeekDelayed).boxed(),
        Just(Command::PeekBuried).boxed(),
        any::<u32>().prop_map(|bound| Command::Kick { bound }).boxed(),
        id().prop_map(|id| Command::KickJob { id }).boxed(),
        id().prop_map(|id| Command::StatsJob { id }).boxed(),
        tube_name().prop_map(|tube| Command::StatsTube { tube }).boxed(),
        Just(Command::Stats).boxed(),
        Just(Command::ListTubes).boxed(),
        Just(Command::ListTubeUsed).boxed(),
        Just(Command::ListTubesWatched).boxed(),
        (tube_name(), any::<u32>()).prop_map(|(tube, delay_secs)| Command::PauseTube { tube, delay_secs }).boxed(),
        Just(Command::Quit).boxed(),
    ];
    Union::new(arms)
}

/// Pieces of protocol and of its edge cases, so random streams reach every decoder state.
fn fragment() -> impl Strategy<Value = Vec<u8>> {
    let words: Vec<&'static [u8]> = vec![
        b"put 0 0 1 3\r\n",
        b"put 1 2 3 0\r\n",
        b"put 0 0 1 70000\r\n",
        b"put 0 0 1 4294967295\r\n",
        b"abc",
        b"\r\n",
        b"\r",
        b"\n",
        b"\0",
        b" ",
        b"stats",
        b"reserve",
        b"use foo",
        b"kick -1",
        b"pause-tube ",
        b"4294967296",
        b"peek 1",
        b"quit",
    ];
    prop_oneof![
        6 => select(words).prop_map(<[u8]>::to_vec),
        1 => prop::collection::vec(any::<u8>(), 0..40),
        1 => (1..700usize).prop_map(|n| vec![b'x'; n]),
    ]
}

fn stream() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(fragment(), 0..40).prop_map(|fragments| fragments.concat())
}

/// Up to a dozen cut points, each an index into whatever is cut.
fn cuts() -> impl Strategy<Value = Vec<Index>> {
    prop::collection::vec(any::<Index>(), 0..12)
}

fn job_body_bytes_max() -> impl Strategy<Value = usize> {
    select(vec![0, 3, 5, 64, JOB_BODY_BYTES_MAX_DEFAULT])
}

// ---- properties ----

proptest! {
    #![proptest_config(config())]

    /// Random valid commands, encoded back to back and cut into reads at random points,
    /// decode to the same commands in the same order with nothing left over.
    #[test]
    fn commands_round_trip(commands in prop::collection::vec(command(), 1..20), cuts in cuts()) {
        let wire: Vec<u8> = commands.iter().flat_map(Command::to_wire).collect();
        let cuts: Vec<usize> = cuts.iter().map(|cut| cut.index(wire.len() + 1)).collect();
        let outcome = decode_pieces(JOB_BODY_BYTES_MAX_DEFAULT, pieces_at(&wire, &cuts));
        let expected: Vec<Decoded> = commands.into_iter().map(Decoded::Command).collect();
        prop_assert_eq!(outcome.decoded, expected);
        prop_assert!(outcome.leftover.is_empty());
    }

    /// Protocol-like streams, cut anywhere, never panic the decoder, stay within its buffer
    /// bound, and decode as they do in one piece (the fuzz target's property).
    #[test]
    fn any_stream_splits_alike(stream in stream(), cuts in cuts(), limit in job_body_bytes_max()) {
        let cuts: Vec<usize> = cuts.iter().map(|cut| cut.index(stream.len() + 1)).collect();
        check_split_decoding(&stream, &cuts, limit);
    }

    /// Raw fuzz inputs, read exactly as the cargo-fuzz target reads them, keep the property.
    #[test]
    fn fuzz_inputs_keep_the_property(input in prop::collection::vec(any::<u8>(), 0..2000)) {
        check_fuzz_input(&input);
    }
}
