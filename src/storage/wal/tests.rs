//! Scenario tests of the write-ahead log on both disks: round trips, crashes, torn writes,
//! corruption, group commit and snapshots.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use raft::eraftpb::{Entry, HardState, Snapshot};

use super::{Recovered, Wal, WalOptions};
use crate::storage::disk::{Disk, RealDisk, SimDisk};
use crate::storage::error::StorageError;
use crate::storage::names::{segment_name, snapshot_name, temp_name};
use crate::storage::record::{self, RecordKind, HEADER_BYTES};

const DIR: &str = "data";

fn entry(index: u64, term: u64) -> Entry {
    let data = format!("job {index} of term {term}").into_bytes().into();
    Entry { index, term, data, ..Entry::default() }
}

fn entries(indexes: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    indexes.map(|index| entry(index, term)).collect()
}

fn hard_state(term: u64, vote: u64, commit: u64) -> HardState {
    HardState { term, vote, commit, ..HardState::default() }
}

fn snapshot(index: u64, term: u64) -> Snapshot {
    let mut snapshot = Snapshot { data: format!("state at {index}").into_bytes().into(), ..Snapshot::default() };
    let metadata = snapshot.mut_metadata();
    metadata.index = index;
    metadata.term = term;
    metadata.mut_conf_state().voters = vec![1, 2, 3];
    snapshot
}

fn small_segments() -> WalOptions {
    WalOptions { segment_bytes_max: 128, preallocate_bytes: 64 }
}

fn open(disk: &Arc<dyn Disk>, options: WalOptions) -> (Wal, Recovered) {
    match Wal::open(disk.clone(), DIR, options) {
        Ok(opened) => opened,
        Err(error) => panic!("open failed: {error}"),
    }
}

fn open_error(disk: &Arc<dyn Disk>) -> String {
    match Wal::open(disk.clone(), DIR, WalOptions::default()) {
        Ok(_) => panic!("open succeeded on damaged data"),
        Err(error) => error.to_string(),
    }
}

fn path(name: &str) -> PathBuf {
    Path::new(DIR).join(name)
}

fn recovered(hard_state: HardState, entries: Vec<Entry>, snapshot: Option<Snapshot>) -> Recovered {
    Recovered { hard_state, entries, snapshot }
}

/// A directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("coolbeans-{test}-{}-{unique}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Appends over several syncs, with conflicting overwrites and segment rolls, reopening in
/// between; returns what the last sync made durable, for the caller to compare.
fn write_history(disk: &Arc<dyn Disk>) -> Recovered {
    let (mut wal, first) = open(disk, small_segments());
    assert_eq!(first, Recovered::default());
    wal.append(&entries(1..=5, 1)).expect("append");
    wal.set_hard_state(&hard_state(1, 1, 3));
    wal.sync().expect("sync");
    wal.append(&entries(4..=8, 2)).expect("append");
    wal.set_hard_state(&hard_state(2, 2, 5));
    wal.sync().expect("sync");
    drop(wal);
    let (mut wal, reopened) = open(disk, small_segments());
    let mut expected = entries(1..=3, 1);
    expected.extend(entries(4..=8, 2));
    assert_eq!(reopened, recovered(hard_state(2, 2, 5), expected.clone(), None));
    wal.append(&entries(7..=9, 3)).expect("append");
    wal.append(&entries(9..=10, 4)).expect("append");
    wal.set_hard_state(&hard_state(4, 3, 7));
    wal.sync().expect("sync");
    wal.append(&entries(11..=12, 4)).expect("append, never synced");
    expected.truncate(6);
    expected.extend(entries(7..=8, 3));
    expected.extend(entries(9..=10, 4));
    recovered(hard_state(4, 3, 7), expected, None)
}

// Synced appends, hard states and conflicting overwrites come back exactly on SimDisk,
// across several segments, and the unsynced tail does not.
#[test]
fn round_trip_on_sim_disk() {
    let disk: Arc<dyn Disk> = Arc::new(SimDisk::new());
    let expected = write_history(&disk);
    let (wal, reopened) = open(&disk, small_segments());
    assert_eq!(reopened, expected);
    assert_eq!((wal.first_index(), wal.last_index()), (1, 10));
    let names = disk.list(Path::new(DIR)).expect("list");
    assert!(names.len() > 2, "small segments should roll: {names:?}");
}

// The same history comes back exactly on the real file system, in a fresh temporary dir.
#[test]
fn round_trip_on_real_disk() {
    let temp = TempDir::new("wal-round-trip");
    let disk: Arc<dyn Disk> = Arc::new(RealDisk::new(&temp.0));
    let expected = write_history(&disk);
    let (_, reopened) = open(&disk, small_segments());
    assert_eq!(reopened, expected);
}

// A batch whose fsync failed is lost in a crash and the synced one before it survives; the
// log refuses work after the failure until reopened. Shown by failing the fsync on SimDisk.
#[test]
fn crash_loses_unsynced_batch_keeps_synced() {
    let sim = SimDisk::new();
    let disk: Arc<dyn Disk> = Arc::new(sim.clone());
    let (mut wal, _) = open(&disk, WalOptions::default());
    wal.append(&entries(1..=3, 1)).expect("append");
    wal.set_hard_state(&hard_state(1, 1, 2));
    wal.sync().expect("sync");
    wal.append(&entries(4..=6, 1)).expect("append");
    wal.set_hard_state(&hard_state(1, 1, 5));
    sim.fail_after(Some(1));
    assert!(matches!(wal.sync(), Err(StorageError::Io { .. })));
    assert!(matches!(wal.append(&entries(7..=7, 1)), Err(StorageError::Poisoned)));
    assert!(matches!(wal.sync(), Err(StorageError::Poisoned)));
    sim.crash(None);
    let (_, reopened) = open(&disk, WalOptions::default());
    assert_eq!(reopened, recovered(hard_state(1, 1, 2), entries(1..=3, 1), None));
}

/// The size of the records in the segment batches go to.
fn records_bytes(wal: &Wal) -> u64 {
    wal.segment.as_ref().map_or(0, |segment| segment.size_bytes)
}

// A torn last write is cut away on reopen whatever prefix of it survived (all but the whole
// batch recover the synced state), and the log then takes new batches: shown for every
// tear length of one batch, appending, syncing and reopening after each; in a segment that
// grows by each batch, by chunks the batch fits in, and by chunks smaller than a batch.
#[test]
fn torn_write_is_cut_and_log_stays_usable() {
    let before = recovered(hard_state(1, 1, 2), entries(1..=2, 1), None);
    let mut after = entries(1..=2, 1);
    after.extend(entries(3..=4, 2));
    let after = recovered(hard_state(2, 1, 3), after, None);
    for preallocate_bytes in [0, 10, 4096] {
        let options = WalOptions { preallocate_bytes, ..WalOptions::default() };
        let mut tear = 0;
        loop {
            let sim = SimDisk::new();
            let disk: Arc<dyn Disk> = Arc::new(sim.clone());
            let (mut wal, _) = open(&disk, options.clone());
            wal.append(&before.entries).expect("append");
            wal.set_hard_state(&before.hard_state);
            wal.sync().expect("sync");
            let synced_bytes = records_bytes(&wal);
            wal.append(&after.entries[2..]).expect("append");
            wal.set_hard_state(&after.hard_state);
            sim.fail_after(Some(1));
            assert!(wal.sync().is_err());
            sim.fail_after(None);
            let batch_bytes = records_bytes(&wal) - synced_bytes;
            sim.crash(Some(tear));
            let (mut wal, reopened) = open(&disk, options.clone());
            let whole = tear == batch_bytes;
            let case = format!("tear {tear} with {preallocate_bytes} bytes preallocated");
            assert_eq!(reopened, if whole { after.clone() } else { before.clone() }, "{case}");
            let kept_bytes = disk.read(&path(&segment_name(1))).expect("read").len() as u64;
            assert_eq!(kept_bytes, if whole { synced_bytes + batch_bytes } else { synced_bytes }, "{case}");
            let next = wal.last_index() + 1;
            wal.append(&[entry(next, 5)]).expect("append after recovery");
            wal.sync().expect("sync after recovery");
            let (_, again) = open(&disk, options.clone());
            assert_eq!(again.entries.last(), Some(&entry(next, 5)), "{case}");
            if whole {
                break;
            }
            tear += 1;
        }
    }
}

// A segment's file grows ahead of its records by the preallocation, so batches that fit
// overwrite zeros and leave its size alone; a reopen reads the zeros as unused space, in
// the last segment and in earlier ones.
#[test]
fn segments_grow_ahead_of_their_records() {
    let disk: Arc<dyn Disk> = Arc::new(SimDisk::new());
    let options = WalOptions { segment_bytes_max: 300, preallocate_bytes: 256 };
    let (mut wal, _) = open(&disk, options.clone());
    let mut file_sizes = Vec::new();
    for index in 1..=12 {
        wal.append(&[entry(index, 1)]).expect("append");
        wal.sync().expect("sync");
        let segment = wal.segment.as_ref().expect("a segment");
        let file_bytes = disk.read(&path(&segment_name(segment.sequence))).expect("read").len() as u64;
        assert_eq!(file_bytes, segment.file_bytes);
        assert!(file_bytes >= segment.size_bytes && file_bytes <= segment.size_bytes + 256);
        file_sizes.push((segment.sequence, file_bytes));
    }
    let grew = file_sizes.windows(2).filter(|pair| pair[0].0 == pair[1].0 && pair[0].1 != pair[1].1).count();
    let same = file_sizes.windows(2).filter(|pair| pair[0] == pair[1]).count();
    assert!(same > grew, "most batches overwrite zeros: {file_sizes:?}");
    assert!(file_sizes.last().expect("sizes").0 > 1, "more than one segment: {file_sizes:?}");
    drop(wal);
    let (_, reopened) = open(&disk, options);
    assert_eq!(reopened.entries, entries(1..=12, 1));
}

// Damage in the middle of the last segment (with records after it) is corruption, not a
// torn tail: the error names the file and the damaged record's offset.
#[test]
fn corruption_in_middle_of_segment_is_an_error() {
    let sim = SimDisk::new();
    let disk: Arc<dyn Disk> = Arc::new(sim.clone());
    let (mut wal, _) = open(&disk, WalOptions::default());
    for index in 1..=3 {
        wal.append(&[entry(index, 1)]).expect("append");
        wal.sync().expect("sync");
    }
    drop(wal);
    let first_record_bytes = HEADER_BYTES + protobuf::Message::compute_size(&entry(1, 1)) as usize;
    let second_batch = (first_record_bytes + HEADER_BYTES) as u64;
    sim.corrupt(&path(&segment_name(1)), second_batch + HEADER_BYTES as u64 + 2).expect("corrupt");
    let message = open_error(&disk);
    let expected = format!("corrupt write-ahead log data/{} at byte {second_batch}: checksum mismatch", segment_name(1));
    assert_eq!(message, expected);
}

// Damage at the very end of a segment that is not the last one is corruption too (only the
// last segment can have a torn tail): shown by flipping the last byte of segment 1, which
// is its batch end without preallocation, and a zero after its records with it.
#[test]
fn corruption_in_earlier_segment_is_an_error() {
    for preallocate_bytes in [0, 100] {
        let sim = SimDisk::new();
        let disk: Arc<dyn Disk> = Arc::new(sim.clone());
        let (mut wal, _) = open(&disk, WalOptions { segment_bytes_max: 1, preallocate_bytes });
        for index in 1..=3 {
            wal.append(&[entry(index, 1)]).expect("append");
            wal.sync().expect("sync");
        }
        drop(wal);
        let first = path(&segment_name(1));
        let len = disk.read(&first).expect("read").len() as u64;
        sim.corrupt(&first, len - 1).expect("corrupt");
        let message = open_error(&disk);
        let records_end = len - preallocate_bytes;
        let bad_record = if preallocate_bytes == 0 {
            records_end - HEADER_BYTES as u64
        } else {
            records_end
        };
        let expected = format!("corrupt write-ahead log data/{} at byte {bad_record}: checksum mismatch", segment_name(1));
        assert_eq!(message, expected);
    }
}

// A damaged snapshot file is an error naming it, not a reason to fall back to the log.
#[test]
fn corruption_in_snapshot_file_is_an_error() {
    let sim = SimDisk::new();
    let disk: Arc<dyn Disk> = Arc::new(sim.clone());
    let (mut wal, _) = open(&disk, WalOptions::default());
    wal.append(&entries(1..=4, 1)).expect("append");
    wal.save_snapshot(&snapshot(3, 1)).expect("snapshot");
    drop(wal);
    sim.corrupt(&path(&snapshot_name(3)), HEADER_BYTES as u64 + 5).expect("corrupt");
    let message = open_error(&disk);
    assert_eq!(message, format!("corrupt snapshot data/{} at byte 0: checksum mismatch", snapshot_name(3)));
}

/// Writes raw records, as a damaged or foreign writer would, into segment 1.
fn write_raw_segment(disk: &Arc<dyn Disk>, build: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = Vec::new();
    build(&mut bytes);
    disk.create_dir_all(Path::new(DIR)).expect("mkdir");
    disk.write_new(&path(&segment_name(1)), &bytes).expect("write");
}

// Records whose checksum holds but whose content is impossible are corruption: an entry that
// does not decode, and entries that skip an index.
#[test]
fn checksummed_nonsense_is_an_error() {
    let disk: Arc<dyn Disk> = Arc::new(SimDisk::new());
    write_raw_segment(&disk, |bytes| {
        record::encode_raw(RecordKind::Entry as u8, &[0xFF, 0xFF], bytes).expect("encode");
        record::encode_empty(RecordKind::BatchEnd, bytes).expect("encode");
    });
    let message = open_error(&disk);
    assert!(message.starts_with(&format!("corrupt write-ahead log data/{} at byte 0: undecodable entry", segment_name(1))), "{message}");

    let disk: Arc<dyn Disk> = Arc::new(SimDisk::new());
    let mut third_at = 0;
    write_raw_segment(&disk, |bytes| {
        for index in [1, 2, 5] {
            third_at = bytes.len();
            record::encode(RecordKind::Entry, &entry(index, 1), bytes).expect("encode");
        }
        record::encode_empty(RecordKind::BatchEnd, bytes).expect("encode");
    });
    let message = open_error(&disk);
    let expected = format!("corrupt write-ahead log data/{} at byte {third_at}: entry 5 where entry 3 was expected", segment_name(1));
    assert_eq!(message, expected);
}

// Group commit: a hundred entries over ten appends and a hard state cost one fsync.
#[test]
fn one_sync_is_one_fsync() {
    let sim = SimDisk::new();
    let disk: Arc<dyn Disk> = Arc::new(sim.clone());
    let (mut wal, _) = open(&disk, WalOptions::default());
    wal.append(&[entry(1, 1)]).expect("append");
    wal.sync().expect("first sync creates the segment");
    let (wal_before, disk_before) = (wal.fsync_count(), sim.sync_count());
    for batch in 0..10 {
        wal.append(&entries(2 + batch * 10..=11 + batch * 10, 1)).expect("append");
    }
    wal.set_hard_state(&hard_state(1, 1, 50));
    wal.sync().expect("sync");
    assert_eq!(wal.fsync_count() - wal_before, 1);
    assert_eq!(sim.sync_count() - disk_before, 1);
    wal.sync().expect("empty sync");
    assert_eq!(wal.fsync_count() - wal_before, 1, "nothing pending, nothing synced");
    assert_eq!(wal.last_index(), 101);
}

// A snapshot drops the entries it covers and the old segments; reopening yields the snapshot
// and the entries after it, with the commit raised to the snapshot's index.
#[test]
fn snapshot_compacts_the_log() {
    let disk: Arc<dyn Disk> = Arc::new(SimDisk::new());
    let (mut wal, _) = open(&disk, small_segments());
    for index in 1..=10 {
        wal.append(&[entry(index, 1)]).expect("append");
        wal.set_hard_state(&hard_state(1, 1, index - 1));
        wal.sync().expect("sync");
    }
    wal.append(&entries(11..=12, 2)).expect("append, synced by the snapshot");
    wal.save_snapshot(&snapshot(8, 1)).expect("snapshot");
    assert_eq!((wal.first_index(), wal.last_index(), wal.term(8)), (9, 12, Some(1)));
    assert_eq!(wal.term(7), None);
    let names = disk.list(Path::new(DIR)).expect("list");
    assert_eq!(names.len(), 2, "one snapshot and one fresh segment: {names:?}");
    drop(wal);
    let (_, reopened) = open(&disk, small_segments());
    let mut expected = entries(9..=10, 1);
    expected.extend(entries(11..=12, 2));
    assert_eq!(reopened, recovered(hard_state(1, 1, 9), expected, Some(snapshot(8, 1))));
}

// A snapshot that disagrees with the log at its index (one sent by a new leader) replaces the
// whole log, and so does one past the end of the log; an older one is refused.
#[test]
fn received_snapshot_replaces_the_log() {
    let disk: Arc<dyn Disk> = Arc::new(SimDisk::new());
    let (mut wal, _) = open(&disk, WalOptions::default());
    wal.append(&entries(1..=6, 1)).expect("append");
    wal.save_snapshot(&snapshot(4, 3)).expect("snapshot");
    assert_eq!((wal.entries().len(), wal.hard_state().commit, wal.hard_state().term), (0, 4, 3));
    wal.save_snapshot(&snapshot(9, 3)).expect("snapshot past the log");
    assert!(matches!(wal.save_snapshot(&snapshot(5, 3)), Err(StorageError::SnapshotOutOfDate { .. })));
    assert!(matches!(wal.append(&[entry(9, 3)]), Err(StorageError::NotContiguous { .. })));
    assert!(matches!(wal.append(&[entry(11, 3)]), Err(StorageError::NotContiguous { .. })));
    wal.append(&[entry(10, 4)]).expect("append after the snapshot");
    wal.sync().expect("sync");
    drop(wal);
    let (_, reopened) = open(&disk, WalOptions::default());
    assert_eq!(reopened, recovered(hard_state(3, 0, 9), vec![entry(10, 4)], Some(snapshot(9, 3))));
}

// A crash at any point of saving a snapshot (shown by failing the disk after each number of
// calls, then crashing with a tear) recovers the state before the save or after it, never
// a mix; and every crash before the rename is synced recovers the state before.
#[test]
fn crash_during_snapshot_save_recovers_old_or_new() {
    let old = recovered(hard_state(1, 1, 7), entries(1..=10, 1), None);
    let new = recovered(hard_state(1, 1, 7), entries(6..=10, 1), Some(snapshot(5, 1)));
    let mut outcomes = Vec::new();
    for calls in 0.. {
        let sim = SimDisk::new();
        let disk: Arc<dyn Disk> = Arc::new(sim.clone());
        let (mut wal, _) = open(&disk, small_segments());
        wal.append(&old.entries).expect("append");
        wal.set_hard_state(&old.hard_state);
        wal.sync().expect("sync");
        sim.fail_after(Some(calls));
        let saved = wal.save_snapshot(&snapshot(5, 1));
        sim.crash(Some(calls * 7919));
        let (_, reopened) = open(&disk, small_segments());
        assert!(reopened == old || reopened == new, "after {calls} calls: {reopened:?}");
        outcomes.push(reopened == new);
        if saved.is_ok() {
            break;
        }
    }
    // The first four calls write, sync and rename the temporary file and sync the directory:
    // failing any of them leaves the new snapshot not yet durable.
    assert!(outcomes[..4].iter().all(|is_new| !is_new), "{outcomes:?}");
    assert!(outcomes.last() == Some(&true));
}

// A snapshot staged apart counts for nothing until adopted: a crash before then recovers the
// log as it was (the staged file removed), and so does a staging that is discarded; once
// adopted it is the log's start, and its file holds the staged bytes.
#[test]
fn staged_snapshot_counts_only_once_adopted() {
    let old = recovered(hard_state(1, 1, 7), entries(1..=10, 1), None);
    let new = recovered(hard_state(1, 1, 7), entries(6..=10, 1), Some(snapshot(5, 1)));
    let sim = SimDisk::new();
    let disk: Arc<dyn Disk> = Arc::new(sim.clone());
    let (mut wal, _) = open(&disk, WalOptions::default());
    wal.append(&old.entries).expect("append");
    wal.set_hard_state(&old.hard_state);
    wal.sync().expect("sync");
    let mut writer = wal.snapshot_writer().expect("a log on disk has a writer");
    let staged = writer.stage(&snapshot(5, 1), 0).expect("staged");
    sim.crash(None);
    let (mut wal, reopened) = open(&disk, WalOptions::default());
    assert_eq!(reopened, old, "a crash before adopting");
    assert_eq!(disk.list(Path::new(DIR)).expect("list").len(), 1, "only the segment is left");

    let mut writer = wal.snapshot_writer().expect("writer");
    let discarded = writer.stage(&snapshot(5, 1), 1).expect("staged");
    let kept = writer.another().stage(&snapshot(5, 1), 2).expect("staged under another name");
    assert_ne!(discarded.temp(), kept.temp());
    let temp = path(discarded.temp());
    wal.discard_staged_snapshot(discarded).expect("discarded");
    assert!(!disk.exists(&temp).expect("exists"));
    wal.adopt_staged_snapshot(&snapshot(5, 1), &kept).expect("adopted");
    assert!(!disk.exists(&path(staged.temp())).expect("exists"));
    sim.crash(None);
    let (_, reopened) = open(&disk, WalOptions::default());
    assert_eq!(reopened, new);
}

// Leftovers of an interrupted snapshot save (a temporary file) are removed on open.
#[test]
fn open_removes_temporary_files() {
    let disk: Arc<dyn Disk> = Arc::new(SimDisk::new());
    disk.create_dir_all(Path::new(DIR)).expect("mkdir");
    let temp = path(&temp_name(&snapshot_name(4)));
    disk.write_new(&temp, b"half a snapshot").expect("write");
    let (_, reopened) = open(&disk, WalOptions::default());
    assert_eq!(reopened, Recovered::default());
    assert!(!disk.exists(&temp).expect("exists"));
}

// The log also works directly in the disk's root (the node keeps its files there), with
// error messages naming the bare file.
#[test]
fn log_in_root_directory() {
    let sim = SimDisk::new();
    let disk: Arc<dyn Disk> = Arc::new(sim.clone());
    let (mut wal, _) = Wal::open(disk.clone(), "", WalOptions::default()).expect("open");
    wal.append(&entries(1..=2, 1)).expect("append");
    wal.sync().expect("sync");
    sim.crash(None);
    let (_, reopened) = Wal::open(disk.clone(), "", WalOptions::default()).expect("reopen");
    assert_eq!(reopened.entries, entries(1..=2, 1));
    sim.corrupt(Path::new(&segment_name(1)), 3).expect("corrupt");
    let error = Wal::open(disk, "", WalOptions::default()).map(|_| ()).expect_err("corrupt");
    assert!(error.to_string().starts_with(&format!("corrupt write-ahead log {} at byte 0", segment_name(1))));
}

// A log in memory only answers like one on disk (entries, terms, a conflicting overwrite, a
// snapshot that drops what it covers) while it writes nothing and syncs nothing.
#[test]
fn in_memory_log_keeps_entries_and_writes_nothing() {
    let mut wal = Wal::in_memory();
    assert!(!wal.keeps_snapshots());
    wal.append(&entries(1..=5, 1)).unwrap();
    wal.set_hard_state(&hard_state(1, 1, 3));
    wal.sync().unwrap();
    wal.append(&entries(4..=6, 2)).unwrap();
    wal.sync().unwrap();
    assert_eq!(wal.entries(), &entries(1..=3, 1).into_iter().chain(entries(4..=6, 2)).collect::<Vec<_>>()[..]);
    assert_eq!(wal.term(5), Some(2));
    wal.save_snapshot(&snapshot(4, 2)).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (5, 6));
    assert_eq!(wal.term(4), Some(2));
    assert_eq!(wal.entries(), &entries(5..=6, 2)[..]);
    assert_eq!(wal.hard_state(), &hard_state(2, 1, 4));
    assert_eq!(wal.fsync_count(), 0);
}

/// Batches taken from the log and written apart (as the driver's writer does) are durable once
/// written, in the order taken, across segment rolls; a batch taken but never written is lost
/// at a crash like any unsynced write, and the log appends on after the ones written.
#[test]
fn batches_written_apart_are_durable_once_written() {
    let sim = SimDisk::new();
    let disk: Arc<dyn Disk> = Arc::new(sim.clone());
    let (mut wal, _) = open(&disk, small_segments());
    let mut writer = wal.writer().expect("a log on disk has a writer");
    wal.append(&entries(1..=4, 1)).expect("append");
    wal.set_hard_state(&hard_state(1, 1, 2));
    let first = wal.take_batch().expect("taken").expect("something to write");
    wal.append(&entries(5..=6, 1)).expect("append while the first batch is out");
    let second = wal.take_batch().expect("taken").expect("something to write");
    assert!(wal.take_batch().expect("taken").is_none(), "nothing left pending");
    writer.write_all([first]).expect("written");
    writer.write_all([second]).expect("written");
    assert!(writer.fsync_count() >= 2, "each batch is fsynced");
    wal.append(&entries(7..=7, 1)).expect("append");
    let _lost = wal.take_batch().expect("taken").expect("something to write");
    sim.crash(None);
    let (_, reopened) = open(&disk, small_segments());
    assert_eq!(reopened, recovered(hard_state(1, 1, 2), entries(1..=6, 1), None));
}

/// Batches that waited while the writer was busy go out together: those that follow each
/// other in a segment as one write and one fsync, each segment durable before the next, and
/// the file grown as far as the furthest of them grew it. Recovery finds every one.
#[test]
fn batches_written_together_share_an_fsync_per_segment() {
    let sim = SimDisk::new();
    let disk: Arc<dyn Disk> = Arc::new(sim.clone());
    let options = WalOptions { segment_bytes_max: 400, preallocate_bytes: 100 };
    let (mut wal, _) = open(&disk, options.clone());
    let mut writer = wal.writer().expect("a log on disk has a writer");
    let mut batches = Vec::new();
    for index in 1..=12 {
        wal.append(&[entry(index, 1)]).expect("append");
        wal.set_hard_state(&hard_state(1, 1, index - 1));
        batches.push(wal.take_batch().expect("taken").expect("something to write"));
    }
    let segments = wal.segment.as_ref().expect("a segment").sequence;
    assert!(segments > 1, "the batches span segments");
    let before = sim.sync_count();
    writer.write_all(batches).expect("written");
    let syncs = sim.sync_count() - before;
    // One data fsync per segment, and one of the directory per new segment.
    assert_eq!(syncs, 2 * segments, "fsyncs for {segments} segments");
    for sequence in 1..=segments {
        let file_bytes = disk.read(&path(&segment_name(sequence))).expect("read").len() as u64;
        assert!(file_bytes > 0, "segment {sequence} written");
    }
    let last = wal.segment.as_ref().expect("a segment");
    let file_bytes = disk.read(&path(&segment_name(last.sequence))).expect("read").len() as u64;
    assert_eq!(file_bytes, last.file_bytes, "the last segment grown ahead as the log expects");
    wal.append(&entries(13..=13, 1)).expect("append after");
    writer.write_all(wal.take_batch().expect("taken")).expect("written");
    sim.crash(None);
    let (_, reopened) = open(&disk, options);
    assert_eq!(reopened, recovered(hard_state(1, 1, 11), entries(1..=13, 1), None));
}

/// A log in memory has no writer and never has a batch to write.
#[test]
fn log_in_memory_takes_no_batch() {
    let mut wal = Wal::in_memory();
    assert!(wal.writer().is_none());
    wal.append(&entries(1..=2, 1)).expect("append");
    wal.set_hard_state(&hard_state(1, 1, 1));
    assert!(wal.take_batch().expect("taken").is_none());
}

/// A hard state set lazily (a higher commit index) makes no batch of its own, and is recorded
/// with the next batch written for another reason.
#[test]
fn lazy_hard_state_rides_with_the_next_batch() {
    let sim = SimDisk::new();
    let disk: Arc<dyn Disk> = Arc::new(sim.clone());
    let (mut wal, _) = open(&disk, WalOptions::default());
    wal.append(&entries(1..=3, 1)).expect("append");
    wal.set_hard_state(&hard_state(1, 1, 0));
    wal.sync().expect("sync");
    let fsyncs = wal.fsync_count();
    wal.set_hard_state_lazily(&hard_state(1, 1, 3));
    assert!(wal.take_batch().expect("taken").is_none(), "a lazy hard state alone makes no batch");
    wal.sync().expect("sync");
    assert_eq!(wal.fsync_count(), fsyncs, "nor an fsync");
    wal.append(&entries(4..=4, 1)).expect("append");
    wal.sync().expect("sync");
    sim.crash(None);
    let (_, reopened) = open(&disk, WalOptions::default());
    assert_eq!(reopened, recovered(hard_state(1, 1, 3), entries(1..=4, 1), None));
}

// A power loss right after a compaction loses nothing the sync policy promised, under every
// policy: the snapshot and the entries after it survive even with -F (the audit found the
// snapshot's data never synced under -F while the segments it replaced were removed), and a
// log that went on to later segments after batches left unsynced reopens rather than taking
// the unsynced tail of an earlier segment for damage.
#[test]
fn power_loss_after_compaction_keeps_the_snapshot_under_every_policy() {
    use crate::storage::{PolicyDisk, SyncPolicy};
    let policies = [SyncPolicy::Always, SyncPolicy::AtMostEvery(std::time::Duration::from_secs(3600)), SyncPolicy::Never];
    for policy in policies {
        let sim = SimDisk::new();
        // A fresh policy disk per run of the process, as after a power loss.
        let disk = || -> Arc<dyn Disk> { Arc::new(PolicyDisk::new(sim.clone(), policy)) };
        let (mut wal, _) = open(&disk(), small_segments());
        for index in 1..=12 {
            wal.append(&[entry(index, 1)]).expect("append");
            wal.set_hard_state(&hard_state(1, 1, index));
            wal.sync().expect("sync");
        }
        assert!(wal.segment.as_ref().expect("a segment").sequence > 2, "the log spans segments");
        wal.save_snapshot(&snapshot(10, 1)).expect("snapshot");
        sim.crash(Some(7));
        let (mut wal, reopened) = open(&disk(), small_segments());
        assert_eq!(reopened.snapshot, Some(snapshot(10, 1)), "{policy:?}");
        assert_eq!(reopened.entries, entries(11..=12, 1), "{policy:?}");

        for index in 13..=30 {
            wal.append(&[entry(index, 1)]).expect("append");
            wal.sync().expect("sync");
        }
        wal.save_snapshot(&snapshot(20, 1)).expect("a compaction removes segments with syncs owed");
        for index in 31..=40 {
            wal.append(&[entry(index, 1)]).expect("append");
            wal.sync().expect("sync");
        }
        sim.crash(Some(3));
        let (_, reopened) = open(&disk(), small_segments());
        assert_eq!(reopened.snapshot, Some(snapshot(20, 1)), "{policy:?}");
        let last = reopened.entries.last().map_or(20, |e| e.index);
        if policy == SyncPolicy::Always {
            assert_eq!(last, 40);
        }
        assert_eq!(reopened.entries, entries(21..=last, 1), "{policy:?}: a prefix of the log survives");
    }
}

// Under -F a power loss may keep the last of several unsynced batches and lose those before
// it, leaving a hole of zeros: the log opens at its last synced batch, under the policy that
// wrote it and under the default one after it, which then drops the data dir's mark. Without
// the mark (every batch synced) the same damage is corruption.
#[test]
fn power_loss_amid_unsynced_batches_opens_at_the_last_synced_one() {
    use crate::storage::names::UNSYNCED_BATCHES_MARK;
    use crate::storage::{PolicyDisk, SyncPolicy};
    let unsynced_batches_then_power_loss = |sim: &SimDisk| {
        let disk: Arc<dyn Disk> = Arc::new(PolicyDisk::new(sim.clone(), SyncPolicy::Always));
        let (mut wal, _) = open(&disk, WalOptions::default());
        wal.append(&entries(1..=2, 1)).expect("append");
        wal.sync().expect("sync");
        drop(wal);
        let disk: Arc<dyn Disk> = Arc::new(PolicyDisk::new(sim.clone(), SyncPolicy::Never));
        let (mut wal, _) = open(&disk, WalOptions::default());
        for index in 3..=6 {
            wal.append(&[entry(index, 1)]).expect("append");
            wal.sync().expect("sync");
        }
        sim.crash(Some(u64::MAX));
    };
    for reopened_under in [SyncPolicy::Never, SyncPolicy::Always] {
        let sim = SimDisk::new();
        unsynced_batches_then_power_loss(&sim);
        let disk: Arc<dyn Disk> = Arc::new(PolicyDisk::new(sim.clone(), reopened_under));
        let (_, reopened) = open(&disk, WalOptions::default());
        assert_eq!(reopened.entries, entries(1..=2, 1), "{reopened_under:?}");
        let marked = sim.exists(&path(UNSYNCED_BATCHES_MARK)).expect("exists");
        assert_eq!(marked, reopened_under == SyncPolicy::Never, "{reopened_under:?}");
    }
    let sim = SimDisk::new();
    unsynced_batches_then_power_loss(&sim);
    sim.remove(&path(UNSYNCED_BATCHES_MARK)).expect("remove the mark");
    let disk: Arc<dyn Disk> = Arc::new(sim.clone());
    assert!(open_error(&disk).contains("corrupt"), "damage before whole records is corruption without the mark");
}

/// Log lines written while `f` runs.
fn logged_while(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lines").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = lines.0.lock().expect("lines").clone();
    String::from_utf8_lossy(&bytes).into_owned()
}

// Cutting a torn write is logged at warn with the file, offset and bytes cut; the zeros of
// preallocated space after the log's end are not a torn write and log nothing.
#[test]
fn torn_tail_is_logged_and_preallocation_is_not() {
    let sim = SimDisk::new();
    let disk: Arc<dyn Disk> = Arc::new(sim.clone());
    let (mut wal, _) = open(&disk, WalOptions::default());
    wal.append(&entries(1..=2, 1)).expect("append");
    wal.sync().expect("sync");
    let synced_bytes = records_bytes(&wal);
    drop(wal);
    let quiet = logged_while(|| drop(open(&disk, WalOptions::default())));
    assert!(!quiet.contains("torn"), "{quiet}");
    let (mut wal, _) = open(&disk, WalOptions::default());
    wal.append(&entries(3..=4, 1)).expect("append");
    sim.fail_after(Some(1));
    assert!(wal.sync().is_err());
    sim.fail_after(None);
    sim.crash(Some(20));
    let logged = logged_while(|| drop(open(&disk, WalOptions::default())));
    assert!(logged.contains("WARN") && logged.contains("torn"), "{logged}");
    assert!(logged.contains(&format!("offset={synced_bytes}")) && logged.contains("torn_bytes=20"), "{logged}");
}
