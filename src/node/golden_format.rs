//! The disk format's golden bytes: a log entry holding every kind of operation, and a snapshot
//! of a state that fills every field of the format (jobs in each state, a paused tube, a lease,
//! a waiting client, an answered one, cached results of each kind), as written on disk. The
//! files were written by the build before the format had a package of its own
//! (`coolbeans.api.v1`); this build must write the same bytes and read them back, so data
//! dirs and fuzz corpora of either build stay readable by the other.
//!
//! `COOLBEANS_WRITE_GOLDEN=1 cargo test golden` writes the files anew: only for a deliberate
//! change of the format, which then needs a new version (see `version`).

use std::path::PathBuf;

use bytes::Bytes;
use prost::Message;

use super::entry::{decode_entry, encode_entry};
use super::replicated::Replicated;
use super::version::STATE_MACHINE_VERSION;
use crate::codec::log::{decode_op, op_request};
use crate::fsm::{ClientKey, Op};
use crate::storage::format::{ApplyOpBatch, ApplyOpRequest, OpType, ReplicatedStateProto};

fn client(name: &str) -> ClientKey {
    ClientKey::new("proxy-a", name)
}

/// Every kind of logged operation, with each optional part both present and absent.
fn every_op() -> Vec<Op> {
    let put = |client: Option<ClientKey>, delay_secs| Op::Put {
        client,
        tube: "t".into(),
        pri: 1 << 31,
        delay_secs,
        ttr_secs: u32::MAX,
        body: Bytes::from_static(b"body\r\n"),
    };
    vec![
        put(Some(client("c1")), 0),
        put(None, 60),
        Op::Reserve { client: client("c1"), request_id: "r1".into(), timeout_secs: None, tubes: vec![] },
        Op::Reserve { client: client("c2"), request_id: "r2".into(), timeout_secs: Some(5), tubes: vec!["a".into(), "t".into()] },
        Op::ReserveJob { client: client("c1"), id: 7 },
        Op::Delete { client: Some(client("c1")), id: 1 },
        Op::Delete { client: None, id: 2 },
        Op::Release { client: client("c1"), id: 3, pri: 4, delay_secs: 5 },
        Op::Bury { client: client("c1"), id: 3, pri: 9 },
        Op::Touch { client: client("c1"), id: 3 },
        Op::Kick { tube: "t".into(), bound: 10 },
        Op::KickJob { id: 3 },
        Op::MoveJob { id: 4, tube: "u".into() },
        Op::PauseTube { tube: "t".into(), delay_secs: 30 },
        Op::Use { client: client("c1"), tube: "u".into() },
        Op::Watch { client: client("c1"), tube: "w".into() },
        Op::Ignore { client: client("c1"), tube: "w".into() },
        Op::ClientHello { client: client("c3") },
        Op::DiscardPut { client: client("c3") },
        Op::ClientGone { client: client("c3") },
        Op::ProxyGone { proxy: "proxy-b".into() },
        Op::ProxyLease { proxy: "proxy-a".into(), lease_secs: 30 },
        Op::Tick,
        Op::NewLeader,
    ]
}

/// An operation as a leader stamps it into an entry, from caller `caller` (empty: none).
fn stamped(op: &Op, caller: &str, seq: u64, now_ms: i64) -> ApplyOpRequest {
    ApplyOpRequest { now_ms, now_secs: now_ms / 1000, ..op_request(op, caller.into(), seq) }
}

fn entry(ops: Vec<ApplyOpRequest>) -> Vec<u8> {
    encode_entry(&ApplyOpBatch { ops, version: STATE_MACHINE_VERSION })
}

/// The writes behind the golden snapshot, each its own entry at 1 s past the previous one.
fn workload() -> Vec<(Op, &'static str)> {
    let put = |pri, delay_secs| Op::Put {
        client: Some(client("c1")),
        tube: "t".into(),
        pri,
        delay_secs,
        ttr_secs: 120,
        body: Bytes::from(format!("job at {pri}")),
    };
    let reserve =
        |name: &str, request_id: &str, timeout_secs| Op::Reserve { client: client(name), request_id: request_id.into(), timeout_secs, tubes: vec![] };
    vec![
        (Op::ClientHello { client: client("c1") }, ""),
        (Op::ClientHello { client: client("c2") }, ""),
        (Op::ClientHello { client: client("c3") }, ""),
        (Op::ProxyLease { proxy: "proxy-a".into(), lease_secs: 30 }, "proxy-a"),
        (Op::Use { client: client("c1"), tube: "t".into() }, "proxy-a"),
        (Op::Watch { client: client("c2"), tube: "t".into() }, "proxy-a"),
        (Op::Watch { client: client("c3"), tube: "empty".into() }, "proxy-a"),
        (Op::Ignore { client: client("c3"), tube: "default".into() }, "proxy-a"),
        (put(5, 0), "proxy-a"),
        (put(1, 0), "proxy-a"),
        (put(3, 0), "proxy-a"),
        (put(2, 600), "proxy-a"),
        (reserve("c2", "r1", Some(0)), "proxy-a"),
        (reserve("c2", "r2", Some(0)), "proxy-a"),
        (Op::Bury { client: client("c2"), id: 3, pri: 7 }, "proxy-a"),
        (Op::PauseTube { tube: "t".into(), delay_secs: 3600 }, "front"),
        (reserve("c3", "r3", Some(100)), "proxy-a"),
        (Op::Delete { client: None, id: 99 }, "front"),
        (Op::Kick { tube: "default".into(), bound: 5 }, "front"),
        (Op::Tick, ""),
    ]
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/node/testdata").join(name)
}

/// The golden file's bytes, or `bytes` written as the new golden file when asked.
fn golden(name: &str, bytes: &[u8]) -> Vec<u8> {
    let path = golden_path(name);
    if std::env::var_os("COOLBEANS_WRITE_GOLDEN").is_some() {
        std::fs::write(&path, bytes).expect("golden file written");
    }
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An entry of every kind of operation encodes to the golden bytes, and the golden bytes
/// decode to those operations.
#[test]
fn golden_entry_bytes_are_unchanged() {
    let ops = every_op();
    let requests: Vec<_> = ops.iter().enumerate().map(|(n, op)| stamped(op, "proxy-a", n as u64 + 1, 1_700_000_000_123)).collect();
    let bytes = entry(requests);
    assert_eq!(bytes, golden("entry.bin", &bytes), "an entry encodes to other bytes than the golden file's");
    let batch = decode_entry(&Bytes::from(bytes)).expect("the golden entry decodes");
    assert_eq!(batch.version, STATE_MACHINE_VERSION);
    let decoded: Vec<_> = batch.ops.iter().map(|r| decode_op(r.op(), &r.body).expect("decodes")).collect();
    assert_eq!(decoded, ops);
    assert!(batch.ops.iter().all(|r| r.caller_id == "proxy-a" && r.now_ms == 1_700_000_000_123));
}

/// A state that fills every field of the snapshot encodes to the golden bytes, and the golden
/// bytes restore, decoded whole or one job at a time, to that state.
#[test]
fn golden_snapshot_bytes_are_unchanged() {
    let mut r = Replicated::new([(1, "10.0.0.1:7000".to_string()), (2, "10.0.0.2:7000".to_string())].into());
    r.cluster_id = 0x0123_4567_89ab_cdef;
    for (n, (op, caller)) in workload().into_iter().enumerate() {
        let index = n as u64 + 1;
        let at = 1_700_000_000_000 + 1000 * index as i64;
        r.apply_entry(index, &entry(vec![stamped(&op, caller, index, at)]).into()).expect("applies");
    }
    let snapshot = r.snapshot();
    assert!(snapshot
        .callers
        .iter()
        .any(|c| c.responses.iter().any(|r| r.op == OpType::Delete as i32 && r.response.as_ref().is_some_and(|r| r.error_code != 0))));
    let bytes = snapshot.encode_to_vec();
    assert_eq!(bytes, golden("snapshot.bin", &bytes), "a snapshot encodes to other bytes than the golden file's");
    let restored = Replicated::restore(&ReplicatedStateProto::decode(&bytes[..]).expect("decodes"), STATE_MACHINE_VERSION).expect("restores");
    assert_eq!(restored.digest(), r.digest());
    let restored = Replicated::restore_encoded(&bytes.into(), STATE_MACHINE_VERSION).expect("restores");
    assert_eq!(restored.digest(), r.digest());
}
