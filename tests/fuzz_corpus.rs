//! Replays every fuzz target's corpus (`fuzz/corpus/<target>/`) through the check the target
//! runs, so that CI catches a regression on any input kept there without a fuzzer: seeds from
//! a real data dir (written by `write_seeds` below) and whatever the fuzzer found. Each input's
//! largest allocation is watched too: it must be bounded by the input's size, never by a length
//! read from it.
#![cfg(not(madsim))]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use coolbeans::codec::log::op_request;
use coolbeans::fsm::{ClientKey, Op};
use coolbeans::fuzz_checks::{self, within_allocation_bound, WatchingAllocator};
use coolbeans::fuzz_checks::{FILE_SEPARATOR, SNAPSHOT_DATA, SNAPSHOT_FILE, SNAPSHOT_RECORD, WAL_FRAMED, WAL_SNAPSHOT_FIRST, WAL_UNSYNCED_BATCHES};
use coolbeans::node::entry::encode_entry;
use coolbeans::node::replicated::Replicated;
use coolbeans::node::version::STATE_MACHINE_VERSION;
use coolbeans::storage::format::{ApplyOpBatch, ApplyOpRequest};
use coolbeans::storage::{Disk, RealDisk, Wal, WalOptions};
use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState, Snapshot};

#[global_allocator]
static ALLOCATOR: WatchingAllocator = WatchingAllocator;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target)
}

/// Runs every file of `target`'s corpus through `check`, naming the file that fails.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    for file in files {
        let input = std::fs::read(&file).expect("read corpus file");
        let outcome = std::panic::catch_unwind(|| within_allocation_bound(&input, check));
        assert!(outcome.is_ok(), "{} failed its check", file.display());
    }
}

// Each target's corpus passes its check, input by input.
#[test]
fn wal_reader_corpus() {
    replay("wal_reader", fuzz_checks::wal_reader);
}

#[test]
fn snapshot_reader_corpus() {
    replay("snapshot_reader", fuzz_checks::snapshot_reader);
}

#[test]
fn op_decoder_corpus() {
    replay("op_decoder", fuzz_checks::op_decoder);
}

#[test]
fn protocol_decoder_corpus() {
    replay("protocol_decoder", coolbeans::protocol::split_check::check_fuzz_input);
}

/// Writes the seeds of every corpus from a data dir the real log writes, with entries of
/// real operations and a snapshot of the state they make:
/// `cargo test --test fuzz_corpus -- --ignored write_seeds`.
#[test]
#[ignore]
fn write_seeds() {
    let root = std::env::temp_dir().join(format!("coolbeans-fuzz-seeds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let disk = Arc::new(RealDisk::new(&root));
    // Small segments and preallocation: several segments, each ending in a few zeros.
    let options = WalOptions { segment_bytes_max: 300, preallocate_bytes: 128 };
    let (mut wal, _) = Wal::open(disk.clone(), "data", options.clone()).expect("open");
    let entries = seed_entries();
    let mut state = Replicated::default();
    // The log alone, then a snapshot of all but the last two entries and the log after it.
    let mut log_before = Vec::new();
    for (at, entry) in entries.iter().enumerate() {
        if at + 2 == entries.len() {
            log_before = files(&disk);
            save(&mut wal, &state, entry.index - 1);
        }
        wal.append(std::slice::from_ref(entry)).expect("append");
        wal.set_hard_state(&HardState { term: 2, vote: 1, commit: entry.index, ..HardState::default() });
        wal.sync().expect("sync");
        // Raft's empty entry of a new leader applies nothing.
        if entry.get_entry_type() == EntryType::EntryNormal && !entry.data.is_empty() {
            state.apply_entry(entry.index, &entry.data).expect("a seed entry applies");
        }
    }
    let log_after = files(&disk);
    write_wal_seeds(&log_before, &log_after);
    write_snapshot_seeds(&log_after);
    for (at, entry) in entries.iter().filter(|e| e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty()).enumerate() {
        write_seed("op_decoder", &format!("seed-entry-{at}"), &entry.data);
    }
    let conf_change = entries.iter().find(|e| e.get_entry_type() == EntryType::EntryConfChange).expect("a conf change");
    write_seed("op_decoder", "seed-conf-change", &conf_change.data);
    for (name, stream) in [
        ("put-reserve-delete", &b"use jobs\r\nput 1 0 60 5\r\nhello\r\nwatch jobs\r\nreserve-with-timeout 0\r\ndelete 1\r\n"[..]),
        ("stats-and-peeks", b"stats\r\nlist-tubes\r\npeek-ready\r\nstats-tube default\r\nkick 10\r\nquit\r\n"),
        ("too-big-and-bad", b"put 0 0 1 100\r\nxx\r\nbogus\r\n\r\nput 0 0 1 2\r\nabc\r\n"),
    ] {
        // The default body limit, and the stream in one piece.
        let input: Vec<u8> = [u8::MAX, 0].iter().chain(stream).copied().collect();
        write_seed("protocol_decoder", &format!("seed-{name}"), &input);
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// A raft log's start: the leader's empty entry and its conf change, then entries of
/// operations, one to three a batch, as a leader proposes them.
fn seed_entries() -> Vec<Entry> {
    let client = || ClientKey::new("front-1", "c7");
    let ops: Vec<Vec<Op>> = vec![
        vec![Op::NewLeader],
        vec![Op::ClientHello { client: client() }, Op::Use { client: client(), tube: "emails".into() }],
        vec![Op::Put { client: Some(client()), tube: "emails".into(), pri: 10, delay_secs: 0, ttr_secs: 60, body: "hello".into() }],
        vec![Op::Put { client: None, tube: "emails".into(), pri: 5, delay_secs: 30, ttr_secs: 5, body: vec![7; 40].into() }],
        vec![Op::Watch { client: client(), tube: "emails".into() }, Op::ProxyLease { proxy: "front-1".into(), lease_secs: 30 }],
        vec![Op::Reserve { client: client(), request_id: "r1".into(), timeout_secs: Some(5), tubes: vec!["emails".into()] }],
        vec![Op::Bury { client: client(), id: 1, pri: 3 }, Op::Kick { tube: "emails".into(), bound: 5 }],
        vec![Op::PauseTube { tube: "emails".into(), delay_secs: 9 }, Op::Tick],
        vec![Op::Delete { client: None, id: 2 }, Op::ClientGone { client: client() }],
    ];
    let mut entries = vec![Entry { index: 1, term: 1, ..Entry::default() }];
    let mut conf = ConfChange::default();
    conf.set_change_type(ConfChangeType::AddNode);
    conf.node_id = 1;
    let mut conf_entry = Entry { index: 2, term: 1, data: conf.write_to_bytes().expect("conf change").into(), ..Entry::default() };
    conf_entry.set_entry_type(EntryType::EntryConfChange);
    entries.push(conf_entry);
    for (at, batch) in ops.iter().enumerate() {
        let now_ms = 1_700_000_000_000 + 1000 * at as i64;
        let requests =
            batch.iter().enumerate().map(|(n, op)| ApplyOpRequest { now_ms, ..op_request(op, format!("front-1/{n}"), at as u64) }).collect();
        let data = encode_entry(&ApplyOpBatch { version: STATE_MACHINE_VERSION, ops: requests });
        entries.push(Entry { index: entries.len() as u64 + 1, term: 2, data: data.into(), ..Entry::default() });
    }
    entries
}

/// Saves a snapshot of `state` at `index`, as the driver does.
fn save(wal: &mut Wal, state: &Replicated, index: u64) {
    let mut snapshot = Snapshot { data: state.snapshot().encode_to_vec().into(), ..Snapshot::default() };
    let metadata = snapshot.mut_metadata();
    metadata.index = index;
    metadata.term = 2;
    metadata.set_conf_state(ConfState { voters: vec![1], ..ConfState::default() });
    wal.save_snapshot(&snapshot).expect("save snapshot");
}

/// The data dir's files, by name in order.
fn files(disk: &RealDisk) -> Vec<(String, Vec<u8>)> {
    let names = disk.list(Path::new("data")).expect("list");
    names.into_iter().map(|name| (name.clone(), disk.read(&Path::new("data").join(&name)).expect("read"))).collect()
}

/// Log inputs: the segments alone, raw and framed, whole and with a torn end; and the
/// segments after a snapshot, with the snapshot file.
fn write_wal_seeds(before: &[(String, Vec<u8>)], after: &[(String, Vec<u8>)]) {
    let segments =
        |log: &[(String, Vec<u8>)]| -> Vec<Vec<u8>> { log.iter().filter(|(n, _)| n.starts_with("wal-")).map(|(_, b)| b.clone()).collect() };
    let (before, after_snapshot) = (segments(before), segments(after));
    assert!(before.len() > 1, "several segments");
    let snapshot = after.iter().find(|(n, _)| n.starts_with("snap-")).map(|(_, b)| b.clone()).expect("a snapshot file");
    let framed = |segments: &[Vec<u8>]| -> Vec<Vec<u8>> { segments.iter().map(|s| fuzz_checks::unframe_records(s)).collect() };
    let last = before.last().expect("a segment");
    let torn = [&before[..before.len() - 1], &[last[..last.len() / 2].to_vec()]].concat();
    let with_snapshot = |segments: Vec<Vec<u8>>| [vec![snapshot.clone()], segments].concat();
    write_seed("wal_reader", "seed-segments", &input(0, &before));
    write_seed("wal_reader", "seed-segments-framed", &input(WAL_FRAMED, &framed(&before)));
    write_seed("wal_reader", "seed-snapshot-segments", &input(WAL_SNAPSHOT_FIRST, &with_snapshot(after_snapshot.clone())));
    let framed_after = framed(&with_snapshot(after_snapshot.clone()));
    write_seed("wal_reader", "seed-snapshot-segments-framed", &input(WAL_SNAPSHOT_FIRST | WAL_FRAMED, &framed_after));
    write_seed("wal_reader", "seed-torn", &input(0, &torn));
    write_seed("wal_reader", "seed-torn-unsynced", &input(WAL_UNSYNCED_BATCHES, &torn));
}

fn write_snapshot_seeds(log: &[(String, Vec<u8>)]) {
    let file = log.iter().find(|(n, _)| n.starts_with("snap-")).map(|(_, b)| &b[..]).expect("a snapshot file");
    let payload = fuzz_checks::snapshot_record_payload(file).expect("a snapshot record");
    let snapshot = Snapshot::parse_from_bytes(payload).expect("a snapshot");
    write_seed("snapshot_reader", "seed-file", &[&[SNAPSHOT_FILE][..], file].concat());
    write_seed("snapshot_reader", "seed-record", &[&[SNAPSHOT_RECORD][..], payload].concat());
    write_seed("snapshot_reader", "seed-data", &[&[SNAPSHOT_DATA][..], &snapshot.data[..]].concat());
}

/// A log input: the flags, then the files apart.
fn input(flags: u8, files: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![flags];
    out.extend_from_slice(&files.join(FILE_SEPARATOR));
    out
}

fn write_seed(target: &str, name: &str, bytes: &[u8]) {
    let dir = corpus_dir(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    std::fs::write(dir.join(name), bytes).expect("write seed");
    println!("{target}/{name}: {} bytes", bytes.len());
}
