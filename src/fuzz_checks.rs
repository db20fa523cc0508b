//! The properties the cargo-fuzz targets check (`fuzz/fuzz_targets/`), as plain functions of
//! the input's bytes, so that `tests/fuzz_corpus.rs` replays every corpus on stable with the
//! other tests. Each panics when its property fails; the property of all three: arbitrary
//! bytes are an error or a log with a cut tail, never a panic, and never an allocation sized
//! by a length nobody checked (the replay test and `-malloc_limit_mb` watch for those).
//!
//! Files live on a [`SimDisk`] in memory: no real I/O, so this builds under the simulator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message as _;
use raft::eraftpb::{Entry, EntryType, Snapshot};

use crate::codec::log::{decode_op, decode_result, encode_op};
use crate::fsm::Op;
use crate::node::entry::{decode_conf_change, decode_entry};
use crate::node::replicated::{LocalOp, Replicated};
use crate::node::version::STATE_MACHINE_VERSION;
use crate::storage::format::{ApplyOpResponse, OpType};
use crate::storage::names::{segment_name, snapshot_name, UNSYNCED_BATCHES_MARK};
use crate::storage::record::{self, RecordKind};
use crate::storage::{Disk, SimDisk, Wal, WalOptions};

/// The data directory on the in-memory disk.
const DIR: &str = "data";

/// The log's options: the default's, but a small preallocation, which every fuzz input that
/// opens would otherwise write a megabyte of zeros for.
fn options() -> WalOptions {
    WalOptions { preallocate_bytes: 4096, ..WalOptions::default() }
}

/// Separates the files of one log input: a marker no real log file is likely to hold.
pub const FILE_SEPARATOR: &[u8] = b"~coolbeans-fuzz-file~";

/// Files read from one log input at most: a snapshot and segments before and after it.
const FILES_MAX: usize = 4;

/// Flags of a log input's first byte: the data dir holds the mark of unsynced batches
/// (`-f MS`, `-F`), so damage in the last segment may be holes, not just a torn end.
pub const WAL_UNSYNCED_BATCHES: u8 = 1;
/// ...the files are records for the check to frame (see [`frame_records`]), so that the
/// fuzzer reaches past the checksums into what the records hold.
pub const WAL_FRAMED: u8 = 2;
/// ...the first file is a snapshot file, named for the index it claims.
pub const WAL_SNAPSHOT_FIRST: u8 = 4;

/// The log reader on one data dir: input byte 0 holds the `WAL_*` flags, the rest the files,
/// apart by [`FILE_SEPARATOR`]: the snapshot file first if flagged, then segments 1, 2...
/// Opening it is an error, or cuts at most the end of the last segment; opening it again finds
/// the same, and a batch appended after it is found next to it.
pub fn wal_reader(input: &[u8]) {
    let Some((&flags, rest)) = input.split_first() else { return };
    let framed = flags & WAL_FRAMED != 0;
    let mut files: Vec<Vec<u8>> = split(rest, FILE_SEPARATOR).take(FILES_MAX).map(|f| if framed { frame_records(f) } else { f.to_vec() }).collect();
    let disk = Arc::new(SimDisk::new());
    if flags & WAL_SNAPSHOT_FIRST != 0 {
        let snapshot = files.remove(0);
        write(&disk, &snapshot_name(claimed_index(&snapshot)), &snapshot);
    }
    let segments = files;
    for (at, segment) in segments.iter().enumerate() {
        write(&disk, &segment_name(at as u64 + 1), segment);
    }
    if flags & WAL_UNSYNCED_BATCHES != 0 {
        write(&disk, UNSYNCED_BATCHES_MARK, b"");
    }
    let Ok((mut wal, recovered)) = Wal::open(disk.clone(), DIR, options()) else { return };
    for (at, segment) in segments.iter().enumerate() {
        if let Some(left) = read(&disk, &segment_name(at as u64 + 1)) {
            assert!(segment.starts_with(&left), "segment {} was changed, not cut", at + 1);
        }
    }
    check_recovered(&recovered);
    let (_, again) = Wal::open(disk.clone(), DIR, options()).expect("a log opened once opens again");
    assert_eq!(again, recovered, "a second open found another log");
    // A log that ends at the last index a u64 holds takes no more.
    let Some(next) = next_entry(&recovered) else { return };
    wal.append(std::slice::from_ref(&next)).expect("append after the log found");
    wal.sync().expect("sync");
    drop(wal);
    let (_, after) = Wal::open(disk, DIR, options()).expect("a log appended to opens");
    assert_eq!(after.entries.last(), Some(&next), "the batch appended after recovery was lost");
    assert_eq!(after.entries[..after.entries.len() - 1], recovered.entries[..], "appending changed the log before it");
}

/// What recovery promises of the log it returns: its entries contiguous and ascending from
/// right after the snapshot, and a hard state that commits at least the snapshot.
fn check_recovered(recovered: &crate::storage::Recovered) {
    let snapshot = recovered.snapshot.as_ref().map(|s| s.get_metadata().clone()).unwrap_or_default();
    for pair in recovered.entries.windows(2) {
        assert_eq!(pair[1].index, pair[0].index.wrapping_add(1), "entries are not contiguous");
    }
    if let (Some(first), Some(_)) = (recovered.entries.first(), &recovered.snapshot) {
        assert_eq!(first.index, snapshot.index.wrapping_add(1), "the log does not start after the snapshot");
    }
    assert!(recovered.hard_state.commit >= snapshot.index, "the hard state commits less than the snapshot");
}

/// How a snapshot input's first byte (modulo 3) says to make the snapshot file of the rest:
/// the file itself...
pub const SNAPSHOT_FILE: u8 = 0;
/// ...the payload of its record, a raft `Snapshot`, framed by the check...
pub const SNAPSHOT_RECORD: u8 = 1;
/// ...or the snapshot's data, the replicated state, in a snapshot at index 1 framed by the
/// check: how the fuzzer reaches the restore of the state without the checksums in its way.
pub const SNAPSHOT_DATA: u8 = 2;

/// The snapshot reader: the snapshot file the input makes (see `SNAPSHOT_*`) is read by
/// opening its data dir, then the state it holds is restored. Either is an error, or the state
/// restored keeps its invariants, survives its own snapshot, and lets every timer fire.
pub fn snapshot_reader(input: &[u8]) {
    let Some((&mode, rest)) = input.split_first() else { return };
    let file = match mode % 3 {
        SNAPSHOT_FILE => rest.to_vec(),
        SNAPSHOT_RECORD => frame(RecordKind::Snapshot as u8, rest),
        _ => {
            let mut snapshot = Snapshot { data: rest.to_vec().into(), ..Snapshot::default() };
            snapshot.mut_metadata().index = 1;
            snapshot.mut_metadata().term = 1;
            let mut file = Vec::new();
            record::encode(RecordKind::Snapshot, &snapshot, &mut file).expect("a snapshot record");
            file
        }
    };
    let disk = Arc::new(SimDisk::new());
    let name = snapshot_name(claimed_index(&file));
    write(&disk, &name, &file);
    let Ok((_, recovered)) = Wal::open(disk.clone(), DIR, options()) else { return };
    let snapshot = recovered.snapshot.expect("a snapshot file read without error gives its snapshot");
    assert_eq!(read(&disk, &name).as_deref(), Some(&file[..]), "reading changed the snapshot file");
    if let Ok(mut state) = Replicated::restore_encoded(&snapshot.data, STATE_MACHINE_VERSION) {
        check_state(&mut state);
    }
}

/// The decoder of replicated operations: the input is a log entry's data, normal or of a
/// membership change. Its operations decode to what encodes back to them, and applying the entry (twice, the second time from
/// the caller's cached responses) is an error that changes nothing, or leaves a state that
/// keeps its invariants, survives its own snapshot, and lets every timer fire.
pub fn op_decoder(input: &[u8]) {
    let data = Bytes::copy_from_slice(input);
    if let Ok(batch) = decode_entry(&data) {
        for request in &batch.ops {
            let Ok(op_type) = OpType::try_from(request.op) else { continue };
            if let Ok(op) = decode_op(op_type, &request.body) {
                let (encoded_type, body) = encode_op(&op);
                assert_eq!(encoded_type, op_type, "{op:?} encodes as another type");
                assert_eq!(decode_op(op_type, &body).as_ref(), Ok(&op), "{op:?} does not round trip");
            }
            // The same bytes as a cached result, as a retried write reads one.
            if let Ok(response) = ApplyOpResponse::decode(&request.body[..]) {
                let _ = decode_result(op_type, &response);
            }
        }
    }
    // The same bytes as a conf-change entry's data, of either version.
    for entry_type in [EntryType::EntryConfChange, EntryType::EntryConfChangeV2] {
        let _ = decode_conf_change(entry_type, &data);
    }
    let mut state = Replicated::default();
    for index in 1..=2 {
        let before = state.digest();
        if state.apply_entry(index, &data).is_err() {
            assert_eq!(state.digest(), before, "an entry refused changed the state");
        }
    }
    state.fsm.check_invariants().expect("the state after applying an entry keeps its invariants");
    check_state(&mut state);
}

/// A state restored or applied to: its snapshot restores to it, and a tick at the latest
/// time a snapshot can hold fires every timer without breaking an invariant.
fn check_state(state: &mut Replicated) {
    let bytes = Bytes::from(state.snapshot().encode_to_vec());
    let again = Replicated::restore_encoded(&bytes, STATE_MACHINE_VERSION).expect("a state's own snapshot restores");
    assert_eq!(again.digest(), state.digest(), "a state's snapshot restores to another state");
    let index = u64::MAX;
    state.apply_local(index, i64::MAX as u64, vec![LocalOp { op: Op::Tick, caller: None }]);
    state.fsm.check_invariants().expect("every timer fired keeps the invariants");
}

/// Records from `bytes`, each as `kind (u8) | payload length (u32 LE) | payload`, framed with
/// checksums that match; a record cut short by the end of `bytes` keeps what is there.
pub fn frame_records(mut bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some((&kind, rest)) = bytes.split_first() {
        let (len, rest) = rest.split_at(rest.len().min(4));
        let mut word = [0; 4];
        word[..len.len()].copy_from_slice(len);
        let (payload, rest) = rest.split_at(rest.len().min(u32::from_le_bytes(word) as usize));
        out.extend_from_slice(&frame(kind, payload));
        bytes = rest;
    }
    out
}

/// The inverse of [`frame_records`] on a real segment, for seeding a corpus: its records
/// up to the first that does not decode (the preallocated zeros, in a real segment).
pub fn unframe_records(mut segment: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(record) = record::decode(segment) {
        out.push(record.kind as u8);
        out.extend_from_slice(&(record.payload.len() as u32).to_le_bytes());
        out.extend_from_slice(record.payload);
        segment = &segment[record.record_bytes..];
    }
    out
}

/// The payload of a snapshot file's record: the part a `SNAPSHOT_RECORD` input holds.
pub fn snapshot_record_payload(file: &[u8]) -> Option<&[u8]> {
    record::decode(file).ok().map(|record| record.payload)
}

/// One record of any kind byte holding `payload`, with checksums that match.
fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    record::encode_raw(kind, payload, &mut out).expect("a payload of a fuzz input fits a record");
    out
}

/// The index a snapshot file says it covers up to, so that it can be given the name that
/// says the same; 0 when it says none.
fn claimed_index(file: &[u8]) -> u64 {
    let Ok(record) = record::decode(file) else { return 0 };
    record::parse::<Snapshot>(&record).map_or(0, |snapshot| snapshot.get_metadata().index)
}

/// An entry that may follow the log `recovered` holds.
fn next_entry(recovered: &crate::storage::Recovered) -> Option<Entry> {
    let snapshot = recovered.snapshot.as_ref().map(|s| s.get_metadata().clone()).unwrap_or_default();
    let (index, term) = recovered.entries.last().map_or((snapshot.index, snapshot.term), |e| (e.index, e.term));
    let term = term.max(recovered.hard_state.term);
    Some(Entry { index: index.checked_add(1)?, term, data: b"next".to_vec().into(), ..Entry::default() })
}

/// The pieces of `bytes` between occurrences of `separator`.
fn split<'a>(bytes: &'a [u8], separator: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
    let mut rest = Some(bytes);
    std::iter::from_fn(move || {
        let bytes = rest?;
        match bytes.windows(separator.len()).position(|w| w == separator) {
            Some(at) => {
                rest = Some(&bytes[at + separator.len()..]);
                Some(&bytes[..at])
            }
            None => rest.take(),
        }
    })
}

fn write(disk: &SimDisk, name: &str, bytes: &[u8]) {
    disk.create_dir_all(std::path::Path::new(DIR)).expect("a dir on the disk in memory");
    disk.write_new(&std::path::Path::new(DIR).join(name), bytes).expect("a file on the disk in memory");
}

/// The file `name` of the data dir, if it is still there.
fn read(disk: &SimDisk, name: &str) -> Option<Vec<u8>> {
    disk.read(&std::path::Path::new(DIR).join(name)).ok()
}

/// The largest allocation an input may cause: what its own copies and the structures decoded
/// from it take, with room for the log's preallocation and for collections' rounding up. A
/// length read from the input and trusted asks for more.
pub fn allocation_bytes_max(input_bytes: usize) -> usize {
    (1 << 20) + 64 * input_bytes
}

/// Runs `check` on `input` and panics if it made an allocation above
/// [`allocation_bytes_max`]: what the fuzz targets and the corpus replay run, on a process
/// whose allocator is [`WatchingAllocator`].
pub fn within_allocation_bound(input: &[u8], check: fn(&[u8])) {
    reset_largest_allocation();
    check(input);
    let (largest, bound) = (largest_allocation_bytes(), allocation_bytes_max(input.len()));
    assert!(largest <= bound, "an allocation of {largest} bytes for an input of {} (bound {bound})", input.len());
}

/// The system allocator, noting the largest allocation each thread asks for since
/// [`reset_largest_allocation`]: how the corpus replay and unit tests show that damaged bytes
/// never get an allocation as large as a length in them claims.
pub struct WatchingAllocator;

thread_local! {
    static LARGEST_ALLOCATION_BYTES: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation(bytes: usize) {
    // Not during the thread's teardown, when its locals are gone.
    let _ = LARGEST_ALLOCATION_BYTES.try_with(|largest| largest.set(largest.get().max(bytes)));
}

pub fn reset_largest_allocation() {
    LARGEST_ALLOCATION_BYTES.with(|largest| largest.set(0));
}

/// The largest allocation this thread asked for since the last reset (0 unless the process
/// runs on [`WatchingAllocator`]).
pub fn largest_allocation_bytes() -> usize {
    LARGEST_ALLOCATION_BYTES.with(Cell::get)
}

// SAFETY: every call goes to the system allocator unchanged; noting a size allocates nothing.
unsafe impl GlobalAlloc for WatchingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation(new_size);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}
