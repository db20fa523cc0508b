//! The decoder's promises as one property, shared by the cargo-fuzz target
//! (`fuzz/fuzz_targets/protocol_decoder.rs`) and a proptest that runs with the other tests:
//! it never panics, it never leaves more than `buffered_bytes_max` bytes buffered, and how
//! the bytes were cut into reads changes nothing.

use bytes::BytesMut;

use crate::limits::JOB_BODY_BYTES_MAX_DEFAULT;

use super::decoder::{Decoded, Decoder};

/// The most cut points a fuzz input asks for: enough to split a command many ways.
pub const FUZZ_CUTS_MAX: usize = 63;

/// Bytes per cut point in a fuzz input (a little-endian u16).
const FUZZ_CUT_BYTES: usize = 2;

/// What a decoder made of a stream: everything decoded, then what it left in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub decoded: Vec<Decoded>,
    pub leftover: Vec<u8>,
}

/// Feeds `pieces` one after another to a fresh decoder, decoding until `None` after each, and
/// panics if the buffer ever holds more than the decoder's bound once it has said `None`.
pub fn decode_pieces<'a>(job_body_bytes_max: usize, pieces: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut decoder = Decoder::new(job_body_bytes_max);
    let bound_bytes = decoder.buffered_bytes_max();
    let mut buf = BytesMut::new();
    let mut decoded = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        while let Some(one) = decoder.decode(&mut buf) {
            decoded.push(one);
        }
        assert!(buf.len() <= bound_bytes, "{} bytes buffered, bound {bound_bytes}", buf.len());
    }
    Outcome { decoded, leftover: buf.to_vec() }
}

/// `stream` cut at `cuts` (positions into it, any order, out of range ones clamped).
pub fn pieces_at<'a>(stream: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|&cut| cut.min(stream.len())).collect();
    cuts.sort_unstable();
    let starts = std::iter::once(0).chain(cuts.iter().copied());
    let ends = cuts.iter().copied().chain(std::iter::once(stream.len()));
    starts.zip(ends).map(|(start, end)| &stream[start..end]).collect()
}

/// `stream` decoded in one piece and cut at `cuts` must give the same outcome.
pub fn check_split_decoding(stream: &[u8], cuts: &[usize], job_body_bytes_max: usize) {
    let whole = decode_pieces(job_body_bytes_max, [stream]);
    let split = decode_pieces(job_body_bytes_max, pieces_at(stream, cuts));
    assert_eq!(whole, split, "cut at {cuts:?}");
}

/// The property with everything drawn from one fuzz input: byte 0 picks the job body limit
/// (255: the default, else that many bytes, so small limits make `JOB_TOO_BIG` common),
/// byte 1 how many cuts (modulo `FUZZ_CUTS_MAX + 1`), then 2 bytes per cut; the rest is the
/// stream.
pub fn check_fuzz_input(input: &[u8]) {
    let (&limit_byte, rest) = input.split_first().unwrap_or((&u8::MAX, &[]));
    let (&cuts_byte, rest) = rest.split_first().unwrap_or((&0, &[]));
    let job_body_bytes_max = match limit_byte {
        u8::MAX => JOB_BODY_BYTES_MAX_DEFAULT,
        bytes => usize::from(bytes),
    };
    let cut_count = usize::from(cuts_byte) % (FUZZ_CUTS_MAX + 1);
    let cut_bytes = (cut_count * FUZZ_CUT_BYTES).min(rest.len());
    let (cut_input, stream) = rest.split_at(cut_bytes);
    let cuts: Vec<usize> =
        cut_input.chunks_exact(FUZZ_CUT_BYTES).map(|pair| usize::from(u16::from_le_bytes([pair[0], pair[1]])) % (stream.len() + 1)).collect();
    check_split_decoding(stream, &cuts, job_body_bytes_max);
}
