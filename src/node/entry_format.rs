//! How this node's log entries carry their operations, chosen once at start: encoded into
//! the entry (a log that is replicated or written to disk), or kept in this process's memory
//! by index while the entry holds only a marker (a lone node whose log is in memory: nothing
//! else ever reads its entries, so `serve` without `-b` encodes no write).

use std::collections::BTreeMap;

use prost::Message as _;

use super::entry::{encode_entry, ENTRY_FORMAT_LOCAL};
use super::replicated::LocalOp;
use super::version::Versions;
use crate::api::metadata::CallerSeq;
use crate::codec::log::op_request;
use crate::fsm::Op;
use crate::limits::{ENTRY_OPS_BYTES_MAX, ENTRY_OPS_MAX};
use crate::storage::format::{ApplyOpBatch, ApplyOpRequest};

/// The operations of an entry kept in memory, with the time stamped on them.
pub(super) struct LocalEntry {
    pub now_ms: u64,
    pub ops: Vec<LocalOp>,
}

/// The operations of one entry to be, in the form this node's entries take.
pub(super) enum Ops {
    /// As the log records them, and their encoded size in bytes.
    Encoded { ops: Vec<ApplyOpRequest>, bytes: usize },
    /// As they are.
    InMemory(Vec<LocalOp>),
}

/// One write made ready for an entry of this node's form.
pub(super) enum Prepared {
    /// As the log records it, and its encoded size in bytes.
    Encoded(ApplyOpRequest, usize),
    InMemory(LocalOp),
}

impl Ops {
    pub fn is_empty(&self) -> bool {
        match self {
            Ops::Encoded { ops, .. } => ops.is_empty(),
            Ops::InMemory(ops) => ops.is_empty(),
        }
    }

    /// Whether `write` still fits in this entry (one write always does, however large).
    pub fn fits(&self, write: &Prepared) -> bool {
        match (self, write) {
            (Ops::Encoded { ops, bytes }, Prepared::Encoded(_, more)) => {
                ops.is_empty() || (ops.len() < ENTRY_OPS_MAX && bytes + more <= ENTRY_OPS_BYTES_MAX)
            }
            (Ops::InMemory(ops), Prepared::InMemory(_)) => ops.len() < ENTRY_OPS_MAX,
            _ => unreachable!("a write prepared in another form than its batch"),
        }
    }

    pub fn push(&mut self, write: Prepared) {
        match (self, write) {
            (Ops::Encoded { ops, bytes }, Prepared::Encoded(request, more)) => {
                *bytes += more;
                ops.push(request);
            }
            (Ops::InMemory(ops), Prepared::InMemory(op)) => ops.push(op),
            _ => unreachable!("a write prepared in another form than its batch"),
        }
    }
}

pub(super) enum EntryFormat {
    Encoded,
    /// The operations of each entry proposed and not yet applied, by index.
    InMemory(BTreeMap<u64, LocalEntry>),
}

impl EntryFormat {
    pub fn new(in_memory: bool) -> Self {
        if in_memory {
            EntryFormat::InMemory(BTreeMap::new())
        } else {
            EntryFormat::Encoded
        }
    }

    pub fn in_memory(&self) -> bool {
        matches!(self, EntryFormat::InMemory(_))
    }

    /// An entry of no operations yet.
    pub fn no_ops(&self) -> Ops {
        match self {
            EntryFormat::Encoded => Ops::Encoded { ops: Vec::new(), bytes: 0 },
            EntryFormat::InMemory(_) => Ops::InMemory(Vec::new()),
        }
    }

    /// `op` from `caller`, ready for an entry.
    pub fn prepare(&self, op: Op, caller: Option<CallerSeq>) -> Prepared {
        match self {
            EntryFormat::Encoded => {
                let (caller_id, caller_seq) = caller.map(|c| (c.caller, c.seq)).unwrap_or_default();
                let request = op_request(&op, caller_id, caller_seq);
                let bytes = request.encoded_len();
                Prepared::Encoded(request, bytes)
            }
            EntryFormat::InMemory(_) => Prepared::InMemory(LocalOp { op, caller }),
        }
    }

    /// An entry of `op` alone, from no caller.
    pub fn one_op(&self, op: Op) -> Ops {
        let mut ops = self.no_ops();
        ops.push(self.prepare(op, None));
        ops
    }

    /// The data of an entry of `ops` stamped `now_ms` (entries of the newest version among
    /// their operations), and what to keep in memory until the entry's index is known.
    pub fn data(&self, ops: Ops, now_ms: u64, versions: &Versions) -> (Vec<u8>, Option<LocalEntry>) {
        match ops {
            Ops::Encoded { mut ops, .. } => {
                for op in &mut ops {
                    op.now_ms = now_ms as i64;
                    op.now_secs = (now_ms / 1000) as i64;
                }
                let version = versions.entry_version(&ops);
                (encode_entry(&ApplyOpBatch { ops, version }), None)
            }
            Ops::InMemory(ops) => (vec![ENTRY_FORMAT_LOCAL], Some(LocalEntry { now_ms, ops })),
        }
    }

    /// Keeps the operations of the entry proposed at `index` until it applies.
    pub fn remember(&mut self, index: u64, local: Option<LocalEntry>) {
        match (self, local) {
            (EntryFormat::InMemory(entries), Some(local)) => {
                assert!(entries.last_key_value().is_none_or(|(last, _)| *last < index), "entry {index} proposed below one kept");
                entries.insert(index, local);
            }
            (EntryFormat::Encoded, None) => {}
            _ => unreachable!("an entry made in another form than this node's"),
        }
    }

    /// The operations kept for an entry of `data` at `index`: none when its data holds them
    /// (`Some(None)` when they should be here and are not: the entry cannot apply).
    pub fn take(&mut self, index: u64, data: &[u8]) -> Option<Option<LocalEntry>> {
        match self {
            EntryFormat::InMemory(entries) if data == [ENTRY_FORMAT_LOCAL] => Some(entries.remove(&index)),
            _ => None,
        }
    }

    /// Forgets every entry kept: they will not apply on this node as proposed (its role
    /// changed), and a later entry at the same index is another.
    pub fn forget_all(&mut self) {
        if let EntryFormat::InMemory(entries) = self {
            entries.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn put(bytes: usize) -> Op {
        Op::Put { client: None, tube: "t".into(), pri: 0, delay_secs: 0, ttr_secs: 1, body: Bytes::from(vec![b'x'; bytes]) }
    }

    /// An encoded entry takes writes until the next would pass the byte bound or the count,
    /// but always its first; an entry kept in memory counts writes only.
    #[test]
    fn entries_fill_to_their_bounds() {
        let encoded = EntryFormat::new(false);
        let mut ops = encoded.no_ops();
        let big = crate::limits::ENTRY_OPS_BYTES_MAX / 2;
        for _ in 0..2 {
            let write = encoded.prepare(put(big - 100), None);
            assert!(ops.fits(&write));
            ops.push(write);
        }
        assert!(!ops.fits(&encoded.prepare(put(big), None)), "past the byte bound");
        let mut lone = encoded.no_ops();
        let huge = encoded.prepare(put(crate::limits::ENTRY_OPS_BYTES_MAX * 2), None);
        assert!(lone.fits(&huge), "a first write always fits");
        lone.push(huge);
        let in_memory = EntryFormat::new(true);
        let mut kept = in_memory.no_ops();
        for _ in 0..ENTRY_OPS_MAX {
            let write = in_memory.prepare(put(big), None);
            assert!(kept.fits(&write));
            kept.push(write);
        }
        assert!(!kept.fits(&in_memory.prepare(put(1), None)), "past the count");
    }

    /// In memory, an entry's data is only the marker and its operations are kept by index
    /// until taken once; encoded, the data holds them stamped with the time.
    #[test]
    fn kept_until_taken_once() {
        let mut in_memory = EntryFormat::new(true);
        let (data, local) = in_memory.data(in_memory.one_op(Op::Tick), 5_000, &Versions::default());
        assert_eq!(data, vec![ENTRY_FORMAT_LOCAL]);
        in_memory.remember(7, local);
        assert!(in_memory.take(7, b"other data").is_none(), "an entry that holds its operations");
        assert!(matches!(in_memory.take(7, &data), Some(Some(LocalEntry { now_ms: 5_000, .. }))));
        assert!(matches!(in_memory.take(7, &data), Some(None)), "taken once");
        let encoded = EntryFormat::new(false);
        let (data, local) = encoded.data(encoded.one_op(Op::Tick), 5_000, &Versions::default());
        assert!(local.is_none());
        let batch = crate::node::entry::decode_entry(&data.into()).expect("decodes");
        assert_eq!(batch.ops[0].now_ms, 5_000);
    }
}
