//! The framing of every record in log segments and snapshot files:
//!
//! ```text
//! payload length (u32 LE) | crc32 of kind and payload (u32 LE) | kind (u8)
//!     | crc32 of the 9 bytes before it (u32 LE) | payload
//! ```
//!
//! The checksum covers the kind too, so a flipped kind byte cannot turn an entry into a hard
//! state. The header has its own checksum, so a damaged length is caught before it is trusted:
//! otherwise a length flipped to run past the end of the file would look like a torn write,
//! and recovery would cut away the synced records after it.

use bytes::Bytes;
use protobuf::Message;

use super::error::{Corruption, StorageError};
use crate::limits::RECORD_PAYLOAD_BYTES_MAX;

/// Length, checksum, kind and the header's own checksum.
pub(crate) const HEADER_BYTES: usize = 13;
/// Where the kind byte sits, and where the header checksum starts.
const KIND_AT: usize = 8;
const HEADER_CRC_AT: usize = 9;

const _: () = assert!(RECORD_PAYLOAD_BYTES_MAX as u64 <= u32::MAX as u64);
// A snapshot whose data a follower takes fits in the record of a snapshot file (the largest
// a leader can store is a little less: the record holds the snapshot's metadata too).
const _: () = assert!(crate::limits::SNAPSHOT_BYTES_MAX <= RECORD_PAYLOAD_BYTES_MAX as u64);
// A job body travels in one entry, with room to spare for the entry's other fields.
const _: () = assert!(crate::limits::JOB_BODY_BYTES_MAX_LIMIT * 2 <= RECORD_PAYLOAD_BYTES_MAX as usize);

/// What a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum RecordKind {
    /// A raft `Entry`, protobuf-encoded.
    Entry = 1,
    /// A raft `HardState`, protobuf-encoded.
    HardState = 2,
    /// The end of one `Wal::sync` batch (empty payload). Recovery applies only whole
    /// batches, so a crash never leaves a hard state without the entries it commits.
    BatchEnd = 3,
    /// A raft `Snapshot`, protobuf-encoded; the only record of a snapshot file.
    Snapshot = 4,
    /// The log restarts after a snapshot: a `SnapshotMetadata` with its index and term. It
    /// opens the fresh segment a snapshot starts, and replay forgets every entry before it,
    /// so the older segments stop mattering the moment it is durable, removed or not.
    LogStart = 5,
}

impl RecordKind {
    fn from_byte(byte: u8) -> Option<RecordKind> {
        match byte {
            1 => Some(RecordKind::Entry),
            2 => Some(RecordKind::HardState),
            3 => Some(RecordKind::BatchEnd),
            4 => Some(RecordKind::Snapshot),
            5 => Some(RecordKind::LogStart),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            RecordKind::Entry => "entry",
            RecordKind::HardState => "hard state",
            RecordKind::BatchEnd => "batch end",
            RecordKind::Snapshot => "snapshot",
            RecordKind::LogStart => "log start",
        }
    }
}

/// One decoded record, borrowing its payload from the file's bytes.
#[derive(Debug)]
pub(crate) struct Record<'a> {
    pub(crate) kind: RecordKind,
    pub(crate) payload: &'a [u8],
    /// The record's whole size, header included.
    pub(crate) record_bytes: usize,
}

/// Why the bytes at some offset are not a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The bytes end before the header or the payload does.
    Incomplete,
    /// The checksum does not match.
    ChecksumMismatch,
    /// The header's own checksum does not match: its length cannot be trusted.
    HeaderChecksumMismatch,
    /// The length is above `RECORD_PAYLOAD_BYTES_MAX`.
    LengthImpossible(u64),
    /// The checksum matches but the kind is not one this version writes.
    UnknownKind(u8),
}

impl FrameError {
    /// Whether a write cut short by a crash can explain this error, given the bytes from the
    /// bad record to the end of the file: a record cut where the file ends or where zeros
    /// begin that run to its end (space the log preallocated, or blocks the file system
    /// allocated but the crash left unwritten).
    pub(crate) fn may_be_torn(&self, rest: &[u8], record_bytes: Option<usize>) -> bool {
        let zeros_after = |at: usize| is_zeros(&rest[at.min(rest.len())..]);
        match self {
            FrameError::Incomplete => true,
            FrameError::ChecksumMismatch => zeros_after(0) || record_bytes.is_some_and(zeros_after),
            // Writes land as prefixes, so a bad header was the last thing written.
            FrameError::HeaderChecksumMismatch => zeros_after(HEADER_BYTES),
            FrameError::LengthImpossible(_) | FrameError::UnknownKind(_) => false,
        }
    }

    pub(crate) fn corruption(&self) -> Corruption {
        match self {
            FrameError::Incomplete => Corruption::Truncated,
            FrameError::ChecksumMismatch | FrameError::HeaderChecksumMismatch => Corruption::ChecksumMismatch,
            FrameError::LengthImpossible(payload_bytes) => Corruption::LengthImpossible { payload_bytes: *payload_bytes },
            FrameError::UnknownKind(kind) => Corruption::UnknownKind(*kind),
        }
    }
}

/// Whether every byte is zero: where a log's records end in space preallocated for them.
pub(crate) fn is_zeros(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// Appends one record holding `message` to `out`.
pub(crate) fn encode<M: Message>(kind: RecordKind, message: &M, out: &mut Vec<u8>) -> Result<(), StorageError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    out[start + KIND_AT] = kind as u8;
    if let Err(error) = message.write_to_vec(out) {
        out.truncate(start);
        return Err(StorageError::Encode(error));
    }
    seal(out, start)
}

/// Appends one record with an empty payload to `out`.
pub(crate) fn encode_empty(kind: RecordKind, out: &mut Vec<u8>) -> Result<(), StorageError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    out[start + KIND_AT] = kind as u8;
    seal(out, start)
}

/// Appends one record of any kind byte with a raw payload: tests and the fuzz checks frame
/// bytes no message encodes to with it.
pub(crate) fn encode_raw(kind: u8, payload: &[u8], out: &mut Vec<u8>) -> Result<(), StorageError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    out[start + KIND_AT] = kind;
    out.extend_from_slice(payload);
    seal(out, start)
}

/// Fills in the length and checksum of the record that starts at `start` and runs to the end
/// of `out`, whose kind byte is already set.
fn seal(out: &mut Vec<u8>, start: usize) -> Result<(), StorageError> {
    let payload_bytes = out.len() - start - HEADER_BYTES;
    let Some(len) = u32::try_from(payload_bytes).ok().filter(|&len| len <= RECORD_PAYLOAD_BYTES_MAX) else {
        out.truncate(start);
        return Err(StorageError::RecordTooLarge { payload_bytes });
    };
    let mut crc = crc32fast::Hasher::new();
    crc.update(&out[start + KIND_AT..start + KIND_AT + 1]);
    crc.update(&out[start + HEADER_BYTES..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.finalize().to_le_bytes());
    let header_crc = crc32fast::hash(&out[start..start + HEADER_CRC_AT]);
    out[start + HEADER_CRC_AT..start + HEADER_BYTES].copy_from_slice(&header_crc.to_le_bytes());
    Ok(())
}

/// The record at the start of `bytes`, or why there is none. On error, also the size the
/// record claims, when its header is whole and its length possible.
pub(crate) fn decode(bytes: &[u8]) -> Result<Record<'_>, (FrameError, Option<usize>)> {
    if bytes.len() < HEADER_BYTES {
        return Err((FrameError::Incomplete, None));
    }
    let word = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    if crc32fast::hash(&bytes[..HEADER_CRC_AT]) != word(HEADER_CRC_AT) {
        return Err((FrameError::HeaderChecksumMismatch, None));
    }
    let (len, crc) = (word(0), word(4));
    if len > RECORD_PAYLOAD_BYTES_MAX {
        return Err((FrameError::LengthImpossible(u64::from(len)), None));
    }
    let record_bytes = HEADER_BYTES + len as usize;
    if bytes.len() < record_bytes {
        return Err((FrameError::Incomplete, Some(record_bytes)));
    }
    let mut actual = crc32fast::Hasher::new();
    actual.update(&bytes[KIND_AT..KIND_AT + 1]);
    actual.update(&bytes[HEADER_BYTES..record_bytes]);
    if actual.finalize() != crc {
        return Err((FrameError::ChecksumMismatch, Some(record_bytes)));
    }
    let kind = bytes[KIND_AT];
    let kind = RecordKind::from_byte(kind).ok_or((FrameError::UnknownKind(kind), Some(record_bytes)))?;
    Ok(Record { kind, payload: &bytes[HEADER_BYTES..record_bytes], record_bytes })
}

/// Decodes a record's payload as the protobuf message its kind names (see `parse_message`).
pub(crate) fn parse<M: Message>(record: &Record<'_>) -> Result<M, Corruption> {
    parse_message(&Bytes::copy_from_slice(record.payload))
        .map_err(|error| Corruption::Undecodable { kind: record.kind.name(), error: error.to_string() })
}

/// Decodes a raft message (protobuf 2) with every length in it checked against the bytes
/// there before anything is allocated for it. protobuf 2 checks a length against its current
/// limit only, none at the top, so it reserved what a bytes or unknown field claimed (up to
/// 10 MB) before finding the bytes were not there; the limit is the input's size here. From
/// `Bytes`, so that bytes fields share the input rather than copy it.
pub(crate) fn parse_message<M: Message>(bytes: &Bytes) -> protobuf::ProtobufResult<M> {
    let mut input = protobuf::CodedInputStream::from_carllerche_bytes(bytes);
    input.push_limit(bytes.len() as u64)?;
    let message = M::parse_from(&mut input)?;
    input.check_eof()?;
    Ok(message)
}

#[cfg(test)]
mod tests {
    use raft::eraftpb::Entry;

    use super::*;

    fn entry(index: u64, data: &[u8]) -> Entry {
        Entry { index, term: 2, data: data.to_vec().into(), ..Entry::default() }
    }

    // A record decodes back to the same kind and message, and knows its own size.
    #[test]
    fn record_round_trips() {
        let mut out = Vec::new();
        encode(RecordKind::Entry, &entry(5, b"body"), &mut out).expect("encode");
        encode_empty(RecordKind::BatchEnd, &mut out).expect("encode");
        let first = decode(&out).expect("first record");
        assert_eq!(first.kind, RecordKind::Entry);
        assert_eq!(parse::<Entry>(&first).expect("parse"), entry(5, b"body"));
        let second = decode(&out[first.record_bytes..]).expect("second record");
        assert_eq!((second.kind, second.record_bytes), (RecordKind::BatchEnd, HEADER_BYTES));
    }

    // Every prefix of a record is incomplete, and a flipped bit anywhere is refused: in the
    // header (length included) by the header checksum, in the payload by the record's.
    #[test]
    fn cut_and_flipped_records_are_refused() {
        let mut out = Vec::new();
        encode(RecordKind::HardState, &entry(1, b"xyz"), &mut out).expect("encode");
        for cut in 0..out.len() {
            assert_eq!(decode(&out[..cut]).map(|_| ()).map_err(|e| e.0), Err(FrameError::Incomplete));
        }
        for at in 0..out.len() {
            let mut flipped = out.clone();
            flipped[at] ^= 0x10;
            let want = if at < HEADER_BYTES {
                FrameError::HeaderChecksumMismatch
            } else {
                FrameError::ChecksumMismatch
            };
            assert_eq!(decode(&flipped).map(|_| ()).map_err(|e| e.0), Err(want), "flipped byte {at}");
        }
    }

    // A length flipped to run past the end of the file is caught by the header checksum, not
    // taken for a torn write: synced records after it cannot be cut away silently.
    #[test]
    fn damaged_length_is_not_a_torn_write() {
        let mut out = Vec::new();
        encode(RecordKind::Entry, &entry(1, b"abc"), &mut out).expect("encode");
        out[2] ^= 0x01;
        let (error, size) = decode(&out).map(|_| ()).expect_err("damaged");
        assert_eq!(error, FrameError::HeaderChecksumMismatch);
        assert!(!error.may_be_torn(&out, size));
    }

    // A record cut short and followed by zeros (the rest of a preallocated segment) may be
    // torn, header or payload; followed by anything else it is damage.
    #[test]
    fn cut_record_before_zeros_may_be_torn() {
        let mut whole = Vec::new();
        encode(RecordKind::Entry, &entry(1, b"payload"), &mut whole).expect("encode");
        for cut in 1..whole.len() {
            let mut bytes = whole[..cut].to_vec();
            bytes.resize(whole.len() + 64, 0);
            let (error, size) = decode(&bytes).map(|_| ()).expect_err("cut");
            assert!(error.may_be_torn(&bytes, size), "cut at {cut}: {error:?}");
            let last = bytes.len() - 1;
            bytes[last] = 1;
            assert!(!error.may_be_torn(&bytes, size), "cut at {cut}, then data: {error:?}");
        }
    }

    // A payload whose field claims more than follows is refused without an allocation of what
    // it claims: 8 MB claimed in 5 bytes, by a bytes field, an unknown field, and one inside a
    // nested message (the corpus replay's allocation watch caught the first two).
    #[test]
    fn a_field_longer_than_its_payload_allocates_nothing_like_it() {
        let claims_8_mib = [0x80, 0x80, 0x80, 0x04];
        // Entry.data; field 15, unknown; Snapshot.metadata, its length right, holding field 15.
        let payloads = [
            (RecordKind::Entry, [&[0x22][..], &claims_8_mib].concat()),
            (RecordKind::Entry, [&[0x7a][..], &claims_8_mib].concat()),
            (RecordKind::Snapshot, [&[0x12, 5, 0x7a][..], &claims_8_mib].concat()),
        ];
        for (kind, payload) in payloads {
            let mut bytes = Vec::new();
            encode_raw(kind as u8, &payload, &mut bytes).expect("encode");
            let record = decode(&bytes).expect("a whole record");
            crate::fuzz_checks::reset_largest_allocation();
            let parsed = match kind {
                RecordKind::Entry => parse::<Entry>(&record).map(|_| ()),
                _ => parse::<raft::eraftpb::Snapshot>(&record).map(|_| ()),
            };
            assert!(parsed.is_err(), "{payload:x?} parsed");
            let largest = crate::fuzz_checks::largest_allocation_bytes();
            assert!(largest < 4096, "an allocation of {largest} bytes for {payload:x?}");
        }
    }

    // A length above the limit is refused as impossible without reading past it.
    #[test]
    fn impossible_length_is_refused() {
        let mut bytes = vec![0xFF; HEADER_BYTES];
        bytes[KIND_AT] = RecordKind::Entry as u8;
        let header_crc = crc32fast::hash(&bytes[..HEADER_CRC_AT]);
        bytes[HEADER_CRC_AT..].copy_from_slice(&header_crc.to_le_bytes());
        let error = decode(&bytes).map(|_| ()).map_err(|e| e.0);
        assert_eq!(error, Err(FrameError::LengthImpossible(u64::from(u32::MAX))));
    }
}
