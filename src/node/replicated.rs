//! The replicated state: the job state machine, the last responses of each caller (so a write
//! retried after a leader change applies once), and the members' addresses. Every replica
//! applies the same entries to it in the same order; it reads no clock and does no I/O.

use std::collections::BTreeMap;

use bytes::Bytes;
use prost::Message;

use super::entry::decode_entry;
use super::version::{self, STATE_MACHINE_VERSION};
use crate::api::metadata::CallerSeq;
use crate::codec::log::{decode_op, decode_result, encode_op_type, encode_result};
use crate::codec::DecodeError;
use crate::fsm::{fields, ClientKey, Fsm, FsmError, Op, Reply, ReservationEvent};
use crate::limits::{CALLERS_MAX, CALLER_RESPONSES_MAX};
use crate::storage::format::{self, ApplyOpRequest, ApplyOpResponse, OpType};

/// The field number of `ReplicatedStateProto.fsm`.
const FSM_FIELD: u32 = 1;

/// One caller's recent responses.
#[derive(Clone, Debug, Default, PartialEq)]
struct Caller {
    /// Log index of its last write: eviction picks the least recent caller.
    last_index: u64,
    /// Responses by sequence number, with the operation each answered.
    responses: BTreeMap<u64, (OpType, ApplyOpResponse)>,
}

/// Why an entry could not be applied as an operation. The state is unchanged in every case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryError {
    /// The entry's bytes or its request did not decode.
    Malformed(String),
    /// A retried write older than the responses kept for its caller: it may have applied.
    TooOldToDeduplicate { caller: String, seq: u64 },
    /// Written by a newer state machine (a newer version, or an operation this node does not
    /// know): nothing of it was applied, and the node must stop rather than diverge.
    Unsupported(String),
}

impl std::fmt::Display for EntryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntryError::Malformed(why) => write!(f, "malformed log entry: {why}"),
            EntryError::Unsupported(why) => write!(f, "{why}"),
            EntryError::TooOldToDeduplicate { caller, seq } => {
                write!(f, "write {seq} of {caller} is too old to deduplicate; it may have applied")
            }
        }
    }
}

/// What applying one operation of an entry came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpOutcome {
    pub result: Result<Result<Reply, FsmError>, EntryError>,
    /// Reservations the operation answered (none for a duplicate).
    pub events: Vec<ReservationEvent>,
    /// The operation repeated a write already applied; the result is the first one's.
    pub duplicate: bool,
}

/// A write of an entry that never leaves this process (a lone node whose log is in memory):
/// kept decoded beside the log instead of encoded into it, which spares encoding and decoding
/// every operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalOp {
    pub op: Op,
    pub caller: Option<CallerSeq>,
}

/// The state every replica keeps in step.
#[derive(Clone, Debug)]
pub struct Replicated {
    pub fsm: Fsm,
    callers: BTreeMap<String, Caller>,
    /// Member addresses by node id, as the conf changes that added them said.
    pub addresses: BTreeMap<u64, String>,
    /// The cluster's id (see `cluster_id_for`); 0 in a state from before clusters had ids.
    pub cluster_id: u64,
    /// The highest state machine version of the entries applied so far (its snapshot's,
    /// after a restore): what a snapshot of this state is stamped with, so a node reads it
    /// if it reads every entry it holds. Replicated: every replica applies the same entries.
    version: u32,
    /// The highest version this node applies (`Versions::understood`); not replicated.
    understood: u32,
}

impl Default for Replicated {
    fn default() -> Self {
        Replicated::new(BTreeMap::new())
    }
}

impl Replicated {
    pub fn new(addresses: BTreeMap<u64, String>) -> Self {
        Replicated {
            fsm: Fsm::new(),
            callers: BTreeMap::new(),
            addresses,
            cluster_id: 0,
            version: version::BASE_VERSION,
            understood: STATE_MACHINE_VERSION,
        }
    }

    /// This state, on a node that applies up to version `understood` (this build's unless a
    /// simulation runs the node as another version).
    pub fn understanding(mut self, understood: u32) -> Self {
        self.understood = understood;
        self
    }

    /// The highest state machine version of the entries this state holds.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Applies one normal entry's data at log index `index`: its operations, in order, one
    /// outcome each. Data that does not decode as a batch changes nothing.
    pub fn apply_entry(&mut self, index: u64, data: &Bytes) -> Result<Vec<OpOutcome>, EntryError> {
        let batch = decode_entry(data).map_err(|e| EntryError::Malformed(e.0))?;
        if let Some(why) = version::unsupported(&format!("log entry {index}"), batch.version, self.understood) {
            return Err(EntryError::Unsupported(why));
        }
        if let Some(unknown) = batch.ops.iter().find(|request| OpType::try_from(request.op).is_err()) {
            return Err(EntryError::Unsupported(format!(
                "log entry {index} holds operation type {}, which state machine version {} does not know (the entry is of version {}): upgrade this node before it applies it",
                unknown.op,
                self.understood,
                version::written_with(batch.version)
            )));
        }
        self.version = self.version.max(version::written_with(batch.version));
        Ok(batch.ops.into_iter().map(|request| self.apply_op(index, request)).collect())
    }

    /// Applies the operations of an entry that never left this process (see `LocalOp`), in
    /// order, one outcome each: as `apply_entry` would the same operations encoded.
    pub fn apply_local(&mut self, index: u64, now_ms: u64, ops: Vec<LocalOp>) -> Vec<OpOutcome> {
        ops.into_iter()
            .map(|LocalOp { op, caller }| {
                let caller = caller.map(|c| (c.caller, c.seq));
                self.apply_once(index, now_ms, caller, encode_op_type(&op), || Ok(op))
            })
            .collect()
    }

    fn apply_op(&mut self, index: u64, request: ApplyOpRequest) -> OpOutcome {
        let Ok(op_type) = OpType::try_from(request.op) else {
            return failed(EntryError::Malformed(format!("unknown op type {}", request.op)));
        };
        let ApplyOpRequest { caller_id, caller_seq, body, now_ms, .. } = request;
        let caller = (!caller_id.is_empty()).then_some((caller_id, caller_seq));
        self.apply_once(index, u64::try_from(now_ms).unwrap_or(0), caller, op_type, || decode_op(op_type, &body))
    }

    /// Applies one operation, at most once per (caller, sequence number) when a caller is
    /// given: a repeat answers the first apply's result from the response cache.
    fn apply_once(
        &mut self,
        index: u64,
        now_ms: u64,
        caller: Option<(String, u64)>,
        op_type: OpType,
        op: impl FnOnce() -> Result<Op, DecodeError>,
    ) -> OpOutcome {
        if let Some((caller_id, seq)) = &caller {
            match self.cached(caller_id, *seq) {
                Cached::Hit(op, response) => {
                    let result = decode_result(op, &response).map_err(|e| EntryError::Malformed(e.0));
                    return OpOutcome { result, events: Vec::new(), duplicate: true };
                }
                Cached::TooOld => return failed(EntryError::TooOldToDeduplicate { caller: caller_id.clone(), seq: *seq }),
                Cached::Miss => {}
            }
        }
        let (result, events) = match op() {
            Ok(op) => {
                let asked = asked_reservation(&op);
                let mut applied = self.fsm.apply(op, now_ms);
                if let (Some(asked), Ok(Reply::Reserve(Some(_)))) = (asked, &applied.reply) {
                    // Answered in its own reply: the event would only reach its proxy
                    // again, from every node, to be ignored.
                    applied.events.retain(|e| e.client != asked.0 || e.request_id != asked.1);
                }
                (applied.reply, applied.events)
            }
            Err(e) => (Err(FsmError::BadArgument("malformed request")), {
                tracing::warn!(index, error = %e, "logged request does not decode");
                Vec::new()
            }),
        };
        if let Some((caller_id, seq)) = caller {
            self.remember(index, caller_id, seq, op_type, &result);
        }
        OpOutcome { result: Ok(result), events, duplicate: false }
    }

    fn cached(&self, caller: &str, seq: u64) -> Cached {
        let Some(c) = self.callers.get(caller) else { return Cached::Miss };
        if let Some((op, response)) = c.responses.get(&seq) {
            return Cached::Hit(*op, response.clone());
        }
        let full = c.responses.len() >= CALLER_RESPONSES_MAX;
        match c.responses.first_key_value() {
            Some((&oldest, _)) if full && seq < oldest => Cached::TooOld,
            _ => Cached::Miss,
        }
    }

    fn remember(&mut self, index: u64, caller: String, seq: u64, op: OpType, result: &Result<Reply, FsmError>) {
        if !self.callers.contains_key(&caller) && self.callers.len() >= CALLERS_MAX {
            // The first minimum in key order: the same caller on every replica.
            let stalest = self.callers.iter().min_by_key(|(_, c)| c.last_index).map(|(name, _)| name.clone());
            if let Some(name) = stalest {
                self.callers.remove(&name);
            }
        }
        let entry = self.callers.entry(caller).or_default();
        entry.last_index = index;
        entry.responses.insert(seq, (op, encode_result(result)));
        while entry.responses.len() > CALLER_RESPONSES_MAX {
            entry.responses.pop_first();
        }
    }

    /// The whole replicated state as a snapshot payload.
    pub fn snapshot(&self) -> format::ReplicatedStateProto {
        let callers = self
            .callers
            .iter()
            .map(|(name, c)| format::CallerProto {
                caller_id: name.clone(),
                last_index: c.last_index,
                responses: c
                    .responses
                    .iter()
                    .map(|(&seq, (op, response))| format::CachedResponseProto { seq, op: *op as i32, response: Some(response.clone()) })
                    .collect(),
            })
            .collect();
        format::ReplicatedStateProto {
            fsm: Some(self.fsm.snapshot()),
            callers,
            addresses: self.addresses.iter().map(|(&id, a)| (id, a.clone())).collect(),
            cluster_id: self.cluster_id,
            version: self.version,
        }
    }

    /// Rebuilds the replicated state from a snapshot payload, on a node that applies up to
    /// version `understood`: a snapshot of a newer version is refused.
    pub fn restore(snap: &format::ReplicatedStateProto, understood: u32) -> Result<Self, String> {
        if let Some(why) = version::unsupported("the snapshot", snap.version, understood) {
            return Err(why);
        }
        let fsm = match &snap.fsm {
            Some(f) => Fsm::restore(f).map_err(|e| e.to_string())?,
            None => return Err("snapshot holds no job state".into()),
        };
        Self::around(fsm, snap, understood)
    }

    /// As `restore`, from the payload's encoding, with the state machine's jobs decoded one at
    /// a time (`Fsm::restore_encoded`), which keeps the peak of a large restore low.
    pub fn restore_encoded(bytes: &Bytes, understood: u32) -> Result<Self, String> {
        let mut fsm = None;
        let mut others = Vec::new();
        for field in fields(bytes) {
            let field = field?;
            if field.number != FSM_FIELD {
                others.extend_from_slice(field.raw);
            } else if fsm.is_some() || !field.delimited {
                return Err("the job state is not one message".into());
            } else {
                fsm = Some(Fsm::restore_encoded(&bytes.slice_ref(field.content)).map_err(|e| e.to_string())?);
            }
        }
        let rest = format::ReplicatedStateProto::decode(&others[..]).map_err(|e| format!("does not decode: {e}"))?;
        // A newer snapshot is refused, whatever its jobs decoded to.
        if let Some(why) = version::unsupported("the snapshot", rest.version, understood) {
            return Err(why);
        }
        Self::around(fsm.ok_or("snapshot holds no job state")?, &rest, understood)
    }

    /// The state around a restored machine: the payload's callers, addresses and cluster id.
    fn around(fsm: Fsm, snap: &format::ReplicatedStateProto, understood: u32) -> Result<Self, String> {
        let mut callers = BTreeMap::new();
        for c in &snap.callers {
            let mut responses = BTreeMap::new();
            for r in &c.responses {
                let op = OpType::try_from(r.op).map_err(|_| format!("cached response of unknown op {}", r.op))?;
                responses.insert(r.seq, (op, r.response.clone().unwrap_or_default()));
            }
            callers.insert(c.caller_id.clone(), Caller { last_index: c.last_index, responses });
        }
        let addresses = snap.addresses.iter().map(|(&id, a)| (id, a.clone())).collect();
        let version = version::written_with(snap.version);
        Ok(Replicated { fsm, callers, addresses, cluster_id: snap.cluster_id, version, understood })
    }

    /// A digest of everything replicated: equal on replicas at the same applied index.
    pub fn digest(&self) -> u64 {
        let tail = self.snapshot();
        let bytes = format::ReplicatedStateProto { fsm: None, ..tail }.encode_to_vec();
        let mut h = self.fsm.digest();
        for b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
        }
        h
    }
}

/// The id of a cluster bootstrapped with `peers`: the same on each of its first members
/// (which agree on nothing else before they start), different for clusters of other members
/// or addresses, and never 0 (which means "not known"). A hash, FNV-1a, of the peer list.
pub fn cluster_id_for(peers: &BTreeMap<u64, String>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (id, addr) in peers {
        for b in format!("{id}={addr},").bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
        }
    }
    h.max(1)
}

/// The client and request id of a `reserve`, whose reply answers it when a job is at hand.
fn asked_reservation(op: &Op) -> Option<(ClientKey, String)> {
    match op {
        Op::Reserve { client, request_id, .. } => Some((client.clone(), request_id.clone())),
        _ => None,
    }
}

fn failed(e: EntryError) -> OpOutcome {
    OpOutcome { result: Err(e), events: Vec::new(), duplicate: false }
}

enum Cached {
    Hit(OpType, ApplyOpResponse),
    TooOld,
    Miss,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::log::op_request;
    use crate::node::entry::{encode_entry, ENTRY_FORMAT_OP_BATCH};

    fn request(op: &Op, caller: &str, seq: u64, now_ms: i64) -> ApplyOpRequest {
        ApplyOpRequest { now_ms, now_secs: now_ms / 1000, ..op_request(op, caller.into(), seq) }
    }

    /// An entry of one operation, stamped as a leader stamps it: with the version that
    /// introduced the operation.
    fn entry(op: &Op, caller: &str, seq: u64, now_ms: i64) -> Bytes {
        let ops = vec![request(op, caller, seq, now_ms)];
        let version = version::Versions::default().entry_version(&ops);
        encode_entry(&format::ApplyOpBatch { ops, version }).into()
    }

    /// Applies an entry of one operation and answers its outcome.
    fn apply_one(r: &mut Replicated, index: u64, data: &Bytes) -> OpOutcome {
        let mut outcomes = r.apply_entry(index, data).expect("the entry decodes");
        assert_eq!(outcomes.len(), 1);
        outcomes.remove(0)
    }

    fn put() -> Op {
        Op::Put { client: None, tube: "default".into(), pri: 1, delay_secs: 0, ttr_secs: 5, body: Bytes::from_static(b"x") }
    }

    /// A put retried with the same caller and sequence number is applied once and answers the
    /// first put's job id again.
    #[test]
    fn retried_write_applies_once() {
        let mut r = Replicated::default();
        let first = apply_one(&mut r, 1, &entry(&put(), "proxy-a", 7, 1000));
        let again = apply_one(&mut r, 2, &entry(&put(), "proxy-a", 7, 1000));
        assert_eq!(first.result, Ok(Ok(Reply::Put { id: 1 })));
        assert_eq!(again.result, first.result);
        assert!(again.duplicate);
        assert_eq!(r.fsm.job_count(), 1);
        let other = apply_one(&mut r, 3, &entry(&put(), "proxy-a", 8, 1000));
        assert_eq!(other.result, Ok(Ok(Reply::Put { id: 2 })));
    }

    /// A reserve answered in its own reply raises no event (its proxy has the answer); one
    /// that waits is answered by an event of the write that hands it a job.
    #[test]
    fn only_waiting_reserves_raise_events() {
        let mut r = Replicated::default();
        let client = ClientKey::new("proxy-a", "1");
        let reserve = |request_id: &str| Op::Reserve { client: client.clone(), request_id: request_id.into(), timeout_secs: None, tubes: Vec::new() };
        apply_one(&mut r, 1, &entry(&put(), "p", 1, 1000));
        let at_once = apply_one(&mut r, 2, &entry(&reserve("r1"), "p", 2, 1000));
        assert!(matches!(at_once.result, Ok(Ok(Reply::Reserve(Some(_))))), "{at_once:?}");
        assert!(at_once.events.is_empty(), "{at_once:?}");
        let waits = apply_one(&mut r, 3, &entry(&reserve("r2"), "p", 3, 1000));
        assert_eq!(waits.result, Ok(Ok(Reply::Reserve(None))));
        let woken = apply_one(&mut r, 4, &entry(&put(), "p", 4, 1000));
        let asked: Vec<_> = woken.events.iter().map(|e| (e.client.clone(), e.request_id.as_str())).collect();
        assert_eq!(asked, vec![(client.clone(), "r2")]);
    }

    /// A cluster's id is the same for the same first members, whatever the map's order, and
    /// differs for another member or address.
    #[test]
    fn cluster_id_follows_the_first_members() {
        let peers: BTreeMap<u64, String> = [(1, "a:1".to_string()), (2, "b:2".to_string())].into();
        let again: BTreeMap<u64, String> = [(2, "b:2".to_string()), (1, "a:1".to_string())].into();
        let moved: BTreeMap<u64, String> = [(1, "a:1".to_string()), (2, "b:3".to_string())].into();
        assert_eq!(cluster_id_for(&peers), cluster_id_for(&again));
        assert_ne!(cluster_id_for(&peers), cluster_id_for(&moved));
        assert_ne!(cluster_id_for(&BTreeMap::new()), 0);
    }

    /// A retry older than every response kept is refused rather than applied twice.
    #[test]
    fn too_old_retry_is_refused() {
        let mut r = Replicated::default();
        for seq in 1..=(CALLER_RESPONSES_MAX as u64 + 1) {
            apply_one(&mut r, seq, &entry(&Op::Tick, "p", seq, 0));
        }
        let late = apply_one(&mut r, 9999, &entry(&put(), "p", 1, 0));
        assert!(matches!(late.result, Err(EntryError::TooOldToDeduplicate { .. })));
        assert_eq!(r.fsm.job_count(), 0);
    }

    /// Garbage entry data changes nothing and says why.
    #[test]
    fn malformed_entry_is_an_error() {
        let mut r = Replicated::default();
        let before = r.digest();
        for data in [&[0xff, 0x01, 0x02][..], &[ENTRY_FORMAT_OP_BATCH, 0xff, 0x01][..], &[][..]] {
            assert!(matches!(r.apply_entry(1, &Bytes::copy_from_slice(data)), Err(EntryError::Malformed(_))));
        }
        assert_eq!(r.digest(), before);
    }

    /// An entry's bytes as a proposer of `version` writes them.
    fn entry_of_version(ops: Vec<ApplyOpRequest>, version: u32) -> Bytes {
        let mut data = vec![ENTRY_FORMAT_OP_BATCH];
        format::ApplyOpBatch { ops, version }.encode(&mut data).expect("encoded");
        data.into()
    }

    /// An entry of a newer state machine, or with an operation this version does not know, is
    /// refused whole, naming both versions, and changes nothing (a put before the unknown
    /// operation included); an entry from before versions (0) applies as version 1.
    #[test]
    fn newer_entries_are_refused_whole() {
        let mut r = Replicated::default();
        let before = r.digest();
        let put = request(&put(), "proxy-a", 1, 1000);
        let newer = r.apply_entry(5, &entry_of_version(vec![put.clone()], STATE_MACHINE_VERSION + 1));
        let Err(EntryError::Unsupported(why)) = newer else { panic!("{newer:?}") };
        assert!(why.contains("log entry 5") && why.contains(&format!("version {}", STATE_MACHINE_VERSION + 1)), "{why}");
        assert!(why.contains(&format!("up to version {STATE_MACHINE_VERSION}")), "{why}");
        let unknown = ApplyOpRequest { op: 999, ..put.clone() };
        let refused = r.apply_entry(6, &entry_of_version(vec![put.clone(), unknown], STATE_MACHINE_VERSION));
        let Err(EntryError::Unsupported(why)) = refused else { panic!("{refused:?}") };
        assert!(why.contains("operation type 999") && why.contains(&format!("version {STATE_MACHINE_VERSION}")), "{why}");
        assert_eq!(r.digest(), before, "nothing applied");
        let old = r.apply_entry(7, &entry_of_version(vec![put], 0)).expect("an entry from before versions applies");
        assert_eq!(old[0].result, Ok(Ok(Reply::Put { id: 1 })));
    }

    /// A snapshot of a newer state machine is refused, naming both versions; one from before
    /// versions restores.
    #[test]
    fn newer_snapshots_are_refused() {
        let mut snapshot = Replicated::default().snapshot();
        assert_eq!(snapshot.version, version::BASE_VERSION, "nothing newer applied yet");
        snapshot.version = 0;
        Replicated::restore(&snapshot, STATE_MACHINE_VERSION).expect("a snapshot from before versions restores");
        snapshot.version = STATE_MACHINE_VERSION + 1;
        let why = Replicated::restore(&snapshot, STATE_MACHINE_VERSION).map(|_| ()).expect_err("a newer snapshot is refused");
        assert!(
            why.contains(&format!("version {}", STATE_MACHINE_VERSION + 1)) && why.contains(&format!("up to version {STATE_MACHINE_VERSION}")),
            "{why}"
        );
    }

    /// A node that understands a newer version applies its entries, and its snapshot then
    /// carries that version, which a node of the older version refuses from either restore;
    /// until such an entry applies, the snapshot keeps the base version every node reads.
    #[test]
    fn snapshots_carry_the_newest_entry_applied() {
        let newer = STATE_MACHINE_VERSION + 1;
        let mut r = Replicated::default().understanding(newer);
        assert_eq!(apply_one(&mut r, 1, &entry(&put(), "p", 1, 1000)).result, Ok(Ok(Reply::Put { id: 1 })));
        assert_eq!((r.version(), r.snapshot().version), (version::BASE_VERSION, version::BASE_VERSION));
        let applied = r.apply_entry(2, &entry_of_version(vec![request(&put(), "p", 2, 2000)], newer)).expect("applies");
        assert_eq!(applied[0].result, Ok(Ok(Reply::Put { id: 2 })));
        assert_eq!(r.snapshot().version, newer);
        let bytes: Bytes = r.snapshot().encode_to_vec().into();
        let why = Replicated::restore_encoded(&bytes, STATE_MACHINE_VERSION).map(|_| ()).expect_err("refused");
        assert!(why.contains(&format!("version {newer}")), "{why}");
        Replicated::restore(&r.snapshot(), STATE_MACHINE_VERSION).map(|_| ()).expect_err("refused");
        let restored = Replicated::restore_encoded(&bytes, newer).expect("a node of the newer version restores it");
        assert_eq!((restored.version(), restored.digest()), (newer, r.digest()));
    }

    /// The operations of one entry apply in order, each answered on its own, a repeat of a
    /// write earlier in the same entry included.
    #[test]
    fn batch_applies_in_order() {
        let mut r = Replicated::default();
        let ops = vec![request(&put(), "p", 1, 1000), request(&put(), "", 0, 1000), request(&put(), "p", 1, 1000)];
        let outcomes = r.apply_entry(1, &encode_entry(&format::ApplyOpBatch { ops, version: STATE_MACHINE_VERSION }).into()).unwrap();
        let results: Vec<_> = outcomes.iter().map(|o| o.result.clone()).collect();
        assert_eq!(results, vec![Ok(Ok(Reply::Put { id: 1 })), Ok(Ok(Reply::Put { id: 2 })), Ok(Ok(Reply::Put { id: 1 }))]);
        assert_eq!(outcomes.iter().map(|o| o.duplicate).collect::<Vec<_>>(), vec![false, false, true]);
        assert_eq!(r.fsm.job_count(), 2);
    }

    /// Operations kept in memory apply as the same operations encoded into entries would:
    /// the same results, events, duplicates and state.
    #[test]
    fn local_ops_apply_like_encoded_entries() {
        let c = crate::fsm::ClientKey::new("p", "c1");
        let reserve = Op::Reserve { client: c.clone(), request_id: "r1".into(), timeout_secs: Some(5), tubes: Vec::new() };
        let writes: Vec<(Op, Option<CallerSeq>)> = vec![
            (Op::ClientHello { client: c.clone() }, None),
            (reserve, Some(CallerSeq { caller: "p".into(), seq: 1 })),
            (put(), Some(CallerSeq { caller: "p".into(), seq: 2 })),
            (put(), Some(CallerSeq { caller: "p".into(), seq: 2 })),
            (Op::KickJob { id: 9 }, None),
            (Op::Tick, None),
        ];
        let (mut encoded, mut local) = (Replicated::default(), Replicated::default());
        for (index, (op, caller)) in writes.into_iter().enumerate() {
            let (index, now_ms) = (index as u64 + 1, 1000 * index as i64);
            let (caller_id, seq) = caller.clone().map(|c| (c.caller, c.seq)).unwrap_or_default();
            let from_entry = apply_one(&mut encoded, index, &entry(&op, &caller_id, seq, now_ms));
            let from_memory = local.apply_local(index, now_ms as u64, vec![LocalOp { op, caller }]);
            assert_eq!(from_memory, vec![from_entry]);
        }
        assert_eq!(local.digest(), encoded.digest());
        assert_eq!(local.fsm.job_count(), 1);
    }

    /// Snapshot then restore, decoded or from the encoding, keeps the state machine, the caller
    /// cache and the addresses.
    #[test]
    fn snapshot_round_trip() {
        let mut r = Replicated::new([(1, "a:1".to_string()), (2, "b:2".to_string())].into());
        apply_one(&mut r, 1, &entry(&put(), "p", 1, 5000));
        apply_one(&mut r, 2, &entry(&Op::KickJob { id: 9 }, "p", 2, 6000));
        let bytes = r.snapshot().encode_to_vec();
        let restored = Replicated::restore(&format::ReplicatedStateProto::decode(&bytes[..]).unwrap(), STATE_MACHINE_VERSION).unwrap();
        assert_eq!(restored.digest(), r.digest());
        let restored = Replicated::restore_encoded(&bytes.into(), STATE_MACHINE_VERSION).unwrap();
        assert_eq!(restored.digest(), r.digest());
        let mut restored = restored;
        let again = apply_one(&mut restored, 3, &entry(&put(), "p", 1, 7000));
        assert!(again.duplicate);
        assert_eq!(again.result, Ok(Ok(Reply::Put { id: 1 })));
    }
}
